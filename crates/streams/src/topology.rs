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

/// The record being processed, and what processing it produced.
pub(crate) struct Ctx {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The input record's timestamp, which output records carry (stateless operations).
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Records for the producer.
    pub out: Vec<ProducerRecord>,
    /// The first fatal failure (a serialization error in a sink); later sinks skip.
    pub failure: Option<StreamsError>,
}

impl Ctx {
    pub fn new(r: &ConsumerRecord) -> Ctx {
        Ctx {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            headers: r.headers.clone(),
            out: Vec::new(),
            failure: None,
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
pub(crate) type BuildFn = Box<dyn FnOnce(Vec<&Erased>) -> Erased + Send>;

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
pub(crate) fn build_fn(f: impl FnOnce(Vec<&Erased>) -> Erased + Send + 'static) -> BuildFn {
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
    build_fn(move |children| Box::new(make(fan_out(typed::<K2, V2>(children)))))
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
        /// The state stores it uses (none in phase 1).
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
}

impl Graph {
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
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.describe())
    }
}

/// A topology compiled for running: per source topic, the function to call.
pub(crate) struct Compiled {
    pub sources: HashMap<String, SourceFn>,
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

    /// The graph as Kafka's `TopologyDescription` has it; its `Display` is Kafka's text.
    pub fn describe(&self) -> TopologyDescription {
        let n = self.nodes.len();
        // Sub-topologies are the connected parts of the graph.
        let mut root: Vec<usize> = (0..n).collect();
        fn find(root: &mut [usize], mut i: usize) -> usize {
            while root[i] != i {
                root[i] = root[root[i]];
                i = root[i];
            }
            i
        }
        for (i, node) in self.nodes.iter().enumerate() {
            for &p in &node.parents {
                if p < n {
                    let (a, b) = (find(&mut root, i), find(&mut root, p));
                    root[a] = b;
                }
            }
        }
        // Kafka numbers them in the order of their source nodes' names.
        let mut sources: Vec<(&str, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| matches!(node.kind, NodeKind::Source { .. }))
            .map(|(i, node)| (node.name.as_str(), i))
            .collect();
        sources.sort();
        let mut seen: BTreeSet<usize> = BTreeSet::new();
        let mut order = Vec::new();
        for (_, i) in sources {
            let r = find(&mut root, i);
            if seen.insert(r) {
                order.push(r);
            }
        }
        let roots: Vec<usize> = (0..n).map(|i| find(&mut root, i)).collect();
        // The size of the graph below each node, itself included (Kafka's ordering key).
        let mut size = vec![1usize; n];
        for i in (0..n).rev() {
            size[i] = 1 + self.nodes[i]
                .children
                .iter()
                .map(|&c| size[c])
                .sum::<usize>();
        }
        let sorted = |mut list: Vec<usize>| -> Vec<String> {
            list.sort_by(|&a, &b| {
                size[b]
                    .cmp(&size[a])
                    .then_with(|| self.nodes[a].name.cmp(&self.nodes[b].name))
            });
            list.dedup();
            list.into_iter()
                .map(|i| self.nodes[i].name.clone())
                .collect()
        };
        let subtopologies = order
            .iter()
            .enumerate()
            .map(|(id, &r)| {
                let members: Vec<usize> = (0..n).filter(|&i| roots[i] == r).collect();
                let nodes = sorted(members)
                    .into_iter()
                    .filter_map(|name| {
                        let node = self.nodes.iter().find(|x| x.name == name)?;
                        Some(NodeDescription {
                            name,
                            kind: node.kind.clone(),
                            predecessors: sorted(node.parents.clone()),
                            successors: sorted(node.children.clone()),
                        })
                    })
                    .collect();
                SubtopologyDescription { id, nodes }
            })
            .collect();
        TopologyDescription { subtopologies }
    }

    /// Compiles the graph (consuming the build functions), or says why it cannot run.
    pub(crate) fn compile(mut self) -> Result<Compiled, StreamsError> {
        if !self.errors.is_empty() {
            return Err(StreamsError::InvalidTopology(self.errors.join("; ")));
        }
        if self.source_topics().is_empty() {
            return Err(StreamsError::InvalidTopology(
                "the topology has no source".into(),
            ));
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
            let compiled = build(children);
            if let NodeKind::Source { topics } = &node.kind {
                let Some(f) = compiled.downcast_ref::<SourceFn>() else {
                    return Err(StreamsError::InvalidTopology(format!(
                        "source {} did not compile to a source",
                        node.name
                    )));
                };
                for t in topics {
                    sources.insert(t.clone(), f.clone());
                }
            }
            built[i] = Some(compiled);
        }
        Ok(Compiled { sources })
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
