//! Joins, as Kafka Streams has them: windowed stream-stream joins
//! ([`KStream::join`](crate::KStream::join), `left_join`, `outer_join`), stream-table lookups
//! ([`KStream::join_table`](crate::KStream::join_table), `left_join_table`) and table-table
//! joins ([`KTable::join`](crate::KTable::join), `left_join`, `outer_join`).
//!
//! This module owns the join settings ([`JoinWindows`], [`StreamJoined`], [`Joined`]) and
//! what every join shares: the co-partitioning requirement recorded in the topology, and
//! the order Kafka prints a processor's stores in. The joins themselves are in
//! `stream_stream`, `stream_table` and `table_table`.
//!
//! Joiners are closures over the joined values (Kafka's `ValueJoiner`); where one side may
//! be missing (left and outer joins) it comes as an `Option`. Joined inputs must be
//! co-partitioned: both sides' source topics are recorded as a co-partition group, which
//! the instance checks when it sets up its topics.

mod stream_stream;
mod stream_table;
mod table_table;

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::kstream::KStream;
use crate::serdes::Serde;
use crate::topology::{Graph, NodeKind};

/// How far apart two records' timestamps may be for a stream-stream join to pair them, and
/// how long late records are waited for (Kafka's `JoinWindows`).
///
/// A record of this stream at time `t` joins the other stream's records with timestamps in
/// `[t - before, t + after]`. Left and outer joins emit a record that found no partner once
/// stream time passes `t + after + grace` (for the other stream's records,
/// `t + before + grace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    pub(crate) before_ms: i64,
    pub(crate) after_ms: i64,
    pub(crate) grace_ms: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl JoinWindows {
    /// Records at most `difference` apart join; no record arrives late (Kafka's
    /// `ofTimeDifferenceWithNoGrace`).
    pub fn of_time_difference_with_no_grace(difference: Duration) -> JoinWindows {
        JoinWindows::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Records at most `difference` apart join; records up to `grace` late are still
    /// joined (Kafka's `ofTimeDifferenceAndGrace`).
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> JoinWindows {
        let d = millis(difference);
        JoinWindows {
            before_ms: d,
            after_ms: d,
            grace_ms: millis(grace),
        }
    }

    /// The other stream's records may be up to `difference` older (Kafka's `before`).
    pub fn before(self, difference: Duration) -> JoinWindows {
        JoinWindows {
            before_ms: millis(difference),
            ..self
        }
    }

    /// The other stream's records may be up to `difference` newer (Kafka's `after`).
    pub fn after(self, difference: Duration) -> JoinWindows {
        JoinWindows {
            after_ms: millis(difference),
            ..self
        }
    }

    /// How much older the other stream's records may be (ms).
    pub fn before_ms(&self) -> i64 {
        self.before_ms
    }

    /// How much newer the other stream's records may be (ms).
    pub fn after_ms(&self) -> i64 {
        self.after_ms
    }

    /// The grace period (ms).
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// The window's size, `before + after` (ms).
    pub fn size_ms(&self) -> i64 {
        self.before_ms.saturating_add(self.after_ms)
    }

    /// How long the join's window stores keep records: size plus grace (ms).
    pub(crate) fn retention_ms(&self) -> i64 {
        self.size_ms().saturating_add(self.grace_ms)
    }
}

/// The serdes and names of a stream-stream join (Kafka's `StreamJoined`): the key serde
/// and both value serdes write the join's window stores (and repartition topics, when a
/// side's key changed upstream).
pub struct StreamJoined<K, V, VO> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
    pub(crate) other: Arc<dyn Serde<VO>>,
    pub(crate) name: Option<String>,
    pub(crate) store_name: Option<String>,
    pub(crate) logged: bool,
    pub(crate) persistent: bool,
}

impl<K, V, VO> StreamJoined<K, V, VO> {
    /// A join with these serdes: keys, this stream's values, the other stream's values.
    pub fn with(
        key: impl Serde<K>,
        value: impl Serde<V>,
        other_value: impl Serde<VO>,
    ) -> StreamJoined<K, V, VO> {
        StreamJoined {
            key: Arc::new(key),
            value: Arc::new(value),
            other: Arc::new(other_value),
            name: None,
            store_name: None,
            logged: true,
            persistent: true,
        }
    }

    /// Names the join's processors `<name>-this-windowed`, `<name>-this-join`, ...,
    /// `<name>-merge`, and its repartition topics `<name>-left-repartition` and
    /// `<name>-right-repartition` (Kafka's `withName`).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Names the join's stores `<name>-this-join-store`, `<name>-other-join-store` (and
    /// for left/outer joins `<name>-left-shared-join-store` / `-outer-shared-join-store`)
    /// (Kafka's `withStoreName`).
    pub fn with_store_name(mut self, name: &str) -> Self {
        self.store_name = Some(name.to_string());
        self
    }

    /// The join's stores have no changelog (Kafka's `withLoggingDisabled`).
    pub fn with_logging_disabled(mut self) -> Self {
        self.logged = false;
        self
    }

    /// The join's stores are kept in memory (Kafka's in-memory window store suppliers).
    pub fn in_memory(mut self) -> Self {
        self.persistent = false;
        self
    }
}

/// The serdes and name of a stream-table join (Kafka's `Joined`). The key and stream value
/// serdes write the repartition topic when the stream's key changed upstream; the value
/// serde also tells a null stream value (which the join drops).
pub struct Joined<K, V, VO> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
    pub(crate) name: Option<String>,
    _table: PhantomData<fn() -> VO>,
}

impl<K, V, VO> Joined<K, V, VO> {
    /// A join with these serdes: keys, the stream's values, the table's values (Kafka's
    /// argument order; the table's values are read with its store's serde).
    pub fn with(
        key: impl Serde<K>,
        value: impl Serde<V>,
        _other_value: impl Serde<VO>,
    ) -> Joined<K, V, VO> {
        Joined {
            key: Arc::new(key),
            value: Arc::new(value),
            name: None,
            _table: PhantomData,
        }
    }

    /// Names the join's processor `name` and its repartition topic `<name>-repartition`
    /// (Kafka's `withName`).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// `stream`, through a repartition topic named from `prefix` if its key changed upstream
/// (Kafka's `repartitionForJoin`). A stream joined twice under generated names reuses its
/// repartition topic, as Kafka does (the three names are taken all the same); a given name
/// used twice is a topology error.
pub(crate) fn repartition_for_join<K, V>(
    stream: &KStream<K, V>,
    prefix: &str,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
) -> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    if !stream.key_changed {
        return stream.clone();
    }
    let topic = if prefix.ends_with("-repartition") {
        prefix.to_string()
    } else {
        format!("{prefix}-repartition")
    };
    {
        let mut g = stream.graph.lock();
        if g.internal_topics.contains(&topic) {
            let source = g.nodes.iter().position(|n| {
                matches!(&n.kind, NodeKind::Source { topics } if topics == std::slice::from_ref(&topic))
            });
            match source {
                Some(node) if is_generated(prefix) => {
                    for p in ["KSTREAM-SINK-", "KSTREAM-FILTER-", "KSTREAM-SOURCE-"] {
                        g.next_name(p);
                    }
                    drop(g);
                    return KStream::at(stream.graph.clone(), node);
                }
                _ => g.errors.push(format!(
                    "the repartition topic {topic} is used by two joins; name them apart"
                )),
            }
        }
    }
    stream.repartitioned(prefix, key, value)
}

/// Whether `name` is a generated one (`KSTREAM-...-0000000003`), as Kafka tells them.
fn is_generated(name: &str) -> bool {
    let digits = name.rsplit('-').next().unwrap_or("");
    name.starts_with("KSTREAM") && digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The topics of the source nodes feeding `node` (its sub-topology's inputs on this path).
pub(crate) fn source_topics(g: &Graph, node: usize) -> BTreeSet<String> {
    let mut topics = BTreeSet::new();
    let mut seen = vec![false; g.nodes.len()];
    let mut stack = vec![node];
    while let Some(i) = stack.pop() {
        let Some(n) = g.nodes.get(i) else { continue };
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        if let NodeKind::Source { topics: t } = &n.kind {
            topics.extend(t.iter().cloned());
        }
        stack.extend(n.parents.iter().copied());
    }
    topics
}

/// Records that the inputs of nodes `a` and `b` must be co-partitioned (Kafka's
/// `ensureCopartitionWith`).
pub(crate) fn copartition(g: &mut Graph, a: usize, b: usize) {
    let mut topics = source_topics(g, a);
    topics.extend(source_topics(g, b));
    let group: Vec<String> = topics.into_iter().collect();
    if !group.is_empty() && !g.copartition.contains(&group) {
        g.copartition.push(group);
    }
}

/// Java's `String.hashCode`.
fn java_hash(s: &str) -> u32 {
    s.encode_utf16()
        .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)))
}

/// `names` in the order a small Java `HashSet` iterates them, as Kafka prints a
/// processor's stores: by bucket of the spread hash, then in insertion order.
pub(crate) fn java_hash_order(names: Vec<String>) -> Vec<String> {
    let mut capacity = 16usize;
    while names.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let bucket = |s: &str| {
        let h = java_hash(s);
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut keyed: Vec<(usize, String)> = names.into_iter().map(|n| (bucket(&n), n)).collect();
    keyed.sort_by_key(|(b, _)| *b);
    keyed.into_iter().map(|(_, n)| n).collect()
}

/// A time as it sorts in store keys: big-endian with the sign bit flipped.
pub(crate) fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time of [`time_key`] bytes.
pub(crate) fn time_of_key(b: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = b.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Consumed, Materialized, StreamsBuilder, StringSerde};

    #[test]
    fn java_hash_matches_javas() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        // "hello".hashCode() == 99162322
        assert_eq!(java_hash("hello"), 99_162_322);
        // Two names that share a bucket keep their insertion order, as in Kafka's
        // description of a left join's other-side processor.
        let order = java_hash_order(vec![
            "KSTREAM-JOINTHIS-0000000004-store".into(),
            "KSTREAM-OUTERSHARED-0000000004-store".into(),
        ]);
        assert_eq!(
            order,
            [
                "KSTREAM-JOINTHIS-0000000004-store",
                "KSTREAM-OUTERSHARED-0000000004-store"
            ]
        );
        let order = java_hash_order(vec![
            "KSTREAM-OUTERSHARED-0000000004-store".into(),
            "KSTREAM-OUTEROTHER-0000000005-store".into(),
        ]);
        assert_eq!(
            order,
            [
                "KSTREAM-OUTEROTHER-0000000005-store",
                "KSTREAM-OUTERSHARED-0000000004-store"
            ]
        );
    }

    #[test]
    fn time_keys_sort_as_times() {
        let ts = [i64::MIN, -5, -1, 0, 1, 1000, i64::MAX];
        for w in ts.windows(2) {
            assert!(time_key(w[0]) < time_key(w[1]));
        }
        for t in ts {
            assert_eq!(time_of_key(&time_key(t)), Some(t));
        }
    }

    #[test]
    fn joins_record_their_inputs_as_a_copartition_group() {
        let b = StreamsBuilder::new();
        let left = b.stream("left", Consumed::with(StringSerde, StringSerde));
        let right = b.stream("right", Consumed::with(StringSerde, StringSerde));
        let table = b.table(
            "table",
            Consumed::with(StringSerde, StringSerde),
            Materialized::default(),
        );
        left.join(
            &right,
            |a: &String, b: &String| format!("{a}{b}"),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10)),
            StreamJoined::with(StringSerde, StringSerde, StringSerde),
        );
        left.map(|k, v| (v, k)).join_table_with(
            &table,
            |a: &String, b: &String| format!("{a}{b}"),
            Joined::with(StringSerde, StringSerde, StringSerde),
        );
        let topology = b.build();
        assert_eq!(
            topology.copartition_groups("app"),
            [
                vec!["left".to_string(), "right".to_string()],
                vec![
                    "app-KSTREAM-MAP-0000000010-repartition".to_string(),
                    "table".to_string()
                ],
            ]
        );
    }
}
