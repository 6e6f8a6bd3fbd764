//! Real handshakes (rustls on both ends, over an in-memory pipe) against configurations
//! built from Kafka-style properties, and the errors bad settings get.

use std::collections::BTreeMap;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A CA, a server certificate for `localhost` and a client certificate, all in PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "strom test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issue = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue("localhost");
    let (client_cert, client_key) = issue("alice");
    Pki {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn client(pki: &Pki, with_cert: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    Arc::new(if with_cert {
        let certs = CertificateDer::pem_slice_iter(pki.client_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).unwrap();
        builder.with_client_auth_cert(certs, key).unwrap()
    } else {
        builder.with_no_client_auth()
    })
}

/// Handshakes and echoes a few bytes; the suite negotiated, or the failure.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<ClientConfig>,
) -> Result<rustls::CipherSuite, String> {
    let (a, b) = tokio::io::duplex(1 << 16);
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let connector = tokio_rustls::TlsConnector::from(client);
    let serving = tokio::spawn(async move {
        let mut s = acceptor.accept(a).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        s.write_all(&buf).await.map_err(|e| e.to_string())?;
        s.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let name = ServerName::try_from("localhost").unwrap();
    let outcome = async {
        let mut c = connector
            .connect(name, b)
            .await
            .map_err(|e| e.to_string())?;
        c.write_all(b"ping").await.map_err(|e| e.to_string())?;
        c.flush().await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        // TLS 1.3 reports a refused client certificate only at the first read.
        c.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ping");
        Ok::<_, String>(c.get_ref().1.negotiated_cipher_suite().unwrap().suite())
    }
    .await;
    let served = serving.await.unwrap();
    let suite = outcome?;
    served?;
    Ok(suite)
}

#[tokio::test]
async fn a_pem_file_keystore_serves_tls() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("broker.pem");
    std::fs::write(&store, format!("{}{}", pki.server_key, pki.server_cert)).unwrap();
    let p = props(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", store.to_str().unwrap()),
    ]);
    let server = SslSettings::resolve(&p, "SSL").server_config().unwrap();
    assert!(handshake(server, client(&pki, false)).await.is_ok());
}

#[tokio::test]
async fn inline_pem_and_a_listeners_own_settings_win() {
    let pki = pki();
    // The broker-wide key is garbage; the EXTERNAL listener's own settings are used.
    let p = props(&[
        ("ssl.keystore.key", "not a key"),
        ("ssl.keystore.certificate.chain", "not a chain"),
        ("listener.name.external.ssl.keystore.key", &pki.server_key),
        (
            "listener.name.external.ssl.keystore.certificate.chain",
            &pki.server_cert,
        ),
    ]);
    assert!(matches!(
        SslSettings::resolve(&p, "INTERNAL").server_config(),
        Err(TlsError::Pem { .. })
    ));
    let server = SslSettings::resolve(&p, "EXTERNAL")
        .server_config()
        .unwrap();
    assert!(handshake(server, client(&pki, false)).await.is_ok());
}

#[tokio::test]
async fn client_certificates_required_requested_or_not() {
    let pki = pki();
    let base = [
        ("ssl.keystore.key", pki.server_key.as_str()),
        ("ssl.keystore.certificate.chain", pki.server_cert.as_str()),
        ("ssl.truststore.certificates", pki.ca.as_str()),
    ];
    let with = |auth: &'static str| {
        let mut p = props(&base);
        p.insert("ssl.client.auth".into(), auth.into());
        SslSettings::resolve(&p, "SSL").server_config().unwrap()
    };
    let required = with("required");
    assert!(handshake(required.clone(), client(&pki, true))
        .await
        .is_ok());
    let refused = handshake(required, client(&pki, false)).await;
    assert!(refused.is_err(), "no client certificate: {refused:?}");
    let requested = with("requested");
    assert!(handshake(requested.clone(), client(&pki, false))
        .await
        .is_ok());
    assert!(handshake(requested, client(&pki, true)).await.is_ok());
}

#[tokio::test]
async fn protocols_and_cipher_suites_limit_the_handshake() {
    let pki = pki();
    let p = props(&[
        ("ssl.keystore.key", &pki.server_key),
        ("ssl.keystore.certificate.chain", &pki.server_cert),
        ("ssl.enabled.protocols", "TLSv1.3"),
        ("ssl.cipher.suites", "TLS_CHACHA20_POLY1305_SHA256"),
    ]);
    let server = SslSettings::resolve(&p, "SSL").server_config().unwrap();
    assert_eq!(
        handshake(server, client(&pki, false)).await,
        Ok(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
    );
}

#[test]
fn bad_settings_get_clear_errors() {
    let pki = pki();
    let key = ("ssl.keystore.key", pki.server_key.as_str());
    let chain = ("ssl.keystore.certificate.chain", pki.server_cert.as_str());
    let error = |pairs: &[(&str, &str)]| {
        SslSettings::resolve(&props(pairs), "SSL")
            .server_config()
            .unwrap_err()
            .to_string()
    };
    assert!(error(&[]).contains("has no key"), "{}", error(&[]));
    assert!(error(&[key]).contains("both"));
    assert!(error(&[key, chain, ("ssl.keystore.type", "JKS")]).contains("only PEM"));
    assert!(error(&[key, chain, ("ssl.key.password", "secret")]).contains("encrypted"));
    assert!(error(&[key, chain, ("ssl.enabled.protocols", "TLSv1.1")])
        .contains("TLSv1.1 is not supported"));
    let suite = error(&[key, chain, ("ssl.cipher.suites", "TLS_RSA_WITH_NULL_SHA")]);
    assert!(
        suite.contains("TLS_RSA_WITH_NULL_SHA is not supported")
            && suite.contains("TLS_AES_128_GCM_SHA256"),
        "{suite}"
    );
    assert!(
        error(&[key, chain, ("ssl.client.auth", "always")]).contains("required, requested or none")
    );
    assert!(error(&[key, chain, ("ssl.client.auth", "required")]).contains("no truststore"));
    assert!(
        error(&[("ssl.keystore.location", "/nonexistent/broker.pem")])
            .contains("/nonexistent/broker.pem")
    );
    // A listener-scoped property is named as written.
    let scoped = SslSettings::resolve(
        &props(&[
            key,
            chain,
            ("listener.name.ssl.ssl.client.auth", "sometimes"),
        ]),
        "SSL",
    )
    .server_config()
    .unwrap_err()
    .to_string();
    assert!(
        scoped.starts_with("listener.name.ssl.ssl.client.auth=sometimes"),
        "{scoped}"
    );
}
