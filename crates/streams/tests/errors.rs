//! Records that cannot be deserialized, under each of Kafka's deserialization exception
//! handlers, and the configurations a phase-1 instance refuses.

mod common;

use std::time::Duration;

use bytes::Bytes;
use strom_streams::{
    Consumed, I32Serde, KafkaStreams, Produced, State, StreamsBuilder, StreamsError, StringSerde,
};

use common::{wait_until, Broker};

const WAIT: Duration = Duration::from_secs(30);

/// Values 1, 2, (3 bytes: not an i32), 4, 5 in one partition.
async fn setup(broker: &Broker, input: &str, output: &str) {
    broker.create(input, 1).await;
    broker.create(output, 1).await;
    let int = |n: i32| Some(Bytes::copy_from_slice(&n.to_be_bytes()));
    let records = vec![
        (Some(Bytes::from("a")), int(1), 1),
        (Some(Bytes::from("b")), int(2), 2),
        (
            Some(Bytes::from("c")),
            Some(Bytes::from_static(&[1, 2, 3])),
            3,
        ),
        (Some(Bytes::from("d")), int(4), 4),
        (Some(Bytes::from("e")), int(5), 5),
    ];
    broker.produce(input, &records).await;
}

fn doubling(input: &str, output: &str) -> strom_streams::Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream(input, Consumed::with(StringSerde, I32Serde))
        .map_values(|v| v * 2)
        .to(output, Produced::with(StringSerde, I32Serde));
    builder.build()
}

fn values(records: &[strom_client::ConsumerRecord]) -> Vec<(String, i32)> {
    records
        .iter()
        .map(|r| {
            let k = String::from_utf8(r.key.as_deref().unwrap().to_vec()).unwrap();
            let v: [u8; 4] = r.value.as_deref().unwrap().try_into().unwrap();
            (k, i32::from_be_bytes(v))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_and_continue_skips_the_bad_record() {
    let broker = Broker::start().await;
    setup(&broker, "ints", "doubled").await;
    let mut props = common::props(&broker, "continue");
    props.push((
        "default.deserialization.exception.handler".into(),
        "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler".into(),
    ));
    let mut streams = KafkaStreams::new(doubling("ints", "doubled"), props).unwrap();
    streams.start().unwrap();
    let out = broker
        .read("doubled", 1, 4, WAIT, Duration::from_millis(500))
        .await;
    assert_eq!(
        values(&out),
        [
            ("a".to_string(), 2),
            ("b".to_string(), 4),
            ("d".to_string(), 8),
            ("e".to_string(), 10)
        ]
    );
    assert_eq!(streams.state(), State::Running);
    assert!(streams.error().is_none());
    streams.close().await;
    // The skipped record counts as processed.
    assert_eq!(broker.committed("continue", "ints", 1).await, [Some(5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_and_fail_stops_in_error_with_the_cause() {
    let broker = Broker::start().await;
    setup(&broker, "ints", "doubled").await;
    // The default handler is LogAndFailExceptionHandler.
    let mut streams =
        KafkaStreams::new(doubling("ints", "doubled"), common::props(&broker, "fail")).unwrap();
    streams.start().unwrap();
    wait_until("the ERROR state", WAIT, || streams.state() == State::Error).await;
    let error = streams.error().expect("the cause is kept");
    match &*error {
        StreamsError::Deserialization {
            part,
            topic,
            partition,
            offset,
            source,
        } => {
            assert_eq!(
                (*part, topic.as_str(), *partition, *offset),
                ("value", "ints", 0, 2)
            );
            assert!(source.to_string().contains("exactly 4 bytes"), "{source}");
        }
        other => panic!("unexpected error {other}"),
    }
    // The records before the bad one were written; nothing after it.
    let out = broker
        .read("doubled", 1, 2, WAIT, Duration::from_millis(500))
        .await;
    assert_eq!(values(&out), [("a".to_string(), 2), ("b".to_string(), 4)]);
    // What was processed is committed, so a successor starts at the bad record.
    assert_eq!(broker.committed("fail", "ints", 1).await, [Some(2)]);
    streams.close().await;
    assert_eq!(streams.state(), State::Error);
}

#[test]
fn removed_guarantees_and_missing_ids_are_refused() {
    let topology = || doubling("a", "b");
    let e = KafkaStreams::new(
        topology(),
        [
            ("application.id", "x"),
            ("bootstrap.servers", "127.0.0.1:1"),
            ("processing.guarantee", "exactly_once_beta"),
        ],
    )
    .unwrap_err();
    assert!(matches!(e, StreamsError::InvalidConfig { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "invalid value 'exactly_once_beta' for processing.guarantee: removed in Kafka 4.0; use exactly_once_v2"
    );
    let e = KafkaStreams::new(topology(), [("bootstrap.servers", "127.0.0.1:1")]).unwrap_err();
    assert!(matches!(e, StreamsError::MissingConfig("application.id")));
    // Two sources for one topic is Kafka's TopologyException.
    let builder = StreamsBuilder::new();
    builder
        .stream("t", Consumed::with(StringSerde, StringSerde))
        .foreach(|_, _| {});
    builder
        .stream("t", Consumed::with(StringSerde, StringSerde))
        .foreach(|_, _| {});
    let e = KafkaStreams::new(
        builder.build(),
        [
            ("application.id", "x"),
            ("bootstrap.servers", "127.0.0.1:1"),
        ],
    )
    .unwrap_err();
    assert!(matches!(e, StreamsError::InvalidTopology(_)), "{e}");
}
