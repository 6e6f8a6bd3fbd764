//! The Processor API on the `TopologyTestDriver`: a processor with a state store,
//! forwarding records, and punctuations by stream time (first at the first record, once
//! per jump however large, aligned to the interval) and by wall-clock time.

use std::time::Duration;

use strom_streams::{
    Consumed, I64Serde, KeyValueStore, Processor, ProcessorContext, Produced, Punctuation,
    PunctuationType, Record, StoreBuilder, StreamsBuilder, StreamsError, StringSerde,
    TopologyTestDriver,
};

/// Counts records per key in store `counts`; every 10 ms of stream time it forwards
/// `("tick", <stream time>)`; every second of wall-clock time, `("wall", <total>)`.
struct Counter {
    store: KeyValueStore<String, i64>,
    total: i64,
    wall: Option<u64>,
}

impl Processor<String, String, String, i64> for Counter {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) {
        ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime);
        self.wall = Some(ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime));
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, String>) {
        let n = self.store.get(ctx, &r.key).unwrap_or(0) + 1;
        self.store.put(ctx, &r.key, &n);
        self.total += 1;
        ctx.forward(Record::new(r.key, n, r.timestamp));
    }

    fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, p: Punctuation) {
        if Some(p.id) == self.wall {
            ctx.forward(Record::new("wall".into(), self.total, p.timestamp));
        } else {
            ctx.forward(Record::new("tick".into(), p.timestamp, p.timestamp));
        }
    }
}

fn topology() -> strom_streams::Topology {
    let b = StreamsBuilder::new();
    b.add_state_store(StoreBuilder::key_value("counts"));
    b.stream("in", Consumed::with(StringSerde, StringSerde))
        .process(
            || Counter {
                store: KeyValueStore::new("counts", StringSerde, I64Serde),
                total: 0,
                wall: None,
            },
            &["counts"],
        )
        .to("out", Produced::with(StringSerde, I64Serde));
    b.build()
}

#[test]
fn a_processor_keeps_state_forwards_and_punctuates_on_stream_time() {
    let driver = TopologyTestDriver::new(topology(), [("application.id", "p")]).unwrap();
    let input = driver.input_topic("in", StringSerde, StringSerde);
    let out = driver.output_topic("out", StringSerde, I64Serde);
    input.pipe(&"a".into(), &"x".into(), 5).unwrap();
    // The first record fires the stream-time punctuation at once.
    assert_eq!(
        out.read_records().unwrap(),
        vec![("a".into(), 1, 5), ("tick".into(), 5, 5)]
    );
    input.pipe(&"a".into(), &"x".into(), 9).unwrap();
    input.pipe(&"b".into(), &"x".into(), 14).unwrap(); // passes 15? no: next is 15
    assert_eq!(
        out.read_records().unwrap(),
        vec![("a".into(), 2, 9), ("b".into(), 1, 14)]
    );
    input.pipe(&"b".into(), &"x".into(), 15).unwrap();
    assert_eq!(
        out.read_records().unwrap(),
        vec![("b".into(), 2, 15), ("tick".into(), 15, 15)]
    );
    // A jump of many intervals fires once; the next is aligned to the schedule.
    input.pipe(&"a".into(), &"x".into(), 100).unwrap();
    assert_eq!(
        out.read_records().unwrap(),
        vec![("a".into(), 3, 100), ("tick".into(), 100, 100)]
    );
    // An older record does not move stream time: no punctuation.
    input.pipe(&"a".into(), &"x".into(), 50).unwrap();
    input.pipe(&"a".into(), &"x".into(), 104).unwrap();
    assert_eq!(
        out.read_records().unwrap(),
        vec![("a".into(), 4, 50), ("a".into(), 5, 104)]
    );
    input.pipe(&"a".into(), &"x".into(), 105).unwrap();
    assert_eq!(
        out.read_records().unwrap(),
        vec![("a".into(), 6, 105), ("tick".into(), 105, 105)]
    );
    let store = driver.key_value_store("counts", StringSerde, I64Serde);
    assert_eq!(store.get(&"a".into()).unwrap(), Some(6));
    assert_eq!(store.get(&"b".into()).unwrap(), Some(2));
}

#[test]
fn wall_clock_punctuations_follow_the_clock_not_the_records() {
    let driver = TopologyTestDriver::new(topology(), [("application.id", "p")]).unwrap();
    let input = driver.input_topic("in", StringSerde, StringSerde);
    let out = driver.output_topic("out", StringSerde, I64Serde);
    input.pipe(&"a".into(), &"x".into(), 1_000_000).unwrap();
    input.pipe(&"a".into(), &"x".into(), 1_000_001).unwrap();
    out.read_records().unwrap();
    driver
        .advance_wall_clock_time(Duration::from_millis(999))
        .unwrap();
    assert!(out.is_empty(), "not due before a second");
    driver
        .advance_wall_clock_time(Duration::from_millis(1))
        .unwrap();
    assert_eq!(out.read_key_values().unwrap(), vec![("wall".into(), 2)]);
    // Five seconds at once: one punctuation.
    driver
        .advance_wall_clock_time(Duration::from_secs(5))
        .unwrap();
    assert_eq!(out.read_key_values().unwrap(), vec![("wall".into(), 2)]);
}

#[test]
fn a_processor_naming_a_store_that_was_not_added_is_refused() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(StringSerde, StringSerde))
        .process(
            || Counter {
                store: KeyValueStore::new("missing", StringSerde, I64Serde),
                total: 0,
                wall: None,
            },
            &["missing"],
        )
        .to("out", Produced::with(StringSerde, I64Serde));
    let e = TopologyTestDriver::new(b.build(), [("application.id", "p")]).unwrap_err();
    assert!(matches!(e, StreamsError::InvalidTopology(_)), "{e}");
    assert!(e.to_string().contains("which was not added"), "{e}");
}

#[test]
fn a_processor_node_is_described_with_its_store() {
    let text = topology().describe().to_string();
    assert!(
        text.contains("Processor: KSTREAM-PROCESSOR-0000000001 (stores: [counts])"),
        "{text}"
    );
}
