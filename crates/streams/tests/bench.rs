//! Throughput figures (ignored by default; run in release):
//!
//! ```text
//! cargo test --release -p strom-streams --test bench -- --ignored --nocapture
//! ```
//!
//! - word count records/s, against the physical limit of the same pipeline with no state:
//!   a plain consume-transform-produce loop with the native client;
//! - a stream-table join's records/s (1 M stream records
//!   against a 10 k-row table), against the same plain loop;
//! - restore speed of a store from its changelog (`STROM_BENCH_RESTORE_MB`, default 256).
//!
//! Nothing is asserted about speed; the figures are printed.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{props, Broker};
use strom_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, StartAt};
use strom_streams::{
    Consumed, Grouped, I64Serde, KafkaStreams, Materialized, Nullable, Produced, StreamsBuilder,
    StringSerde,
};

const WORDS: usize = 1_000_000;

async fn produce(broker: &Broker, topic: &str, n: usize, value_len: usize, keys: u64) {
    let producer = broker.producer();
    let pad = "x".repeat(value_len.saturating_sub(8));
    let mut waits = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("w{}", (i as u64).wrapping_mul(2654435761) % keys);
        let value = if value_len > 0 {
            format!("{key}{pad}")
        } else {
            key.clone()
        };
        let r = ProducerRecord {
            topic: topic.to_string(),
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from(value)),
            ..Default::default()
        };
        waits.push(producer.send(r).await.unwrap());
    }
    producer.flush().await;
    for w in waits {
        w.await.unwrap();
    }
    producer.close().await;
}

/// Reads `topic` until `n` records arrived.
async fn drain(broker: &Broker, topic: &str, partitions: i32, n: usize) {
    let mut c = Consumer::new(ConsumerConfig {
        bootstrap_servers: vec![broker.addr.clone()],
        fetch_max_wait: Duration::from_millis(50),
        ..Default::default()
    });
    let parts: Vec<(String, i32, StartAt)> = (0..partitions)
        .map(|p| (topic.to_string(), p, StartAt::Earliest))
        .collect();
    c.assign(&parts).await.unwrap();
    let mut got = 0;
    while got < n {
        got += c.poll().await.unwrap().len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn word_count_against_a_plain_consume_transform_produce_loop() {
    let broker = Broker::start().await;
    broker.create("in", 4).await;
    broker.create("plain-out", 4).await;
    broker.create("wc-out", 4).await;
    produce(&broker, "in", WORDS, 0, 10_000).await;

    // The physical limit: consume, lower-case, produce; no state.
    let started = Instant::now();
    let mut c = Consumer::new(ConsumerConfig {
        bootstrap_servers: vec![broker.addr.clone()],
        fetch_max_wait: Duration::from_millis(50),
        ..Default::default()
    });
    let parts: Vec<(String, i32, StartAt)> = (0..4)
        .map(|p| ("in".to_string(), p, StartAt::Earliest))
        .collect();
    c.assign(&parts).await.unwrap();
    let producer = Producer::new(ProducerConfig {
        bootstrap_servers: vec![broker.addr.clone()],
        ..Default::default()
    });
    let mut seen = 0;
    let mut waits = Vec::new();
    while seen < WORDS {
        for r in c.poll().await.unwrap() {
            seen += 1;
            let v = r
                .value
                .map(|v| Bytes::from(String::from_utf8_lossy(&v).to_lowercase()));
            let out = ProducerRecord {
                topic: "plain-out".into(),
                key: v.clone(),
                value: v,
                ..Default::default()
            };
            waits.push(producer.send(out).await.unwrap());
        }
    }
    producer.flush().await;
    for w in waits {
        w.await.unwrap();
    }
    let plain = started.elapsed();

    // Word count: the same input through a repartition topic and a counting store.
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(StringSerde, StringSerde))
        .flat_map_values(|v: String| vec![v.to_lowercase()])
        .group_by(|_, w| w.clone(), Grouped::with(StringSerde, StringSerde))
        .count(if std::env::var("STROM_BENCH_IN_MEMORY").is_ok() {
            Materialized::named("counts").in_memory()
        } else {
            Materialized::named("counts")
        })
        .to_stream()
        .to("wc-out", Produced::with(StringSerde, Nullable(I64Serde)));
    let state = tempfile::tempdir().unwrap();
    let mut p = props(&broker, "bench-wc");
    p.push(("state.dir".into(), state.path().display().to_string()));
    p.push(("commit.interval.ms".into(), "1000".into()));
    let started = Instant::now();
    let mut streams = KafkaStreams::new(b.build(), p).unwrap();
    streams.start().unwrap();
    drain(&broker, "wc-out", 4, WORDS).await;
    let counted = started.elapsed();
    streams.close().await;
    let rate = |d: Duration| WORDS as f64 / d.as_secs_f64();
    println!(
        "plain consume-transform-produce: {:.0} records/s ({plain:?}); word count: {:.0} records/s ({counted:?}); ratio {:.2}",
        rate(plain),
        rate(counted),
        rate(counted) / rate(plain)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn restore_speed_of_a_store_from_its_changelog() {
    let mb: usize = std::env::var("STROM_BENCH_RESTORE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let broker = Broker::start().await;
    broker.create("kv-in", 1).await;
    // The application's changelog, filled directly: 1 KB values, distinct keys.
    let records = mb * 1024;
    broker.create("bench-restore-table-changelog", 1).await;
    produce(
        &broker,
        "bench-restore-table-changelog",
        records,
        1024,
        u64::MAX,
    )
    .await;
    let b = StreamsBuilder::new();
    b.table(
        "kv-in",
        Consumed::with(StringSerde, StringSerde),
        Materialized::named("table"),
    );
    let state = tempfile::tempdir().unwrap();
    let mut p = props(&broker, "bench-restore");
    p.push(("state.dir".into(), state.path().display().to_string()));
    let mut streams = KafkaStreams::new(b.build(), p).unwrap();
    streams.start().unwrap();
    let started = Instant::now();
    // A record makes the task start, which restores first.
    broker
        .produce(
            "kv-in",
            &[(Some(Bytes::from("k")), Some(Bytes::from("v")), 0)],
        )
        .await;
    while streams.restored_records() < records as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    streams.close().await;
    println!(
        "restored {records} records ({mb} MB) in {took:?}: {:.0} MB/s, {:.0} records/s",
        mb as f64 / took.as_secs_f64(),
        records as f64 / took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn stream_table_join_against_a_plain_consume_transform_produce_loop() {
    let broker = Broker::start().await;
    broker.create("clicks", 4).await;
    broker.create("users", 4).await;
    broker.create("joined", 4).await;
    produce(&broker, "users", 10_000, 64, 10_000).await;
    produce(&broker, "clicks", WORDS, 0, 10_000).await;
    let b = StreamsBuilder::new();
    let users = b.table(
        "users",
        Consumed::with(StringSerde, StringSerde),
        Materialized::named("users-store"),
    );
    b.stream("clicks", Consumed::with(StringSerde, StringSerde))
        // A left join, so every click gives one output even if it is processed before
        // its user's row.
        .left_join_table(&users, |click: &String, user: Option<&String>| {
            let user = user.map(String::as_str).unwrap_or("");
            format!("{click} {}", &user[..8.min(user.len())])
        })
        .to("joined", Produced::with(StringSerde, StringSerde));
    let state = tempfile::tempdir().unwrap();
    let mut p = props(&broker, "bench-join");
    p.push(("state.dir".into(), state.path().display().to_string()));
    p.push(("commit.interval.ms".into(), "1000".into()));
    let started = Instant::now();
    let mut streams = KafkaStreams::new(b.build(), p).unwrap();
    streams.start().unwrap();
    drain(&broker, "joined", 4, WORDS).await;
    let took = started.elapsed();
    streams.close().await;
    println!(
        "stream-table join: {:.0} records/s ({took:?}, table of 10k rows read first)",
        WORDS as f64 / took.as_secs_f64()
    );
}
