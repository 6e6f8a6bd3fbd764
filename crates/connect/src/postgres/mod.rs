//! The PostgreSQL connectors. This module owns what they share with the server: the
//! connection settings (`connection.url` as JDBC writes it, or libpq's forms), opening a
//! session, and how server errors map to Connect's (what is worth trying again, what is
//! the data's fault). [`sql`] owns the SQL text and the binary COPY encoding; [`sink`] is
//! the sink connector (Confluent's JDBC sink settings), whose write path (rows planned,
//! staged by COPY, applied in one transaction) is in `write`. [`source`] is the query
//! source connector (Confluent's JDBC source settings) and owns the column types as
//! Connect schemas; [`cdc`] is the change data capture source on logical replication
//! (`pgoutput`, decoded by `pgoutput`).

pub mod cdc;
mod pgoutput;
pub mod sink;
pub mod source;
pub mod sql;
mod write;

use std::str::FromStr;
use std::time::Duration;

use crate::ConnectError;

/// How long opening a connection may take when the URL does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings from `connection.url`, `connection.user` and `connection.password`.
///
/// The URL is JDBC's `jdbc:postgresql://host:port/db?user=..&password=..`, libpq's
/// `postgresql://` URL, or a libpq `host=.. port=..` string. JDBC's own URL parameters
/// (`ssl`, `loggerLevel`, ...) are dropped; the user and password settings win over the
/// URL's. TLS is not supported: `sslmode=require` is refused by the connection.
pub fn connection_config(
    url: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<tokio_postgres::Config, ConnectError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(ConnectError::Config(
            "Missing required configuration \"connection.url\" which has no default value.".into(),
        ));
    }
    let bad = |e: tokio_postgres::Error| {
        ConnectError::Config(format!(
            "Invalid value {url} for configuration connection.url: {e}"
        ))
    };
    let mut config = match url.strip_prefix("jdbc:") {
        Some(rest) => {
            let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
            // The parameters libpq knows pass; the JDBC driver's own would not parse.
            const KNOWN: &[&str] = &[
                "user",
                "password",
                "dbname",
                "options",
                "application_name",
                "sslmode",
                "connect_timeout",
                "keepalives",
                "keepalives_idle",
                "target_session_attrs",
            ];
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| KNOWN.contains(&kv.split('=').next().unwrap_or("")))
                .collect();
            let full = if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            };
            tokio_postgres::Config::from_str(&full).map_err(bad)?
        }
        None => tokio_postgres::Config::from_str(url).map_err(bad)?,
    };
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        config.user(u);
    }
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        config.password(p);
    }
    if config.get_user().is_none() {
        config.user("postgres");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("strom-connect");
    }
    config.keepalives(true);
    Ok(config)
}

/// Opens a session: UTC, so timestamps are written as the epoch milliseconds say.
pub async fn connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, ConnectError> {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| db_error("connecting to PostgreSQL", e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    client
        .batch_execute("SET TIME ZONE 'UTC'")
        .await
        .map_err(|e| db_error("setting up the session", e))?;
    Ok(client)
}

/// What kind of failure a server error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection, a serialization failure, a deadlock, a shutdown, too many
    /// connections: may pass when tried again.
    Transient,
    /// A value the table refuses (SQLSTATE classes 22 and 23: out of range, not null,
    /// a unique or check constraint): the fault of some record.
    Data,
    /// A table or column that is not there (42P01, 42703): the table changed under us.
    Missing,
    /// Anything else (a type mismatch, a permission).
    Other,
}

/// Sorts a server error.
pub fn failure(e: &tokio_postgres::Error) -> Failure {
    let Some(code) = e.code() else {
        return Failure::Transient; // no SQLSTATE: the connection, not a statement
    };
    let c = code.code();
    if c.starts_with("08") || c.starts_with("40") || c.starts_with("57P") || c == "53300" {
        Failure::Transient
    } else if c.starts_with("22") || c.starts_with("23") {
        Failure::Data
    } else if c == "42P01" || c == "42703" {
        Failure::Missing
    } else {
        Failure::Other
    }
}

/// A server error's message with what was being done and the SQLSTATE.
pub fn message(what: &str, e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            format!(
                "{what}: {}{detail} [SQLSTATE {}]",
                db.message(),
                db.code().code()
            )
        }
        None => format!("{what}: {e}"),
    }
}

/// A server error as Connect's: [`ConnectError::Retriable`] when it may pass when tried
/// again (the framework gives the same records again), else [`ConnectError::Connect`].
pub fn db_error(what: &str, e: tokio_postgres::Error) -> ConnectError {
    let text = message(what, &e);
    match failure(&e) {
        Failure::Transient => ConnectError::Retriable(text),
        _ => ConnectError::Connect(text),
    }
}

/// The connection settings every PostgreSQL connector has: `connection.url`,
/// `connection.user`, `connection.password`.
pub(crate) fn connection_def() -> crate::config::ConfigDef {
    use crate::config::{ConfigDef, Importance, Kind};
    ConfigDef::new()
        .define(
            "connection.url",
            Kind::String,
            None,
            Importance::High,
            "JDBC connection URL, e.g. jdbc:postgresql://localhost:5432/db (a libpq URL or key=value string also works).",
        )
        .define("connection.user", Kind::String, None, Importance::High, "JDBC connection user.")
        .nullable()
        .define(
            "connection.password",
            Kind::Password,
            None,
            Importance::High,
            "JDBC connection password.",
        )
        .nullable()
}

/// A connector's validation: the definitions first, then, when they all pass, what only
/// the parsed settings can tell (`problems`: each message under the setting at fault).
pub(crate) fn validate_with(
    def: crate::config::ConfigDef,
    props: &crate::api::Props,
    problems: impl FnOnce() -> Vec<(&'static str, String)>,
) -> Vec<crate::config::ConfigValue> {
    let mut values = def.validate(props);
    if values.iter().any(|v| !v.errors.is_empty()) {
        return values;
    }
    for (setting, why) in problems() {
        if let Some(v) = values.iter_mut().find(|v| v.name == setting) {
            v.errors.push(why);
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jdbc_urls_give_the_host_port_database_and_user() {
        let c = connection_config(
            "jdbc:postgresql://127.0.0.1:5433/shop?user=app&ssl=false&loggerLevel=OFF",
            None,
            Some("secret"),
        )
        .unwrap();
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_dbname(), Some("shop"));
        assert_eq!(c.get_user(), Some("app"));
        assert_eq!(c.get_password(), Some(&b"secret"[..]));
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let c = connection_config("host=/tmp port=5432 dbname=x", Some("u"), None).unwrap();
        assert_eq!(c.get_user(), Some("u"));
        let c = connection_config("postgresql://me@db.example:6000/x", None, None).unwrap();
        assert_eq!((c.get_user(), c.get_ports()), (Some("me"), &[6000][..]));
        let bad = connection_config("jdbc:postgresql://[bad", None, None).unwrap_err();
        assert!(bad.to_string().contains("connection.url"), "{bad}");
        assert!(connection_config(" ", None, None).is_err());
    }
}
