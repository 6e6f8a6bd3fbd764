//! `Topology::describe()` against the text Kafka Streams prints for the same DSL calls:
//! node names, their order, successors and predecessors, sub-topology numbering.

use strom_streams::{Branched, Consumed, Produced, StreamsBuilder, StringSerde};

#[test]
fn a_linear_topology_is_described_as_kafka_does() {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(StringSerde, StringSerde))
        .filter(|_, v| !v.is_empty())
        .map_values(|v| v.len().to_string())
        .to("out", Produced::with(StringSerde, StringSerde));
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [in])
      --> KSTREAM-FILTER-0000000001
    Processor: KSTREAM-FILTER-0000000001 (stores: [])
      --> KSTREAM-MAPVALUES-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-MAPVALUES-0000000002 (stores: [])
      --> KSTREAM-SINK-0000000003
      <-- KSTREAM-FILTER-0000000001
    Sink: KSTREAM-SINK-0000000003 (topic: out)
      <-- KSTREAM-MAPVALUES-0000000002

";
    assert_eq!(builder.build().describe().to_string(), expected);
}

#[test]
fn branches_and_a_second_subtopology() {
    let builder = StreamsBuilder::new();
    let branches = builder
        .stream("a", Consumed::with(StringSerde, StringSerde))
        .split()
        .branch(|_, v| v.len() > 3, Branched::new())
        .default_branch(Branched::new());
    let mut names: Vec<&String> = branches.keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["KSTREAM-BRANCH-00000000010", "KSTREAM-BRANCH-00000000011"]
    );
    branches["KSTREAM-BRANCH-00000000011"].to("long", Produced::with(StringSerde, StringSerde));
    branches["KSTREAM-BRANCH-00000000010"].to("short", Produced::with(StringSerde, StringSerde));
    builder
        .stream("b", Consumed::with(StringSerde, StringSerde))
        .foreach(|_, _| {});
    // Nodes with the larger graph below them come first, then by name (Kafka's order).
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [a])
      --> KSTREAM-BRANCH-0000000001
    Processor: KSTREAM-BRANCH-0000000001 (stores: [])
      --> KSTREAM-BRANCH-00000000010, KSTREAM-BRANCH-00000000011
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-BRANCH-00000000010 (stores: [])
      --> KSTREAM-SINK-0000000003
      <-- KSTREAM-BRANCH-0000000001
    Processor: KSTREAM-BRANCH-00000000011 (stores: [])
      --> KSTREAM-SINK-0000000002
      <-- KSTREAM-BRANCH-0000000001
    Sink: KSTREAM-SINK-0000000002 (topic: long)
      <-- KSTREAM-BRANCH-00000000011
    Sink: KSTREAM-SINK-0000000003 (topic: short)
      <-- KSTREAM-BRANCH-00000000010

  Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000004 (topics: [b])
      --> KSTREAM-FOREACH-0000000005
    Processor: KSTREAM-FOREACH-0000000005 (stores: [])
      --> none
      <-- KSTREAM-SOURCE-0000000004

";
    let topology = builder.build();
    assert_eq!(topology.describe().to_string(), expected);
    assert_eq!(topology.source_topics(), ["a", "b"]);
}

#[test]
fn merge_and_the_other_operation_names() {
    let builder = StreamsBuilder::new();
    let a = builder.stream("a", Consumed::with(StringSerde, StringSerde));
    let b = builder
        .stream("b", Consumed::with(StringSerde, StringSerde))
        .select_key(|_, v| v.clone());
    a.merge(&b)
        .flat_map_values(|v: String| vec![v.clone(), v])
        .map(|k, v| (v, k))
        .flat_map(|k, v| [(k, v)])
        .filter_not(|_, _| false)
        .peek(|_, _| {})
        .to("out", Produced::with(StringSerde, StringSerde));
    let text = builder.build().describe().to_string();
    // One sub-topology: the merge joins both sources' graphs.
    assert_eq!(text.matches("Sub-topology:").count(), 1, "{text}");
    for node in [
        "Source: KSTREAM-SOURCE-0000000000 (topics: [a])\n      --> KSTREAM-MERGE-0000000003",
        "Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])\n      --> KSTREAM-MERGE-0000000003\n      <-- KSTREAM-SOURCE-0000000001",
        "Processor: KSTREAM-MERGE-0000000003 (stores: [])\n      --> KSTREAM-FLATMAPVALUES-0000000004\n      <-- KSTREAM-SOURCE-0000000000, KSTREAM-KEY-SELECT-0000000002",
        "Processor: KSTREAM-MAP-0000000005 (stores: [])",
        "Processor: KSTREAM-FLATMAP-0000000006 (stores: [])",
        "Processor: KSTREAM-FILTER-0000000007 (stores: [])",
        "Processor: KSTREAM-PEEK-0000000008 (stores: [])\n      --> KSTREAM-SINK-0000000009",
        "Sink: KSTREAM-SINK-0000000009 (topic: out)\n      <-- KSTREAM-PEEK-0000000008",
    ] {
        assert!(text.contains(node), "missing {node:?} in\n{text}");
    }
}
