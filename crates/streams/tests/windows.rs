//! Windowed aggregations and suppression, run by the `TopologyTestDriver` (no broker):
//! tumbling, hopping, sliding and session windows with out-of-order and late records,
//! output timestamps, window expiry, final results through `suppress`, and Kafka's
//! description of windowed topologies (texts from Kafka's own `TopologyTest` and
//! `SuppressTopologyTest`).

use std::time::Duration;

use strom_streams::{
    BufferConfig, Consumed, Grouped, I64Serde, KStream, Materialized, Nullable, Produced,
    SessionWindowedSerde, SessionWindows, SlidingWindows, StreamsBuilder, StreamsError,
    StringSerde, Suppressed, TimeWindowedSerde, TimeWindows, TopologyTestDriver, Window, Windowed,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn w(key: &str, start: i64, end: i64) -> Windowed<String> {
    Windowed::new(key.to_string(), Window::new(start, end))
}

fn s(v: &str) -> String {
    v.to_string()
}

fn input(b: &StreamsBuilder) -> KStream<String, String> {
    b.stream("in", Consumed::with(StringSerde, StringSerde))
}

fn grouped() -> Grouped<String, String> {
    Grouped::with(StringSerde, StringSerde)
}

fn driver(b: &StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(b.build(), [("application.id", "windows")]).unwrap()
}

type Out<V> = Vec<(Windowed<String>, Option<V>, i64)>;

/// Pipes `(key, timestamp)` records with the value `v`.
fn pipe(d: &TopologyTestDriver, records: &[(&str, i64)]) {
    let t = d.input_topic("in", StringSerde, StringSerde);
    for (k, ts) in records {
        t.pipe(&s(k), &s("v"), *ts).unwrap();
    }
}

fn time_out(d: &TopologyTestDriver, size: u64) -> Out<i64> {
    d.output_topic(
        "out",
        TimeWindowedSerde::new(StringSerde, ms(size)),
        Nullable(I64Serde),
    )
    .read_records()
    .unwrap()
}

fn session_out(d: &TopologyTestDriver) -> Out<i64> {
    d.output_topic("out", SessionWindowedSerde(StringSerde), Nullable(I64Serde))
        .read_records()
        .unwrap()
}

#[test]
fn tumbling_counts_take_out_of_order_records_until_the_grace_period_ends() {
    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count(Materialized::named("counts"))
        .to_stream()
        .to(
            "out",
            Produced::with(
                TimeWindowedSerde::new(StringSerde, ms(10)),
                Nullable(I64Serde),
            ),
        );
    let d = driver(&b);
    pipe(&d, &[("a", 1), ("a", 12), ("a", 8), ("a", 14)]);
    // Stream time 14: window [0,10) closes at 10 + 5 = 15, so 9 still counts.
    pipe(&d, &[("a", 9), ("a", 15)]);
    assert_eq!(d.dropped_records(), 0);
    // Stream time 15 = end + grace: the window is closed (Kafka drops when
    // windowEnd <= streamTime - grace).
    pipe(&d, &[("a", 9), ("b", 2)]);
    assert_eq!(d.dropped_records(), 2);
    // Each update carries the largest timestamp of its window's records.
    assert_eq!(
        time_out(&d, 10),
        vec![
            (w("a", 0, 10), Some(1), 1),
            (w("a", 10, 20), Some(1), 12),
            (w("a", 0, 10), Some(2), 8),
            (w("a", 10, 20), Some(2), 14),
            (w("a", 0, 10), Some(3), 9),
            (w("a", 10, 20), Some(3), 15),
        ]
    );
    let store = d.window_store("counts", StringSerde, I64Serde);
    assert_eq!(
        store.fetch_range(&s("a"), 0, 100).unwrap(),
        vec![(0, 3), (10, 3)]
    );
    assert_eq!(store.fetch(&s("b"), 0).unwrap(), None);
}

#[test]
fn a_record_lands_in_size_over_advance_hopping_windows() {
    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(5)))
        .count(Materialized::default())
        .to_stream()
        .to(
            "out",
            Produced::with(
                TimeWindowedSerde::new(StringSerde, ms(10)),
                Nullable(I64Serde),
            ),
        );
    let d = driver(&b);
    pipe(&d, &[("a", 12)]);
    assert_eq!(
        time_out(&d, 10),
        vec![(w("a", 5, 15), Some(1), 12), (w("a", 10, 20), Some(1), 12)]
    );
    // 3 falls in [0,10) only (no window starts before 0), closed at stream time 12.
    pipe(&d, &[("a", 3)]);
    assert_eq!(d.dropped_records(), 1);
    pipe(&d, &[("a", 14), ("a", 20)]);
    assert_eq!(
        time_out(&d, 10),
        vec![
            (w("a", 5, 15), Some(2), 14),
            (w("a", 10, 20), Some(2), 14),
            (w("a", 15, 25), Some(1), 20),
            (w("a", 20, 30), Some(1), 20),
        ]
    );
}

#[test]
fn time_windowed_reduce_and_aggregate() {
    let b = StreamsBuilder::new();
    let windowed = input(&b)
        .map_values(|v: String| v.to_uppercase())
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)));
    windowed
        .reduce(|a, v| format!("{a}+{v}"), Materialized::named("reduced"))
        .to_stream()
        .to(
            "reduced",
            Produced::with(
                TimeWindowedSerde::new(StringSerde, ms(10)),
                Nullable(StringSerde),
            ),
        );
    windowed
        .aggregate(
            || 100i64,
            |_k, v: String, agg| agg + v.len() as i64,
            Materialized::with(StringSerde, I64Serde),
        )
        .to_stream()
        .to(
            "summed",
            Produced::with(
                TimeWindowedSerde::new(StringSerde, ms(10)),
                Nullable(I64Serde),
            ),
        );
    let d = driver(&b);
    let t = d.input_topic("in", StringSerde, StringSerde);
    t.pipe(&s("k"), &s("x"), 1).unwrap();
    t.pipe(&s("k"), &s("yy"), 2).unwrap();
    let reduced = d
        .output_topic(
            "reduced",
            TimeWindowedSerde::new(StringSerde, ms(10)),
            Nullable(StringSerde),
        )
        .read_key_values()
        .unwrap();
    assert_eq!(
        reduced,
        vec![
            (w("k", 0, 10), Some(s("X"))),
            (w("k", 0, 10), Some(s("X+YY")))
        ]
    );
    let summed = d
        .output_topic(
            "summed",
            TimeWindowedSerde::new(StringSerde, ms(10)),
            Nullable(I64Serde),
        )
        .read_key_values()
        .unwrap();
    assert_eq!(
        summed,
        vec![(w("k", 0, 10), Some(101)), (w("k", 0, 10), Some(103))]
    );
}

fn sliding_count(b: &StreamsBuilder, diff: u64, grace: u64) {
    input(b)
        .group_by_key(grouped())
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            ms(diff),
            ms(grace),
        ))
        .count(Materialized::named("sliding"))
        .to_stream()
        .to(
            "out",
            Produced::with(
                TimeWindowedSerde::new(StringSerde, ms(diff)),
                Nullable(I64Serde),
            ),
        );
}

#[test]
fn sliding_windows_follow_kafka_s_algorithm() {
    // Time difference 10: every window [start, start + 10] (both inclusive) that a record
    // begins (its left window, ending at it) or that starts just after one (its right
    // window), holding a distinct set of records.
    let b = StreamsBuilder::new();
    sliding_count(&b, 10, 100);
    let d = driver(&b);
    pipe(&d, &[("a", 10)]);
    assert_eq!(time_out(&d, 10), vec![(w("a", 0, 10), Some(1), 10)]);
    // 15: the right window of 10 ([11,21]) appears, then 15's left window [5,15] holds
    // both.
    pipe(&d, &[("a", 15)]);
    assert_eq!(
        time_out(&d, 10),
        vec![(w("a", 11, 21), Some(1), 15), (w("a", 5, 15), Some(2), 15)]
    );
    pipe(&d, &[("a", 25)]);
    assert_eq!(
        time_out(&d, 10),
        vec![(w("a", 16, 26), Some(1), 25), (w("a", 15, 25), Some(2), 25)]
    );
    // An earlier record: it joins the existing windows that contain it ([11,21] and
    // [5,15], latest first), gets its left window [2,12] (10 and 12) and its right window
    // [13,23] (15 only); the right window of 10 exists already.
    pipe(&d, &[("a", 12)]);
    assert_eq!(
        time_out(&d, 10),
        vec![
            (w("a", 11, 21), Some(2), 15),
            (w("a", 5, 15), Some(3), 15),
            (w("a", 2, 12), Some(2), 12),
            (w("a", 13, 23), Some(1), 15),
        ]
    );
    // Far from the others: only its left window.
    pipe(&d, &[("a", 40)]);
    assert_eq!(time_out(&d, 10), vec![(w("a", 30, 40), Some(1), 40)]);
    assert_eq!(d.dropped_records(), 0);
    let store = d.window_store("sliding", StringSerde, I64Serde);
    assert_eq!(
        store.fetch_range(&s("a"), 0, 100).unwrap(),
        vec![
            (0, 1),
            (2, 2),
            (5, 3),
            (11, 2),
            (13, 1),
            (15, 2),
            (16, 1),
            (30, 1)
        ]
    );
}

#[test]
fn sliding_windows_for_early_and_late_records() {
    let b = StreamsBuilder::new();
    sliding_count(&b, 10, 0);
    let d = driver(&b);
    // Records before the time difference share the window [0,10].
    pipe(&d, &[("a", 3)]);
    assert_eq!(time_out(&d, 10), vec![(w("a", 0, 10), Some(1), 3)]);
    pipe(&d, &[("a", 5)]);
    assert_eq!(
        time_out(&d, 10),
        vec![(w("a", 4, 14), Some(1), 5), (w("a", 0, 10), Some(2), 5)]
    );
    // An earlier early record: its right window [3,13] holds 3 and 5.
    pipe(&d, &[("a", 2)]);
    assert_eq!(
        time_out(&d, 10),
        vec![(w("a", 3, 13), Some(2), 5), (w("a", 0, 10), Some(3), 5)]
    );
    pipe(&d, &[("a", 30)]);
    assert_eq!(time_out(&d, 10), vec![(w("a", 20, 30), Some(1), 30)]);
    // Stream time 30, no grace: 19's windows all end before 30.
    pipe(&d, &[("a", 19)]);
    assert_eq!(d.dropped_records(), 1);
    assert!(time_out(&d, 10).is_empty());
    // 21 joins [20,30] and gets its right window, but its left window [11,21] has closed.
    pipe(&d, &[("a", 21)]);
    assert_eq!(
        time_out(&d, 10),
        vec![(w("a", 20, 30), Some(2), 30), (w("a", 22, 32), Some(1), 30)]
    );
    assert_eq!(d.dropped_records(), 2);
}

fn session_count(
    b: &StreamsBuilder,
    gap: u64,
    grace: u64,
) -> strom_streams::KTable<Windowed<String>, i64> {
    input(b)
        .group_by_key(grouped())
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            ms(gap),
            ms(grace),
        ))
        .count(Materialized::named("sessions"))
}

#[test]
fn sessions_merge_and_the_merged_ones_are_deleted() {
    let b = StreamsBuilder::new();
    session_count(&b, 10, 5).to_stream().to(
        "out",
        Produced::with(SessionWindowedSerde(StringSerde), Nullable(I64Serde)),
    );
    let d = driver(&b);
    pipe(&d, &[("a", 0), ("a", 5)]);
    // The session grows: the old one is deleted (at its end), the new one has the merged
    // count and its end as timestamp.
    assert_eq!(
        session_out(&d),
        vec![
            (w("a", 0, 0), Some(1), 0),
            (w("a", 0, 0), None, 0),
            (w("a", 0, 5), Some(2), 5),
        ]
    );
    pipe(&d, &[("a", 30), ("a", 18)]);
    assert_eq!(
        session_out(&d),
        vec![(w("a", 30, 30), Some(1), 30), (w("a", 18, 18), Some(1), 18)]
    );
    // 20 bridges [18,18] and [30,30]: both deleted, one session of three.
    pipe(&d, &[("a", 20)]);
    assert_eq!(
        session_out(&d),
        vec![
            (w("a", 18, 18), None, 18),
            (w("a", 30, 30), None, 30),
            (w("a", 18, 30), Some(3), 30),
        ]
    );
    // Stream time 30: sessions ending before 30 - 5 - 10 are closed.
    pipe(&d, &[("a", 2)]);
    assert_eq!(d.dropped_records(), 1);
    assert!(session_out(&d).is_empty());
    let store = d.session_store("sessions", StringSerde, I64Serde);
    // [0,5] expired: retention is gap + grace, behind the store's latest end (30).
    assert_eq!(
        store.fetch(&s("a")).unwrap(),
        vec![(Window::new(18, 30), 3)]
    );
    assert_eq!(store.fetch_session(&s("a"), 18, 30).unwrap(), Some(3));
}

#[test]
fn session_aggregates_merge_before_the_new_record() {
    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        // A grace long enough for the store to keep [0,0] until 10 arrives: with retention
        // gap + grace = 10, stream time 20 would expire it first (Kafka's store does too).
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(10), ms(20)))
        .aggregate(
            String::new,
            |_k, v: String, agg| agg + &v,
            |_k, a, b| a + &b,
            Materialized::with(StringSerde, StringSerde),
        )
        .to_stream()
        .to(
            "out",
            Produced::with(SessionWindowedSerde(StringSerde), Nullable(StringSerde)),
        );
    let d = driver(&b);
    let t = d.input_topic("in", StringSerde, StringSerde);
    t.pipe(&s("k"), &s("x"), 0).unwrap();
    t.pipe(&s("k"), &s("z"), 20).unwrap();
    t.pipe(&s("k"), &s("y"), 10).unwrap();
    let out = d
        .output_topic(
            "out",
            SessionWindowedSerde(StringSerde),
            Nullable(StringSerde),
        )
        .read_records()
        .unwrap();
    // As Kafka: initializer, merged sessions in end order, then the new record.
    assert_eq!(
        out.last(),
        Some(&(w("k", 0, 20), Some(s("xzy")), 20)),
        "{out:?}"
    );
    assert_eq!(out.len(), 5, "{out:?}");
}

#[test]
fn suppress_emits_one_final_result_per_window_once_it_closes() {
    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count(Materialized::default())
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to(
            "out",
            Produced::with(
                TimeWindowedSerde::new(StringSerde, ms(10)),
                Nullable(I64Serde),
            ),
        );
    let d = driver(&b);
    pipe(&d, &[("a", 1), ("a", 5), ("b", 7), ("a", 12), ("a", 14)]);
    assert!(time_out(&d, 10).is_empty());
    // Stream time 15 = 10 + grace: the [0,10) windows are final.
    pipe(&d, &[("a", 15)]);
    assert_eq!(
        time_out(&d, 10),
        vec![(w("a", 0, 10), Some(2), 5), (w("b", 0, 10), Some(1), 7)]
    );
    // Too late for the aggregation: nothing changes.
    pipe(&d, &[("a", 9), ("b", 24)]);
    assert!(time_out(&d, 10).is_empty());
    assert_eq!(d.dropped_records(), 1);
    pipe(&d, &[("a", 25)]);
    assert_eq!(time_out(&d, 10), vec![(w("a", 10, 20), Some(3), 15)]);
}

#[test]
fn suppressed_sessions_skip_the_deletes_of_merged_sessions() {
    let b = StreamsBuilder::new();
    session_count(&b, 5, 5)
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to(
            "out",
            Produced::with(SessionWindowedSerde(StringSerde), Nullable(I64Serde)),
        );
    let d = driver(&b);
    pipe(&d, &[("a", 0), ("a", 3), ("a", 12)]);
    assert!(session_out(&d).is_empty());
    // A session closes gap + grace after its end: [0,3] at 13.
    pipe(&d, &[("a", 13)]);
    assert_eq!(session_out(&d), vec![(w("a", 0, 3), Some(2), 3)]);
}

#[test]
fn suppress_until_a_time_limit_rate_limits_a_table() {
    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        .count(Materialized::default())
        .suppress(Suppressed::until_time_limit(
            ms(10),
            BufferConfig::unbounded(),
        ))
        .to_stream()
        .to("out", Produced::with(StringSerde, Nullable(I64Serde)));
    let d = driver(&b);
    pipe(&d, &[("a", 0), ("a", 5), ("b", 6)]);
    let out = d.output_topic("out", StringSerde, Nullable(I64Serde));
    assert!(out.is_empty());
    // a's first buffered update was at 0: at stream time 10 its latest value goes out.
    pipe(&d, &[("a", 10)]);
    assert_eq!(out.read_records().unwrap(), vec![(s("a"), Some(3), 10)]);
    // a is buffered again from 11; b (from 6) goes at 16, a not yet.
    pipe(&d, &[("a", 11), ("a", 16)]);
    assert_eq!(out.read_records().unwrap(), vec![(s("b"), Some(1), 6)]);
    pipe(&d, &[("c", 21)]);
    assert_eq!(out.read_records().unwrap(), vec![(s("a"), Some(5), 16)]);
}

#[test]
fn a_full_bounded_buffer_emits_early() {
    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        .count(Materialized::default())
        .suppress(Suppressed::until_time_limit(
            ms(100),
            BufferConfig::max_records(1),
        ))
        .to_stream()
        .to("out", Produced::with(StringSerde, Nullable(I64Serde)));
    let d = driver(&b);
    pipe(&d, &[("a", 0), ("b", 1), ("a", 2)]);
    let out = d.output_topic("out", StringSerde, Nullable(I64Serde));
    assert_eq!(
        out.read_records().unwrap(),
        vec![(s("a"), Some(1), 0), (s("b"), Some(1), 1)]
    );
}

#[test]
fn windows_expire_after_the_retention_period() {
    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .count(Materialized::named("counts").with_retention(ms(100)));
    let d = driver(&b);
    // A reader sees the tasks that exist when it is made.
    let store = |d: &TopologyTestDriver| d.window_store("counts", StringSerde, I64Serde);
    pipe(&d, &[("a", 1), ("b", 55)]);
    assert_eq!(store(&d).fetch(&s("a"), 0).unwrap(), Some(1));
    // The store's stream time is its latest window start: 100 expires starts <= 0.
    pipe(&d, &[("a", 105)]);
    assert_eq!(store(&d).fetch(&s("a"), 0).unwrap(), None);
    assert_eq!(store(&d).fetch(&s("b"), 50).unwrap(), Some(1));
    // Another key moves it to 150: b's window at 50 goes too.
    pipe(&d, &[("c", 155)]);
    assert_eq!(store(&d).fetch(&s("b"), 50).unwrap(), None);
    assert_eq!(store(&d).fetch(&s("a"), 100).unwrap(), Some(1));
    assert_eq!(store(&d).fetch(&s("c"), 150).unwrap(), Some(1));

    // With the default retention (size + grace) a window goes when the next one starts.
    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .count(Materialized::named("counts"));
    let d = driver(&b);
    pipe(&d, &[("a", 1), ("b", 2), ("a", 9)]);
    assert_eq!(store(&d).fetch(&s("b"), 0).unwrap(), Some(1));
    pipe(&d, &[("a", 10)]);
    assert_eq!(
        store(&d).fetch_range(&s("a"), 0, 100).unwrap(),
        vec![(10, 1)]
    );
    assert_eq!(store(&d).fetch(&s("b"), 0).unwrap(), None);
}

#[test]
fn windows_with_kafka_s_mistakes_are_refused() {
    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count(Materialized::named("w").with_retention(ms(12)));
    let e = TopologyTestDriver::new(b.build(), [("application.id", "x")]).unwrap_err();
    assert!(matches!(e, StreamsError::InvalidTopology(_)), "{e}");
    assert!(
        e.to_string()
            .contains("must be no smaller than its window size plus the grace period"),
        "{e}"
    );

    let b = StreamsBuilder::new();
    input(&b)
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(20)))
        .count(Materialized::default());
    let e = TopologyTestDriver::new(b.build(), [("application.id", "x")]).unwrap_err();
    assert!(e.to_string().contains("advancement interval"), "{e}");

    // Final results need a windowed computation upstream, not just windowed keys.
    let b = StreamsBuilder::new();
    b.table(
        "t",
        Consumed::with(TimeWindowedSerde::new(StringSerde, ms(10)), StringSerde),
        Materialized::default(),
    )
    .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()));
    let e = TopologyTestDriver::new(b.build(), [("application.id", "x")]).unwrap_err();
    assert!(
        e.to_string()
            .contains("Window close time is only defined for windowed computations"),
        "{e}"
    );
}

fn described(b: &StreamsBuilder) -> String {
    b.build().describe().to_string()
}

#[test]
fn windowed_counts_are_described_as_kafka_describes_them() {
    // Kafka's TopologyTest.timeWindowZeroArgCountShouldPreserveTopologyStructure.
    let b = StreamsBuilder::new();
    b.stream("input-topic", Consumed::with(StringSerde, StringSerde))
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(1)))
        .count(Materialized::default());
    let zero_arg = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input-topic])
      --> KSTREAM-AGGREGATE-0000000002
    Processor: KSTREAM-AGGREGATE-0000000002 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000001])
      --> none
      <-- KSTREAM-SOURCE-0000000000

";
    assert_eq!(described(&b), zero_arg);

    // ...timeWindowAnonymousMaterializedCount: count(Materialized) burns a store name.
    let b = StreamsBuilder::new();
    b.stream("input-topic", Consumed::with(StringSerde, StringSerde))
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(1)))
        .count(Materialized::with(StringSerde, I64Serde));
    assert_eq!(
        described(&b),
        zero_arg
            .replace("AGGREGATE-0000000002", "AGGREGATE-0000000003")
            .replace("STATE-STORE-0000000001", "STATE-STORE-0000000002")
    );

    // ...timeWindowNamedMaterializedCount and sessionWindowNamedMaterializedCount.
    let named = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input-topic])
      --> KSTREAM-AGGREGATE-0000000001
    Processor: KSTREAM-AGGREGATE-0000000001 (stores: [count-store])
      --> none
      <-- KSTREAM-SOURCE-0000000000

";
    let b = StreamsBuilder::new();
    b.stream("input-topic", Consumed::with(StringSerde, StringSerde))
        .group_by_key(grouped())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(1)))
        .count(Materialized::named("count-store").in_memory());
    assert_eq!(described(&b), named);
    let b = StreamsBuilder::new();
    b.stream("input-topic", Consumed::with(StringSerde, StringSerde))
        .group_by_key(grouped())
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(1)))
        .count(Materialized::named("count-store").in_memory());
    assert_eq!(described(&b), named);

    // ...sessionWindowZeroArgCount, and a sliding count (which never burns a name).
    for sliding in [false, true] {
        let b = StreamsBuilder::new();
        let g = b
            .stream("input-topic", Consumed::with(StringSerde, StringSerde))
            .group_by_key(grouped());
        if sliding {
            g.windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(ms(1)))
                .count(Materialized::with(StringSerde, I64Serde));
        } else {
            g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(1)))
                .count(Materialized::default());
        }
        assert_eq!(described(&b), zero_arg);
    }
}

fn suppressed_sessions(b: &StreamsBuilder, suppressed: Suppressed<Windowed<String>>) {
    b.stream("input", Consumed::with(StringSerde, StringSerde))
        .group_by(|k: &String, _v: &String| k.clone(), grouped())
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(5), ms(5)))
        .count(Materialized::named("counts"))
        .suppress(suppressed)
        .to_stream()
        .map(|k: Windowed<String>, v: Option<i64>| (k.to_string(), v))
        .to(
            "output-suppressed",
            Produced::with(StringSerde, Nullable(I64Serde)),
        );
}

#[test]
fn suppression_is_described_as_kafka_describes_it() {
    // Kafka's SuppressTopologyTest.ANONYMOUS_FINAL_TOPOLOGY.
    let b = StreamsBuilder::new();
    suppressed_sessions(
        &b,
        Suppressed::until_window_closes(BufferConfig::unbounded()),
    );
    let anonymous = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input])
      --> KSTREAM-KEY-SELECT-0000000001
    Processor: KSTREAM-KEY-SELECT-0000000001 (stores: [])
      --> counts-repartition-filter
      <-- KSTREAM-SOURCE-0000000000
    Processor: counts-repartition-filter (stores: [])
      --> counts-repartition-sink
      <-- KSTREAM-KEY-SELECT-0000000001
    Sink: counts-repartition-sink (topic: counts-repartition)
      <-- counts-repartition-filter

  Sub-topology: 1
    Source: counts-repartition-source (topics: [counts-repartition])
      --> KSTREAM-AGGREGATE-0000000002
    Processor: KSTREAM-AGGREGATE-0000000002 (stores: [counts])
      --> KTABLE-SUPPRESS-0000000006
      <-- counts-repartition-source
    Processor: KTABLE-SUPPRESS-0000000006 (stores: [KTABLE-SUPPRESS-STATE-STORE-0000000007])
      --> KTABLE-TOSTREAM-0000000008
      <-- KSTREAM-AGGREGATE-0000000002
    Processor: KTABLE-TOSTREAM-0000000008 (stores: [])
      --> KSTREAM-MAP-0000000009
      <-- KTABLE-SUPPRESS-0000000006
    Processor: KSTREAM-MAP-0000000009 (stores: [])
      --> KSTREAM-SINK-0000000010
      <-- KTABLE-TOSTREAM-0000000008
    Sink: KSTREAM-SINK-0000000010 (topic: output-suppressed)
      <-- KSTREAM-MAP-0000000009

";
    assert_eq!(described(&b), anonymous);

    // ...NAMED_FINAL_TOPOLOGY: a named suppression takes no counter value.
    let b = StreamsBuilder::new();
    suppressed_sessions(
        &b,
        Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("myname"),
    );
    let named = anonymous
        .replace("KTABLE-SUPPRESS-0000000006", "myname")
        .replace("KTABLE-SUPPRESS-STATE-STORE-0000000007", "myname-store")
        .replace("0000000008", "0000000006")
        .replace("0000000009", "0000000007")
        .replace("0000000010", "0000000008");
    assert_eq!(described(&b), named);

    // ...ANONYMOUS_INTERMEDIATE_TOPOLOGY: a table suppressed until a time limit.
    let b = StreamsBuilder::new();
    b.stream("input", Consumed::with(StringSerde, StringSerde))
        .group_by_key(grouped())
        .count(Materialized::default())
        .suppress(Suppressed::until_time_limit(
            Duration::from_secs(1),
            BufferConfig::unbounded(),
        ))
        .to_stream()
        .to("output", Produced::with(StringSerde, Nullable(I64Serde)));
    assert_eq!(
        described(&b),
        "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input])
      --> KSTREAM-AGGREGATE-0000000002
    Processor: KSTREAM-AGGREGATE-0000000002 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000001])
      --> KTABLE-SUPPRESS-0000000003
      <-- KSTREAM-SOURCE-0000000000
    Processor: KTABLE-SUPPRESS-0000000003 (stores: [KTABLE-SUPPRESS-STATE-STORE-0000000004])
      --> KTABLE-TOSTREAM-0000000005
      <-- KSTREAM-AGGREGATE-0000000002
    Processor: KTABLE-TOSTREAM-0000000005 (stores: [])
      --> KSTREAM-SINK-0000000006
      <-- KTABLE-SUPPRESS-0000000003
    Sink: KSTREAM-SINK-0000000006 (topic: output)
      <-- KTABLE-TOSTREAM-0000000005

"
    );
}

#[test]
fn suppressed_sessions_through_a_repartition_topic() {
    let b = StreamsBuilder::new();
    suppressed_sessions(
        &b,
        Suppressed::until_window_closes(BufferConfig::unbounded()),
    );
    let d = TopologyTestDriver::new(b.build(), [("application.id", "sup")]).unwrap();
    let t = d.input_topic("input", StringSerde, StringSerde);
    for (k, ts) in [("a", 0), ("a", 3), ("b", 4), ("a", 20)] {
        t.pipe(&s(k), &s("v"), ts).unwrap();
    }
    let out = d
        .output_topic("output-suppressed", StringSerde, Nullable(I64Serde))
        .read_records()
        .unwrap();
    assert_eq!(
        out,
        vec![(s("[a@0/3]"), Some(2), 3), (s("[b@4/4]"), Some(1), 4)]
    );
}

#[test]
fn records_with_a_null_key_are_dropped_and_counted() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Nullable(StringSerde), StringSerde))
        .group_by_key(Grouped::with(Nullable(StringSerde), StringSerde))
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .count(Materialized::named("counts"));
    let d = driver(&b);
    let t = d.input_topic("in", Nullable(StringSerde), StringSerde);
    t.pipe(&None, &s("v"), 1).unwrap();
    t.pipe(&Some(s("a")), &s("v"), 2).unwrap();
    assert_eq!(d.dropped_records(), 1);
    let store = d.window_store("counts", Nullable(StringSerde), I64Serde);
    assert_eq!(store.fetch(&Some(s("a")), 0).unwrap(), Some(1));
}
