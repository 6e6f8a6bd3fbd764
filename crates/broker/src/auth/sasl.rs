//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners: PLAIN (rsasl's), with the
//! users of the listener's JAAS config (`listener.name.<l>.plain.sasl.jaas.config`, options
//! `user_<name>="<password>"`), and SCRAM-SHA-256/512 ([`super::scram`]) against the
//! credentials in the metadata image. This module runs Kafka's exchange around them:
//!
//! - SaslHandshake names the mechanism. After v1 the tokens travel in SaslAuthenticate
//!   requests; after v0 they are raw size-prefixed frames.
//! - A failed exchange answers SASL_AUTHENTICATION_FAILED with a message that does not say
//!   which part was wrong, after `connection.failed.authentication.delay.ms`, and closes.
//! - With `connections.max.reauth.ms`, SaslAuthenticate v1+ tells the client its session
//!   lifetime; past it a request other than the re-authentication closes the connection
//!   (KIP-368), and re-authentication must name the same principal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::prelude::{Mechname, SASLConfig, SASLServer, Session as Exchange, SessionError, State};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, Validation, ValidationError};
use strom_metadata::records::ScramMechanism;
use strom_metadata::MetadataImage;

use super::scram::{self, constant_time_eq, ScramServer};
use super::{jaas, Principal, Session, AUTHENTICATION_TIMEOUT};
use crate::broker::Broker;

/// The SASL settings this module reads (also in their `listener.name.<name>.` forms).
pub const SETTINGS: &[&str] = &[
    "sasl.enabled.mechanisms",
    "sasl.mechanism.inter.broker.protocol",
];

/// A mechanism Strom serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// PLAIN (RFC 4616).
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802, 7677).
    Scram(ScramMechanism),
}

impl Mechanism {
    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }

    /// The mechanism named `name`.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            other => ScramMechanism::from_name(other).map(Mechanism::Scram),
        }
    }

    /// The message of a failed exchange: the same for an unknown user and a wrong password.
    fn failure(self) -> String {
        match self {
            Mechanism::Plain => "Authentication failed: Invalid username or password".into(),
            Mechanism::Scram(m) => format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                m.name()
            ),
        }
    }
}

/// Why a listener's SASL settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{property}: {reason}")]
pub struct SaslConfigError {
    /// The property, with its listener prefix if it had one.
    pub property: String,
    /// What is wrong.
    pub reason: String,
}

/// One SASL listener's settings.
#[derive(Clone)]
pub struct ListenerSasl {
    /// The mechanisms clients may choose, in preference order.
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN's users and their passwords.
    plain_users: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for ListenerSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSasl")
            .field("mechanisms", &self.mechanisms)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ListenerSasl {
    /// Reads listener `listener`'s settings: `sasl.enabled.mechanisms` (its own
    /// `listener.name.<listener>.` form first). Unset, it is SCRAM-SHA-256 and SCRAM-SHA-512,
    /// and PLAIN too when the listener has a PLAIN JAAS config: Kafka's default, GSSAPI, is
    /// not served. Enabled PLAIN needs that config, with at least one `user_` option.
    pub fn resolve(
        props: &BTreeMap<String, String>,
        listener: &str,
    ) -> Result<ListenerSasl, SaslConfigError> {
        let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
        let get = |name: &str| {
            let own = format!("{prefix}{name}");
            match props.get(&own) {
                Some(v) => Some((own, v.clone())),
                None => props.get(name).map(|v| (name.to_string(), v.clone())),
            }
        };
        let jaas_key = format!("{prefix}plain.sasl.jaas.config");
        let plain = match props.get(&jaas_key) {
            None => None,
            Some(text) => {
                let entry = jaas::parse(text).map_err(|reason| SaslConfigError {
                    property: jaas_key.clone(),
                    reason,
                })?;
                Some(entry.plain_users())
            }
        };
        let mechanisms = match get("sasl.enabled.mechanisms") {
            None => {
                let mut m = vec![
                    Mechanism::Scram(ScramMechanism::Sha256),
                    Mechanism::Scram(ScramMechanism::Sha512),
                ];
                if plain.is_some() {
                    m.push(Mechanism::Plain);
                }
                m
            }
            Some((property, value)) => {
                let mut m = Vec::new();
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let mechanism = Mechanism::from_name(name).ok_or_else(|| SaslConfigError {
                        property: property.clone(),
                        reason: format!(
                            "{name} is not supported: Strom serves PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512"
                        ),
                    })?;
                    if !m.contains(&mechanism) {
                        m.push(mechanism);
                    }
                }
                if m.is_empty() {
                    return Err(SaslConfigError {
                        property,
                        reason: "a SASL listener needs at least one mechanism".into(),
                    });
                }
                m
            }
        };
        let plain_users = plain.unwrap_or_default();
        if mechanisms.contains(&Mechanism::Plain) && plain_users.is_empty() {
            return Err(SaslConfigError {
                property: jaas_key,
                reason: "PLAIN is enabled but this JAAS config names no users (options user_<name>=\"<password>\")".into(),
            });
        }
        Ok(ListenerSasl {
            mechanisms,
            plain_users: Arc::new(plain_users),
        })
    }

    /// The username and password this node logs in to such a listener of another node with:
    /// the `username` and `password` options of the listener's JAAS config for `mechanism`
    /// (`listener.name.<l>.<mechanism>.sasl.jaas.config`), as in Kafka.
    pub fn own_credentials(
        props: &BTreeMap<String, String>,
        listener: &str,
        mechanism: Mechanism,
    ) -> Result<(String, String), SaslConfigError> {
        let key = format!(
            "listener.name.{}.{}.sasl.jaas.config",
            listener.to_ascii_lowercase(),
            mechanism.name().to_ascii_lowercase()
        );
        let missing = || {
            SaslConfigError {
            property: key.clone(),
            reason: format!(
                "the inter-broker listener uses {}: its JAAS config needs username=\"...\" and password=\"...\" for this node's own connections",
                mechanism.name()
            ),
        }
        };
        let text = props.get(&key).ok_or_else(missing)?;
        let entry = jaas::parse(text).map_err(|reason| SaslConfigError {
            property: key.clone(),
            reason,
        })?;
        match (entry.options.get("username"), entry.options.get("password")) {
            (Some(u), Some(p)) => Ok((u.clone(), p.clone())),
            _ => Err(missing()),
        }
    }

    fn names(&self) -> Vec<StrBytes> {
        self.mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect()
    }
}

/// rsasl's outcome of a successful exchange: the authenticated user name.
struct UserName;

impl Validation for UserName {
    type Value = String;
}

/// Answers rsasl's PLAIN server: whether the password is right, and who logged in.
struct PlainUsers(Arc<BTreeMap<String, String>>);

impl SessionCallback for PlainUsers {
    fn callback(
        &self,
        _session: &SessionData,
        _context: &Context,
        _request: &mut Request,
    ) -> Result<(), SessionError> {
        Ok(())
    }

    fn validate(
        &self,
        _session: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let Some(user) = context.get_ref::<AuthId>() else {
            return Ok(());
        };
        // An authorization id other than the user is impersonation: refused, as in Kafka.
        if context
            .get_ref::<AuthzId>()
            .is_some_and(|a| !a.is_empty() && a != user)
        {
            return Ok(());
        }
        let given = context.get_ref::<Password>().unwrap_or_default();
        if self
            .0
            .get(user)
            .is_some_and(|p| constant_time_eq(p.as_bytes(), given))
        {
            validate.finalize::<UserName>(user.to_string());
        }
        Ok(())
    }
}

/// The server side of one exchange.
enum Engine {
    Plain(Box<Exchange<UserName>>),
    Scram(Box<ScramServer>),
}

impl Engine {
    /// A server exchange of `mechanism`.
    fn start(
        mechanism: Mechanism,
        image: Arc<MetadataImage>,
        plain_users: &Arc<BTreeMap<String, String>>,
    ) -> Result<Engine, String> {
        match mechanism {
            Mechanism::Scram(m) => Ok(Engine::Scram(Box::new(ScramServer::new(m, image)))),
            Mechanism::Plain => {
                let config = SASLConfig::builder()
                    .with_defaults()
                    .with_callback(PlainUsers(plain_users.clone()))
                    .map_err(|e| e.to_string())?;
                let mechname = Mechname::parse(b"PLAIN").map_err(|e| e.to_string())?;
                let exchange = SASLServer::<UserName>::new(config)
                    .start_suggested(mechname)
                    .map_err(|e| e.to_string())?;
                Ok(Engine::Plain(Box::new(exchange)))
            }
        }
    }

    /// Feeds one client token: `Ok(None)` and a reply to send to go on, `Ok(Some(user))`
    /// and a last reply once authenticated, `Err(())` when refused.
    fn step(&mut self, token: &[u8]) -> Result<(Option<String>, Vec<u8>), ()> {
        match self {
            Engine::Scram(s) => match s.step(token) {
                scram::Outcome::Continue(out) => Ok((None, out)),
                scram::Outcome::Authenticated { user, last } => Ok((Some(user), last)),
                scram::Outcome::Failed => Err(()),
            },
            Engine::Plain(exchange) => {
                let mut out = Vec::new();
                match exchange.step(Some(token), &mut out) {
                    Ok(State::Running) => Ok((None, out)),
                    Ok(State::Finished(_)) => {
                        exchange.validation().map(|u| (Some(u), out)).ok_or(())
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "PLAIN refused a token");
                        Err(())
                    }
                }
            }
        }
    }
}

/// Where a connection's SASL exchange is.
pub(crate) struct SaslState {
    stage: Stage,
    /// When the current (re-)authentication began.
    since: Instant,
    /// When the authenticated session ends (`connections.max.reauth.ms`).
    expires: Option<Instant>,
}

enum Stage {
    /// Waiting for SaslHandshake.
    Handshake,
    /// A mechanism was chosen; tokens are being exchanged.
    Exchanging {
        mechanism: Mechanism,
        engine: Engine,
        /// Tokens arrive as raw frames (a v0 handshake).
        raw: bool,
        /// A re-authentication of an authenticated connection: the principal must not
        /// change.
        reauthentication: bool,
    },
    /// Authenticated.
    Done,
}

impl std::fmt::Debug for SaslState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match &self.stage {
            Stage::Handshake => "handshake",
            Stage::Exchanging { .. } => "exchanging",
            Stage::Done => "authenticated",
        };
        f.debug_struct("SaslState").field("stage", &stage).finish()
    }
}

impl SaslState {
    pub(crate) fn new() -> SaslState {
        SaslState {
            stage: Stage::Handshake,
            since: Instant::now(),
            expires: None,
        }
    }

    pub(crate) fn expects_raw_token(&self) -> bool {
        matches!(self.stage, Stage::Exchanging { raw: true, .. })
    }

    /// Whether requests may be served at `now`, and if not, why.
    pub(crate) fn authenticated(&self, now: Instant) -> Result<(), &'static str> {
        match self.stage {
            Stage::Done if self.expires.is_some_and(|e| now >= e) => {
                Err("the SASL session expired (connections.max.reauth.ms) and was not re-authenticated")
            }
            Stage::Done => Ok(()),
            _ => Err("a request other than SaslHandshake or SaslAuthenticate before SASL authentication completed"),
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.stage {
            Stage::Done => None,
            _ => Some(self.since + AUTHENTICATION_TIMEOUT),
        }
    }
}

fn refuse_handshake(code: ResponseError, listener: Option<&ListenerSasl>) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(code.code())
        .with_mechanisms(listener.map(ListenerSasl::names).unwrap_or_default())
}

/// SaslHandshake: starts an exchange with the mechanism the client names (or a
/// re-authentication, KIP-368, on an authenticated connection with v1).
pub fn handshake(
    broker: &Broker,
    session: &mut Session,
    request: SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    let listener = broker.config.sasl.get(&*session.listener).cloned();
    let (Some(state), Some(listener)) = (session.sasl.as_mut(), listener) else {
        // Not a SASL listener.
        session.close_after_response = true;
        return refuse_handshake(ResponseError::IllegalSaslState, None);
    };
    let fresh = match state.stage {
        Stage::Handshake => true,
        Stage::Done if version >= 1 => false,
        _ => {
            session.close_after_response = true;
            return refuse_handshake(ResponseError::IllegalSaslState, Some(&listener));
        }
    };
    let name = request.mechanism.as_str();
    let Some(mechanism) = Mechanism::from_name(name).filter(|m| listener.mechanisms.contains(m))
    else {
        tracing::info!(peer = %session.peer, mechanism = name, "SASL mechanism not enabled on this listener");
        session.close_after_response = true;
        return refuse_handshake(ResponseError::UnsupportedSaslMechanism, Some(&listener));
    };
    let engine = match Engine::start(mechanism, broker.image(), &listener.plain_users) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(mechanism = name, error = %e, "SASL mechanism could not start");
            session.close_after_response = true;
            return refuse_handshake(ResponseError::UnsupportedSaslMechanism, Some(&listener));
        }
    };
    state.stage = Stage::Exchanging {
        mechanism,
        engine,
        raw: version == 0,
        reauthentication: !fresh,
    };
    state.since = Instant::now();
    tracing::debug!(peer = %session.peer, mechanism = name, reauthentication = !fresh, "SASL handshake");
    SaslHandshakeResponse::default().with_mechanisms(listener.names())
}

/// What one token did to the exchange.
enum Stepped {
    /// More to exchange: send this.
    Continue(Vec<u8>),
    /// Authenticated; send this last token. The session lifetime in ms, or 0.
    Done(Vec<u8>, i64),
    /// Refused, with the message for the client.
    Failed(String),
}

/// Feeds `token` to the exchange in progress.
fn step(broker: &Broker, session: &mut Session, token: &[u8]) -> Stepped {
    let Some(state) = session.sasl.as_mut() else {
        return Stepped::Failed("not a SASL listener".into());
    };
    let Stage::Exchanging {
        mechanism,
        engine,
        reauthentication,
        ..
    } = &mut state.stage
    else {
        return Stepped::Failed("no SASL handshake before SaslAuthenticate".into());
    };
    let (mechanism, reauthentication) = (*mechanism, *reauthentication);
    let (user, out) = match engine.step(token) {
        Ok((None, out)) => return Stepped::Continue(out),
        Ok((Some(user), out)) => (user, out),
        Err(()) => return Stepped::Failed(mechanism.failure()),
    };
    let principal = Principal::user(user);
    if reauthentication && principal != session.principal {
        return Stepped::Failed(
            "Authentication failed: cannot change principals during re-authentication".into(),
        );
    }
    let reauth_ms = broker.config.connections_max_reauth_ms;
    state.stage = Stage::Done;
    state.expires = (reauth_ms > 0).then(|| Instant::now() + Duration::from_millis(reauth_ms));
    tracing::debug!(peer = %session.peer, %principal, mechanism = mechanism.name(), "SASL authenticated");
    broker.metrics.authentication(&session.listener, true);
    session.principal = principal;
    Stepped::Done(out, reauth_ms as i64)
}

/// A failed exchange: logged with the peer, answered after
/// `connection.failed.authentication.delay.ms` (no retry storm), and the connection closed.
async fn failed(broker: &Broker, session: &mut Session, message: &str) {
    tracing::warn!(peer = %session.peer, listener = %session.listener, reason = message, "failed SASL authentication");
    broker.metrics.authentication(&session.listener, false);
    session.close_after_response = true;
    let delay = broker.config.connection_failed_authentication_delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
}

/// SaslAuthenticate: one token of the exchange a v1 handshake started.
pub async fn authenticate(
    broker: &Broker,
    session: &mut Session,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let in_exchange = session
        .sasl
        .as_ref()
        .is_some_and(|s| matches!(s.stage, Stage::Exchanging { raw: false, .. }));
    if !in_exchange {
        session.close_after_response = true;
        return SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "SaslAuthenticate without a SaslHandshake before it",
            )));
    }
    match step(broker, session, &request.auth_bytes) {
        Stepped::Continue(out) => {
            SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(out))
        }
        Stepped::Done(out, lifetime_ms) => SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from(out))
            .with_session_lifetime_ms(lifetime_ms),
        Stepped::Failed(message) => {
            failed(broker, session, &message).await;
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        }
    }
}

/// A raw token after a v0 handshake: the answer is the raw token back. A failure has no
/// way to be told: the connection closes (`None`).
pub async fn raw_token(broker: &Broker, session: &mut Session, token: &[u8]) -> Option<Bytes> {
    match step(broker, session, token) {
        Stepped::Continue(out) | Stepped::Done(out, _) => Some(Bytes::from(out)),
        Stepped::Failed(message) => {
            failed(broker, session, &message).await;
            None
        }
    }
}

#[cfg(test)]
mod tests;
