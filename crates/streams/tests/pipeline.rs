//! Stateless pipelines against a real broker, checked record by record: keys, values,
//! timestamps, headers, which topic each record went to and in what order.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use strom_streams::{
    Branched, Consumed, I64Serde, Json, KafkaStreams, Nullable, Produced, Serde, State,
    StreamsBuilder, StringSerde,
};

use common::{wait_until, Broker};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Order {
    id: i64,
    customer: String,
    amount: i64,
    note: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Line {
    id: i64,
    customer: String,
    amount: i64,
    tag: String,
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filter_map_values_select_key_and_branch_to_two_topics() {
    let broker = Broker::start().await;
    broker.create("orders", 1).await;
    broker.create("big", 1).await;
    broker.create("small", 1).await;

    let builder = StreamsBuilder::new();
    let branches = builder
        .stream("orders", Consumed::with(StringSerde, Json::<Order>::new()))
        .filter(|_, o| o.amount > 0)
        .map_values(|o| Line {
            id: o.id,
            customer: o.customer.clone(),
            amount: o.amount,
            tag: o.note.to_uppercase(),
        })
        .select_key(|_, l| l.id)
        .split_named("size-")
        .branch(|_, l| l.amount >= 100, Branched::named("big"))
        .default_branch(Branched::named("small"));
    let mut names: Vec<&String> = branches.keys().collect();
    names.sort();
    assert_eq!(names, ["size-big", "size-small"]);
    branches["size-big"].to("big", Produced::with(I64Serde, Json::<Line>::new()));
    branches["size-small"]
        .map_values(|l| format!("{}:{}", l.customer, l.amount))
        .to("small", Produced::with(I64Serde, StringSerde));

    let orders: Vec<Order> = (0..30)
        .map(|i| Order {
            id: 1000 + i,
            customer: format!("c{}", i % 4),
            amount: match i % 3 {
                0 => -5,      // filtered out
                1 => 50 + i,  // small
                _ => 100 + i, // big
            },
            note: format!("note {i}"),
        })
        .collect();
    let base = 1_700_000_000_000i64;
    let input: Vec<(Option<Bytes>, Option<Bytes>, i64)> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let v = Json::<Order>::new().serialize("orders", o).unwrap();
            (Some(Bytes::from(o.customer.clone())), v, base + i as i64)
        })
        .collect();
    broker.produce("orders", &input).await;

    let mut streams =
        KafkaStreams::new(builder.build(), common::props(&broker, "pipeline")).unwrap();
    assert_eq!(streams.state(), State::Created);
    streams.start().unwrap();

    let mut want_big = Vec::new();
    let mut want_small = Vec::new();
    for (i, o) in orders.iter().enumerate() {
        let ts = base + i as i64;
        if o.amount <= 0 {
            continue;
        }
        if o.amount >= 100 {
            let line = Line {
                id: o.id,
                customer: o.customer.clone(),
                amount: o.amount,
                tag: o.note.to_uppercase(),
            };
            want_big.push((o.id, serde_json::to_vec(&line).unwrap(), ts));
        } else {
            let v = format!("{}:{}", o.customer, o.amount).into_bytes();
            want_small.push((o.id, v, ts));
        }
    }
    let settle = Duration::from_millis(500);
    let big = broker.read("big", 1, want_big.len(), WAIT, settle).await;
    let small = broker
        .read("small", 1, want_small.len(), WAIT, settle)
        .await;
    let got = |records: &[strom_client::ConsumerRecord]| -> Vec<(i64, Vec<u8>, i64)> {
        records
            .iter()
            .map(|r| {
                let key = I64Serde.deserialize("t", r.key.as_deref()).unwrap();
                // Headers are carried from the input record.
                assert_eq!(
                    r.headers,
                    vec![("origin".to_string(), Some(Bytes::from_static(b"test")))]
                );
                (key, r.value.as_deref().unwrap().to_vec(), r.timestamp)
            })
            .collect()
    };
    assert_eq!(got(&big), want_big);
    assert_eq!(got(&small), want_small);
    // The keys are Kafka's big-endian longs.
    assert_eq!(
        big[0].key.as_deref(),
        Some(&(want_big[0].0).to_be_bytes()[..])
    );
    assert_eq!(streams.state(), State::Running);
    streams.close().await;
    assert_eq!(streams.state(), State::NotRunning);
    // Close committed the end of the input.
    assert_eq!(broker.committed("pipeline", "orders", 1).await, [Some(30)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flat_map_merge_peek_foreach_and_a_topic_extractor() {
    let broker = Broker::start().await;
    for t in ["lines", "extra", "vowels", "others"] {
        broker.create(t, 1).await;
    }
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let each = Arc::new(Mutex::new(0usize));

    let builder = StreamsBuilder::new();
    let words = builder
        .stream("lines", Consumed::with(Nullable(StringSerde), StringSerde))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_not(|_, w| w == "the");
    let extra = builder
        .stream("extra", Consumed::with(Nullable(StringSerde), StringSerde))
        .flat_map(|k, v| vec![(k.clone(), v.clone()), (k, format!("{v}!"))]);
    let peeked = seen.clone();
    let counted = each.clone();
    let merged = words
        .merge(&extra)
        .map(|_, w| (Some(w.to_lowercase()), w))
        .peek(move |_, w| peeked.lock().push(w.clone()));
    merged.foreach(move |_, _| *counted.lock() += 1);
    merged.to_extractor(
        |_, w: &String, ctx| {
            assert!(ctx.topic == "lines" || ctx.topic == "extra");
            if w.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) {
                "vowels".to_string()
            } else {
                "others".to_string()
            }
        },
        Produced::with(Nullable(StringSerde), StringSerde),
    );
    let topology = builder.build();
    assert!(topology
        .describe()
        .to_string()
        .contains("(extractor class: "));

    let lines = ["the apple is red", "an Owl and the cat"];
    let input: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (None, Some(Bytes::from(l.to_string())), 10 + i as i64))
        .collect();
    broker.produce("lines", &input).await;
    broker
        .produce(
            "extra",
            &[(Some(Bytes::from("k")), Some(Bytes::from("ink")), 99)],
        )
        .await;

    let mut streams = KafkaStreams::new(topology, common::props(&broker, "words")).unwrap();
    streams.start().unwrap();
    let settle = Duration::from_millis(500);
    let vowels = broker.read("vowels", 1, 7, WAIT, settle).await;
    let others = broker.read("others", 1, 2, WAIT, settle).await;
    let text = |rs: &[strom_client::ConsumerRecord]| -> Vec<(Option<String>, String, i64)> {
        rs.iter()
            .map(|r| {
                let k = r
                    .key
                    .as_deref()
                    .map(|k| String::from_utf8(k.to_vec()).unwrap());
                let v = String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap();
                (k, v, r.timestamp)
            })
            .collect()
    };
    // Per source the order is the input's; the two sources interleave in any order.
    let mut by_ts: BTreeMap<i64, Vec<(Option<String>, String)>> = BTreeMap::new();
    for (k, v, ts) in text(&vowels).into_iter().chain(text(&others)) {
        by_ts.entry(ts).or_default().push((k, v));
    }
    let s = |w: &str| (Some(w.to_lowercase()), w.to_string());
    let v = text(&vowels);
    let line0: Vec<_> = v
        .iter()
        .filter(|r| r.2 == 10)
        .map(|r| r.1.clone())
        .collect();
    let line1: Vec<_> = v
        .iter()
        .filter(|r| r.2 == 11)
        .map(|r| r.1.clone())
        .collect();
    assert_eq!(line0, ["apple", "is"]);
    assert_eq!(line1, ["an", "Owl", "and"]);
    let extra_out: Vec<_> = v
        .iter()
        .filter(|r| r.2 == 99)
        .map(|r| r.1.clone())
        .collect();
    assert_eq!(extra_out, ["ink", "ink!"]);
    assert_eq!(by_ts[&10].iter().filter(|r| **r == s("red")).count(), 1);
    assert_eq!(by_ts[&11].iter().filter(|r| **r == s("cat")).count(), 1);
    assert_eq!(text(&others).len(), 2, "{:?}", text(&others));
    assert_eq!(vowels.len(), 7, "{:?}", text(&vowels));
    wait_until("foreach saw every word", WAIT, || *each.lock() == 9).await;
    assert_eq!(seen.lock().len(), 9);
    streams.close().await;
}
