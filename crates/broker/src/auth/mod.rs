//! Who is on the other end of a connection, and what it may send before it has proven it.
//!
//! Every connection has a [`Session`]: its peer, its listener, its [`Principal`] (Kafka's
//! `User:ANONYMOUS` until a SASL exchange names someone) and, on a SASL_PLAINTEXT or
//! SASL_SSL listener, the state of its SASL exchange ([`sasl`]). [`Session::admit`] is the
//! gate every frame passes before it is parsed: before authentication only ApiVersions,
//! SaslHandshake and SaslAuthenticate (or the raw tokens a v0 handshake asks for) get
//! through; anything else closes the connection, as Kafka does. The authorizer reads the
//! principal.

pub use strom_client::jaas;
pub mod principal;
pub mod sasl;
pub mod scram;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;

/// A Kafka principal: a type and a name, written `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// The principal type (`User`).
    pub kind: String,
    /// The name.
    pub name: String,
}

impl Principal {
    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            kind: "User".into(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`: the principal of a PLAINTEXT connection, or of an SSL one without
    /// a client certificate.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// How long a client on a SASL listener has to authenticate after connecting (or after its
/// re-authentication handshake). Kafka leaves such a connection to `connections.max.idle.ms`;
/// a bound this short keeps half-open exchanges from holding connections.
pub const AUTHENTICATION_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection's identity and authentication state.
#[derive(Debug)]
pub struct Session {
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener it connected to.
    pub listener: Arc<str>,
    /// Who it is.
    pub principal: Principal,
    /// The SASL exchange, on a SASL listener.
    pub(crate) sasl: Option<sasl::SaslState>,
    /// Close the connection once the response being written is sent.
    pub(crate) close_after_response: bool,
    /// The request header's client id, as last sent (quotas are per client id).
    pub client_id: String,
    /// How long the connection is not read after this response (quota throttling).
    pub(crate) throttle: std::time::Duration,
    /// The request being answered, for its metrics.
    pub facts: crate::metrics::RequestFacts,
}

/// What [`Session::admit`] lets a frame be.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// A Kafka request: parse and handle it.
    Request,
    /// A raw SASL token (after a v0 SaslHandshake).
    Token,
    /// Not allowed now: close the connection.
    Refuse(&'static str),
}

impl Session {
    /// A new connection; `sasl` for a SASL_PLAINTEXT or SASL_SSL listener.
    pub fn new(peer: SocketAddr, listener: Arc<str>, sasl: bool) -> Session {
        Session {
            peer,
            listener,
            principal: Principal::anonymous(),
            sasl: sasl.then(sasl::SaslState::new),
            close_after_response: false,
            client_id: String::new(),
            throttle: std::time::Duration::ZERO,
            facts: Default::default(),
        }
    }

    /// Holds the connection back at least `d` after the response (KIP-219).
    pub(crate) fn throttle(&mut self, d: std::time::Duration) {
        self.throttle = self.throttle.max(d);
    }

    /// The hold-back to apply now, reset.
    pub fn take_throttle(&mut self) -> std::time::Duration {
        std::mem::take(&mut self.throttle)
    }

    /// Who the request is from, as quotas see it.
    pub fn quota_client(&self) -> crate::quotas::Client<'_> {
        crate::quotas::Client {
            user: &self.principal.name,
            client_id: &self.client_id,
        }
    }

    /// Whether a frame starting with `api_key` may be handled now.
    pub fn admit(&self, api_key: i16) -> Admit {
        let Some(state) = &self.sasl else {
            return Admit::Request;
        };
        if state.expects_raw_token() {
            return Admit::Token;
        }
        let always = [
            ApiKey::ApiVersions,
            ApiKey::SaslHandshake,
            ApiKey::SaslAuthenticate,
        ];
        if always.iter().any(|k| *k as i16 == api_key) {
            return Admit::Request;
        }
        match state.authenticated(Instant::now()) {
            Ok(()) => Admit::Request,
            Err(why) => Admit::Refuse(why),
        }
    }

    /// The instant by which the client must have authenticated, while it has not.
    pub fn authentication_deadline(&self) -> Option<Instant> {
        self.sasl.as_ref().and_then(sasl::SaslState::deadline)
    }

    /// Whether the connection closes after the response just produced.
    pub fn must_close(&self) -> bool {
        self.close_after_response
    }
}

/// How this node's own connections to other brokers (replica fetches, transaction markers)
/// are secured: as the inter-broker listener asks. TLS trusts the listener's truststore and
/// presents its keystore; SASL uses `sasl.mechanism.inter.broker.protocol` (else the
/// listener's first enabled mechanism; Kafka's default, GSSAPI, is not served) with the
/// `username`/`password` of that mechanism's JAAS config on the listener.
pub fn inter_broker_security(
    config: &crate::BrokerConfig,
) -> Result<strom_client::SecurityConfig, crate::config::ConfigError> {
    use crate::config::{ConfigError, SecurityProtocol};
    let mut security = strom_client::SecurityConfig::default();
    let Some(listener) = config.inter_broker_listener() else {
        return Ok(security);
    };
    let protocol = config.security_protocol(listener);
    let invalid = |key: &str, reason: String| ConfigError {
        key: key.into(),
        value: config.raw.get(key).cloned().unwrap_or_default(),
        reason,
    };
    let mut set = |k: &str, v: &str| {
        security
            .set(k, v)
            .map(|_| ())
            .map_err(|e| invalid(k, e.to_string()))
    };
    set("security.protocol", protocol.name())?;
    if matches!(protocol, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl) {
        for (k, v) in crate::tls::SslSettings::resolve(&config.raw, listener).client_properties() {
            set(k, &v)?;
        }
    }
    if let Some(sasl) = config.sasl.get(listener) {
        let key = "sasl.mechanism.inter.broker.protocol";
        let mechanism =
            match config.raw.get(key) {
                Some(name) => sasl::Mechanism::from_name(name.trim())
                    .filter(|m| sasl.mechanisms.contains(m))
                    .ok_or_else(|| {
                        invalid(
                            key,
                            format!("not one of the mechanisms enabled on listener {listener}"),
                        )
                    })?,
                None => sasl.mechanisms.first().copied().ok_or_else(|| {
                    invalid("sasl.enabled.mechanisms", "no mechanism enabled".into())
                })?,
            };
        let (user, password) =
            sasl::ListenerSasl::own_credentials(&config.raw, listener, mechanism).map_err(|e| {
                ConfigError {
                    key: e.property,
                    value: "(hidden)".into(),
                    reason: e.reason,
                }
            })?;
        set("sasl.mechanism", mechanism.name())?;
        set("sasl.username", &user)?;
        set("sasl.password", &password)?;
    }
    Ok(security)
}
