//! Stateful applications against a real broker: word count over a million records equals a
//! direct count; a clean restart restores from the checkpoint instead of the whole
//! changelog, and a lost state directory is rebuilt from the changelog; two instances (the
//! `wordcount` example, as processes) share the tasks and, when one is SIGKILLed, the
//! other takes over with its state restored: exact counts under exactly_once_v2 (every
//! count committed once), exact-or-higher under at_least_once.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{props, Broker};
use strom_client::{Consumer, ConsumerConfig, StartAt};
use strom_streams::{
    Consumed, Grouped, I64Serde, KafkaStreams, Materialized, Nullable, Produced, State,
    StreamsBuilder, StringSerde,
};

const INPUT: &str = "streams-plaintext-input";
const OUTPUT: &str = "streams-wordcount-output";

/// The word count topology (the example's, in this process).
fn word_count() -> strom_streams::Topology {
    let b = StreamsBuilder::new();
    b.stream(INPUT, Consumed::with(Nullable(StringSerde), StringSerde))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(|_, w| w.clone(), Grouped::with(StringSerde, StringSerde))
        .count(Materialized::named("counts-store"))
        .to_stream()
        .to(OUTPUT, Produced::with(StringSerde, Nullable(I64Serde)));
    b.build()
}

/// Deterministic text: `lines` lines of `words_per_line` words out of `vocabulary`.
fn text(seed: u64, lines: usize, words_per_line: usize, vocabulary: u64) -> Vec<String> {
    let mut x = seed;
    (0..lines)
        .map(|_| {
            (0..words_per_line)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    format!("w{}", (x >> 33) % vocabulary)
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn count_words(lines: &[String], into: &mut HashMap<String, i64>) {
    for l in lines {
        for w in l.split_whitespace() {
            *into.entry(w.to_string()).or_default() += 1;
        }
    }
}

async fn produce_lines(broker: &Broker, lines: &[String]) {
    let records: Vec<(Option<Bytes>, Option<Bytes>, i64)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                Some(Bytes::from(format!("line-{i}"))),
                Some(Bytes::from(l.clone())),
                1_000 + i as i64,
            )
        })
        .collect();
    for chunk in records.chunks(50_000) {
        broker.produce(INPUT, chunk).await;
    }
}

/// Reads the output topic (committed records only when `committed`) until `done` holds
/// for the counts seen per word, in order; panics after `timeout`.
async fn read_counts(
    broker: &Broker,
    partitions: i32,
    committed: bool,
    timeout: Duration,
    done: impl Fn(&HashMap<String, Vec<i64>>) -> bool,
) -> HashMap<String, Vec<i64>> {
    let mut consumer = Consumer::new(ConsumerConfig {
        bootstrap_servers: vec![broker.addr.clone()],
        fetch_max_wait: Duration::from_millis(100),
        read_committed: committed,
        ..Default::default()
    });
    let parts: Vec<(String, i32, StartAt)> = (0..partitions)
        .map(|p| (OUTPUT.to_string(), p, StartAt::Earliest))
        .collect();
    consumer.assign(&parts).await.unwrap();
    let deadline = Instant::now() + timeout;
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    while !done(&seen) {
        assert!(
            Instant::now() < deadline,
            "the expected counts did not arrive ({} words seen)",
            seen.len()
        );
        for r in consumer.poll().await.unwrap() {
            let word = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let v = r.value.expect("counts are never deleted");
            let n = i64::from_be_bytes(v[..].try_into().unwrap());
            seen.entry(word).or_default().push(n);
        }
    }
    seen
}

fn reached(expected: &HashMap<String, i64>) -> impl Fn(&HashMap<String, Vec<i64>>) -> bool + '_ {
    move |seen| {
        expected.iter().all(|(w, n)| {
            seen.get(w)
                .and_then(|c| c.iter().max())
                .is_some_and(|m| m >= n)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_over_a_million_records_equals_a_direct_count() {
    let broker = Broker::start().await;
    broker.create(INPUT, 4).await;
    broker.create(OUTPUT, 4).await;
    // 250k lines of 4 words: a million words to count.
    let lines = text(7, 250_000, 4, 5_000);
    let mut expected = HashMap::new();
    count_words(&lines, &mut expected);
    produce_lines(&broker, &lines).await;
    let state = tempfile::tempdir().unwrap();
    let mut p = props(&broker, "wc-million");
    p.push(("state.dir".into(), state.path().display().to_string()));
    let mut streams = KafkaStreams::new(word_count(), p).unwrap();
    let started = Instant::now();
    streams.start().unwrap();
    let seen = read_counts(
        &broker,
        4,
        false,
        Duration::from_secs(300),
        reached(&expected),
    )
    .await;
    eprintln!("counted 1M words in {:?}", started.elapsed());
    streams.close().await;
    assert_eq!(streams.state(), State::NotRunning);
    for (w, n) in &expected {
        // At-least-once with no failure: every count appears once, in order.
        let counts = &seen[w];
        assert_eq!(counts.last(), Some(n), "word {w}");
        assert_eq!(counts.len() as i64, *n, "word {w}: {counts:?}");
    }
    assert_eq!(seen.len(), expected.len());
    // The changelog and repartition topics were created by the application.
    let admin = strom_client::Admin::new(vec![broker.addr.clone()], "t", Duration::from_secs(5));
    let topics = admin.describe_topics(&[]).await.unwrap();
    let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"wc-million-counts-store-changelog"),
        "{names:?}"
    );
    assert!(
        names.contains(&"wc-million-counts-store-repartition"),
        "{names:?}"
    );
    let changelog = topics
        .iter()
        .find(|t| t.name == "wc-million-counts-store-changelog")
        .unwrap();
    assert_eq!(changelog.partitions.len(), 4);
    let configs = admin
        .describe_topic_configs("wc-million-counts-store-changelog")
        .await
        .unwrap();
    let policy = configs.iter().find(|c| c.name == "cleanup.policy").unwrap();
    assert_eq!(policy.value.as_deref(), Some("compact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_restores_from_the_checkpoint_and_a_lost_state_dir_from_the_changelog() {
    let broker = Broker::start().await;
    broker.create(INPUT, 2).await;
    broker.create(OUTPUT, 2).await;
    let first = text(1, 2_000, 5, 300);
    let second = text(2, 2_000, 5, 300);
    let mut expected = HashMap::new();
    count_words(&first, &mut expected);
    let state = tempfile::tempdir().unwrap();
    let mut p = props(&broker, "wc-restart");
    p.push(("state.dir".into(), state.path().display().to_string()));
    p.push(("repartition.purge.interval.ms".into(), "0".into()));

    produce_lines(&broker, &first).await;
    let mut streams = KafkaStreams::new(word_count(), p.clone()).unwrap();
    streams.start().unwrap();
    read_counts(
        &broker,
        2,
        false,
        Duration::from_secs(60),
        reached(&expected),
    )
    .await;
    // Interactive queries: the running instance's store answers for every key.
    let store = streams
        .store("counts-store", StringSerde, I64Serde)
        .unwrap();
    for (w, n) in &expected {
        assert_eq!(store.get(w).unwrap(), Some(*n), "word {w}");
    }
    assert_eq!(store.all().unwrap().len(), expected.len());
    assert!(matches!(
        streams.store("no-such-store", StringSerde, I64Serde),
        Err(strom_streams::StreamsError::StoreUnavailable { .. })
    ));
    // A store handle keeps its database open; the next instance reopens it.
    drop(store);
    streams.close().await;
    assert_eq!(
        streams.restored_records(),
        0,
        "nothing to restore the first time"
    );
    assert!(matches!(
        streams.store("counts-store", StringSerde, I64Serde),
        Err(strom_streams::StreamsError::StoreUnavailable { .. })
    ));
    let checkpoints: Vec<PathBuf> = ["1_0", "1_1"]
        .iter()
        .map(|t| state.path().join("wc-restart").join(t).join(".checkpoint"))
        .collect();
    for c in &checkpoints {
        let text = std::fs::read_to_string(c).unwrap();
        assert!(
            text.starts_with("0\n1\nwc-restart-counts-store-changelog "),
            "{text}"
        );
    }

    // The same state directory: the stores are current, nothing is replayed.
    count_words(&second, &mut expected);
    produce_lines(&broker, &second).await;
    let mut streams = KafkaStreams::new(word_count(), p.clone()).unwrap();
    streams.start().unwrap();
    let seen = read_counts(
        &broker,
        2,
        false,
        Duration::from_secs(60),
        reached(&expected),
    )
    .await;
    streams.close().await;
    assert_eq!(
        streams.restored_records(),
        0,
        "restored from the checkpoint alone"
    );
    for (w, n) in &expected {
        assert_eq!(seen[w].iter().max(), Some(n), "word {w}");
    }

    // A new state directory: every key comes back from the changelog.
    let fresh = tempfile::tempdir().unwrap();
    let mut p2 = props(&broker, "wc-restart");
    p2.push(("state.dir".into(), fresh.path().display().to_string()));
    let third = text(3, 100, 5, 300);
    count_words(&third, &mut expected);
    produce_lines(&broker, &third).await;
    let mut streams = KafkaStreams::new(word_count(), p2).unwrap();
    streams.start().unwrap();
    let seen = read_counts(
        &broker,
        2,
        false,
        Duration::from_secs(60),
        reached(&expected),
    )
    .await;
    streams.close().await;
    assert!(
        streams.restored_records() >= 300,
        "restored {} records",
        streams.restored_records()
    );
    for (w, n) in &expected {
        assert_eq!(seen[w].iter().max(), Some(n), "word {w}");
    }
}

/// Set in the environment of an instance process: its Streams properties, one
/// `key=value` per line.
const INSTANCE_ENV: &str = "STROM_STREAMS_TEST_INSTANCE";

/// When started by [`Instance::start`] (this test binary run again, with
/// [`INSTANCE_ENV`] set), runs the word count application until killed; otherwise it
/// does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordcount_instance_process() {
    let Ok(spec) = std::env::var(INSTANCE_ENV) else {
        return;
    };
    let props: Vec<(String, String)> = spec
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut streams = KafkaStreams::new(word_count(), props).unwrap();
    streams.start().unwrap();
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// A Streams instance in a process of its own.
struct Instance(Child);

impl Instance {
    fn start(broker: &Broker, state: &std::path::Path, guarantee: &str) -> Instance {
        let mut props = props(broker, "wc-failover");
        props.push(("state.dir".into(), state.display().to_string()));
        props.push(("processing.guarantee".into(), guarantee.to_string()));
        let spec: Vec<String> = props.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "wordcount_instance_process", "--nocapture"])
            .env(INSTANCE_ENV, spec.join("\n"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Instance(child)
    }

    fn kill9(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn failover(guarantee: &str) {
    let broker = Broker::start().await;
    broker.create(INPUT, 4).await;
    broker.create(OUTPUT, 4).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Instance::start(&broker, dir_a.path(), guarantee);
    let _b = Instance::start(&broker, dir_b.path(), guarantee);
    let mut expected = HashMap::new();
    let batches: Vec<Vec<String>> = (0..6).map(|i| text(100 + i, 5_000, 4, 500)).collect();
    for (i, batch) in batches.iter().enumerate() {
        count_words(batch, &mut expected);
        produce_lines(&broker, batch).await;
        if i == 2 {
            // Both instances hold tasks and state by now; one dies mid-stream.
            read_counts(
                &broker,
                4,
                guarantee != "at_least_once",
                Duration::from_secs(90),
                reached(&expected),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            a.kill9();
        }
    }
    let committed = guarantee == "exactly_once_v2";
    let seen = read_counts(
        &broker,
        4,
        committed,
        Duration::from_secs(120),
        reached(&expected),
    )
    .await;
    // Let anything that should not be there show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen_later = read_counts(
        &broker,
        4,
        committed,
        Duration::from_secs(60),
        reached(&expected),
    )
    .await;
    assert!(seen_later.len() >= seen.len());
    for (w, n) in &expected {
        let counts = &seen_later[w];
        let last = *counts.iter().max().unwrap();
        if committed {
            // Exactly once: each count of each word was committed once, in order.
            let want: Vec<i64> = (1..=*n).collect();
            assert_eq!(counts, &want, "word {w}");
        } else {
            assert!(last >= *n, "word {w}: {last} < {n}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_tasks_move_with_their_state_exactly_once() {
    failover("exactly_once_v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_tasks_move_with_their_state_at_least_once() {
    failover("at_least_once").await;
}
