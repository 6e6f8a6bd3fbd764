//! The client's errors: I/O, protocol, and Kafka's own error codes by name.

use kafka_protocol::ResponseError;

/// Result alias for the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// What went wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or closed.
    #[error("connection to {addr} failed")]
    Io {
        /// The broker address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A message could not be encoded or a response did not decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker does not serve a version of this API that the client speaks.
    #[error("broker does not support api key {api_key} at any version this client speaks")]
    UnsupportedVersion {
        /// The API.
        api_key: i16,
    },
    /// The broker answered with a Kafka error code.
    #[error("broker error {name} ({code}){}", suffix(.message))]
    Kafka {
        /// The code.
        code: i16,
        /// Kafka's name for it, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
        name: String,
        /// The broker's own words, where the response carries them (`error_message`).
        message: Option<String>,
    },
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The connection was closed while the request waited.
    #[error("connection closed")]
    Closed,
    /// The producer can do nothing more: a newer producer with its transactional id fenced
    /// it (Kafka's fatal ProducerFencedException), or its transactional state is lost.
    #[error("fatal producer error: {0}")]
    Fatal(String),
    /// The open transaction cannot commit (a send in it failed, or its coordinator aborted
    /// it): abort it, then begin the next (Kafka's abortable errors).
    #[error("the transaction must be aborted: {0}")]
    Abortable(String),
    /// The broker refused this client's credentials (SASL), or the exchange failed.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// A client setting is invalid or its files cannot be read.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// A transactional call out of order, such as a send outside a transaction.
    #[error("invalid transaction state: {0}")]
    TxnState(String),
}

impl ClientError {
    /// The error for a non-zero Kafka error code.
    pub fn kafka(code: i16) -> ClientError {
        ClientError::kafka_said(code, None)
    }

    /// A Kafka error code with the broker's message, if it gave one.
    pub fn kafka_said(code: i16, message: Option<&str>) -> ClientError {
        ClientError::Kafka {
            code,
            name: error_name(code).unwrap_or_else(|| "UNKNOWN".into()),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }
    }

    /// True when retrying (after refreshing metadata) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => ResponseError::try_from_code(*code)
                .map(|e| e.is_retriable())
                .unwrap_or(false),
            ClientError::Io { .. } | ClientError::Timeout(_) | ClientError::Closed => true,
            _ => false,
        }
    }
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`); `None` for a code Kafka does
/// not define.
pub fn error_name(code: i16) -> Option<String> {
    match ResponseError::try_from_code(code)? {
        ResponseError::Unknown(_) => None,
        e => Some(screaming_snake(&format!("{e:?}"))),
    }
}

/// `UnknownTopicOrPartition` to `UNKNOWN_TOPIC_OR_PARTITION`, Kafka's spelling.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// ": message" for a message, nothing without one.
fn suffix(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_carry_kafkas_names() {
        let e = ClientError::kafka(3);
        assert_eq!(e.to_string(), "broker error UNKNOWN_TOPIC_OR_PARTITION (3)");
        assert!(e.is_retriable());
        assert!(!ClientError::kafka(87).is_retriable(), "INVALID_RECORD");
    }
}
