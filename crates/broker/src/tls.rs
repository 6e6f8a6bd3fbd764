//! TLS settings of a listener, with Kafka's property names, turned into a rustls server
//! configuration: the key and certificate chain (`ssl.keystore.*`, PEM files or the PEM text
//! itself, KIP-651), the certificates trusted for client authentication
//! (`ssl.truststore.*`), `ssl.client.auth`, `ssl.enabled.protocols` and
//! `ssl.cipher.suites`. A listener's own `listener.name.<name>.ssl.*` settings win over the
//! broker-wide `ssl.*` ones, as in Kafka.
//!
//! Only PEM stores exist here (`ssl.keystore.type=PEM`): Java's JKS and PKCS12 have no
//! well-kept Rust reader, and Kafka itself takes PEM since KIP-651. Encrypted private keys
//! (`ssl.key.password`) are refused with a clear error rather than half supported.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a listener's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A setting has a value Strom does not take.
    #[error("{property}={value}: {reason}")]
    Invalid {
        /// The property, as written (with its listener prefix if it had one).
        property: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A required setting is missing.
    #[error("{0}")]
    Missing(String),
    /// A PEM file or text could not be read or holds nothing usable.
    #[error("{what}: {reason}")]
    Pem {
        /// Which store.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the combination.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients must present a certificate the truststore vouches for.
    Required,
    /// A certificate is checked if one is presented; clients without one are let in.
    Requested,
    /// No client certificate is asked for (Kafka's default).
    None,
}

/// One listener's TLS settings, as resolved from the broker's properties.
#[derive(Debug, Clone)]
pub struct SslSettings {
    listener: String,
    values: BTreeMap<&'static str, (String, String)>,
}

/// Every `ssl.*` setting this module reads (the store passwords only to be accepted: PEM
/// stores have none).
pub const SETTINGS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.cipher.suites",
    "ssl.endpoint.identification.algorithm",
    "ssl.principal.mapping.rules",
];

impl SslSettings {
    /// The settings of listener `listener` among `props` (Kafka's property names):
    /// `listener.name.<listener in lower case>.ssl.X` if set, else `ssl.X`.
    pub fn resolve(props: &BTreeMap<String, String>, listener: &str) -> SslSettings {
        let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
        let mut values = BTreeMap::new();
        for &name in SETTINGS {
            let scoped = format!("{prefix}{name}");
            if let Some(v) = props.get(&scoped) {
                values.insert(name, (scoped, v.clone()));
            } else if let Some(v) = props.get(name) {
                values.insert(name, (name.to_string(), v.clone()));
            }
        }
        SslSettings {
            listener: listener.to_string(),
            values,
        }
    }

    /// The value of `name` with the property it came from, if set and not blank.
    fn get(&self, name: &str) -> Option<(&str, &str)> {
        self.values
            .get(name)
            .map(|(p, v)| (p.as_str(), v.trim()))
            .filter(|(_, v)| !v.is_empty())
    }

    fn invalid(&self, name: &str, reason: impl Into<String>) -> TlsError {
        let (property, value) = self.get(name).unwrap_or((name, ""));
        TlsError::Invalid {
            property: property.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The client-side TLS properties (librdkafka's names) with which this node connects to
    /// such a listener of another node: its truststore as the CA, its keystore as the client
    /// certificate, and `ssl.endpoint.identification.algorithm`.
    pub fn client_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut put = |from: &str, to: &'static str| {
            if let Some((_, v)) = self.get(from) {
                out.push((to, v.to_string()));
            }
        };
        put("ssl.truststore.location", "ssl.ca.location");
        put("ssl.truststore.certificates", "ssl.ca.pem");
        put("ssl.keystore.location", "ssl.certificate.location");
        put("ssl.keystore.location", "ssl.key.location");
        put("ssl.keystore.certificate.chain", "ssl.certificate.pem");
        put("ssl.keystore.key", "ssl.key.pem");
        if let Some((_, v)) = self.values.get("ssl.endpoint.identification.algorithm") {
            // Empty is meaningful here: no host name check.
            out.push((
                "ssl.endpoint.identification.algorithm",
                v.trim().to_string(),
            ));
        }
        out
    }

    /// `ssl.principal.mapping.rules` (DEFAULT when unset).
    pub fn principal_rules(&self) -> Result<crate::auth::principal::MappingRules, TlsError> {
        match self.get("ssl.principal.mapping.rules") {
            None => Ok(Default::default()),
            Some((_, v)) => crate::auth::principal::MappingRules::parse(v)
                .map_err(|e| self.invalid("ssl.principal.mapping.rules", e)),
        }
    }

    /// `ssl.client.auth` (none when unset).
    pub fn client_auth(&self) -> Result<ClientAuth, TlsError> {
        match self.get("ssl.client.auth").map(|(_, v)| v) {
            None | Some("none") => Ok(ClientAuth::None),
            Some("required") => Ok(ClientAuth::Required),
            Some("requested") => Ok(ClientAuth::Requested),
            Some(_) => Err(self.invalid("ssl.client.auth", "must be required, requested or none")),
        }
    }

    fn check_pem_type(&self, name: &str) -> Result<(), TlsError> {
        match self.get(name) {
            None => Ok(()),
            Some((_, v)) if v.eq_ignore_ascii_case("PEM") => Ok(()),
            Some(_) => Err(self.invalid(
                name,
                "only PEM stores are supported (KIP-651); convert JKS/PKCS12 with keytool and openssl",
            )),
        }
    }

    /// The listener's private key and certificate chain.
    fn keystore(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        self.check_pem_type("ssl.keystore.type")?;
        if self.get("ssl.key.password").is_some() {
            return Err(self.invalid(
                "ssl.key.password",
                "encrypted private keys are not supported; give the key unencrypted (PKCS#8 or PKCS#1 PEM)",
            ));
        }
        let pem_err = |what: &str, reason: String| TlsError::Pem {
            what: format!("listener {}: {what}", self.listener),
            reason,
        };
        let (certs, key) = match (
            self.get("ssl.keystore.location"),
            self.get("ssl.keystore.key"),
            self.get("ssl.keystore.certificate.chain"),
        ) {
            (Some((prop, path)), None, None) => {
                let bytes = std::fs::read(path).map_err(|e| pem_err(prop, format!("{path}: {e}")))?;
                let certs = certificates(&bytes).map_err(|e| pem_err(prop, e))?;
                let key = PrivateKeyDer::from_pem_slice(&bytes)
                    .map_err(|e| pem_err(prop, format!("no private key: {e}")))?;
                (certs, key)
            }
            (None, Some((key_prop, key)), Some((chain_prop, chain))) => {
                let certs = certificates(chain.as_bytes()).map_err(|e| pem_err(chain_prop, e))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| pem_err(key_prop, format!("no private key: {e}")))?;
                (certs, key)
            }
            (None, None, None) => {
                return Err(TlsError::Missing(format!(
                    "listener {} uses TLS but has no key: set ssl.keystore.location (a PEM file with the key and its certificate chain), or ssl.keystore.key and ssl.keystore.certificate.chain",
                    self.listener
                )))
            }
            _ => {
                return Err(TlsError::Missing(format!(
                    "listener {}: give either ssl.keystore.location or both ssl.keystore.key and ssl.keystore.certificate.chain",
                    self.listener
                )))
            }
        };
        Ok((certs, key))
    }

    /// The certificates trusted to sign client certificates, if any are set.
    fn truststore(&self) -> Result<Option<RootCertStore>, TlsError> {
        self.check_pem_type("ssl.truststore.type")?;
        let (prop, bytes) = match (
            self.get("ssl.truststore.location"),
            self.get("ssl.truststore.certificates"),
        ) {
            (Some((prop, path)), None) => (
                prop,
                std::fs::read(path).map_err(|e| TlsError::Pem {
                    what: prop.to_string(),
                    reason: format!("{path}: {e}"),
                })?,
            ),
            (None, Some((prop, text))) => (prop, text.as_bytes().to_vec()),
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(TlsError::Missing(format!(
                    "listener {}: give ssl.truststore.location or ssl.truststore.certificates, not both",
                    self.listener
                )))
            }
        };
        let mut roots = RootCertStore::empty();
        for cert in certificates(&bytes).map_err(|reason| TlsError::Pem {
            what: prop.to_string(),
            reason,
        })? {
            roots.add(cert).map_err(|e| TlsError::Pem {
                what: prop.to_string(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        Ok(Some(roots))
    }

    /// `ssl.enabled.protocols` (TLSv1.2 and TLSv1.3 by default, as Kafka's).
    fn protocols(&self) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
        let Some((_, list)) = self.get("ssl.enabled.protocols") else {
            return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
        };
        let mut out = Vec::new();
        for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p {
                "TLSv1.3" => out.push(&rustls::version::TLS13),
                "TLSv1.2" => out.push(&rustls::version::TLS12),
                _ => {
                    return Err(self.invalid(
                        "ssl.enabled.protocols",
                        format!("{p} is not supported: TLSv1.2 and TLSv1.3 are"),
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err(self.invalid("ssl.enabled.protocols", "names no protocol"));
        }
        Ok(out)
    }

    /// The crypto provider with only the suites of `ssl.cipher.suites` (IANA names, as
    /// Java's), or all of ring's when unset.
    fn provider(&self) -> Result<Arc<CryptoProvider>, TlsError> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some((_, list)) = self.get("ssl.cipher.suites") {
            let wanted: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            for w in &wanted {
                if !provider.cipher_suites.iter().any(|s| iana_name(s) == *w) {
                    let known: Vec<String> = provider.cipher_suites.iter().map(iana_name).collect();
                    return Err(self.invalid(
                        "ssl.cipher.suites",
                        format!("{w} is not supported; these are: {}", known.join(", ")),
                    ));
                }
            }
            provider
                .cipher_suites
                .retain(|s| wanted.contains(&iana_name(s).as_str()));
        }
        Ok(Arc::new(provider))
    }

    /// The rustls configuration that serves this listener.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let client_auth = self.client_auth()?;
        let (certs, key) = self.keystore()?;
        let roots = self.truststore()?;
        let provider = self.provider()?;
        let protocols = self.protocols()?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&protocols)?;
        let builder = match (client_auth, roots) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (auth, Some(roots)) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| {
                    TlsError::Pem {
                        what: format!("listener {}: truststore", self.listener),
                        reason: e.to_string(),
                    }
                })?)
            }
            (_, None) => {
                return Err(TlsError::Missing(format!(
                    "listener {}: ssl.client.auth asks for client certificates but no truststore is set (ssl.truststore.location or ssl.truststore.certificates)",
                    self.listener
                )))
            }
        };
        Ok(Arc::new(builder.with_single_cert(certs, key)?))
    }
}

/// Every certificate of a PEM text, at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate".into());
    }
    Ok(certs)
}

/// A suite's IANA name (Java's, which Kafka's `ssl.cipher.suites` uses): rustls spells the
/// TLS 1.3 ones `TLS13_...`.
fn iana_name(suite: &rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

#[cfg(test)]
mod tests;
