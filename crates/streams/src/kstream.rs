//! The typed DSL: [`StreamsBuilder`] makes [`KStream`]s from topics, each operation adds a
//! node named as Kafka names it (`KSTREAM-<OP>-<counter>`), and `build()` hands the graph
//! over as a [`Topology`]. [`KStream::split`] gives Kafka's [`BranchedKStream`].
//!
//! Functions given to operations are `Fn + Send + Sync`: one compiled topology serves every
//! partition of an instance, on whatever thread its task runs. Keys and values move by
//! value; they are cloned only where a stream feeds several nodes.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;
use strom_client::ProducerRecord;

use crate::error::StreamsError;
use crate::serdes::Serde;
use crate::topology::{
    build_fn, build_with, fan_out, forward, source_fn, typed, Ctx, Forward, Graph, NodeKind,
    RecordContext, Topology,
};

/// The serdes a source reads its topic with (Kafka's `Consumed`).
pub struct Consumed<K, V> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K, V> Consumed<K, V> {
    /// Reads keys with `key` and values with `value`.
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Consumed<K, V> {
        Consumed {
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }
}

/// The serdes a sink writes with (Kafka's `Produced`).
pub struct Produced<K, V> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K, V> Produced<K, V> {
    /// Writes keys with `key` and values with `value`.
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Produced<K, V> {
        Produced {
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }
}

/// Builds a topology (Kafka's `StreamsBuilder`).
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    pub(crate) graph: Arc<Mutex<Graph>>,
}

impl std::fmt::Debug for StreamsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsBuilder")
            .field("nodes", &self.graph.lock().nodes.len())
            .finish()
    }
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> StreamsBuilder {
        StreamsBuilder::default()
    }

    /// The records of `topic` (a source node, `KSTREAM-SOURCE-`).
    pub fn stream<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        self.streams(&[topic], consumed)
    }

    /// The records of all of `topics`, read with the same serdes (one source node).
    pub fn streams<K, V>(&self, topics: &[&str], consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let mut g = self.graph.lock();
        for t in topics {
            let taken = g.nodes.iter().any(|n| match &n.kind {
                NodeKind::Source { topics } => topics.iter().any(|x| x == t),
                _ => false,
            });
            if taken {
                g.errors.push(format!(
                    "topic {t} has already been registered by another source"
                ));
            }
        }
        if topics.is_empty() {
            g.errors.push("a source needs at least one topic".into());
        }
        let name = g.next_name("KSTREAM-SOURCE-");
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let node = source_node(&mut g, name, topics, consumed);
        KStream::at(self.graph.clone(), node)
    }

    /// The topology built so far. The builder is left empty.
    pub fn build(&self) -> Topology {
        Topology::from(std::mem::take(&mut *self.graph.lock()))
    }
}

/// A stream of keyed records (Kafka's `KStream<K, V>`): a node of the topology that further
/// operations attach to. Cloning gives another handle on the same node.
pub struct KStream<K, V> {
    pub(crate) graph: Arc<Mutex<Graph>>,
    pub(crate) node: usize,
    /// A key-changing operation (map, select_key, flat_map) came before: grouping or
    /// joining this stream needs a repartition topic first.
    pub(crate) key_changed: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: self.graph.clone(),
            node: self.node,
            key_changed: self.key_changed,
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for KStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.graph.lock();
        let name = g.nodes.get(self.node).map(|n| n.name.as_str());
        f.debug_struct("KStream").field("node", &name).finish()
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    pub(crate) fn at(graph: Arc<Mutex<Graph>>, node: usize) -> KStream<K, V> {
        KStream {
            graph,
            node,
            key_changed: false,
            _types: PhantomData,
        }
    }

    /// This handle, marked as having had its key changed (or not).
    pub(crate) fn key_changed(mut self, changed: bool) -> Self {
        self.key_changed = changed;
        self
    }

    /// Adds a processor named `<prefix><counter>` below this stream.
    fn then<K2, V2>(
        &self,
        prefix: &str,
        make: impl FnOnce(Forward<K2, V2>) -> Forward<K, V> + Send + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
    {
        let mut g = self.graph.lock();
        let name = g.next_name(prefix);
        let node = g.add(name, processor(), &[self.node], build_with(make));
        KStream::at(self.graph.clone(), node).key_changed(self.key_changed)
    }

    /// [`then`](Self::then) for an operation that changes keys.
    fn then_rekeyed<K2, V2>(
        &self,
        prefix: &str,
        make: impl FnOnce(Forward<K2, V2>) -> Forward<K, V> + Send + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
    {
        self.then(prefix, make).key_changed(true)
    }

    /// The records for which `predicate` holds (`KSTREAM-FILTER-`).
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.then("KSTREAM-FILTER-", move |down: Forward<K, V>| {
            forward(move |ctx, k, v| {
                if predicate(&k, &v) {
                    down(ctx, k, v)
                }
            })
        })
    }

    /// The records for which `predicate` does not hold (`KSTREAM-FILTER-`, as Kafka names it).
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Each record replaced by a new key and value (`KSTREAM-MAP-`).
    pub fn map<K2, V2>(
        &self,
        mapper: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
    {
        self.then_rekeyed("KSTREAM-MAP-", move |down: Forward<K2, V2>| {
            forward(move |ctx, k, v| {
                let (k2, v2) = mapper(k, v);
                down(ctx, k2, v2)
            })
        })
    }

    /// Each value replaced, the key kept (`KSTREAM-MAPVALUES-`).
    pub fn map_values<V2>(&self, mapper: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2>
    where
        V2: Clone + 'static,
    {
        self.then("KSTREAM-MAPVALUES-", move |down: Forward<K, V2>| {
            forward(move |ctx, k, v| down(ctx, k, mapper(v)))
        })
    }

    /// Each record replaced by any number of records (`KSTREAM-FLATMAP-`).
    pub fn flat_map<K2, V2, I>(
        &self,
        mapper: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.then_rekeyed("KSTREAM-FLATMAP-", move |down: Forward<K2, V2>| {
            forward(move |ctx, k, v| {
                for (k2, v2) in mapper(k, v) {
                    down(ctx, k2, v2)
                }
            })
        })
    }

    /// Each value replaced by any number of values under the same key
    /// (`KSTREAM-FLATMAPVALUES-`).
    pub fn flat_map_values<V2, I>(
        &self,
        mapper: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        V2: Clone + 'static,
        I: IntoIterator<Item = V2>,
    {
        self.then("KSTREAM-FLATMAPVALUES-", move |down: Forward<K, V2>| {
            forward(move |ctx, k: K, v| {
                for v2 in mapper(v) {
                    down(ctx, k.clone(), v2)
                }
            })
        })
    }

    /// Each record under a new key (`KSTREAM-KEY-SELECT-`).
    pub fn select_key<K2>(
        &self,
        mapper: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V>
    where
        K2: Clone + 'static,
    {
        self.then_rekeyed("KSTREAM-KEY-SELECT-", move |down: Forward<K2, V>| {
            forward(move |ctx, k, v| {
                let k2 = mapper(&k, &v);
                down(ctx, k2, v)
            })
        })
    }

    /// Calls `action` on each record and passes it on unchanged (`KSTREAM-PEEK-`).
    pub fn peek(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        self.then("KSTREAM-PEEK-", move |down: Forward<K, V>| {
            forward(move |ctx, k, v| {
                action(&k, &v);
                down(ctx, k, v)
            })
        })
    }

    /// Calls `action` on each record; the stream ends here (`KSTREAM-FOREACH-`).
    pub fn foreach(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) {
        let _: KStream<K, V> = self.then("KSTREAM-FOREACH-", move |_down: Forward<K, V>| {
            forward(move |_ctx, k, v| action(&k, &v))
        });
    }

    /// The records of this stream and of `other` (`KSTREAM-MERGE-`). Both must come from the
    /// same builder.
    pub fn merge(&self, other: &KStream<K, V>) -> Self {
        let mut g = self.graph.lock();
        if !Arc::ptr_eq(&self.graph, &other.graph) {
            g.errors
                .push("merge() of streams from different builders".into());
        }
        let name = g.next_name("KSTREAM-MERGE-");
        let parents = [self.node, other.node];
        let build = build_with(|down: Forward<K, V>| down);
        let node = g.add(name, processor(), &parents, build);
        KStream::at(self.graph.clone(), node).key_changed(self.key_changed || other.key_changed)
    }

    /// Splits the stream by predicates (Kafka's `split()`, a `KSTREAM-BRANCH-` node): each
    /// record goes to the first branch whose predicate holds, else to the default branch.
    pub fn split(&self) -> BranchedKStream<K, V> {
        let name = self.graph.lock().next_name("KSTREAM-BRANCH-");
        self.split_as(name)
    }

    /// [`split`](Self::split) with the splitter named `name` (Kafka's `split(Named.as(name))`);
    /// branch names are prefixed with it.
    pub fn split_named(&self, name: &str) -> BranchedKStream<K, V> {
        self.split_as(name.to_string())
    }

    fn split_as(&self, name: String) -> BranchedKStream<K, V> {
        let predicates: Predicates<K, V> = Arc::new(Mutex::new(Vec::new()));
        let routes = predicates.clone();
        let build = build_fn(move |_env, children| {
            let children = typed::<K, V>(children);
            let routes: Vec<Route<K, V>> = routes.lock().iter().cloned().zip(children).collect();
            let route: Forward<K, V> = forward(move |ctx, k, v| {
                let to = routes
                    .iter()
                    .find(|(p, _)| p.as_ref().is_none_or(|p| p(&k, &v)));
                if let Some((_, down)) = to {
                    down(ctx, k, v)
                }
            });
            Box::new(route)
        });
        let node = self
            .graph
            .lock()
            .add(name.clone(), processor(), &[self.node], build);
        BranchedKStream {
            splitter: KStream::at(self.graph.clone(), node).key_changed(self.key_changed),
            name,
            predicates,
            branches: HashMap::new(),
            has_default: false,
        }
    }

    /// Writes each record to `topic` (`KSTREAM-SINK-`), with the input record's timestamp and
    /// headers.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        let name = self.graph.lock().next_name("KSTREAM-SINK-");
        self.sink(name, SinkTo::Topic(topic.to_string()), produced, false)
    }

    /// Writes each record to the topic `extractor` picks for it (Kafka's `to` with a
    /// `TopicNameExtractor`).
    pub fn to_extractor<F>(&self, extractor: F, produced: Produced<K, V>)
    where
        F: Fn(&K, &V, &RecordContext<'_>) -> String + Send + Sync + 'static,
    {
        let name = self.graph.lock().next_name("KSTREAM-SINK-");
        let type_name = std::any::type_name::<F>().to_string();
        self.sink(
            name,
            SinkTo::Extractor(type_name, Box::new(extractor)),
            produced,
            false,
        )
    }

    /// Adds sink node `name`. A repartition sink drops records whose key is null (Kafka
    /// filters them before a repartition topic).
    pub(crate) fn sink(
        &self,
        name: String,
        to: SinkTo<K, V>,
        produced: Produced<K, V>,
        repartition: bool,
    ) {
        let Produced { key, value } = produced;
        let kind = match &to {
            SinkTo::Topic(topic) => NodeKind::Sink {
                topic: topic.clone(),
            },
            SinkTo::Extractor(type_name, _) => NodeKind::DynamicSink {
                extractor: type_name.clone(),
            },
        };
        let build = build_fn(move |env, _children| {
            let topic: TopicFn<K, V> = match to {
                SinkTo::Topic(t) => {
                    let real = env.topic(&t);
                    Box::new(move |_, _, _| real.clone())
                }
                SinkTo::Extractor(_, f) => f,
            };
            let write: Forward<K, V> = forward(move |ctx: &mut Ctx, k: K, v: V| {
                if ctx.failure.is_some() {
                    return;
                }
                let topic = topic(&k, &v, &ctx.record_context());
                let fail = |ctx: &Ctx, part, source| StreamsError::Serialization {
                    part,
                    topic: topic.clone(),
                    source_topic: ctx.topic.clone(),
                    partition: ctx.partition,
                    offset: ctx.offset,
                    source,
                };
                let key = match key.serialize(&topic, &k) {
                    Ok(b) => b,
                    Err(e) => {
                        let e = fail(ctx, "key", e);
                        ctx.fail(e);
                        return;
                    }
                };
                if repartition && key.is_none() {
                    return;
                }
                let value = match value.serialize(&topic, &v) {
                    Ok(b) => b,
                    Err(e) => {
                        let e = fail(ctx, "value", e);
                        ctx.fail(e);
                        return;
                    }
                };
                let record = ProducerRecord {
                    topic,
                    partition: None,
                    key,
                    value,
                    headers: ctx.headers.clone(),
                    timestamp: Some(ctx.timestamp),
                };
                ctx.out.push(record);
            });
            Box::new(write)
        });
        self.graph.lock().add(name, kind, &[self.node], build);
    }
}

type TopicFn<K, V> = Box<dyn Fn(&K, &V, &RecordContext<'_>) -> String + Send + Sync>;

/// Where a sink writes.
pub(crate) enum SinkTo<K, V> {
    /// One topic (internal topics by their unprefixed names).
    Topic(String),
    /// The topic a function picks, and the function's type name for the description.
    Extractor(String, TopicFn<K, V>),
}

/// Adds a source node reading `topics` with `consumed`'s serdes.
pub(crate) fn source_node<K, V>(
    g: &mut Graph,
    name: String,
    topics: Vec<String>,
    consumed: Consumed<K, V>,
) -> usize
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    let Consumed { key, value } = consumed;
    let build = build_fn(move |_env, children| {
        let down = fan_out(typed::<K, V>(children));
        let source = source_fn(move |ctx, r| {
            let fail = |part, source| StreamsError::Deserialization {
                part,
                topic: r.topic.clone(),
                partition: r.partition,
                offset: r.offset,
                source,
            };
            let k = key
                .deserialize(&r.topic, r.key.as_deref())
                .map_err(|e| fail("key", e))?;
            let v = value
                .deserialize(&r.topic, r.value.as_deref())
                .map_err(|e| fail("value", e))?;
            down(ctx, k, v);
            Ok(())
        });
        Box::new(source)
    });
    g.add(name, NodeKind::Source { topics }, &[], build)
}

pub(crate) fn processor() -> NodeKind {
    NodeKind::Processor { stores: Vec::new() }
}

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A branch's predicate (none for the default branch) and its node.
type Route<K, V> = (Option<Predicate<K, V>>, Forward<K, V>);

/// The splitter's routes in branch order; `None` is the default branch.
type Predicates<K, V> = Arc<Mutex<Vec<Option<Predicate<K, V>>>>>;

/// What to do with one branch (Kafka's `Branched`): its name, and optionally a function
/// applied to the branch stream.
pub struct Branched<K, V> {
    name: Option<String>,
    chain: Option<Chain<K, V>>,
}

type Chain<K, V> = Box<dyn FnOnce(KStream<K, V>) -> Option<KStream<K, V>>>;

impl<K, V> Default for Branched<K, V> {
    fn default() -> Self {
        Branched {
            name: None,
            chain: None,
        }
    }
}

impl<K: 'static, V: 'static> Branched<K, V> {
    /// A branch with the default name (the splitter's name and the branch's number).
    pub fn new() -> Branched<K, V> {
        Branched::default()
    }

    /// A branch named `name` (Kafka's `Branched.as`): its key in the result map is the
    /// splitter's name followed by `name`.
    pub fn named(name: &str) -> Branched<K, V> {
        Branched {
            name: Some(name.to_string()),
            chain: None,
        }
    }

    /// A branch handed to `chain`, which attaches what it needs; the branch is left out of
    /// the result map (Kafka's `Branched.withConsumer`).
    pub fn with_consumer(chain: impl FnOnce(KStream<K, V>) + 'static) -> Branched<K, V> {
        Branched {
            name: None,
            chain: Some(Box::new(move |s: KStream<K, V>| -> Option<KStream<K, V>> {
                chain(s);
                None
            })),
        }
    }

    /// A branch transformed by `chain`; the map holds what it returns (Kafka's
    /// `Branched.withFunction`).
    pub fn with_function(
        chain: impl FnOnce(KStream<K, V>) -> KStream<K, V> + 'static,
    ) -> Branched<K, V> {
        Branched {
            name: None,
            chain: Some(Box::new(move |s: KStream<K, V>| -> Option<KStream<K, V>> {
                Some(chain(s))
            })),
        }
    }

    /// This branch under `name`.
    pub fn with_name(mut self, name: &str) -> Branched<K, V> {
        self.name = Some(name.to_string());
        self
    }
}

/// A stream being split into branches (Kafka's `BranchedKStream`).
pub struct BranchedKStream<K, V> {
    splitter: KStream<K, V>,
    name: String,
    predicates: Predicates<K, V>,
    branches: HashMap<String, KStream<K, V>>,
    has_default: bool,
}

impl<K, V> BranchedKStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Adds a branch for the records `predicate` holds for (and no earlier branch took).
    pub fn branch(
        mut self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        branched: Branched<K, V>,
    ) -> Self {
        let index = {
            let mut p = self.predicates.lock();
            let predicate: Predicate<K, V> = Arc::new(predicate);
            p.push(Some(predicate));
            p.len()
        };
        self.add_branch(index, branched);
        self
    }

    /// Adds the branch for every record no predicate took, and returns the branches.
    pub fn default_branch(mut self, branched: Branched<K, V>) -> HashMap<String, KStream<K, V>> {
        if !self.has_default {
            self.has_default = true;
            self.predicates.lock().push(None);
            self.add_branch(0, branched);
        }
        self.branches
    }

    /// Returns the branches; records no predicate took are dropped.
    pub fn no_default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.branches
    }

    fn add_branch(&mut self, index: usize, branched: Branched<K, V>) {
        let child = match &branched.name {
            Some(n) => format!("{}{n}", self.name),
            None => format!("{}{index}", self.name),
        };
        let node = {
            let mut g = self.splitter.graph.lock();
            let build = build_with(|down: Forward<K, V>| down);
            g.add(child.clone(), processor(), &[self.splitter.node], build)
        };
        let stream =
            KStream::at(self.splitter.graph.clone(), node).key_changed(self.splitter.key_changed);
        match branched.chain {
            Some(chain) => {
                if let Some(s) = chain(stream) {
                    self.branches.insert(child, s);
                }
            }
            None => {
                self.branches.insert(child, stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use strom_client::ConsumerRecord;

    use super::*;
    use crate::serdes::{I64Serde, Nullable, StringSerde};
    use crate::task::{Task, TaskId};

    /// Runs one record through the compiled topology and returns what the sinks produced.
    fn run(topology: Topology, records: &[(&str, Option<&str>, &str)]) -> Vec<ProducerRecord> {
        let compiled = topology.compile("app").unwrap();
        let mut out = Vec::new();
        for (i, (topic, key, value)) in records.iter().enumerate() {
            let r = ConsumerRecord {
                topic: topic.to_string(),
                partition: 0,
                offset: i as i64,
                timestamp: 100 + i as i64,
                key: key.map(|k| Bytes::from(k.to_string())),
                value: Some(Bytes::from(value.to_string())),
                headers: Vec::new(),
            };
            let task = Task::stateless(TaskId {
                subtopology: 0,
                partition: 0,
            });
            let mut ctx = Ctx::new(&r, task);
            compiled.sources[*topic].0(&mut ctx, &r).unwrap();
            assert!(ctx.failure.is_none());
            out.extend(ctx.out);
        }
        out
    }

    fn text(b: &Option<Bytes>) -> Option<String> {
        b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    #[test]
    fn split_routes_to_the_first_match_then_the_default() {
        let b = StreamsBuilder::new();
        let branches = b
            .stream("in", Consumed::with(Nullable(StringSerde), StringSerde))
            .split()
            .branch(|_, v| v.starts_with('a'), Branched::named("-a"))
            .branch(|_, v| v.len() > 2, Branched::new())
            .default_branch(Branched::with_function(|s| s.map_values(|v| v + "!")));
        assert_eq!(branches.len(), 3);
        for (name, s) in branches {
            s.to(&name, Produced::with(Nullable(StringSerde), StringSerde));
        }
        let out = run(
            b.build(),
            &[
                ("in", None, "abc"),
                ("in", Some("k"), "xyz"),
                ("in", None, "b"),
            ],
        );
        type Row = (String, Option<String>, Option<String>, Option<i64>);
        let got: Vec<Row> = out
            .iter()
            .map(|r| (r.topic.clone(), text(&r.key), text(&r.value), r.timestamp))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "KSTREAM-BRANCH-0000000001-a".into(),
                    None,
                    Some("abc".into()),
                    Some(100)
                ),
                (
                    "KSTREAM-BRANCH-00000000012".into(),
                    Some("k".into()),
                    Some("xyz".into()),
                    Some(101)
                ),
                (
                    "KSTREAM-BRANCH-00000000010".into(),
                    None,
                    Some("b!".into()),
                    Some(102)
                ),
            ]
        );
    }

    #[test]
    fn a_stream_feeding_two_nodes_gives_each_the_record() {
        let b = StreamsBuilder::new();
        let s = b.stream("in", Consumed::with(StringSerde, StringSerde));
        s.select_key(|_, v| v.len() as i64)
            .to("lengths", Produced::with(I64Serde, StringSerde));
        s.flat_map_values(|v: String| v.chars().map(String::from).collect::<Vec<_>>())
            .filter_not(|_, c| c == "-")
            .to("chars", Produced::with(StringSerde, StringSerde));
        let out = run(b.build(), &[("in", Some("k"), "a-b")]);
        let got: Vec<(String, Option<Bytes>, Option<String>)> = out
            .iter()
            .map(|r| (r.topic.clone(), r.key.clone(), text(&r.value)))
            .collect();
        let three = Some(Bytes::copy_from_slice(&3i64.to_be_bytes()));
        let k = Some(Bytes::from("k"));
        assert_eq!(
            got,
            [
                ("lengths".into(), three, Some("a-b".into())),
                ("chars".into(), k.clone(), Some("a".into())),
                ("chars".into(), k, Some("b".into())),
            ]
        );
    }

    #[test]
    fn a_bad_record_is_reported_with_where_it_came_from() {
        let b = StreamsBuilder::new();
        b.stream("in", Consumed::with(StringSerde, I64Serde))
            .to("out", Produced::with(StringSerde, I64Serde));
        let compiled = b.build().compile("app").unwrap();
        let r = ConsumerRecord {
            topic: "in".into(),
            partition: 3,
            offset: 7,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from_static(&[0; 8])),
            headers: Vec::new(),
        };
        let task = Task::stateless(TaskId {
            subtopology: 0,
            partition: 3,
        });
        let mut ctx = Ctx::new(&r, task);
        let e = compiled.sources["in"].0(&mut ctx, &r).unwrap_err();
        assert!(
            matches!(
                e,
                StreamsError::Deserialization {
                    part: "key",
                    partition: 3,
                    offset: 7,
                    ..
                }
            ),
            "{e}"
        );
        assert!(ctx.out.is_empty());
    }
}
