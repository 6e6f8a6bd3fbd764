//! Joins run by the `TopologyTestDriver` (no broker), against the join semantics tables of
//! Kafka Streams' developer guide (all records under one key, in timestamp order) and
//! cases from Kafka's own join tests: stream-stream inner/left/outer joins with left and
//! outer results emitted only once the window has closed, out-of-window and too-late
//! records, result timestamps, stream-table and table-table joins with deletes, and the
//! topology descriptions Kafka prints for the same DSL calls. Last, two runs on an
//! in-process broker: inputs that are not co-partitioned are refused at start, and a
//! repartitioned side gets the other side's partition count.

mod common;

use std::time::Duration;

use bytes::Bytes;
use strom_streams::{
    Consumed, I32Serde, JoinWindows, Joined, KafkaStreams, Materialized, Nullable, Produced, State,
    StreamJoined, StreamsBuilder, StreamsError, StringSerde, TopologyTestDriver,
};

use common::{wait_until, Broker};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn show(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "null".into())
}

/// `[left, right]`, as the developer guide writes what the joiner was given.
fn pair(l: Option<&String>, r: Option<&String>) -> String {
    format!("[{}, {}]", show(l), show(r))
}

type Out = Vec<(String, Option<String>, i64)>;

/// One input record of a semantics table: its time, side, and value (`None`: null).
type Row = (i64, Side, Option<&'static str>);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}
use Side::{Left, Right};

/// Pipes `rows` one at a time and returns, per row, what the join wrote to `out` then.
fn run_rows(driver: &TopologyTestDriver, rows: &[Row]) -> Vec<(i64, Out)> {
    let left = driver.input_topic("left", StringSerde, Nullable(StringSerde));
    let right = driver.input_topic("right", StringSerde, Nullable(StringSerde));
    let out = driver.output_topic("out", StringSerde, Nullable(StringSerde));
    let mut per_row = Vec::new();
    for &(ts, side, value) in rows {
        let input = if side == Left { &left } else { &right };
        input
            .pipe(&"k".to_string(), &value.map(str::to_string), ts)
            .unwrap();
        let got = out.read_records().unwrap();
        if !got.is_empty() {
            per_row.push((ts, got));
        }
    }
    per_row
}

fn rec(value: &str, ts: i64) -> (String, Option<String>, i64) {
    ("k".to_string(), Some(value.to_string()), ts)
}

fn tombstone(ts: i64) -> (String, Option<String>, i64) {
    ("k".to_string(), None, ts)
}

/// The developer guide's stream-stream table: a 15 ms join window with 5 ms grace.
const STREAM_STREAM: &[Row] = &[
    (1, Left, None),
    (2, Right, None),
    (3, Left, Some("A")),
    (4, Right, Some("a")),
    (5, Left, Some("B")),
    (6, Right, Some("b")),
    (7, Left, None),
    (8, Right, None),
    (9, Left, Some("C")),
    (10, Right, Some("c")),
    (11, Right, None),
    (12, Left, None),
    (13, Right, None),
    (14, Right, Some("d")),
    (15, Left, Some("D")),
    (40, Left, Some("E")),
    (60, Left, Some("F")),
    (80, Right, Some("f")),
    (100, Left, Some("G")),
    // Not in the guide's table: advances stream time past f's window.
    (101, Left, Some("H")),
];

fn stream_stream_windows() -> JoinWindows {
    JoinWindows::of_time_difference_and_grace(ms(15), ms(5))
}

fn joined() -> StreamJoined<String, Option<String>, Option<String>> {
    StreamJoined::with(StringSerde, Nullable(StringSerde), Nullable(StringSerde))
}

fn streams(
    b: &StreamsBuilder,
) -> (
    strom_streams::KStream<String, Option<String>>,
    strom_streams::KStream<String, Option<String>>,
) {
    let consumed = || Consumed::with(StringSerde, Nullable(StringSerde));
    (b.stream("left", consumed()), b.stream("right", consumed()))
}

/// The results every stream-stream join kind has in the guide's table (rows 4 to 15).
fn inner_results() -> Vec<(i64, Out)> {
    vec![
        (4, vec![rec("[A, a]", 4)]),
        (5, vec![rec("[B, a]", 5)]),
        (6, vec![rec("[A, b]", 6), rec("[B, b]", 6)]),
        (9, vec![rec("[C, a]", 9), rec("[C, b]", 9)]),
        (
            10,
            vec![rec("[A, c]", 10), rec("[B, c]", 10), rec("[C, c]", 10)],
        ),
        (
            14,
            vec![rec("[A, d]", 14), rec("[B, d]", 14), rec("[C, d]", 14)],
        ),
        (
            15,
            vec![
                rec("[D, a]", 15),
                rec("[D, b]", 15),
                rec("[D, c]", 15),
                rec("[D, d]", 15),
            ],
        ),
    ]
}

#[test]
fn stream_stream_inner_join_follows_the_guides_table() {
    let b = StreamsBuilder::new();
    let (left, right) = streams(&b);
    left.join(
        &right,
        |l: &Option<String>, r: &Option<String>| pair(l.as_ref(), r.as_ref()),
        stream_stream_windows(),
        joined(),
    )
    .map_values(Some)
    .to("out", Produced::with(StringSerde, Nullable(StringSerde)));
    let driver = TopologyTestDriver::new(b.build(), [("application.id", "ss-inner")]).unwrap();
    assert_eq!(run_rows(&driver, STREAM_STREAM), inner_results());
    // The seven null values were skipped.
    assert_eq!(driver.dropped_records(), 7);
}

#[test]
fn stream_stream_left_join_emits_unjoined_records_when_their_window_closes() {
    let b = StreamsBuilder::new();
    let (left, right) = streams(&b);
    left.left_join(
        &right,
        |l: &Option<String>, r: Option<&Option<String>>| {
            pair(l.as_ref(), r.and_then(|r| r.as_ref()))
        },
        stream_stream_windows(),
        joined(),
    )
    .map_values(Some)
    .to("out", Produced::with(StringSerde, Nullable(StringSerde)));
    let driver = TopologyTestDriver::new(b.build(), [("application.id", "ss-left")]).unwrap();
    let mut expected = inner_results();
    // A joined at 4 and is never emitted alone. E (40) waits until stream time passes
    // 40 + 15 + 5: the guide's table shows it at 60, where stream time only reaches 60;
    // Kafka's processor emits it with the next record (f at 80), with E's own timestamp.
    // Likewise F (60) comes out with G (100).
    expected.push((80, vec![rec("[E, null]", 40)]));
    expected.push((100, vec![rec("[F, null]", 60)]));
    assert_eq!(run_rows(&driver, STREAM_STREAM), expected);
}

#[test]
fn stream_stream_outer_join_emits_both_sides_unjoined_records_when_their_window_closes() {
    let b = StreamsBuilder::new();
    let (left, right) = streams(&b);
    left.outer_join(
        &right,
        |l: Option<&Option<String>>, r: Option<&Option<String>>| {
            pair(l.and_then(|l| l.as_ref()), r.and_then(|r| r.as_ref()))
        },
        stream_stream_windows(),
        joined(),
    )
    .map_values(Some)
    .to("out", Produced::with(StringSerde, Nullable(StringSerde)));
    let driver = TopologyTestDriver::new(b.build(), [("application.id", "ss-outer")]).unwrap();
    let mut expected = inner_results();
    expected.push((80, vec![rec("[E, null]", 40)]));
    expected.push((100, vec![rec("[F, null]", 60)]));
    // f (80) closes once stream time passes 80 + 15 + 5 (the guide shows it at 100).
    expected.push((101, vec![rec("[null, f]", 80)]));
    assert_eq!(run_rows(&driver, STREAM_STREAM), expected);
}

/// Kafka's `KStreamKStreamLeftJoinTest.testLeftJoinedRecordsWithZeroAfterAreEmitted`, its
/// first two steps: with `after` zero a left record's window closes as soon as stream time
/// moves on; a right record up to 100 ms older still joins it (it is still in the store).
#[test]
fn an_asymmetric_left_join_emits_as_soon_as_after_has_passed() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(I32Serde, StringSerde);
    let left = b.stream("topic1", consumed());
    let right = b.stream("topic2", consumed());
    left.left_join(
        &right,
        |l: &String, r: Option<&String>| format!("{l}+{}", show(r)),
        JoinWindows::of_time_difference_with_no_grace(ms(100)).after(Duration::ZERO),
        StreamJoined::with(I32Serde, StringSerde, StringSerde),
    )
    .to("out", Produced::with(I32Serde, StringSerde));
    let driver = TopologyTestDriver::new(b.build(), [("application.id", "zero-after")]).unwrap();
    let in1 = driver.input_topic("topic1", I32Serde, StringSerde);
    let in2 = driver.input_topic("topic2", I32Serde, StringSerde);
    let out = driver.output_topic("out", I32Serde, StringSerde);
    for i in 0..4 {
        in1.pipe(&i, &format!("A{i}"), 1000 + i64::from(i)).unwrap();
    }
    assert_eq!(
        out.read_records().unwrap(),
        [
            (0, "A0+null".to_string(), 1000),
            (1, "A1+null".to_string(), 1001),
            (2, "A2+null".to_string(), 1002),
        ]
    );
    for i in 0..4 {
        in2.pipe(&i, &format!("a{i}"), 999).unwrap();
    }
    assert_eq!(
        out.read_records().unwrap(),
        [
            (0, "A0+a0".to_string(), 1000),
            (1, "A1+a1".to_string(), 1001),
            (2, "A2+a2".to_string(), 1002),
            (3, "A3+a3".to_string(), 1003),
        ]
    );
    // A3 joined: it is not emitted alone when its window closes.
    in1.pipe(&9, &"Z".to_string(), 2000).unwrap();
    assert_eq!(out.read_records().unwrap(), []);
}

/// A record with a null key cannot join: inner joins drop it, a left join's left side
/// emits it at once (Kafka 3.7, KIP-962); the right side of a left join drops it.
#[test]
fn stream_stream_null_keys() {
    for left_join in [false, true] {
        let b = StreamsBuilder::new();
        let keys = || Nullable(StringSerde);
        let left = b.stream("left", Consumed::with(keys(), StringSerde));
        let right = b.stream("right", Consumed::with(keys(), StringSerde));
        let windows = JoinWindows::of_time_difference_with_no_grace(ms(10));
        let joined = || StreamJoined::with(keys(), StringSerde, StringSerde);
        let result = if left_join {
            left.left_join(
                &right,
                |l: &String, r: Option<&String>| format!("{l}+{}", show(r)),
                windows,
                joined(),
            )
        } else {
            left.join(
                &right,
                |l: &String, r: &String| format!("{l}+{r}"),
                windows,
                joined(),
            )
        };
        result.to("out", Produced::with(keys(), StringSerde));
        let driver = TopologyTestDriver::new(b.build(), [("application.id", "ss-nk")]).unwrap();
        let l = driver.input_topic("left", keys(), StringSerde);
        let r = driver.input_topic("right", keys(), StringSerde);
        let out = driver.output_topic("out", keys(), StringSerde);
        l.pipe(&None, &"A".into(), 1).unwrap();
        r.pipe(&None, &"a".into(), 2).unwrap();
        let got = out.read_records().unwrap();
        if left_join {
            assert_eq!(got, [(None, "A+null".to_string(), 1)]);
            assert_eq!(driver.dropped_records(), 1);
        } else {
            assert_eq!(got, []);
            assert_eq!(driver.dropped_records(), 2);
        }
    }
}

/// Records older than their window store's newest minus size and grace are dropped (and
/// counted); records within the grace still join.
#[test]
fn records_later_than_the_grace_are_dropped() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(StringSerde, StringSerde);
    let left = b.stream("left", consumed());
    let right = b.stream("right", consumed());
    left.join(
        &right,
        |l: &String, r: &String| format!("{l}+{r}"),
        JoinWindows::of_time_difference_and_grace(ms(10), ms(5)),
        StreamJoined::with(StringSerde, StringSerde, StringSerde),
    )
    .to("out", Produced::with(StringSerde, StringSerde));
    let driver = TopologyTestDriver::new(b.build(), [("application.id", "late")]).unwrap();
    let l = driver.input_topic("left", StringSerde, StringSerde);
    let r = driver.input_topic("right", StringSerde, StringSerde);
    let out = driver.output_topic("out", StringSerde, StringSerde);
    let k = "k".to_string();
    l.pipe(&k, &"A".into(), 100).unwrap();
    l.pipe(&k, &"B".into(), 200).unwrap();
    // The left store keeps 10 + 10 + 5 ms behind its newest record (200): C is too late.
    l.pipe(&k, &"C".into(), 150).unwrap();
    assert_eq!(driver.dropped_records(), 1);
    r.pipe(&k, &"x".into(), 152).unwrap();
    assert_eq!(out.read_records().unwrap(), []);
    // D is late, but within the store's retention: it is kept and joins.
    l.pipe(&k, &"D".into(), 180).unwrap();
    r.pipe(&k, &"y".into(), 182).unwrap();
    assert_eq!(
        out.read_records().unwrap(),
        [("k".to_string(), "D+y".to_string(), 182)]
    );
    // Records 11 ms apart do not join (nor did y and B, 18 ms apart); 10 ms apart they do.
    r.pipe(&k, &"z".into(), 211).unwrap();
    assert_eq!(out.read_records().unwrap(), []);
    r.pipe(&k, &"w".into(), 210).unwrap();
    assert_eq!(
        out.read_records().unwrap(),
        [("k".to_string(), "B+w".to_string(), 210)]
    );
    assert_eq!(driver.dropped_records(), 1);
}

/// A key change before the join goes through a repartition topic per side, named from the
/// join's name.
#[test]
fn a_rekeyed_stream_is_repartitioned_before_the_join() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(StringSerde, StringSerde);
    let orders = b.stream("orders", consumed());
    let payments = b.stream("payments", consumed());
    // orders: key = order id, value = customer; rekeyed by customer.
    let by_customer = orders.map(|id, customer| (customer, id));
    let joined = by_customer.join(
        &payments,
        |order: &String, payment: &String| format!("{order} paid {payment}"),
        JoinWindows::of_time_difference_with_no_grace(ms(50)),
        StreamJoined::with(StringSerde, StringSerde, StringSerde).with_name("pay"),
    );
    joined.to("out", Produced::with(StringSerde, StringSerde));
    let topology = b.build();
    let text = topology.describe().to_string();
    assert!(
        text.contains("Sink: pay-left-repartition-sink (topic: pay-left-repartition)"),
        "{text}"
    );
    assert!(
        text.contains("Processor: pay-this-join (stores: [KSTREAM-JOINOTHER-0000000009-store])"),
        "{text}"
    );
    let driver = TopologyTestDriver::new(topology, [("application.id", "rekey")]).unwrap();
    let o = driver.input_topic("orders", StringSerde, StringSerde);
    let p = driver.input_topic("payments", StringSerde, StringSerde);
    let out = driver.output_topic("out", StringSerde, StringSerde);
    o.pipe(&"o1".into(), &"alice".into(), 10).unwrap();
    o.pipe(&"o2".into(), &"bob".into(), 20).unwrap();
    p.pipe(&"alice".into(), &"5 EUR".into(), 30).unwrap();
    p.pipe(&"carol".into(), &"7 EUR".into(), 31).unwrap();
    assert_eq!(
        out.read_records().unwrap(),
        [("alice".to_string(), "o1 paid 5 EUR".to_string(), 30)]
    );
}

/// The developer guide's stream-table table.
#[test]
fn stream_table_joins_follow_the_guides_table() {
    let rows: &[Row] = &[
        (1, Left, None),
        (2, Right, None),
        (3, Left, Some("A")),
        (4, Right, Some("a")),
        (5, Left, Some("B")),
        (6, Right, Some("b")),
        (7, Left, None),
        (8, Right, None),
        (9, Left, Some("C")),
        (10, Right, Some("c")),
        (11, Right, None),
        (12, Left, None),
        (13, Right, None),
        (14, Right, Some("d")),
        (15, Left, Some("D")),
    ];
    for left_join in [false, true] {
        let b = StreamsBuilder::new();
        let stream = b.stream("left", Consumed::with(StringSerde, Nullable(StringSerde)));
        let table = b.table(
            "right",
            Consumed::with(StringSerde, StringSerde),
            Materialized::default(),
        );
        let joined = || Joined::with(StringSerde, Nullable(StringSerde), StringSerde);
        let result = if left_join {
            stream.left_join_table_with(
                &table,
                |v: &Option<String>, t: Option<&String>| Some(pair(v.as_ref(), t)),
                joined(),
            )
        } else {
            stream.join_table_with(
                &table,
                |v: &Option<String>, t: &String| Some(pair(v.as_ref(), Some(t))),
                joined(),
            )
        };
        result.to("out", Produced::with(StringSerde, Nullable(StringSerde)));
        let driver = TopologyTestDriver::new(b.build(), [("application.id", "st")]).unwrap();
        let expected = if left_join {
            vec![
                (3, vec![rec("[A, null]", 3)]),
                (5, vec![rec("[B, a]", 5)]),
                (9, vec![rec("[C, null]", 9)]),
                (15, vec![rec("[D, d]", 15)]),
            ]
        } else {
            vec![(5, vec![rec("[B, a]", 5)]), (15, vec![rec("[D, d]", 15)])]
        };
        assert_eq!(run_rows(&driver, rows), expected, "left join: {left_join}");
        // The stream's three null values.
        let dropped = 3;
        assert_eq!(driver.dropped_records(), dropped, "left join: {left_join}");
    }
}

/// A stream record with a null key finds nothing; a left join still emits it (KIP-962).
#[test]
fn stream_table_null_keys() {
    for left_join in [false, true] {
        let b = StreamsBuilder::new();
        let keys = || Nullable(StringSerde);
        let stream = b.stream("s", Consumed::with(keys(), StringSerde));
        let table = b.table(
            "t",
            Consumed::with(keys(), StringSerde),
            Materialized::default(),
        );
        let result = if left_join {
            stream.left_join_table(&table, |v: &String, t: Option<&String>| {
                format!("{v}+{}", show(t))
            })
        } else {
            stream.join_table(&table, |v: &String, t: &String| format!("{v}+{t}"))
        };
        result.to("out", Produced::with(keys(), StringSerde));
        let driver = TopologyTestDriver::new(b.build(), [("application.id", "nk")]).unwrap();
        let s = driver.input_topic("s", keys(), StringSerde);
        let t = driver.input_topic("t", keys(), StringSerde);
        let out = driver.output_topic("out", keys(), StringSerde);
        t.pipe(&Some("k".into()), &"T".into(), 1).unwrap();
        s.pipe(&None, &"v".into(), 2).unwrap();
        s.pipe(&Some("k".into()), &"w".into(), 3).unwrap();
        let got = out.read_records().unwrap();
        if left_join {
            assert_eq!(
                got,
                [
                    (None, "v+null".to_string(), 2),
                    (Some("k".to_string()), "w+T".to_string(), 3)
                ]
            );
            assert_eq!(driver.dropped_records(), 0);
        } else {
            assert_eq!(got, [(Some("k".to_string()), "w+T".to_string(), 3)]);
            assert_eq!(driver.dropped_records(), 1);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Inner,
    LeftJoin,
    Outer,
}

fn table_table(kind: Kind) -> (StreamsBuilder, strom_streams::KTable<String, String>) {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(StringSerde, StringSerde);
    let left = b.table("left", consumed(), Materialized::default());
    let right = b.table("right", consumed(), Materialized::default());
    let result = match kind {
        Kind::Inner => left.join_materialized(
            &right,
            |l: &String, r: &String| pair(Some(l), Some(r)),
            Materialized::named("joined").with_value_serde(StringSerde),
        ),
        Kind::LeftJoin => left.left_join(&right, |l: &String, r: Option<&String>| pair(Some(l), r)),
        Kind::Outer => left.outer_join(&right, pair),
    };
    (b, result)
}

/// The developer guide's table-table table: "null" cells are deletes (tombstones).
#[test]
fn table_table_joins_follow_the_guides_table() {
    let rows: &[Row] = &[
        (1, Left, None),
        (2, Right, None),
        (3, Left, Some("A")),
        (4, Right, Some("a")),
        (5, Left, Some("B")),
        (6, Right, Some("b")),
        (7, Left, None),
        (8, Right, None),
        (9, Left, Some("C")),
        (10, Right, Some("c")),
        (11, Right, None),
        (12, Left, None),
        (13, Right, None),
        (14, Right, Some("d")),
        (15, Left, Some("D")),
    ];
    let one = |ts: i64, v: &str| (ts, vec![rec(v, ts)]);
    let gone = |ts: i64| (ts, vec![tombstone(ts)]);
    for kind in [Kind::Inner, Kind::LeftJoin, Kind::Outer] {
        let (b, result) = table_table(kind);
        result
            .to_stream()
            .to("out", Produced::with(StringSerde, Nullable(StringSerde)));
        let driver = TopologyTestDriver::new(b.build(), [("application.id", "tt")]).unwrap();
        let expected = match kind {
            Kind::Inner => vec![
                one(4, "[A, a]"),
                one(5, "[B, a]"),
                one(6, "[B, b]"),
                gone(7),
                one(10, "[C, c]"),
                gone(11),
                one(15, "[D, d]"),
            ],
            Kind::LeftJoin => vec![
                one(3, "[A, null]"),
                one(4, "[A, a]"),
                one(5, "[B, a]"),
                one(6, "[B, b]"),
                gone(7),
                one(9, "[C, null]"),
                one(10, "[C, c]"),
                one(11, "[C, null]"),
                gone(12),
                one(15, "[D, d]"),
            ],
            Kind::Outer => vec![
                one(3, "[A, null]"),
                one(4, "[A, a]"),
                one(5, "[B, a]"),
                one(6, "[B, b]"),
                one(7, "[null, b]"),
                gone(8),
                one(9, "[C, null]"),
                one(10, "[C, c]"),
                one(11, "[C, null]"),
                gone(12),
                one(14, "[null, d]"),
                one(15, "[D, d]"),
            ],
        };
        assert_eq!(run_rows(&driver, rows), expected, "{kind:?}");
    }
}

/// A joined row carries the later of its rows' timestamps, whichever side updated; a
/// materialized result can be read while the driver runs.
#[test]
fn table_table_results_take_the_later_timestamp_and_can_be_queried() {
    let (b, result) = table_table(Kind::Inner);
    assert_eq!(result.queryable_store_name().as_deref(), Some("joined"));
    result
        .to_stream()
        .to("out", Produced::with(StringSerde, Nullable(StringSerde)));
    let driver = TopologyTestDriver::new(b.build(), [("application.id", "tt-ts")]).unwrap();
    let left = driver.input_topic("left", StringSerde, StringSerde);
    let right = driver.input_topic("right", StringSerde, StringSerde);
    let out = driver.output_topic("out", StringSerde, Nullable(StringSerde));
    right.pipe(&"k".into(), &"a".into(), 20).unwrap();
    left.pipe(&"k".into(), &"A".into(), 10).unwrap();
    right.pipe(&"j".into(), &"b".into(), 5).unwrap();
    left.pipe(&"j".into(), &"B".into(), 30).unwrap();
    assert_eq!(
        out.read_records().unwrap(),
        [
            ("k".to_string(), Some("[A, a]".to_string()), 20),
            ("j".to_string(), Some("[B, b]".to_string()), 30),
        ]
    );
    let store = driver.key_value_store("joined", StringSerde, StringSerde);
    assert_eq!(store.get(&"k".into()).unwrap().as_deref(), Some("[A, a]"));
    right.pipe_null(&"k".into(), 40).unwrap();
    assert_eq!(out.read_records().unwrap(), [("k".to_string(), None, 40)]);
    assert_eq!(store.get(&"k".into()).unwrap(), None);
    assert_eq!(store.get(&"j".into()).unwrap().as_deref(), Some("[B, b]"));
}

#[test]
fn joining_a_table_that_is_not_materialized_is_a_topology_error() {
    let b = StreamsBuilder::new();
    let stream = b.stream("s", Consumed::with(StringSerde, StringSerde));
    let table = b
        .table(
            "t",
            Consumed::with(StringSerde, StringSerde),
            Materialized::default(),
        )
        .filter(|_, v| !v.is_empty());
    stream
        .join_table(&table, |a: &String, b: &String| format!("{a}{b}"))
        .to("out", Produced::with(StringSerde, StringSerde));
    let e = TopologyTestDriver::new(b.build(), [("application.id", "x")]).unwrap_err();
    assert!(e.to_string().contains("needs a materialized table"), "{e}");
}

/// Kafka's `TopologyTest.streamStreamLeftJoinTopologyWithDefaultStoresNames`.
#[test]
fn a_stream_stream_left_join_is_described_as_kafka_does() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(I32Serde, StringSerde);
    let s1 = b.stream("input-topic1", consumed());
    let s2 = b.stream("input-topic2", consumed());
    s1.left_join(
        &s2,
        |a: &String, b: Option<&String>| format!("{a}+{}", show(b)),
        JoinWindows::of_time_difference_with_no_grace(ms(100)),
        StreamJoined::with(I32Serde, StringSerde, StringSerde),
    );
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input-topic1])
      --> KSTREAM-WINDOWED-0000000002
    Source: KSTREAM-SOURCE-0000000001 (topics: [input-topic2])
      --> KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-WINDOWED-0000000002 (stores: [KSTREAM-JOINTHIS-0000000004-store])
      --> KSTREAM-JOINTHIS-0000000004
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-WINDOWED-0000000003 (stores: [KSTREAM-OUTEROTHER-0000000005-store])
      --> KSTREAM-OUTEROTHER-0000000005
      <-- KSTREAM-SOURCE-0000000001
    Processor: KSTREAM-JOINTHIS-0000000004 (stores: [KSTREAM-OUTEROTHER-0000000005-store, KSTREAM-OUTERSHARED-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000002
    Processor: KSTREAM-OUTEROTHER-0000000005 (stores: [KSTREAM-JOINTHIS-0000000004-store, KSTREAM-OUTERSHARED-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-MERGE-0000000006 (stores: [])
      --> none
      <-- KSTREAM-JOINTHIS-0000000004, KSTREAM-OUTEROTHER-0000000005

";
    assert_eq!(b.build().describe().to_string(), expected);
}

/// Kafka's `TopologyTest.streamStreamLeftJoinTopologyWithCustomStoresNames`.
#[test]
fn a_stream_stream_left_join_with_a_store_name_is_described_as_kafka_does() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(I32Serde, StringSerde);
    let s1 = b.stream("input-topic1", consumed());
    let s2 = b.stream("input-topic2", consumed());
    s1.left_join(
        &s2,
        |a: &String, b: Option<&String>| format!("{a}+{}", show(b)),
        JoinWindows::of_time_difference_with_no_grace(ms(100)),
        StreamJoined::with(I32Serde, StringSerde, StringSerde).with_store_name("custom-name"),
    );
    let text = b.build().describe().to_string();
    for line in [
        "    Processor: KSTREAM-WINDOWED-0000000002 (stores: [custom-name-this-join-store])",
        "    Processor: KSTREAM-WINDOWED-0000000003 (stores: [custom-name-outer-other-join-store])",
        "    Processor: KSTREAM-JOINTHIS-0000000004 (stores: [custom-name-outer-other-join-store, custom-name-left-shared-join-store])",
        "    Processor: KSTREAM-OUTEROTHER-0000000005 (stores: [custom-name-this-join-store, custom-name-left-shared-join-store])",
    ] {
        assert!(text.contains(line), "{line}\nnot in\n{text}");
    }
}

/// Kafka's `TopologyTest.streamStreamJoinTopologyWithDefaultStoresNames`.
#[test]
fn a_stream_stream_inner_join_is_described_as_kafka_does() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(I32Serde, StringSerde);
    let s1 = b.stream("input-topic1", consumed());
    let s2 = b.stream("input-topic2", consumed());
    s1.join(
        &s2,
        |a: &String, b: &String| format!("{a}+{b}"),
        JoinWindows::of_time_difference_with_no_grace(ms(100)),
        StreamJoined::with(I32Serde, StringSerde, StringSerde),
    );
    let kafka = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input-topic1])
      --> KSTREAM-WINDOWED-0000000002
    Source: KSTREAM-SOURCE-0000000001 (topics: [input-topic2])
      --> KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-WINDOWED-0000000002 (stores: [KSTREAM-JOINTHIS-0000000004-store])
      --> KSTREAM-JOINTHIS-0000000004
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-WINDOWED-0000000003 (stores: [KSTREAM-JOINOTHER-0000000005-store])
      --> KSTREAM-JOINOTHER-0000000005
      <-- KSTREAM-SOURCE-0000000001
    Processor: KSTREAM-JOINOTHER-0000000005 (stores: [KSTREAM-JOINTHIS-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-JOINTHIS-0000000004 (stores: [KSTREAM-JOINOTHER-0000000005-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000002
    Processor: KSTREAM-MERGE-0000000006 (stores: [])
      --> none
      <-- KSTREAM-JOINTHIS-0000000004, KSTREAM-JOINOTHER-0000000005

";
    assert_eq!(b.build().describe().to_string(), kafka);
}

/// Kafka's `TopologyTest.streamStreamOuterJoinTopologyWithDefaultStoresNames`.
#[test]
fn a_stream_stream_outer_join_is_described_as_kafka_does() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(I32Serde, StringSerde);
    let s1 = b.stream("input-topic1", consumed());
    let s2 = b.stream("input-topic2", consumed());
    s1.outer_join(
        &s2,
        |a: Option<&String>, b: Option<&String>| format!("{}+{}", show(a), show(b)),
        JoinWindows::of_time_difference_with_no_grace(ms(100)),
        StreamJoined::with(I32Serde, StringSerde, StringSerde),
    );
    let kafka = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input-topic1])
      --> KSTREAM-WINDOWED-0000000002
    Source: KSTREAM-SOURCE-0000000001 (topics: [input-topic2])
      --> KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-WINDOWED-0000000002 (stores: [KSTREAM-OUTERTHIS-0000000004-store])
      --> KSTREAM-OUTERTHIS-0000000004
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-WINDOWED-0000000003 (stores: [KSTREAM-OUTEROTHER-0000000005-store])
      --> KSTREAM-OUTEROTHER-0000000005
      <-- KSTREAM-SOURCE-0000000001
    Processor: KSTREAM-OUTEROTHER-0000000005 (stores: [KSTREAM-OUTERTHIS-0000000004-store, KSTREAM-OUTERSHARED-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-OUTERTHIS-0000000004 (stores: [KSTREAM-OUTEROTHER-0000000005-store, KSTREAM-OUTERSHARED-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000002
    Processor: KSTREAM-MERGE-0000000006 (stores: [])
      --> none
      <-- KSTREAM-OUTERTHIS-0000000004, KSTREAM-OUTEROTHER-0000000005

";
    assert_eq!(b.build().describe().to_string(), kafka);
}

/// Kafka's `KStreamImplTest.shouldSupportTableTableJoinWithKStreamToKTable`, with tables
/// read by `StreamsBuilder::table` (so `KTABLE-SOURCE-` nodes instead of
/// `KSTREAM-TOTABLE-`, and the store named before the source nodes).
#[test]
fn a_table_table_join_is_described_as_kafka_does() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(StringSerde, StringSerde);
    let left = b.table("left", consumed(), Materialized::default());
    let right = b.table("right", consumed(), Materialized::default());
    left.join(&right, |l: &String, r: &String| format!("{l}+{r}"))
        .to_stream()
        .to("output", Produced::with(StringSerde, Nullable(StringSerde)));
    let kafka = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000001 (topics: [left])
      --> KTABLE-SOURCE-0000000002
    Source: KSTREAM-SOURCE-0000000004 (topics: [right])
      --> KTABLE-SOURCE-0000000005
    Processor: KTABLE-SOURCE-0000000002 (stores: [left-STATE-STORE-0000000000])
      --> KTABLE-JOINTHIS-0000000007
      <-- KSTREAM-SOURCE-0000000001
    Processor: KTABLE-SOURCE-0000000005 (stores: [right-STATE-STORE-0000000003])
      --> KTABLE-JOINOTHER-0000000008
      <-- KSTREAM-SOURCE-0000000004
    Processor: KTABLE-JOINOTHER-0000000008 (stores: [left-STATE-STORE-0000000000])
      --> KTABLE-MERGE-0000000006
      <-- KTABLE-SOURCE-0000000005
    Processor: KTABLE-JOINTHIS-0000000007 (stores: [right-STATE-STORE-0000000003])
      --> KTABLE-MERGE-0000000006
      <-- KTABLE-SOURCE-0000000002
    Processor: KTABLE-MERGE-0000000006 (stores: [])
      --> KTABLE-TOSTREAM-0000000009
      <-- KTABLE-JOINTHIS-0000000007, KTABLE-JOINOTHER-0000000008
    Processor: KTABLE-TOSTREAM-0000000009 (stores: [])
      --> KSTREAM-SINK-0000000010
      <-- KTABLE-MERGE-0000000006
    Sink: KSTREAM-SINK-0000000010 (topic: output)
      <-- KTABLE-TOSTREAM-0000000009

";
    assert_eq!(b.build().describe().to_string(), kafka);
}

/// Kafka's `KStreamKTableJoinTest.shouldCreateRepartitionTopicsWithUserProvidedName`: a
/// rekeyed stream joined with two tables, each join named.
#[test]
fn stream_table_joins_are_described_as_kafka_does() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(StringSerde, StringSerde);
    let stream_a = b.stream("topic", consumed());
    let table_b = b.table("topic2", consumed(), Materialized::default());
    let table_c = b.table("topic3", consumed(), Materialized::default());
    let rekeyed = stream_a.map(|k, v| (v, k));
    let joined = |name: &str| Joined::with(StringSerde, StringSerde, StringSerde).with_name(name);
    let concat = |a: &String, b: &String| format!("{a}{b}");
    rekeyed
        .join_table_with(&table_b, concat, joined("first-join"))
        .to("out-one", Produced::with(StringSerde, StringSerde));
    rekeyed
        .join_table_with(&table_c, concat, joined("second-join"))
        .to("out-two", Produced::with(StringSerde, StringSerde));
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [topic])
      --> KSTREAM-MAP-0000000007
    Processor: KSTREAM-MAP-0000000007 (stores: [])
      --> first-join-repartition-filter, second-join-repartition-filter
      <-- KSTREAM-SOURCE-0000000000
    Processor: first-join-repartition-filter (stores: [])
      --> first-join-repartition-sink
      <-- KSTREAM-MAP-0000000007
    Processor: second-join-repartition-filter (stores: [])
      --> second-join-repartition-sink
      <-- KSTREAM-MAP-0000000007
    Sink: first-join-repartition-sink (topic: first-join-repartition)
      <-- first-join-repartition-filter
    Sink: second-join-repartition-sink (topic: second-join-repartition)
      <-- second-join-repartition-filter

  Sub-topology: 1
    Source: first-join-repartition-source (topics: [first-join-repartition])
      --> first-join
    Source: KSTREAM-SOURCE-0000000002 (topics: [topic2])
      --> KTABLE-SOURCE-0000000003
    Processor: first-join (stores: [topic2-STATE-STORE-0000000001])
      --> KSTREAM-SINK-0000000012
      <-- first-join-repartition-source
    Sink: KSTREAM-SINK-0000000012 (topic: out-one)
      <-- first-join
    Processor: KTABLE-SOURCE-0000000003 (stores: [topic2-STATE-STORE-0000000001])
      --> none
      <-- KSTREAM-SOURCE-0000000002

  Sub-topology: 2
    Source: second-join-repartition-source (topics: [second-join-repartition])
      --> second-join
    Source: KSTREAM-SOURCE-0000000005 (topics: [topic3])
      --> KTABLE-SOURCE-0000000006
    Processor: second-join (stores: [topic3-STATE-STORE-0000000004])
      --> KSTREAM-SINK-0000000017
      <-- second-join-repartition-source
    Sink: KSTREAM-SINK-0000000017 (topic: out-two)
      <-- second-join
    Processor: KTABLE-SOURCE-0000000006 (stores: [topic3-STATE-STORE-0000000004])
      --> none
      <-- KSTREAM-SOURCE-0000000005

";
    let topology = b.build();
    assert_eq!(topology.describe().to_string(), expected);
    // And it runs: the stream is repartitioned by its new key, then looked up.
    let driver = TopologyTestDriver::new(topology, [("application.id", "st-describe")]).unwrap();
    let t2 = driver.input_topic("topic2", StringSerde, StringSerde);
    let s = driver.input_topic("topic", StringSerde, StringSerde);
    t2.pipe(&"v1".into(), &"-b".into(), 1).unwrap();
    s.pipe(&"k1".into(), &"v1".into(), 2).unwrap();
    let out = driver.output_topic("out-one", StringSerde, StringSerde);
    assert_eq!(
        out.read_records().unwrap(),
        [("v1".to_string(), "k1-b".to_string(), 2)]
    );
}

/// Kafka's `KStreamKTableJoinTest.shouldReuseRepartitionTopicWithGeneratedName`: joined
/// twice under generated names, a rekeyed stream is repartitioned once (the second join
/// still takes three names).
#[test]
fn a_stream_joined_twice_reuses_its_generated_repartition_topic() {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(StringSerde, StringSerde);
    let stream_a = b.stream("topic", consumed());
    let table_b = b.table("topic2", consumed(), Materialized::default());
    let table_c = b.table("topic3", consumed(), Materialized::default());
    let rekeyed = stream_a.map(|k, v| (v, k));
    let joined = || Joined::with(StringSerde, StringSerde, StringSerde);
    let concat = |a: &String, b: &String| format!("{a}{b}");
    rekeyed
        .join_table_with(&table_b, concat, joined())
        .to("out-one", Produced::with(StringSerde, StringSerde));
    rekeyed
        .join_table_with(&table_c, concat, joined())
        .to("out-two", Produced::with(StringSerde, StringSerde));
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [topic])
      --> KSTREAM-MAP-0000000007
    Processor: KSTREAM-MAP-0000000007 (stores: [])
      --> KSTREAM-FILTER-0000000009
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-FILTER-0000000009 (stores: [])
      --> KSTREAM-SINK-0000000008
      <-- KSTREAM-MAP-0000000007
    Sink: KSTREAM-SINK-0000000008 (topic: KSTREAM-MAP-0000000007-repartition)
      <-- KSTREAM-FILTER-0000000009

  Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000010 (topics: [KSTREAM-MAP-0000000007-repartition])
      --> KSTREAM-JOIN-0000000011, KSTREAM-JOIN-0000000016
    Processor: KSTREAM-JOIN-0000000011 (stores: [topic2-STATE-STORE-0000000001])
      --> KSTREAM-SINK-0000000012
      <-- KSTREAM-SOURCE-0000000010
    Processor: KSTREAM-JOIN-0000000016 (stores: [topic3-STATE-STORE-0000000004])
      --> KSTREAM-SINK-0000000017
      <-- KSTREAM-SOURCE-0000000010
    Source: KSTREAM-SOURCE-0000000002 (topics: [topic2])
      --> KTABLE-SOURCE-0000000003
    Source: KSTREAM-SOURCE-0000000005 (topics: [topic3])
      --> KTABLE-SOURCE-0000000006
    Sink: KSTREAM-SINK-0000000012 (topic: out-one)
      <-- KSTREAM-JOIN-0000000011
    Sink: KSTREAM-SINK-0000000017 (topic: out-two)
      <-- KSTREAM-JOIN-0000000016
    Processor: KTABLE-SOURCE-0000000003 (stores: [topic2-STATE-STORE-0000000001])
      --> none
      <-- KSTREAM-SOURCE-0000000002
    Processor: KTABLE-SOURCE-0000000006 (stores: [topic3-STATE-STORE-0000000004])
      --> none
      <-- KSTREAM-SOURCE-0000000005

";
    let topology = b.build();
    assert_eq!(topology.describe().to_string(), expected);
    let driver = TopologyTestDriver::new(topology, [("application.id", "reuse")]).unwrap();
    driver
        .input_topic("topic2", StringSerde, StringSerde)
        .pipe(&"v".into(), &"-b".into(), 1)
        .unwrap();
    driver
        .input_topic("topic3", StringSerde, StringSerde)
        .pipe(&"v".into(), &"-c".into(), 2)
        .unwrap();
    driver
        .input_topic("topic", StringSerde, StringSerde)
        .pipe(&"k".into(), &"v".into(), 3)
        .unwrap();
    for (topic, value) in [("out-one", "k-b"), ("out-two", "k-c")] {
        let out = driver.output_topic(topic, StringSerde, StringSerde);
        assert_eq!(
            out.read_records().unwrap(),
            [("v".to_string(), value.to_string(), 3)],
            "{topic}"
        );
    }
}

fn order_payments(orders: &str, payments: &str) -> strom_streams::Topology {
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(StringSerde, StringSerde);
    // orders: key = order id, value = customer; rekeyed by customer.
    b.stream(orders, consumed())
        .map(|id, customer| (customer, id))
        .join(
            &b.stream(payments, consumed()),
            |order: &String, payment: &String| format!("{order}:{payment}"),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(60)),
            StreamJoined::with(StringSerde, StringSerde, StringSerde),
        )
        .to("paid", Produced::with(StringSerde, StringSerde));
    b.build()
}

fn broker_props(broker: &Broker, app: &str, state: &tempfile::TempDir) -> Vec<(String, String)> {
    let mut p = common::props(broker, app);
    p.push(("state.dir".into(), state.path().display().to_string()));
    p
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inputs_that_are_not_copartitioned_are_refused_at_start() {
    let broker = Broker::start().await;
    broker.create("left", 2).await;
    broker.create("right", 3).await;
    let b = StreamsBuilder::new();
    let consumed = || Consumed::with(StringSerde, StringSerde);
    b.stream("left", consumed())
        .join(
            &b.stream("right", consumed()),
            |a: &String, b: &String| format!("{a}{b}"),
            JoinWindows::of_time_difference_with_no_grace(ms(10)),
            StreamJoined::with(StringSerde, StringSerde, StringSerde),
        )
        .to("out", Produced::with(StringSerde, StringSerde));
    let state = tempfile::tempdir().unwrap();
    let mut streams =
        KafkaStreams::new(b.build(), broker_props(&broker, "copart", &state)).unwrap();
    streams.start().unwrap();
    wait_until("the ERROR state", WAIT, || streams.state() == State::Error).await;
    let error = streams.error().expect("the cause is kept");
    match &*error {
        StreamsError::NotCopartitioned(why) => {
            assert!(why.contains("left: 2") && why.contains("right: 3"), "{why}")
        }
        other => panic!("unexpected error {other}"),
    }
    streams.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repartitioned_side_takes_the_other_sides_partitions() {
    let broker = Broker::start().await;
    broker.create("orders", 2).await;
    broker.create("payments", 3).await;
    broker.create("paid", 1).await;
    let text = |s: &str| Some(Bytes::copy_from_slice(s.as_bytes()));
    broker
        .produce(
            "orders",
            &[
                (text("o1"), text("alice"), 1_000),
                (text("o2"), text("bob"), 1_000),
                (text("o3"), text("carol"), 1_000),
            ],
        )
        .await;
    broker
        .produce(
            "payments",
            &[
                (text("alice"), text("5"), 2_000),
                (text("bob"), text("7"), 3_000),
                (text("dave"), text("9"), 3_000),
            ],
        )
        .await;
    let state = tempfile::tempdir().unwrap();
    let mut streams = KafkaStreams::new(
        order_payments("orders", "payments"),
        broker_props(&broker, "paying", &state),
    )
    .unwrap();
    streams.start().unwrap();
    let out = broker
        .read("paid", 1, 2, WAIT, Duration::from_millis(500))
        .await;
    let mut got: Vec<(String, String, i64)> = out
        .iter()
        .map(|r| {
            let s = |b: &Option<Bytes>| String::from_utf8(b.clone().unwrap().to_vec()).unwrap();
            (s(&r.key), s(&r.value), r.timestamp)
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("alice".to_string(), "o1:5".to_string(), 2_000),
            ("bob".to_string(), "o2:7".to_string(), 3_000),
        ]
    );
    assert_eq!(streams.state(), State::Running);
    streams.close().await;
}
