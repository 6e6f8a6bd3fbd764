//! How a client secures its connections, under the Kafka client property names:
//! `security.protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL); for TLS
//! `ssl.ca.location` (PEM; else the system's bundle), `ssl.certificate.location` and
//! `ssl.key.location` (mutual TLS, PEM), or the PEM text itself in `ssl.ca.pem`,
//! `ssl.certificate.pem`, `ssl.key.pem` (librdkafka's names),
//! `ssl.endpoint.identification.algorithm` (`https`, or empty to skip the host name check); for SASL `sasl.mechanism` (`sasl.mechanisms`,
//! librdkafka's name), `sasl.username`, `sasl.password`, or the Java client's
//! `sasl.jaas.config` with `username` and `password` options.
//!
//! [`SecurityConfig`] holds the settings; [`SecurityConfig::connector`] checks them once and
//! gives the [`Connector`] every connection of a client opens through. The SASL mechanisms
//! are rsasl's.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rsasl::prelude::{Mechname, MessageSent, SASLClient, SASLConfig, State};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// Where the system's trusted certificates are on Debian and its derivatives, used when
/// `ssl.ca.location` is not set.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Every property [`SecurityConfig::set`] takes.
pub const PROPERTIES: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.ca.pem",
    "ssl.certificate.pem",
    "ssl.key.pem",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.jaas.config",
];

/// A client's security settings, as set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    protocol: Option<String>,
    /// Where each PEM comes from.
    ca: Option<Pem>,
    certificate: Option<Pem>,
    key: Option<Pem>,
    /// `Some("")`: no host name check.
    endpoint_identification: Option<String>,
    mechanism: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("protocol", &self.protocol)
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SecurityConfig {
    /// The SASL mechanism, when the connection authenticates with SASL.
    pub fn sasl_mechanism(&self) -> Option<&str> {
        self.mechanism.as_deref().filter(|_| {
            matches!(
                self.protocol.as_deref(),
                Some("SASL_PLAINTEXT") | Some("SASL_SSL")
            )
        })
    }

    /// Sets one property; `Ok(false)` when `key` is not a security property.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let v = Some(value.to_string());
        match key {
            "security.protocol" => self.protocol = Some(value.to_ascii_uppercase()),
            "ssl.ca.location" => self.ca = Some(Pem::File(value.into())),
            "ssl.certificate.location" => self.certificate = Some(Pem::File(value.into())),
            "ssl.key.location" => self.key = Some(Pem::File(value.into())),
            "ssl.ca.pem" => self.ca = Some(Pem::Text(value.into())),
            "ssl.certificate.pem" => self.certificate = Some(Pem::Text(value.into())),
            "ssl.key.pem" => self.key = Some(Pem::Text(value.into())),
            "ssl.endpoint.identification.algorithm" => self.endpoint_identification = v,
            "sasl.mechanism" | "sasl.mechanisms" => self.mechanism = v,
            "sasl.username" => self.username = v,
            "sasl.password" => self.password = v,
            "sasl.jaas.config" => {
                let (user, password) = jaas_credentials(value)?;
                self.username = Some(user);
                self.password = Some(password);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the settings and builds what connections use.
    pub fn connector(&self) -> Result<Arc<Connector>> {
        let bad = |m: String| Err(ClientError::Config(m));
        let protocol = self.protocol.as_deref().unwrap_or("PLAINTEXT");
        let (tls, sasl) = match protocol {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return bad(format!(
                    "security.protocol={other}: not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                ))
            }
        };
        let tls = if tls {
            Some(self.tls_client_config()?)
        } else {
            None
        };
        let sasl = if sasl {
            let mechanism = self.mechanism.clone().unwrap_or_else(|| "GSSAPI".into());
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
                return bad(format!(
                    "sasl.mechanism={mechanism}: this client speaks PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512"
                ));
            }
            let (Some(username), Some(password)) = (self.username.clone(), self.password.clone())
            else {
                return bad(format!(
                    "{protocol} needs sasl.username and sasl.password (or sasl.jaas.config)"
                ));
            };
            Some(Sasl {
                mechanism,
                username,
                password,
            })
        } else {
            None
        };
        Ok(Arc::new(Connector { tls, sasl }))
    }

    /// The rustls client configuration these settings give (the same whatever
    /// `security.protocol` says).
    pub fn tls_client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let bad = |m: String| ClientError::Config(m);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let system = Pem::File(SYSTEM_CA_BUNDLE.into());
        let ca = self.ca.as_ref().unwrap_or(&system);
        let mut roots = RootCertStore::empty();
        for c in ca.certificates("ssl.ca")? {
            roots
                .add(c)
                .map_err(|e| bad(format!("{}: {e}", ca.describe("ssl.ca"))))?;
        }
        if roots.is_empty() {
            return Err(bad(format!(
                "{}: no certificate in it",
                ca.describe("ssl.ca")
            )));
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS: {e}")))?;
        let roots = Arc::new(roots);
        let builder = match self.endpoint_identification.as_deref() {
            Some("") | Some("none") => {
                let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| bad(format!("TLS: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
            }
            None | Some("https") => builder.with_root_certificates(roots),
            Some(other) => {
                return Err(bad(format!(
                    "ssl.endpoint.identification.algorithm={other}: https or empty"
                )))
            }
        };
        let config = match (&self.certificate, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = cert.certificates("ssl.certificate")?;
                let key = key.private_key()?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad(format!("client certificate: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(bad(
                    "a client certificate needs both ssl.certificate.* and ssl.key.*".into(),
                ))
            }
        };
        Ok(Arc::new(config))
    }
}

/// A PEM file, or the PEM text itself.
#[derive(Clone, PartialEq, Eq)]
enum Pem {
    File(String),
    Text(String),
}

impl Pem {
    /// Which setting it is, for errors (never the text: it may be a key).
    fn describe(&self, prefix: &str) -> String {
        match self {
            Pem::File(path) => format!("{prefix}.location={path}"),
            Pem::Text(_) => format!("{prefix}.pem"),
        }
    }

    fn bytes(&self, prefix: &str) -> Result<Vec<u8>> {
        match self {
            Pem::File(path) => std::fs::read(path)
                .map_err(|e| ClientError::Config(format!("{}: {e}", self.describe(prefix)))),
            Pem::Text(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    fn certificates(&self, prefix: &str) -> Result<Vec<CertificateDer<'static>>> {
        let bytes = self.bytes(prefix)?;
        CertificateDer::pem_slice_iter(&bytes)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Config(format!("{}: {e}", self.describe(prefix))))
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>> {
        let bytes = self.bytes("ssl.key")?;
        PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|e| ClientError::Config(format!("{}: {e}", self.describe("ssl.key"))))
    }
}

/// The `username` and `password` options of a JAAS login module entry.
fn jaas_credentials(text: &str) -> Result<(String, String)> {
    let entry = crate::jaas::parse(text)
        .map_err(|e| ClientError::Config(format!("sasl.jaas.config: {e}")))?;
    match (entry.options.get("username"), entry.options.get("password")) {
        (Some(u), Some(p)) => Ok((u.clone(), p.clone())),
        _ => Err(ClientError::Config(
            "sasl.jaas.config needs username=\"...\" and password=\"...\"".into(),
        )),
    }
}

/// A certificate verifier that checks the chain but not the host name
/// (`ssl.endpoint.identification.algorithm=`).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

struct Sasl {
    mechanism: String,
    username: String,
    password: String,
}

/// What every connection of a client is opened with: TLS and SASL, or neither.
pub struct Connector {
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<Sasl>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|s| &s.mechanism))
            .finish()
    }
}

impl Connector {
    /// Plaintext, no authentication.
    pub fn plaintext() -> Arc<Connector> {
        Arc::new(Connector {
            tls: None,
            sasl: None,
        })
    }

    /// TLS settings, for an SSL or SASL_SSL connection.
    pub(crate) fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// Runs the SASL exchange on a new connection (SaslHandshake v1, then SaslAuthenticate);
    /// the session lifetime the broker gave, in ms (0: none).
    pub(crate) async fn authenticate(&self, conn: &Connection) -> Result<i64> {
        let Some(sasl) = &self.sasl else {
            return Ok(0);
        };
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(sasl.mechanism.clone()));
        let r = conn.send_at(&handshake, 1).await?;
        if r.error_code != 0 {
            let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(ClientError::Authentication(format!(
                "the broker refused mechanism {} (it offers {})",
                sasl.mechanism,
                offered.join(", ")
            )));
        }
        let failed = |e: &dyn std::fmt::Display| ClientError::Authentication(e.to_string());
        let config =
            SASLConfig::with_credentials(None, sasl.username.clone(), sasl.password.clone())
                .map_err(|e| failed(&e))?;
        let mechname = Mechname::parse(sasl.mechanism.as_bytes()).map_err(|e| failed(&e))?;
        let mut session = SASLClient::new(config)
            .start_suggested(&[mechname])
            .map_err(|e| failed(&e))?;
        let version = conn.version_up_to::<SaslAuthenticateRequest>(2)?;
        let mut input: Option<Bytes> = None;
        let mut lifetime = 0;
        loop {
            let mut out = Cursor::new(Vec::new());
            let state = session
                .step(input.as_deref(), &mut out)
                .map_err(|e| failed(&e))?;
            if state == State::Finished(MessageSent::No) {
                // The mechanism checked the server's last message (SCRAM's signature).
                return Ok(lifetime);
            }
            let request =
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(out.into_inner()));
            let r = conn.send_at(&request, version).await?;
            if r.error_code != 0 {
                return Err(ClientError::Authentication(
                    r.error_message
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| format!("SASL error {}", r.error_code)),
                ));
            }
            lifetime = r.session_lifetime_ms;
            if state == State::Finished(MessageSent::Yes) {
                // Our last message was accepted (PLAIN).
                return Ok(lifetime);
            }
            input = Some(r.auth_bytes);
        }
    }
}
