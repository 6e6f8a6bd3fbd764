//! At-least-once against a real broker: an instance killed mid-stream (dropped without
//! close) loses nothing, and its successor replays only from the last commit; two instances
//! of one application split the partitions and together write each output once.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use strom_streams::{Consumed, KafkaStreams, Produced, State, StreamsBuilder, StringSerde};

use common::{wait_until, Broker};

const WAIT: Duration = Duration::from_secs(60);

/// `in` → value `done-<value>` → `out`; `processed` counts records, `slow` sleeps per
/// record so that a kill lands mid-stream.
fn topology(
    processed: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
    slow: bool,
) -> strom_streams::Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(StringSerde, StringSerde))
        .peek(move |k, _| {
            if slow {
                std::thread::sleep(Duration::from_micros(500));
            }
            seen.lock().push(k.clone());
            processed.fetch_add(1, Ordering::SeqCst);
        })
        .map_values(|v| format!("done-{v}"))
        .to("out", Produced::with(StringSerde, StringSerde));
    builder.build()
}

fn input(n: usize) -> Vec<(Option<Bytes>, Option<Bytes>, i64)> {
    (0..n)
        .map(|i| {
            (
                Some(Bytes::from(format!("k{i}"))),
                Some(Bytes::from(format!("{i}"))),
                1_000 + i as i64,
            )
        })
        .collect()
}

/// Output count per input number, checking that each output is the transform of its input
/// and keeps its key and timestamp.
fn outputs(records: &[strom_client::ConsumerRecord]) -> BTreeMap<usize, usize> {
    let mut count = BTreeMap::new();
    for r in records {
        let key = String::from_utf8(r.key.as_deref().unwrap().to_vec()).unwrap();
        let value = String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap();
        let n: usize = value.strip_prefix("done-").unwrap().parse().unwrap();
        assert_eq!(key, format!("k{n}"));
        assert_eq!(r.timestamp, 1_000 + n as i64);
        *count.entry(n).or_insert(0) += 1;
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instance_loses_nothing_and_its_successor_replays_from_the_commit() {
    let broker = Broker::start().await;
    broker.create("in", 3).await;
    broker.create("out", 3).await;
    const N: usize = 3000;
    let placed = broker.produce("in", &input(N)).await;

    let first_count = Arc::new(AtomicUsize::new(0));
    let first_seen = Arc::new(Mutex::new(Vec::new()));
    let mut first = KafkaStreams::new(
        topology(first_count.clone(), first_seen.clone(), true),
        common::props(&broker, "alo"),
    )
    .unwrap();
    first.start().unwrap();
    wait_until("the first instance to be mid-stream", WAIT, || {
        first_count.load(Ordering::SeqCst) >= N / 3
    })
    .await;
    drop(first); // killed: no flush, no commit, no leave
    let killed_at = first_count.load(Ordering::SeqCst);
    assert!(killed_at < N, "the kill came after the end ({killed_at})");
    // A commit sent just before the kill may still land; commits only move forward.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let committed = broker.committed("alo", "in", 3).await;

    let second_count = Arc::new(AtomicUsize::new(0));
    let second_seen = Arc::new(Mutex::new(Vec::new()));
    let mut second = KafkaStreams::new(
        topology(second_count.clone(), second_seen.clone(), false),
        common::props(&broker, "alo"),
    )
    .unwrap();
    second.start().unwrap();

    // Every input has its output.
    let records = broker
        .read_until("out", 3, WAIT, Duration::from_millis(500), |r| {
            let distinct: BTreeSet<&[u8]> = r.iter().filter_map(|r| r.value.as_deref()).collect();
            distinct.len() >= N
        })
        .await;
    let count = outputs(&records);
    let missing: Vec<usize> = (0..N).filter(|n| !count.contains_key(n)).collect();
    assert!(missing.is_empty(), "outputs missing for {missing:?}");

    let key_of = |i: usize| format!("k{i}");
    let first_set: BTreeSet<String> = first_seen.lock().iter().cloned().collect();
    // The successor reaches the end of each partition the first instance did not finish.
    let lasts: Vec<usize> = (0..3)
        .filter_map(|p| (0..N).rev().find(|&i| placed[i].0 == p))
        .filter(|&i| !first_set.contains(&key_of(i)))
        .collect();
    wait_until("the successor to reach the ends", WAIT, || {
        let seen = second_seen.lock();
        lasts.iter().all(|&i| seen.contains(&key_of(i)))
    })
    .await;

    // Duplicates are replays: per input partition, the successor starts at some offset s
    // (at or after what was committed before it started), processes everything from s on,
    // in order; everything before s was processed by the first instance. Inputs processed
    // twice are those both saw, each at most twice.
    let second_list: Vec<String> = second_seen.lock().clone();
    let second_set: BTreeSet<String> = second_list.iter().cloned().collect();
    for (n, c) in &count {
        assert!(*c <= 2, "input {n} has {c} outputs");
        if *c == 2 {
            let k = key_of(*n);
            assert!(
                first_set.contains(&k) && second_set.contains(&k),
                "input {n} duplicated without a replay"
            );
        }
    }
    let by_key: HashMap<String, (i32, i64)> = (0..N).map(|i| (key_of(i), placed[i])).collect();
    let mut replayed = 0;
    for p in 0..3 {
        let offsets: Vec<i64> = second_list
            .iter()
            .filter_map(|k| by_key.get(k).filter(|(q, _)| *q == p).map(|(_, o)| *o))
            .collect();
        let in_p: Vec<(usize, i64)> = (0..N)
            .filter(|&i| placed[i].0 == p)
            .map(|i| (i, placed[i].1))
            .collect();
        let end = in_p.last().map_or(0, |(_, o)| o + 1);
        let s = offsets.first().copied().unwrap_or(end);
        assert!(
            s >= committed[p as usize].unwrap_or(0),
            "partition {p}: the successor started at {s}, before the commit {committed:?}"
        );
        let expected: Vec<i64> = (s..end).collect();
        assert_eq!(
            offsets, expected,
            "partition {p}: the successor's records from {s}"
        );
        for (i, o) in &in_p {
            if *o < s {
                assert!(
                    first_set.contains(&key_of(*i)),
                    "partition {p} offset {o} skipped"
                );
            } else if first_set.contains(&key_of(*i)) {
                replayed += 1;
            }
        }
    }
    let replays = count.values().filter(|c| **c == 2).count();
    assert_eq!(replays + N, records.len());
    assert!(replays <= replayed);
    println!("killed after {killed_at} records; committed {committed:?}; {replays} replays");

    second.close().await;
    assert_eq!(second.state(), State::NotRunning);
    // Close committed everything.
    let ends: Vec<Option<i64>> = (0..3)
        .map(|p| Some(placed.iter().filter(|(q, _)| *q == p).count() as i64))
        .collect();
    assert_eq!(broker.committed("alo", "in", 3).await, ends);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_split_the_partitions_and_write_each_output_once() {
    let broker = Broker::start().await;
    broker.create("in", 4).await;
    broker.create("out", 4).await;

    let counts = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let seen = [
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    ];
    let mut instances: Vec<KafkaStreams> = (0..2)
        .map(|i| {
            KafkaStreams::new(
                topology(counts[i].clone(), seen[i].clone(), false),
                common::props(&broker, "pair"),
            )
            .unwrap()
        })
        .collect();
    for s in &mut instances {
        s.start().unwrap();
    }
    wait_until("both instances to own partitions", WAIT, || {
        let (a, b) = (instances[0].assignment(), instances[1].assignment());
        !a.is_empty()
            && !b.is_empty()
            && a.len() + b.len() == 4
            && instances.iter().all(|s| s.state() == State::Running)
    })
    .await;
    let a: BTreeSet<_> = instances[0].assignment().into_iter().collect();
    let b: BTreeSet<_> = instances[1].assignment().into_iter().collect();
    assert!(a.is_disjoint(&b), "{a:?} and {b:?} overlap");

    const N: usize = 400;
    broker.produce("in", &input(N)).await;
    let records = broker
        .read("out", 4, N, WAIT, Duration::from_millis(1000))
        .await;
    let count = outputs(&records);
    assert_eq!(count.len(), N);
    let sets: Vec<BTreeSet<String>> = seen
        .iter()
        .map(|s| s.lock().iter().cloned().collect())
        .collect();
    assert!(
        !sets[0].is_empty() && !sets[1].is_empty(),
        "one instance processed nothing"
    );
    for (n, c) in &count {
        let k = format!("k{n}");
        // A second output is only possible as a replay after a partition moved.
        if *c > 1 {
            assert!(
                sets[0].contains(&k) && sets[1].contains(&k),
                "input {n} has {c} outputs"
            );
        }
    }
    assert_eq!(records.len(), N, "no partition moved, so no replay");
    for s in &mut instances {
        s.close().await;
        assert_eq!(s.state(), State::NotRunning);
    }
}
