//! Kafka Streams' word count demo, ported: reads lines from `streams-plaintext-input`,
//! splits them into lower-case words, counts each word, and writes every updated count to
//! `streams-wordcount-output` (string keys, 8-byte big-endian long values, as Kafka's
//! `WordCountDemo` writes them).
//!
//! ```text
//! cargo run --release -p strom-streams --example wordcount -- BOOTSTRAP [key=value ...]
//! ```
//!
//! Extra `key=value` arguments are Streams properties (`state.dir`,
//! `processing.guarantee=exactly_once_v2`, ...). Runs until interrupted (Ctrl-C or
//! SIGTERM), then closes cleanly: commits and checkpoints its stores.

use strom_streams::{
    Consumed, Grouped, I64Serde, KafkaStreams, Materialized, Nullable, Produced, StreamsBuilder,
    StringSerde,
};

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
            "streams-wordcount".to_string(),
        ),
        ("bootstrap.servers".to_string(), bootstrap),
    ];
    for arg in args {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(format!("expected key=value, got {arg}").into());
        };
        props.push((k.to_string(), v.to_string()));
    }

    let builder = StreamsBuilder::new();
    builder
        .stream(
            "streams-plaintext-input",
            Consumed::with(Nullable(StringSerde), StringSerde),
        )
        .flat_map_values(|line: String| {
            line.to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, word| word.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count(Materialized::named("counts-store"))
        .to_stream()
        .to(
            "streams-wordcount-output",
            Produced::with(StringSerde, Nullable(I64Serde)),
        );
    let topology = builder.build();
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
