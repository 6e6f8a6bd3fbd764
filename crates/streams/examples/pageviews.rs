//! A windowed page-view count with late events: reads `pageviews` (key: user, value:
//! page, strings), counts the views of each page in 1-minute tumbling windows that accept
//! events up to 10 seconds late, and writes one final count per page and window to
//! `pageviews-per-minute`, once the window has closed (`suppress` until the window closes).
//! Events later than the grace period are dropped (and counted as dropped records).
//!
//! Output keys are Kafka's time-windowed keys (`TimeWindowedSerializer`: the page, then
//! the window start as 8 big-endian bytes); values are 8-byte big-endian counts.
//!
//! ```text
//! cargo run --release -p strom-streams --example pageviews -- BOOTSTRAP [key=value ...]
//! ```
//!
//! Extra `key=value` arguments are Streams properties (`state.dir`,
//! `processing.guarantee=exactly_once_v2`, ...). Runs until interrupted (Ctrl-C or
//! SIGTERM), then closes cleanly: commits and checkpoints its stores.

use std::time::Duration;

use strom_streams::{
    BufferConfig, Consumed, Grouped, I64Serde, KafkaStreams, Materialized, Nullable, Produced,
    StreamsBuilder, StringSerde, Suppressed, TimeWindowedSerde, TimeWindows, Topology,
};

/// The input topic: key user (may be null), value page.
pub const INPUT: &str = "pageviews";
/// The output topic: key page in its window, value the window's final count.
pub const OUTPUT: &str = "pageviews-per-minute";
/// The window size.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How late an event may be and still count.
pub const GRACE: Duration = Duration::from_secs(10);

/// The page-view topology.
pub fn topology() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream(INPUT, Consumed::with(Nullable(StringSerde), StringSerde))
        .group_by(
            |_user, page: &String| page.clone(),
            Grouped::with(StringSerde, StringSerde).with_name("pageviews-by-page"),
        )
        .windowed_by(TimeWindows::of_size_and_grace(WINDOW, GRACE))
        .count(Materialized::named("pageviews-per-minute-store"))
        .suppress(
            Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("final-counts"),
        )
        .to_stream()
        .to(
            OUTPUT,
            Produced::with(
                TimeWindowedSerde::new(StringSerde, WINDOW),
                Nullable(I64Serde),
            ),
        );
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
            "streams-pageviews".to_string(),
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
