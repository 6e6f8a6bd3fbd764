//! Enrichment against a table: reads the `clicks` stream (key: user id, value: a JSON
//! click) and the `users` table (key: user id, value: a JSON profile; a null value
//! deletes the user), and writes each click with the user's current profile to
//! `enriched-clicks`. A click whose user the table does not hold (unknown, or deleted)
//! is kept, with `"profile":null` (a left join), so no click is lost.
//!
//! ```text
//! cargo run --release -p strom-streams --example enrichment -- BOOTSTRAP [key=value ...]
//! ```
//!
//! Extra `key=value` arguments are Streams properties (`state.dir`,
//! `processing.guarantee=exactly_once_v2`, ...). Runs until interrupted (Ctrl-C or
//! SIGTERM), then closes cleanly: commits and checkpoints its stores.

use serde::{Deserialize, Serialize};
use strom_streams::{
    Consumed, Json, KafkaStreams, Materialized, Produced, StreamsBuilder, StringSerde, Topology,
};

/// The clicks topic: key user id, value [`Click`].
pub const CLICKS: &str = "clicks";
/// The users topic, read as a table: key user id, value [`UserProfile`] (null: deleted).
pub const USERS: &str = "users";
/// Enriched clicks: key user id, value [`EnrichedClick`].
pub const ENRICHED: &str = "enriched-clicks";

/// A click, as JSON: `{"page":"/home"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    pub page: String,
}

/// A user's profile, as JSON: `{"name":"Alice","region":"eu"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub name: String,
    pub region: String,
}

/// A click with its user's profile (`None` for a user the table does not hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichedClick {
    pub page: String,
    pub profile: Option<UserProfile>,
}

/// The enrichment topology.
pub fn topology() -> Topology {
    let builder = StreamsBuilder::new();
    let users = builder.table(
        USERS,
        Consumed::with(StringSerde, Json::<UserProfile>::new()),
        Materialized::named("users-store"),
    );
    builder
        .stream(CLICKS, Consumed::with(StringSerde, Json::<Click>::new()))
        .left_join_table(&users, |click: &Click, profile: Option<&UserProfile>| {
            EnrichedClick {
                page: click.page.clone(),
                profile: profile.cloned(),
            }
        })
        .to(ENRICHED, Produced::with(StringSerde, Json::new()));
    builder.build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "localhost:9092".into());
    let mut props = vec![
        (
            "application.id".to_string(),
            "streams-enrichment".to_string(),
        ),
        ("bootstrap.servers".to_string(), bootstrap),
    ];
    for arg in args {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(format!("expected key=value, got {arg}").into());
        };
        props.push((k.to_string(), v.to_string()));
    }

    let topology = topology();
    println!("{}", topology.describe());
    let mut streams = KafkaStreams::new(topology, props)?;
    streams.start()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    streams.close().await;
    Ok(())
}
