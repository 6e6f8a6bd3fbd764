//! Aggregations and tables, run by the `TopologyTestDriver` (no broker): counts, reduce and
//! aggregate per key, through a repartition topic when the key changed, KTable semantics
//! (deletes, filter turning rows into deletes), output timestamps, stores readable while
//! running, and Kafka's description of the word count topology.

use strom_streams::{
    Consumed, Grouped, I64Serde, Json, Materialized, Nullable, Produced, StreamsBuilder,
    StreamsError, StringSerde, TopologyTestDriver,
};

fn word_count(builder: &StreamsBuilder, store: Materialized<String, i64>) {
    builder
        .stream(
            "streams-plaintext-input",
            Consumed::with(StringSerde, StringSerde),
        )
        .flat_map_values(|line: String| {
            line.to_lowercase()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, word| word.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count(store)
        .to_stream()
        .to(
            "streams-wordcount-output",
            Produced::with(StringSerde, Nullable(I64Serde)),
        );
}

#[test]
fn word_count_is_described_as_kafka_describes_it() {
    let b = StreamsBuilder::new();
    word_count(&b, Materialized::named("counts-store"));
    // Kafka's Streams tutorial prints this for the same DSL calls.
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [streams-plaintext-input])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> counts-store-repartition-filter
      <-- KSTREAM-FLATMAPVALUES-0000000001
    Processor: counts-store-repartition-filter (stores: [])
      --> counts-store-repartition-sink
      <-- KSTREAM-KEY-SELECT-0000000002
    Sink: counts-store-repartition-sink (topic: counts-store-repartition)
      <-- counts-store-repartition-filter

  Sub-topology: 1
    Source: counts-store-repartition-source (topics: [counts-store-repartition])
      --> KSTREAM-AGGREGATE-0000000003
    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [counts-store])
      --> KTABLE-TOSTREAM-0000000007
      <-- counts-store-repartition-source
    Processor: KTABLE-TOSTREAM-0000000007 (stores: [])
      --> KSTREAM-SINK-0000000008
      <-- KSTREAM-AGGREGATE-0000000003
    Sink: KSTREAM-SINK-0000000008 (topic: streams-wordcount-output)
      <-- KTABLE-TOSTREAM-0000000007

";
    assert_eq!(b.build().describe().to_string(), expected);
}

#[test]
fn an_unnamed_count_takes_generated_names() {
    let b = StreamsBuilder::new();
    word_count(&b, Materialized::default());
    let text = b.build().describe().to_string();
    // The store takes counter 3, the processor 4, the repartition sink, filter and source
    // 5, 6 and 7 (Kafka burns all three), the table's to_stream 8.
    for line in [
        "Processor: KSTREAM-AGGREGATE-0000000004 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000003])",
        "Sink: KSTREAM-SINK-0000000005 (topic: KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition)",
        "Processor: KSTREAM-FILTER-0000000006 (stores: [])",
        "Source: KSTREAM-SOURCE-0000000007 (topics: [KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition])",
        "Processor: KTABLE-TOSTREAM-0000000008 (stores: [])",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Kafka's count(Materialized) without a name takes one more counter value first.
    let b = StreamsBuilder::new();
    word_count(&b, Materialized::with(StringSerde, I64Serde));
    let text = b.build().describe().to_string();
    assert!(
        text.contains("Processor: KSTREAM-AGGREGATE-0000000005 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000004])"),
        "{text}"
    );
}

#[test]
fn word_count_counts_each_word_through_the_repartition_topic() {
    let b = StreamsBuilder::new();
    word_count(&b, Materialized::named("counts-store"));
    let driver = TopologyTestDriver::new(b.build(), [("application.id", "wc")]).unwrap();
    let input = driver.input_topic("streams-plaintext-input", StringSerde, StringSerde);
    input.pipe(&"k".into(), &"Hello Kafka".into(), 10).unwrap();
    input
        .pipe(&"k".into(), &"hello streams hello".into(), 20)
        .unwrap();
    let out = driver.output_topic("streams-wordcount-output", StringSerde, Nullable(I64Serde));
    let got = out.read_records().unwrap();
    let expected: Vec<(String, Option<i64>, i64)> = vec![
        ("hello".into(), Some(1), 10),
        ("kafka".into(), Some(1), 10),
        ("hello".into(), Some(2), 20),
        ("streams".into(), Some(1), 20),
        ("hello".into(), Some(3), 20),
    ];
    assert_eq!(got, expected);
    let store = driver.key_value_store("counts-store", StringSerde, I64Serde);
    assert_eq!(store.get(&"hello".into()).unwrap(), Some(3));
    assert_eq!(store.get(&"nothing".into()).unwrap(), None);
    let mut all = store.all().unwrap();
    all.sort();
    assert_eq!(
        all,
        vec![
            ("hello".into(), 3),
            ("kafka".into(), 1),
            ("streams".into(), 1)
        ]
    );
}

#[test]
fn an_aggregate_keeps_the_largest_timestamp_of_its_records() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(StringSerde, I64Serde))
        .group_by_key(Grouped::with(StringSerde, I64Serde))
        .aggregate(
            Vec::new,
            |_k, v, mut seen: Vec<i64>| {
                seen.push(v);
                seen
            },
            Materialized::named("seen").with_value_serde(Json::<Vec<i64>>::new()),
        )
        .to_stream()
        .to(
            "out",
            Produced::with(StringSerde, Nullable(Json::<Vec<i64>>::new())),
        );
    let driver = TopologyTestDriver::new(b.build(), [("application.id", "agg")]).unwrap();
    let input = driver.input_topic("in", StringSerde, I64Serde);
    input.pipe(&"a".into(), &1, 100).unwrap();
    input.pipe(&"a".into(), &2, 50).unwrap(); // out of order: the result keeps 100
    input.pipe(&"b".into(), &3, 70).unwrap();
    input.pipe(&"a".into(), &4, 120).unwrap();
    let out = driver.output_topic("out", StringSerde, Nullable(Json::<Vec<i64>>::new()));
    assert_eq!(
        out.read_records().unwrap(),
        vec![
            ("a".into(), Some(vec![1]), 100),
            ("a".into(), Some(vec![1, 2]), 100),
            ("b".into(), Some(vec![3]), 70),
            ("a".into(), Some(vec![1, 2, 4]), 120),
        ]
    );
}

#[test]
fn reduce_starts_from_the_first_value_and_needs_no_repartition_without_a_key_change() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(StringSerde, I64Serde))
        .filter(|_, v| *v >= 0)
        .group_by_key(Grouped::with(StringSerde, I64Serde))
        .reduce(|a, v| a.max(v), Materialized::named("max"))
        .to_stream()
        .to("out", Produced::with(StringSerde, Nullable(I64Serde)));
    let topology = b.build();
    let text = topology.describe().to_string();
    assert!(!text.contains("repartition"), "{text}");
    assert!(
        text.contains("Processor: KSTREAM-REDUCE-0000000002 (stores: [max])"),
        "{text}"
    );
    let driver = TopologyTestDriver::new(topology, [("application.id", "max")]).unwrap();
    let input = driver.input_topic("in", StringSerde, I64Serde);
    for (k, v) in [("a", 5), ("a", 3), ("a", -1), ("a", 9), ("b", 1)] {
        input.pipe(&k.to_string(), &v, 0).unwrap();
    }
    let out = driver.output_topic("out", StringSerde, Nullable(I64Serde));
    let values: Vec<(String, Option<i64>)> = out.read_key_values().unwrap();
    assert_eq!(
        values,
        vec![
            ("a".into(), Some(5)),
            ("a".into(), Some(5)),
            ("a".into(), Some(9)),
            ("b".into(), Some(1)),
        ]
    );
}

#[test]
fn a_table_reads_nulls_as_deletes_and_filter_turns_rows_into_deletes() {
    let b = StreamsBuilder::new();
    let table = b.table(
        "users",
        Consumed::with(StringSerde, I64Serde),
        Materialized::named("users-store"),
    );
    table
        .filter(|_, age| *age >= 18)
        .map_values(|age| age * 12)
        .to_stream()
        .to(
            "adults-months",
            Produced::with(StringSerde, Nullable(I64Serde)),
        );
    let topology = b.build();
    let text = topology.describe().to_string();
    assert!(
        text.contains("Processor: KTABLE-SOURCE-0000000001 (stores: [users-store])"),
        "{text}"
    );
    let driver = TopologyTestDriver::new(topology, [("application.id", "users")]).unwrap();
    let input = driver.input_topic("users", StringSerde, I64Serde);
    input.pipe(&"ann".into(), &30, 1).unwrap();
    input.pipe(&"bob".into(), &10, 2).unwrap(); // filtered out: nothing downstream
    input.pipe(&"ann".into(), &17, 3).unwrap(); // no longer matches: a delete
    input.pipe(&"bob".into(), &20, 4).unwrap();
    input.pipe_null(&"bob".into(), 5).unwrap(); // deleted
    let out = driver.output_topic("adults-months", StringSerde, Nullable(I64Serde));
    assert_eq!(
        out.read_records().unwrap(),
        vec![
            ("ann".into(), Some(360), 1),
            ("ann".into(), None, 3),
            ("bob".into(), Some(240), 4),
            ("bob".into(), None, 5),
        ]
    );
    let store = driver.key_value_store("users-store", StringSerde, I64Serde);
    assert_eq!(store.get(&"ann".into()).unwrap(), Some(17));
    assert_eq!(store.get(&"bob".into()).unwrap(), None);
}

#[test]
fn a_topology_error_names_the_problem() {
    let b = StreamsBuilder::new();
    let s = b.stream("in", Consumed::with(StringSerde, StringSerde));
    let g = s.group_by_key(Grouped::with(StringSerde, StringSerde));
    g.count(Materialized::named("same"));
    g.count(Materialized::named("same"));
    let e = TopologyTestDriver::new(b.build(), [("application.id", "x")]).unwrap_err();
    assert!(matches!(e, StreamsError::InvalidTopology(_)), "{e}");
    assert!(
        e.to_string().contains("store name same is already used"),
        "{e}"
    );
}
