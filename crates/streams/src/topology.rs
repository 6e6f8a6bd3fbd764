//! The processor graph behind a [`Topology`]: its nodes under Kafka's names, how it is
//! described (Kafka's `TopologyDescription`, text included), and how it is compiled into the
//! functions a running instance calls per consumed record.
//!
//! Types are erased here, not in the public API: each node keeps a build function that,
//! given its children's compiled forwards (`Arc<dyn Fn(&mut Ctx, K, V)>` behind `dyn Any`),
//! returns its own. Children are always created after their parents, so compiling the nodes
//! from the last to the first finds every child already built. The typed API in
//! [`crate::kstream`] guarantees that a child's input type is its parent's output type.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use strom_client::{ConsumerRecord, ProducerRecord};

use crate::error::StreamsError;
use crate::state::{stamp, unstamp, RawStore, StoreError, StoreSpec};
use crate::task::{Store, Task};

/// The record being processed, its task, and what processing it produced.
pub(crate) struct Ctx {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The input record's timestamp, which output records carry (stateless operations).
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Records for the producer (outputs, repartition and changelog records).
    pub out: Vec<ProducerRecord>,
    /// The first fatal failure (a serialization error in a sink); later sinks skip.
    pub failure: Option<StreamsError>,
    /// The task the record belongs to (moved in for the record, and back out).
    pub task: Task,
}

impl Ctx {
    pub fn new(r: &ConsumerRecord, task: Task) -> Ctx {
        Ctx {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            headers: r.headers.clone(),
            out: Vec::new(),
            failure: None,
            task,
        }
    }

    /// A context with no input record (a punctuation at `timestamp`, which output records
    /// carry).
    pub fn without_record(task: Task, timestamp: i64) -> Ctx {
        Ctx {
            topic: String::new(),
            partition: task.id.partition,
            offset: -1,
            timestamp,
            headers: Vec::new(),
            out: Vec::new(),
            failure: None,
            task,
        }
    }

    pub fn record_context(&self) -> RecordContext<'_> {
        RecordContext {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            headers: &self.headers,
        }
    }

    /// Records the first failure; the record's processing stops being useful.
    pub fn fail(&mut self, e: StreamsError) {
        if self.failure.is_none() {
            self.failure = Some(e);
        }
    }

    /// The task's store `name`, or a failure (a store a processor was not connected to).
    fn store(&mut self, name: &str) -> Option<Store> {
        match self.task.stores.get(name) {
            Some(s) => Some(s.clone()),
            None => {
                self.fail(StreamsError::InvalidTopology(format!(
                    "store {name} is not connected to task {}",
                    self.task.id
                )));
                None
            }
        }
    }

    /// Runs `f` on store `name`'s bytes; a failure is recorded and gives `None`.
    pub fn with_store<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&dyn RawStore) -> Result<T, StoreError>,
    ) -> Option<T> {
        let store = self.store(name)?;
        match f(store.raw.as_ref()) {
            Ok(t) => Some(t),
            Err(source) => {
                self.fail(StreamsError::Store {
                    store: name.to_string(),
                    source,
                });
                None
            }
        }
    }

    /// The value under `key` in store `name`, with its timestamp.
    pub fn get(&mut self, name: &str, key: &[u8]) -> Option<(i64, Bytes)> {
        let stored = self.with_store(name, |s| s.get(key))??;
        match unstamp(name, &stored) {
            Ok(v) => Some(v),
            Err(source) => {
                self.fail(StreamsError::Store {
                    store: name.to_string(),
                    source,
                });
                None
            }
        }
    }

    /// Sets (or with `None` removes) `key` in store `name`, and logs the change to the
    /// store's changelog partition with `timestamp`.
    pub fn put(&mut self, name: &str, key: Bytes, value: Option<Bytes>, timestamp: i64) {
        let Some(store) = self.store(name) else {
            return;
        };
        let written = match &value {
            Some(v) => store.raw.put(key.clone(), stamp(timestamp, v)),
            None => store.raw.delete(&key),
        };
        if let Err(source) = written {
            self.fail(StreamsError::Store {
                store: name.to_string(),
                source,
            });
            return;
        }
        if let Some(topic) = store.changelog {
            self.out.push(ProducerRecord {
                topic,
                partition: Some(self.task.id.partition),
                key: Some(key),
                value,
                headers: Vec::new(),
                timestamp: Some(timestamp),
            });
        }
    }
}

/// Where the record being processed came from (Kafka's `RecordContext`), for topic name
/// extractors.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext<'a> {
    /// The input topic.
    pub topic: &'a str,
    /// The input partition.
    pub partition: i32,
    /// The input offset.
    pub offset: i64,
    /// The record's timestamp (ms).
    pub timestamp: i64,
    /// The record's headers.
    pub headers: &'a [(String, Option<Bytes>)],
}

/// A compiled node taking records of `(K, V)`.
pub(crate) type Forward<K, V> = Arc<dyn Fn(&mut Ctx, K, V) + Send + Sync>;

/// A compiled source: deserializes a consumed record and forwards it; a deserialization
/// failure is returned for the exception handler to judge.
pub(crate) type SourceFn =
    Arc<dyn Fn(&mut Ctx, &ConsumerRecord) -> Result<(), StreamsError> + Send + Sync>;

pub(crate) type Erased = Box<dyn Any + Send + Sync>;

/// Makes a node's compiled form from its children's, in child order.
pub(crate) type BuildFn = Box<dyn FnOnce(&BuildEnv, Vec<&Erased>) -> Erased + Send>;

/// What compiling knows that building did not: the application, for internal topic names.
pub(crate) struct BuildEnv {
    pub application_id: String,
    internal: BTreeSet<String>,
    /// Punctuation entry points of Processor API nodes, by node name.
    pub punctuators: parking_lot::Mutex<HashMap<String, PunctuateFn>>,
}

/// Calls a processor node's `punctuate` in the task held by the context.
pub(crate) type PunctuateFn = Arc<dyn Fn(&mut Ctx, crate::processor::Punctuation) + Send + Sync>;

impl BuildEnv {
    /// The real name of topic `name`: internal topics get the `<application.id>-` prefix.
    pub fn topic(&self, name: &str) -> String {
        if self.internal.contains(name) {
            format!("{}-{name}", self.application_id)
        } else {
            name.to_string()
        }
    }
}

/// A forward from a closure (which gets the higher-ranked signature this way).
pub(crate) fn forward<K, V>(f: impl Fn(&mut Ctx, K, V) + Send + Sync + 'static) -> Forward<K, V> {
    Arc::new(f)
}

/// A source from a closure.
pub(crate) fn source_fn(
    f: impl Fn(&mut Ctx, &ConsumerRecord) -> Result<(), StreamsError> + Send + Sync + 'static,
) -> SourceFn {
    Arc::new(f)
}

/// A build function from a closure.
pub(crate) fn build_fn(
    f: impl FnOnce(&BuildEnv, Vec<&Erased>) -> Erased + Send + 'static,
) -> BuildFn {
    Box::new(f)
}

/// The children's forwards of type `(K, V)`.
pub(crate) fn typed<K: 'static, V: 'static>(children: Vec<&Erased>) -> Vec<Forward<K, V>> {
    children
        .into_iter()
        .filter_map(|c| {
            let f = c.downcast_ref::<Forward<K, V>>().cloned();
            debug_assert!(
                f.is_some(),
                "a child's input type differs from its parent's output"
            );
            f
        })
        .collect()
}

/// One forward calling each of `children` with the record (cloned for all but the last).
pub(crate) fn fan_out<K: Clone + 'static, V: Clone + 'static>(
    mut children: Vec<Forward<K, V>>,
) -> Forward<K, V> {
    match children.len() {
        0 => forward(|_, _, _| {}),
        1 => children.remove(0),
        _ => forward(move |ctx, k: K, v: V| {
            let (last, rest) = children.split_last().expect("more than one child");
            for c in rest {
                c(ctx, k.clone(), v.clone());
            }
            last(ctx, k, v)
        }),
    }
}

/// A processor node's build function from a typed maker: the children are fanned out into
/// one downstream forward.
pub(crate) fn build_with<K, V, K2, V2>(
    make: impl FnOnce(Forward<K2, V2>) -> Forward<K, V> + Send + 'static,
) -> BuildFn
where
    K: 'static,
    V: 'static,
    K2: Clone + 'static,
    V2: Clone + 'static,
{
    build_fn(move |_, children| Box::new(make(fan_out(typed::<K2, V2>(children)))))
}

/// What a node is, as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// Reads these topics.
    Source {
        /// The topics, in the order given.
        topics: Vec<String>,
    },
    /// Processes records.
    Processor {
        /// The state stores it uses.
        stores: Vec<String>,
    },
    /// Writes to one topic.
    Sink {
        /// The topic.
        topic: String,
    },
    /// Writes to the topic a function picks per record.
    DynamicSink {
        /// The extractor's type name (Kafka prints the extractor's class).
        extractor: String,
    },
}

pub(crate) struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub parents: Vec<usize>,
    pub children: Vec<usize>,
    pub build: Option<BuildFn>,
}

/// The graph as a builder grows it.
#[derive(Default)]
pub(crate) struct Graph {
    pub nodes: Vec<Node>,
    /// Kafka's shared name counter: every generated node name takes the next value.
    counter: u64,
    /// Mistakes found while building (Kafka throws TopologyException at once; they are
    /// reported by `KafkaStreams::new`).
    pub errors: Vec<String>,
    /// The state stores, as processors declared them.
    pub stores: Vec<Arc<StoreSpec>>,
    /// Topics the application owns (repartition topics), by their unprefixed names.
    pub internal_topics: BTreeSet<String>,
    /// Groups of source topics that must have as many partitions (joined inputs).
    pub copartition: Vec<Vec<String>>,
    /// Global tables.
    pub globals: Vec<crate::global::GlobalSpec>,
}

impl Graph {
    /// Declares store `spec`; a second store of the same name is a mistake.
    pub fn add_store(&mut self, spec: StoreSpec) {
        if self.stores.iter().any(|s| s.name == spec.name) {
            self.errors
                .push(format!("the store name {} is already used", spec.name));
        }
        self.stores.push(Arc::new(spec));
    }

    /// `prefix` followed by the next counter value in ten digits (`KSTREAM-FILTER-0000000001`).
    pub fn next_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}{:010}", self.counter);
        self.counter += 1;
        name
    }

    /// Adds a node under `parents` and returns its index.
    pub fn add(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: &[usize],
        build: BuildFn,
    ) -> usize {
        let id = self.nodes.len();
        if self.nodes.iter().any(|n| n.name == name) {
            self.errors
                .push(format!("the processor name {name} is already used"));
        }
        for &p in parents {
            if let Some(parent) = self.nodes.get_mut(p) {
                parent.children.push(id);
            }
        }
        self.nodes.push(Node {
            name,
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            build: Some(build),
        });
        id
    }
}

/// A processing graph made by [`crate::StreamsBuilder::build`], run by
/// [`crate::KafkaStreams`].
pub struct Topology {
    pub(crate) nodes: Vec<Node>,
    pub(crate) errors: Vec<String>,
    pub(crate) stores: Vec<Arc<StoreSpec>>,
    pub(crate) internal_topics: BTreeSet<String>,
    pub(crate) copartition: Vec<Vec<String>>,
    pub(crate) globals: Vec<crate::global::GlobalSpec>,
}

impl From<Graph> for Topology {
    fn from(g: Graph) -> Topology {
        Topology {
            nodes: g.nodes,
            errors: g.errors,
            stores: g.stores,
            internal_topics: g.internal_topics,
            copartition: g.copartition,
            globals: g.globals,
        }
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.describe())
    }
}

/// A topology compiled for running: per source topic (real names), the function to call
/// and its sub-topology; per sub-topology, what its tasks need.
pub(crate) struct Compiled {
    pub sources: HashMap<String, (SourceFn, usize)>,
    pub subtopologies: Vec<SubtopologyPlan>,
    pub application_id: String,
    /// Punctuation entry points of Processor API nodes, by node name.
    pub punctuators: HashMap<String, PunctuateFn>,
    /// Global tables (their sub-topologies make no tasks).
    pub globals: Vec<crate::global::GlobalSpec>,
}

/// What the tasks of one sub-topology read, write and keep.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubtopologyPlan {
    /// Its source topics (real names).
    pub sources: Vec<String>,
    /// The repartition topics its sinks write (real names).
    pub repartition_sinks: Vec<String>,
    /// Its stores.
    pub stores: Vec<Arc<StoreSpec>>,
}

/// Why a record could not be processed.
pub(crate) enum RecordError {
    /// Its key or value could not be read: the deserialization handler decides.
    Deserialization(StreamsError),
    /// Processing failed (a sink's serde, a store): the task cannot go on.
    Fatal(StreamsError),
}

impl Compiled {
    /// Runs `r` through `source` in `task` (updating its stream time); gives the task back
    /// with the records to produce.
    pub fn run(
        source: &SourceFn,
        mut task: Task,
        r: &ConsumerRecord,
    ) -> (Task, Result<Vec<ProducerRecord>, RecordError>) {
        task.stream_time = task.stream_time.max(r.timestamp);
        let mut ctx = Ctx::new(r, task);
        let outcome = source(&mut ctx, r);
        let Ctx {
            task, out, failure, ..
        } = ctx;
        let result = match (outcome, failure) {
            (Err(e), _) => Err(RecordError::Deserialization(e)),
            (Ok(()), Some(e)) => Err(RecordError::Fatal(e)),
            (Ok(()), None) => Ok(out),
        };
        (task, result)
    }

    /// Fires what is due in `task`: stream-time punctuations when its stream time reached
    /// them, wall-clock ones when `now` (ms) did. Gives the task back with the records to
    /// produce.
    pub fn punctuate(
        &self,
        task: Task,
        now: Option<i64>,
    ) -> (Task, Result<Vec<ProducerRecord>, StreamsError>) {
        let mut ctx = Ctx::without_record(task, 0);
        let due = ctx.task.due_punctuations(now);
        for p in due {
            let Some(f) = self.punctuators.get(&p.node) else {
                continue;
            };
            ctx.timestamp = p.timestamp;
            f(&mut ctx, p);
            if ctx.failure.is_some() {
                break;
            }
        }
        let Ctx {
            task, out, failure, ..
        } = ctx;
        match failure {
            Some(e) => (task, Err(e)),
            None => (task, Ok(out)),
        }
    }

    /// The repartition topics (real names), each with the sub-topologies that write it.
    pub fn repartition_topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .subtopologies
            .iter()
            .flat_map(|s| s.repartition_sinks.clone())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// All source topics (real names), sorted.
    pub fn source_topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.sources.keys().cloned().collect();
        t.sort();
        t
    }
}

impl Topology {
    /// The source topics, sorted.
    pub fn source_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|n| match &n.kind {
                NodeKind::Source { topics } => topics.clone(),
                _ => Vec::new(),
            })
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The sub-topologies: the connected parts of the graph (nodes joined by an edge or by
    /// a shared store), numbered as Kafka numbers them (in the order of their first source
    /// node's name). Each is its nodes' indices.
    fn groups(&self) -> Vec<Vec<usize>> {
        let n = self.nodes.len();
        let mut root: Vec<usize> = (0..n).collect();
        fn find(root: &mut [usize], mut i: usize) -> usize {
            while root[i] != i {
                root[i] = root[root[i]];
                i = root[i];
            }
            i
        }
        let mut by_store: HashMap<&str, usize> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for &p in &node.parents {
                if p < n {
                    let (a, b) = (find(&mut root, i), find(&mut root, p));
                    root[a] = b;
                }
            }
            if let NodeKind::Processor { stores } = &node.kind {
                for st in stores {
                    if let Some(&other) = by_store.get(st.as_str()) {
                        let (a, b) = (find(&mut root, i), find(&mut root, other));
                        root[a] = b;
                    } else {
                        by_store.insert(st, i);
                    }
                }
            }
        }
        let mut sources: Vec<(&str, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| matches!(node.kind, NodeKind::Source { .. }))
            .map(|(i, node)| (node.name.as_str(), i))
            .collect();
        sources.sort();
        let mut order: Vec<usize> = Vec::new();
        for (_, i) in sources {
            let r = find(&mut root, i);
            if !order.contains(&r) {
                order.push(r);
            }
        }
        let roots: Vec<usize> = (0..n).map(|i| find(&mut root, i)).collect();
        order
            .iter()
            .map(|&r| (0..n).filter(|&i| roots[i] == r).collect())
            .collect()
    }

    /// The graph as Kafka's `TopologyDescription` has it; its `Display` is Kafka's text.
    ///
    /// The order follows Kafka's `InternalTopologyBuilder.describeSubtopology` step by step:
    /// the nodes of a sub-topology are connected in Java `HashMap` order, each edge adding
    /// the child's current sub-graph size to its ancestors, and a node's predecessors and
    /// successors are `TreeSet`s ordered by those sizes *at insertion*, so later growth
    /// leaves them in the order the red-black tree was built in. A sub-topology's own node
    /// list is sorted by the final sizes, then by name.
    pub fn describe(&self) -> TopologyDescription {
        let n = self.nodes.len();
        let groups = self.groups();
        // Kafka's `AbstractNode.size`: the number of paths starting at the node, itself
        // included, over the edges connected so far.
        let mut size = vec![1i64; n];
        let mut preds: Vec<JavaTreeSet> = (0..n).map(|_| JavaTreeSet::default()).collect();
        let mut succs: Vec<JavaTreeSet> = (0..n).map(|_| JavaTreeSet::default()).collect();
        // Kafka's `NODE_COMPARATOR`: larger sub-graphs first, then by name.
        let compare = |size: &[i64], a: usize, b: usize| -> std::cmp::Ordering {
            if a == b {
                return std::cmp::Ordering::Equal;
            }
            size[b].cmp(&size[a]).then_with(|| {
                let (x, y) = (&self.nodes[a].name, &self.nodes[b].name);
                x.encode_utf16().cmp(y.encode_utf16())
            })
        };
        fn update_size(node: usize, delta: i64, size: &mut [i64], preds: &[JavaTreeSet]) {
            size[node] += delta;
            for p in preds[node].iter() {
                update_size(p, delta, size, preds);
            }
        }
        let mut described = Vec::new();
        for (id, members) in groups.into_iter().enumerate() {
            // `members` is in the builder's order, as Kafka fills the group's `HashSet`
            // (whose iteration order then fills `nodesByName`).
            for node in java_hash_order(members.iter().map(|&i| (i, self.nodes[i].name.as_str()))) {
                for &p in &self.nodes[node].parents {
                    if p >= n {
                        continue;
                    }
                    preds[node].add(p, |a, b| compare(&size, a, b));
                    succs[p].add(node, |a, b| compare(&size, a, b));
                    update_size(p, size[node], &mut size, &preds);
                }
            }
            described.push((id, members));
        }
        let names = |set: &JavaTreeSet| -> Vec<String> {
            set.iter().map(|i| self.nodes[i].name.clone()).collect()
        };
        let subtopologies = described
            .into_iter()
            .map(|(id, mut members)| {
                let global = self.globals.iter().any(|g| members.contains(&g.source));
                // The sub-topology's `TreeSet`, filled once the sizes are final.
                members.sort_by(|&a, &b| compare(&size, a, b));
                members.dedup_by(|a, b| compare(&size, *a, *b).is_eq());
                let nodes = members
                    .into_iter()
                    .map(|i| {
                        let node = &self.nodes[i];
                        NodeDescription {
                            name: node.name.clone(),
                            kind: node.kind.clone(),
                            predecessors: names(&preds[i]),
                            successors: names(&succs[i]),
                        }
                    })
                    .collect();
                SubtopologyDescription { id, nodes, global }
            })
            .collect();
        TopologyDescription { subtopologies }
    }

    /// Compiles the graph (consuming the build functions) for `application_id`, or says why
    /// it cannot run.
    pub(crate) fn compile(mut self, application_id: &str) -> Result<Compiled, StreamsError> {
        if !self.errors.is_empty() {
            return Err(StreamsError::InvalidTopology(self.errors.join("; ")));
        }
        if self.source_topics().is_empty() {
            return Err(StreamsError::InvalidTopology(
                "the topology has no source".into(),
            ));
        }
        let env = BuildEnv {
            application_id: application_id.to_string(),
            internal: std::mem::take(&mut self.internal_topics),
            punctuators: Default::default(),
        };
        let groups = self.groups();
        // The sub-topologies of global tables: described, never run as tasks.
        let global: Vec<usize> = groups
            .iter()
            .enumerate()
            .filter(|(_, m)| self.globals.iter().any(|g| m.contains(&g.source)))
            .map(|(id, _)| id)
            .collect();
        let mut group_of = vec![0usize; self.nodes.len()];
        let mut subtopologies = Vec::with_capacity(groups.len());
        for (id, members) in groups.iter().enumerate() {
            let mut plan = SubtopologyPlan::default();
            for &i in members {
                group_of[i] = id;
                match &self.nodes[i].kind {
                    NodeKind::Source { .. } if global.contains(&id) => {}
                    NodeKind::Source { topics } => {
                        plan.sources.extend(topics.iter().map(|t| env.topic(t)))
                    }
                    NodeKind::Sink { topic } if env.internal.contains(topic) => {
                        plan.repartition_sinks.push(env.topic(topic))
                    }
                    NodeKind::Processor { .. } if global.contains(&id) => {}
                    NodeKind::Processor { stores } => {
                        for st in stores {
                            let spec = self.stores.iter().find(|s| &s.name == st);
                            match spec {
                                Some(spec) if !plan.stores.contains(spec) => {
                                    plan.stores.push(spec.clone())
                                }
                                Some(_) => {}
                                None => {
                                    return Err(StreamsError::InvalidTopology(format!(
                                        "processor {} uses the unknown store {st}",
                                        self.nodes[i].name
                                    )))
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            subtopologies.push(plan);
        }
        let mut built: Vec<Option<Erased>> = (0..self.nodes.len()).map(|_| None).collect();
        let mut sources = HashMap::new();
        for i in (0..self.nodes.len()).rev() {
            let node = &mut self.nodes[i];
            let Some(build) = node.build.take() else {
                continue;
            };
            let children: Vec<&Erased> = node
                .children
                .iter()
                .filter_map(|&c| built.get(c).and_then(|b| b.as_ref()))
                .collect();
            let compiled = build(&env, children);
            let in_global = global.contains(&group_of[i]);
            if let (NodeKind::Source { topics }, false) = (&node.kind, in_global) {
                let Some(f) = compiled.downcast_ref::<SourceFn>() else {
                    return Err(StreamsError::InvalidTopology(format!(
                        "source {} did not compile to a source",
                        node.name
                    )));
                };
                for t in topics {
                    sources.insert(env.topic(t), (f.clone(), group_of[i]));
                }
            }
            built[i] = Some(compiled);
        }
        Ok(Compiled {
            sources,
            subtopologies,
            application_id: application_id.to_string(),
            punctuators: env.punctuators.into_inner(),
            globals: std::mem::take(&mut self.globals),
        })
    }

    /// Groups of source topics (real names for `application_id`) that must have as many
    /// partitions.
    pub(crate) fn copartition_groups(&self, application_id: &str) -> Vec<Vec<String>> {
        self.copartition
            .iter()
            .map(|g| {
                g.iter()
                    .map(|t| {
                        if self.internal_topics.contains(t) {
                            format!("{application_id}-{t}")
                        } else {
                            t.clone()
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// The order in which a Java `HashMap` or `HashSet<String>` of default capacity, filled
/// with `entries` in the order given, iterates: by bucket (the spread `String.hashCode`
/// masked by the table size), then in insertion order within a bucket. (Java turns a bucket
/// of eight or more entries in a table of 64 or more into a tree; that is not modelled.)
fn java_hash_order<'a>(entries: impl Iterator<Item = (usize, &'a str)>) -> Vec<usize> {
    let entries: Vec<(usize, &str)> = entries.collect();
    let mut capacity = 16usize;
    while entries.len() > capacity / 4 * 3 {
        capacity *= 2;
    }
    let bucket = |name: &str| -> usize {
        let h = name
            .encode_utf16()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut order: Vec<(usize, usize)> = entries.iter().map(|&(i, s)| (bucket(s), i)).collect();
    // Stable: entries of one bucket keep their insertion order.
    order.sort_by_key(|&(b, _)| b);
    order.into_iter().map(|(_, i)| i).collect()
}

/// Java's `TreeSet` (a `TreeMap` red-black tree) of node indices, whose comparator is
/// given at each insertion: Kafka's comparator reads sizes that change after insertion,
/// so the iteration order is the shape the tree was built in, not a sort by the final keys.
#[derive(Default)]
struct JavaTreeSet {
    root: Option<usize>,
    entries: Vec<TreeEntry>,
}

struct TreeEntry {
    key: usize,
    left: Option<usize>,
    right: Option<usize>,
    parent: Option<usize>,
    red: bool,
}

impl JavaTreeSet {
    /// `TreeMap.put`: walks down by `compare(key, entry)`; an entry comparing equal means
    /// the key is already there.
    fn add(&mut self, key: usize, compare: impl Fn(usize, usize) -> std::cmp::Ordering) {
        use std::cmp::Ordering;
        let mut at = self.root;
        let mut parent = None;
        let mut went_left = false;
        while let Some(e) = at {
            parent = Some(e);
            match compare(key, self.entries[e].key) {
                Ordering::Less => {
                    went_left = true;
                    at = self.entries[e].left;
                }
                Ordering::Greater => {
                    went_left = false;
                    at = self.entries[e].right;
                }
                Ordering::Equal => return,
            }
        }
        let id = self.entries.len();
        self.entries.push(TreeEntry {
            key,
            left: None,
            right: None,
            parent,
            red: false,
        });
        match parent {
            None => self.root = Some(id),
            Some(p) if went_left => self.entries[p].left = Some(id),
            Some(p) => self.entries[p].right = Some(id),
        }
        if parent.is_some() {
            self.fix_after_insertion(id);
        }
    }

    fn parent_of(&self, e: Option<usize>) -> Option<usize> {
        e.and_then(|e| self.entries[e].parent)
    }

    fn left_of(&self, e: Option<usize>) -> Option<usize> {
        e.and_then(|e| self.entries[e].left)
    }

    fn right_of(&self, e: Option<usize>) -> Option<usize> {
        e.and_then(|e| self.entries[e].right)
    }

    /// A missing entry is black.
    fn is_red(&self, e: Option<usize>) -> bool {
        e.is_some_and(|e| self.entries[e].red)
    }

    fn set_red(&mut self, e: Option<usize>, red: bool) {
        if let Some(e) = e {
            self.entries[e].red = red;
        }
    }

    fn rotate_left(&mut self, p: Option<usize>) {
        let Some(p) = p else { return };
        let Some(r) = self.entries[p].right else {
            return;
        };
        self.entries[p].right = self.entries[r].left;
        if let Some(rl) = self.entries[r].left {
            self.entries[rl].parent = Some(p);
        }
        let pp = self.entries[p].parent;
        self.entries[r].parent = pp;
        match pp {
            None => self.root = Some(r),
            Some(g) if self.entries[g].left == Some(p) => self.entries[g].left = Some(r),
            Some(g) => self.entries[g].right = Some(r),
        }
        self.entries[r].left = Some(p);
        self.entries[p].parent = Some(r);
    }

    fn rotate_right(&mut self, p: Option<usize>) {
        let Some(p) = p else { return };
        let Some(l) = self.entries[p].left else {
            return;
        };
        self.entries[p].left = self.entries[l].right;
        if let Some(lr) = self.entries[l].right {
            self.entries[lr].parent = Some(p);
        }
        let pp = self.entries[p].parent;
        self.entries[l].parent = pp;
        match pp {
            None => self.root = Some(l),
            Some(g) if self.entries[g].right == Some(p) => self.entries[g].right = Some(l),
            Some(g) => self.entries[g].left = Some(l),
        }
        self.entries[l].right = Some(p);
        self.entries[p].parent = Some(l);
    }

    /// `TreeMap.fixAfterInsertion` (CLR's rebalancing).
    fn fix_after_insertion(&mut self, new: usize) {
        let mut x = Some(new);
        self.set_red(x, true);
        while x.is_some() && x != self.root && self.is_red(self.parent_of(x)) {
            let grand = self.parent_of(self.parent_of(x));
            if self.parent_of(x) == self.left_of(grand) {
                let y = self.right_of(grand);
                if self.is_red(y) {
                    self.set_red(self.parent_of(x), false);
                    self.set_red(y, false);
                    self.set_red(grand, true);
                    x = grand;
                } else {
                    if x == self.right_of(self.parent_of(x)) {
                        x = self.parent_of(x);
                        self.rotate_left(x);
                    }
                    self.set_red(self.parent_of(x), false);
                    let grand = self.parent_of(self.parent_of(x));
                    self.set_red(grand, true);
                    self.rotate_right(grand);
                }
            } else {
                let y = self.left_of(grand);
                if self.is_red(y) {
                    self.set_red(self.parent_of(x), false);
                    self.set_red(y, false);
                    self.set_red(grand, true);
                    x = grand;
                } else {
                    if x == self.left_of(self.parent_of(x)) {
                        x = self.parent_of(x);
                        self.rotate_right(x);
                    }
                    self.set_red(self.parent_of(x), false);
                    let grand = self.parent_of(self.parent_of(x));
                    self.set_red(grand, true);
                    self.rotate_left(grand);
                }
            }
        }
        let root = self.root;
        self.set_red(root, false);
    }

    /// The keys in the tree's order (an in-order walk).
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let mut out = Vec::with_capacity(self.entries.len());
        let mut stack = Vec::new();
        let mut at = self.root;
        while at.is_some() || !stack.is_empty() {
            while let Some(e) = at {
                stack.push(e);
                at = self.entries[e].left;
            }
            if let Some(e) = stack.pop() {
                out.push(self.entries[e].key);
                at = self.entries[e].right;
            }
        }
        out.into_iter()
    }
}

/// A topology as Kafka describes it: its sub-topologies in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// The sub-topologies (connected parts), numbered from 0.
    pub subtopologies: Vec<SubtopologyDescription>,
}

/// One connected part of a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtopologyDescription {
    /// Its number.
    pub id: usize,
    /// A global table's (Kafka's `GlobalStore`: it makes no tasks).
    pub global: bool,
    /// Its nodes in Kafka's order: larger sub-graphs first, then by name.
    pub nodes: Vec<NodeDescription>,
}

/// One node of a described topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDescription {
    /// Its name (`KSTREAM-FILTER-0000000001`).
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// The names of the nodes feeding it, in Kafka's order.
    pub predecessors: Vec<String>,
    /// The names of the nodes it feeds, in Kafka's order.
    pub successors: Vec<String>,
}

/// Kafka's `nodeNames`: comma-separated, or `none`.
fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

impl fmt::Display for NodeDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (succ, pred) = (names(&self.successors), names(&self.predecessors));
        match &self.kind {
            NodeKind::Source { topics } => write!(
                f,
                "Source: {} (topics: [{}])\n      --> {succ}",
                self.name,
                topics.join(", ")
            ),
            NodeKind::Processor { stores } => write!(
                f,
                "Processor: {} (stores: [{}])\n      --> {succ}\n      <-- {pred}",
                self.name,
                stores.join(", ")
            ),
            NodeKind::Sink { topic } => {
                write!(f, "Sink: {} (topic: {topic})\n      <-- {pred}", self.name)
            }
            NodeKind::DynamicSink { extractor } => write!(
                f,
                "Sink: {} (extractor class: {extractor})\n      <-- {pred}",
                self.name
            ),
        }
    }
}

impl fmt::Display for SubtopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.global {
            // Kafka's GlobalStore text: no blank line after it.
            writeln!(
                f,
                "Sub-topology: {} for global store (will not generate tasks)",
                self.id
            )?;
            for node in &self.nodes {
                writeln!(f, "    {node}")?;
            }
            return Ok(());
        }
        writeln!(f, "Sub-topology: {}", self.id)?;
        for node in &self.nodes {
            writeln!(f, "    {node}")?;
        }
        writeln!(f)
    }
}

impl fmt::Display for TopologyDescription {
    /// Kafka's text, byte for byte (including its odd first indent).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topologies:\n ")?;
        for s in &self.subtopologies {
            write!(f, "  {s}")?;
        }
        Ok(())
    }
}
