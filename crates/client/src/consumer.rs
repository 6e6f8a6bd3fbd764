//! The consumer: partitions are either assigned by hand (`assign`, with a starting point:
//! earliest, latest, an offset, or a timestamp through ListOffsets) or by a consumer group
//! (`subscribe` to topics or a pattern, with the classic protocol and its range, roundrobin
//! and cooperative-sticky assignors, or KIP-848; see [`crate::group`]). `poll` fetches from
//! each partition's leader (long poll: fetch.min.bytes / fetch.max.wait.ms), decodes the
//! batches (any codec) and returns records in offset order per partition; the next fetch is
//! sent before `poll` returns, so the following `poll` rarely waits. Positions advance as
//! records are returned; OFFSET_OUT_OF_RANGE resets a position per auto.offset.reset.
//! Offsets are committed by hand (`commit_sync`, `commit_async`) or every
//! auto.commit.interval.ms, and always before partitions are revoked or the consumer closes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_types::batch;

use crate::assignor::Assignor;
use crate::cluster::Cluster;
use crate::error::{ClientError, Result};
use crate::group::{GroupProtocol, GroupSettings, Membership, Subscription, TopicPartition};

/// Where a partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start offset.
    Earliest,
    /// The log end offset (only new records).
    Latest,
    /// This offset.
    Offset(i64),
    /// The first record at or after this timestamp (ms); the end if none.
    Timestamp(i64),
}

/// Consumer settings, under Kafka's client property names.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// bootstrap.servers.
    pub bootstrap_servers: Vec<String>,
    /// client.id.
    pub client_id: String,
    /// security.protocol, ssl.*, sasl.* ([`crate::security`]).
    pub security: crate::security::SecurityConfig,
    /// fetch.min.bytes (1).
    pub fetch_min_bytes: i32,
    /// fetch.max.wait.ms (500).
    pub fetch_max_wait: Duration,
    /// fetch.max.bytes (50 MiB).
    pub fetch_max_bytes: i32,
    /// max.partition.fetch.bytes (1 MiB).
    pub max_partition_fetch_bytes: i32,
    /// auto.offset.reset: where an out-of-range position goes (latest, Kafka's default).
    pub auto_offset_reset: StartAt,
    /// request.timeout.ms (30 s).
    pub request_timeout: Duration,
    /// group.id: the consumer group, required by `subscribe` and commits.
    pub group_id: Option<String>,
    /// group.instance.id: a static member's id (KIP-345).
    pub group_instance_id: Option<String>,
    /// group.protocol: `classic` (the default) or `consumer` (KIP-848).
    pub group_protocol: GroupProtocol,
    /// group.remote.assignor: the coordinator's assignor to use under KIP-848.
    pub group_remote_assignor: Option<String>,
    /// partition.assignment.strategy (classic), in order of preference (range,
    /// cooperative-sticky: Java's default). Cooperative rebalancing is used when every
    /// listed strategy is cooperative.
    pub partition_assignment_strategy: Vec<Assignor>,
    /// session.timeout.ms (45 s).
    pub session_timeout: Duration,
    /// heartbeat.interval.ms (3 s).
    pub heartbeat_interval: Duration,
    /// max.poll.interval.ms (5 min): also the rebalance timeout.
    pub max_poll_interval: Duration,
    /// enable.auto.commit (true with a group.id).
    pub enable_auto_commit: bool,
    /// auto.commit.interval.ms (5 s).
    pub auto_commit_interval: Duration,
    /// isolation.level: `read_uncommitted` (false, the default) or `read_committed` (true:
    /// records of aborted transactions are skipped and fetches stop at the last stable
    /// offset).
    pub read_committed: bool,
    /// metadata.max.age.ms (5 min): subscriptions notice new topics and partitions this often.
    pub metadata_max_age: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            bootstrap_servers: vec!["localhost:9092".into()],
            client_id: "strom-consumer".into(),
            security: Default::default(),
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 50 << 20,
            max_partition_fetch_bytes: 1 << 20,
            auto_offset_reset: StartAt::Latest,
            request_timeout: Duration::from_secs(30),
            group_id: None,
            group_instance_id: None,
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
            partition_assignment_strategy: vec![Assignor::Range, Assignor::CooperativeSticky],
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            read_committed: false,
            metadata_max_age: Duration::from_secs(300),
        }
    }
}

impl ConsumerConfig {
    /// Sets one property by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if self.security.set(key, value)? {
            return Ok(());
        }
        let bad = || ClientError::Protocol(format!("invalid value '{value}' for {key}"));
        let int = || value.parse::<i32>().map_err(|_| bad());
        let ms = || Ok::<_, ClientError>(Duration::from_millis(int()?.max(0) as u64));
        let boolean = || match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad()),
        };
        match key {
            "bootstrap.servers" => {
                self.bootstrap_servers = value.split(',').map(|s| s.trim().to_string()).collect()
            }
            "client.id" => self.client_id = value.to_string(),
            "fetch.min.bytes" => self.fetch_min_bytes = int()?,
            "fetch.max.wait.ms" => {
                self.fetch_max_wait = Duration::from_millis(int()?.max(0) as u64)
            }
            "fetch.max.bytes" => self.fetch_max_bytes = int()?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = int()?,
            "auto.offset.reset" => {
                self.auto_offset_reset = match value {
                    "earliest" => StartAt::Earliest,
                    "latest" => StartAt::Latest,
                    _ => return Err(bad()),
                }
            }
            "request.timeout.ms" => self.request_timeout = ms()?,
            "group.id" => self.group_id = Some(value.to_string()).filter(|g| !g.is_empty()),
            "group.instance.id" => {
                self.group_instance_id = Some(value.to_string()).filter(|g| !g.is_empty())
            }
            "group.protocol" => {
                self.group_protocol = match value.to_ascii_lowercase().as_str() {
                    "classic" => GroupProtocol::Classic,
                    "consumer" => GroupProtocol::Consumer,
                    _ => return Err(bad()),
                }
            }
            "group.remote.assignor" => self.group_remote_assignor = Some(value.to_string()),
            "partition.assignment.strategy" => {
                self.partition_assignment_strategy = value
                    .split(',')
                    .map(|a| Assignor::from_name(a.trim()).ok_or_else(bad))
                    .collect::<Result<_>>()?;
                if self.partition_assignment_strategy.is_empty() {
                    return Err(bad());
                }
            }
            "session.timeout.ms" => self.session_timeout = ms()?,
            "heartbeat.interval.ms" => self.heartbeat_interval = ms()?,
            "max.poll.interval.ms" => self.max_poll_interval = ms()?,
            "enable.auto.commit" => self.enable_auto_commit = boolean()?,
            "auto.commit.interval.ms" => self.auto_commit_interval = ms()?,
            "isolation.level" => {
                self.read_committed = match value {
                    "read_committed" => true,
                    "read_uncommitted" => false,
                    _ => return Err(bad()),
                }
            }
            "metadata.max.age.ms" => self.metadata_max_age = ms()?,
            _ => {
                return Err(ClientError::Protocol(format!(
                    "unknown consumer config {key}"
                )))
            }
        }
        Ok(())
    }
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers, in order (duplicates kept).
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Told when a group rebalance moves partitions (Kafka's ConsumerRebalanceListener). The
/// calls run inside `poll`, on the caller's task.
pub trait RebalanceListener: Send {
    /// These partitions were assigned (their positions are set).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
    /// These partitions are about to be taken away (their offsets were just committed when
    /// auto commit is on).
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
    /// These partitions were lost with the membership (no commit was possible); by default
    /// the same as revoked.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions)
    }
}

type Inflight = tokio::task::JoinHandle<(Vec<(TopicPartition, i64)>, Result<FetchResponse>)>;

/// A consumer: manual assignment or a consumer group.
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    /// Next offset to read, per assigned partition.
    positions: HashMap<TopicPartition, i64>,
    /// The group membership once subscribed.
    group: Option<Membership>,
    /// What the group assigned (a subset of `positions`' keys while offsets are looked up).
    owned: BTreeSet<TopicPartition>,
    /// In a mutex only so the consumer is `Sync` (its futures may move between threads).
    listener: Option<parking_lot::Mutex<Box<dyn RebalanceListener>>>,
    last_auto_commit: Instant,
    /// Fetches sent ahead, one per leader, with the offsets they asked for.
    inflight: Vec<Inflight>,
    /// Commits of a manually assigned consumer with a group.id.
    standalone: Option<crate::group::Committer>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("config", &self.config)
            .field("positions", &self.positions)
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        for f in &self.inflight {
            f.abort();
        }
    }
}

impl Consumer {
    /// A consumer with nothing assigned.
    pub fn new(config: ConsumerConfig) -> Consumer {
        let cluster = Cluster::secured(
            config.bootstrap_servers.clone(),
            &config.client_id,
            config.request_timeout + config.fetch_max_wait,
            config.metadata_max_age,
            &config.security,
        );
        let standalone = config
            .group_id
            .clone()
            .map(|g| crate::group::Committer::standalone(g, cluster.clone()));
        Consumer {
            standalone,
            config,
            cluster,
            positions: HashMap::new(),
            group: None,
            owned: BTreeSet::new(),
            listener: None,
            last_auto_commit: Instant::now(),
            inflight: Vec::new(),
        }
    }

    /// Assigns partitions (replacing the assignment), each from its starting point.
    pub async fn assign(&mut self, partitions: &[(String, i32, StartAt)]) -> Result<()> {
        if self.group.is_some() {
            return Err(ClientError::Protocol(
                "assign() after subscribe(): unsubscribe first".into(),
            ));
        }
        self.positions.clear();
        for (topic, partition, start) in partitions {
            let offset = self.resolve(topic, *partition, *start).await?;
            self.positions.insert((topic.clone(), *partition), offset);
        }
        Ok(())
    }

    /// Subscribes to `topics` with the consumer group of group.id; partitions come with the
    /// next `poll`s.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.start_group(Subscription::Topics(
            topics.iter().map(|t| t.to_string()).collect(),
        ))
    }

    /// Subscribes to every topic whose whole name matches `pattern` (a regular expression),
    /// including topics created later (noticed within metadata.max.age.ms).
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let re = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| ClientError::Protocol(format!("invalid pattern: {e}")))?;
        self.start_group(Subscription::Pattern(re))
    }

    fn start_group(&mut self, subscription: Subscription) -> Result<()> {
        let Some(group_id) = self.config.group_id.clone() else {
            return Err(ClientError::kafka(24)); // INVALID_GROUP_ID
        };
        if self.group.is_none() && !self.positions.is_empty() {
            return Err(ClientError::Protocol(
                "subscribe() after assign(): unassign first".into(),
            ));
        }
        match &mut self.group {
            Some(g) => g.resubscribe(subscription),
            None => {
                let c = &self.config;
                let settings = GroupSettings {
                    group_id,
                    instance_id: c.group_instance_id.clone(),
                    protocol: c.group_protocol,
                    assignors: c.partition_assignment_strategy.clone(),
                    remote_assignor: c.group_remote_assignor.clone(),
                    session_timeout: c.session_timeout,
                    heartbeat_interval: c.heartbeat_interval,
                    rebalance_timeout: c.max_poll_interval,
                };
                self.group = Some(Membership::start(
                    settings,
                    self.cluster.clone(),
                    subscription,
                ));
            }
        }
        Ok(())
    }

    /// Sets the listener told of rebalances.
    pub fn set_rebalance_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(parking_lot::Mutex::new(listener));
    }

    /// The partitions this consumer reads now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        let mut v: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        v.sort();
        v
    }

    /// Moves a partition's position.
    pub async fn seek(&mut self, topic: &str, partition: i32, start: StartAt) -> Result<()> {
        let offset = self.resolve(topic, partition, start).await?;
        self.positions
            .insert((topic.to_string(), partition), offset);
        Ok(())
    }

    /// The next offset to be read from a partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }

    /// The offset `start` stands for (ListOffsets for all but an explicit offset). A lost
    /// connection or a moved leader is retried a few times with fresh metadata.
    pub async fn resolve(&self, topic: &str, partition: i32, start: StartAt) -> Result<i64> {
        let mut backoff = Duration::from_millis(50);
        for _ in 0..5 {
            match self.resolve_once(topic, partition, start).await {
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, topic, partition, "ListOffsets; retrying");
                    self.cluster.invalidate(topic);
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                outcome => return outcome,
            }
        }
        self.resolve_once(topic, partition, start).await
    }

    async fn resolve_once(&self, topic: &str, partition: i32, start: StartAt) -> Result<i64> {
        let timestamp = match start {
            StartAt::Offset(o) => return Ok(o),
            StartAt::Earliest => -2,
            StartAt::Latest => -1,
            StartAt::Timestamp(t) => t,
        };
        let conn = self.cluster.leader(topic, partition).await?;
        let version = conn.version::<ListOffsetsRequest>()?;
        let mut request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])]);
        if version >= 2 {
            request.isolation_level = i8::from(self.config.read_committed);
        }
        let r = conn.send_at(&request, version).await?;
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("empty ListOffsets response".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::kafka(p.error_code));
        }
        if p.offset < 0 {
            // No record at or after the timestamp: the end.
            return Box::pin(self.resolve_once(topic, partition, StartAt::Latest)).await;
        }
        Ok(p.offset)
    }

    /// The offsets to commit for `of`: their positions.
    fn consumed_offsets(&self, of: &BTreeSet<TopicPartition>) -> Vec<(TopicPartition, i64)> {
        of.iter()
            .filter_map(|tp| self.positions.get(tp).map(|o| (tp.clone(), *o)))
            .collect()
    }

    /// The positions a commit covers: what the group assigned, or every manually assigned
    /// partition.
    fn all_consumed(&self) -> Vec<(TopicPartition, i64)> {
        if self.group.is_some() {
            self.consumed_offsets(&self.owned)
        } else {
            self.positions
                .iter()
                .map(|(tp, o)| (tp.clone(), *o))
                .collect()
        }
    }

    /// Commits go through the membership, or without one (manual assignment) when only
    /// group.id is set; without a group.id there is nothing to commit to.
    fn committer(&self) -> Result<crate::group::Committer> {
        if let Some(g) = &self.group {
            return Ok(g.committer());
        }
        self.standalone
            .clone()
            .ok_or_else(|| ClientError::kafka(24)) // INVALID_GROUP_ID
    }

    /// The group membership to pass to [`crate::Producer::send_offsets_to_transaction`]
    /// (Kafka's `groupMetadata()`); `None` when the consumer is not in a group.
    pub fn group_metadata(&self) -> Option<crate::group::GroupMetadata> {
        self.group.as_ref().map(|g| g.metadata())
    }

    /// Whether the group wants this member to rejoin (a rebalance is under way or about to
    /// be): the next poll will revoke or assign partitions. Lets a transactional
    /// consume-transform-produce loop commit before that poll (classic protocol; always
    /// false with KIP-848, whose assignments change between polls without a join).
    pub fn rebalance_pending(&self) -> bool {
        self.group
            .as_ref()
            .is_some_and(|g| g.protocol() == GroupProtocol::Classic && g.needs_join())
    }

    /// Commits the position of every partition this consumer reads, and waits.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.all_consumed();
        self.committer()?.commit(&offsets).await
    }

    /// Commits these offsets (the next offset to read, as Kafka commits) and waits.
    pub async fn commit_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.committer()?.commit(offsets).await
    }

    /// Commits the positions without waiting; the handle yields the outcome.
    pub fn commit_async(&mut self) -> Result<tokio::task::JoinHandle<Result<()>>> {
        let offsets = self.all_consumed();
        let committer = self.committer()?;
        Ok(tokio::spawn(
            async move { committer.commit(&offsets).await },
        ))
    }

    /// The group's committed offsets of `partitions` (absent where nothing is committed).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        self.committer()?.committed(partitions).await
    }

    /// Leaves the group after committing (when auto commit is on); the consumer can be
    /// dropped afterwards.
    pub async fn close(mut self) -> Result<()> {
        let mut outcome = Ok(());
        if let Some(mut g) = self.group.take() {
            if self.config.enable_auto_commit && !g.take_lost() {
                let offsets = self.consumed_offsets(&self.owned);
                outcome = g.committer().commit(&offsets).await;
            }
            let owned: Vec<TopicPartition> = self.owned.iter().cloned().collect();
            if let (Some(l), false) = (&self.listener, owned.is_empty()) {
                l.lock().on_partitions_revoked(&owned);
            }
            if let Err(e) = g.leave().await {
                tracing::debug!(error = %e, "leaving the group");
            }
        }
        outcome
    }

    /// Gives up partitions: commits their positions (auto commit), tells the listener, and
    /// forgets them. When `lost`, nothing is committed.
    async fn revoke(&mut self, parts: &BTreeSet<TopicPartition>, lost: bool) {
        if parts.is_empty() {
            return;
        }
        if !lost && self.config.enable_auto_commit {
            let offsets = self.consumed_offsets(parts);
            if let Ok(c) = self.committer() {
                if let Err(e) = c.commit(&offsets).await {
                    tracing::warn!(error = %e, "committing revoked partitions");
                }
            }
        }
        let list: Vec<TopicPartition> = parts.iter().cloned().collect();
        if let Some(l) = &self.listener {
            if lost {
                l.lock().on_partitions_lost(&list);
            } else {
                l.lock().on_partitions_revoked(&list);
            }
        }
        for tp in parts {
            self.positions.remove(tp);
            self.owned.remove(tp);
        }
    }

    /// Takes on partitions: positions from the committed offsets, else auto.offset.reset.
    async fn take_on(&mut self, parts: &BTreeSet<TopicPartition>) -> Result<()> {
        if parts.is_empty() {
            return Ok(());
        }
        let list: Vec<TopicPartition> = parts.iter().cloned().collect();
        let committed = self.committer()?.committed(&list).await?;
        for tp in &list {
            let offset = match committed.get(tp) {
                Some(o) => *o,
                None => {
                    self.resolve(&tp.0, tp.1, self.config.auto_offset_reset)
                        .await?
                }
            };
            self.positions.insert(tp.clone(), offset);
            self.owned.insert(tp.clone());
        }
        if let Some(l) = &self.listener {
            l.lock().on_partitions_assigned(&list);
        }
        Ok(())
    }

    /// The group's part of a poll: rejoin or reconcile as the coordinator asked, and commit
    /// when auto.commit.interval.ms has passed.
    async fn drive_group(&mut self) -> Result<()> {
        let Some(g) = &self.group else {
            self.auto_commit(); // a manually assigned consumer with a group.id
            return Ok(());
        };
        g.polled()?;
        if g.take_lost() {
            let owned = self.owned.clone();
            self.revoke(&owned, true).await;
            if let Some(g) = &self.group {
                g.set_owned(BTreeSet::new());
            }
        }
        let protocol = self.group.as_ref().map(|g| g.protocol());
        match protocol {
            Some(GroupProtocol::Classic) => {
                if let Some(g) = &self.group {
                    g.check_topics().await?;
                }
                let cooperative = self
                    .config
                    .partition_assignment_strategy
                    .iter()
                    .all(|a| a.is_cooperative());
                while self.group.as_ref().is_some_and(|g| g.needs_join()) {
                    if !cooperative {
                        // Eager: everything is given up before joining.
                        let owned = self.owned.clone();
                        self.revoke(&owned, false).await;
                    }
                    let owned = self.owned.clone();
                    let Some(g) = &mut self.group else { break };
                    let assigned = g.join(&owned).await?;
                    let revoked: BTreeSet<TopicPartition> =
                        owned.difference(&assigned).cloned().collect();
                    let added: BTreeSet<TopicPartition> =
                        assigned.difference(&owned).cloned().collect();
                    if !revoked.is_empty() {
                        self.revoke(&revoked, false).await;
                        // Cooperative: the partitions given up go to their new owners in a
                        // follow-up rebalance.
                        if let Some(g) = &self.group {
                            g.request_rejoin();
                        }
                    }
                    self.take_on(&added).await?;
                }
            }
            Some(GroupProtocol::Consumer) => {
                let target = self.group.as_ref().and_then(|g| g.take_target());
                if let Some(target) = target {
                    let revoked: BTreeSet<TopicPartition> =
                        self.owned.difference(&target).cloned().collect();
                    let added: BTreeSet<TopicPartition> =
                        target.difference(&self.owned).cloned().collect();
                    self.revoke(&revoked, false).await;
                    self.take_on(&added).await?;
                    if let Some(g) = &self.group {
                        g.set_owned(self.owned.clone());
                    }
                }
            }
            None => {}
        }
        self.auto_commit();
        Ok(())
    }

    /// Sends a commit of the positions (not waited for) when enable.auto.commit is on, a
    /// group.id is set and auto.commit.interval.ms has passed.
    fn auto_commit(&mut self) {
        if !self.config.enable_auto_commit
            || self.last_auto_commit.elapsed() < self.config.auto_commit_interval
        {
            return;
        }
        let Ok(committer) = self.committer() else {
            return; // no group.id: nothing to commit to
        };
        self.last_auto_commit = Instant::now();
        let offsets = self.all_consumed();
        tokio::spawn(async move {
            if let Err(e) = committer.commit(&offsets).await {
                tracing::warn!(error = %e, "auto commit failed");
            }
        });
    }

    /// Sends a fetch to each leader of the assigned partitions, in the background.
    async fn send_fetches(&mut self) -> Result<()> {
        let mut by_leader: HashMap<String, Vec<(TopicPartition, i64)>> = HashMap::new();
        for (tp, o) in &self.positions {
            let conn = self.cluster.leader(&tp.0, tp.1).await?;
            by_leader
                .entry(conn.addr().to_string())
                .or_default()
                .push((tp.clone(), *o));
        }
        for (addr, parts) in by_leader {
            let conn = self.cluster.connection(&addr).await?;
            let mut topics: HashMap<&str, Vec<FetchPartition>> = HashMap::new();
            for ((t, p), o) in &parts {
                topics.entry(t).or_default().push(
                    FetchPartition::default()
                        .with_partition(*p)
                        .with_fetch_offset(*o)
                        .with_partition_max_bytes(self.config.max_partition_fetch_bytes)
                        .with_log_start_offset(-1)
                        .with_current_leader_epoch(-1),
                );
            }
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(self.config.fetch_max_wait.as_millis() as i32)
                .with_min_bytes(self.config.fetch_min_bytes)
                .with_max_bytes(self.config.fetch_max_bytes)
                .with_isolation_level(i8::from(self.config.read_committed))
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            FetchTopic::default()
                                .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            // Topic names are sent, so the topic-id versions (13+) are not used.
            let version = conn.version_up_to::<FetchRequest>(12)?;
            self.inflight.push(tokio::spawn(async move {
                let r = conn.send_at(&request, version).await;
                (parts, r)
            }));
        }
        Ok(())
    }

    /// Returns what is there (waiting up to fetch.max.wait.ms for fetch.min.bytes) from
    /// every assigned partition, in offset order per partition. In a group, this is also
    /// where rebalances happen and auto commits are sent.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        self.drive_group().await?;
        if self.positions.is_empty() {
            // Nothing assigned (yet): wait a fetch's time rather than spin.
            tokio::time::sleep(self.config.fetch_max_wait.min(Duration::from_millis(100))).await;
            return Ok(Vec::new());
        }
        if self.inflight.is_empty() {
            self.send_fetches().await?;
        }
        let mut out = Vec::new();
        let inflight = std::mem::take(&mut self.inflight);
        let mut failure = None;
        for f in inflight {
            let (asked, r) = f
                .await
                .map_err(|e| ClientError::Protocol(format!("fetch task: {e}")))?;
            match r {
                Ok(r) => self.take_fetch(asked, r, &mut out).await?,
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "fetch failed; metadata refreshed");
                    for ((t, _), _) in &asked {
                        self.cluster.invalidate(t);
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // The next fetch goes out now, so the following poll finds it done.
        if !self.positions.is_empty() {
            self.send_fetches().await?;
        }
        Ok(out)
    }

    /// Applies one fetch response: records of partitions still at the offset asked for.
    async fn take_fetch(
        &mut self,
        asked: Vec<(TopicPartition, i64)>,
        r: FetchResponse,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<()> {
        if r.error_code != 0 {
            return Err(ClientError::kafka(r.error_code));
        }
        let asked: HashMap<TopicPartition, i64> = asked.into_iter().collect();
        for t in r.responses {
            let topic = t.topic.0.to_string();
            for p in t.partitions {
                let key = (topic.clone(), p.partition_index);
                let Some(position) = self.positions.get(&key).copied() else {
                    continue;
                };
                if asked.get(&key) != Some(&position) {
                    continue; // sought or reassigned since: stale data
                }
                match p.error_code {
                    0 => {}
                    1 => {
                        // OFFSET_OUT_OF_RANGE: auto.offset.reset decides.
                        let reset = self.config.auto_offset_reset;
                        let o = self.resolve(&topic, p.partition_index, reset).await?;
                        self.positions.insert(key, o);
                        continue;
                    }
                    code => {
                        let e = ClientError::kafka(code);
                        if e.is_retriable() {
                            self.cluster.invalidate(&topic);
                            continue;
                        }
                        return Err(e);
                    }
                }
                let Some(records) = p.records else { continue };
                let aborted = if self.config.read_committed {
                    p.aborted_transactions.unwrap_or_default()
                } else {
                    Vec::new()
                };
                let next = decode(&topic, p.partition_index, position, &records, aborted, out)?;
                self.positions.insert(key, next);
            }
        }
        Ok(())
    }
}

/// Appends the records of `bytes` at or after `from`, returning the next position. A batch
/// cut at the end of a fetch (Kafka may send one) is left for the next fetch. Under
/// read_committed, `aborted` lists the transactions aborted in this range (producer id,
/// first offset): their batches are skipped up to each one's ABORT marker, as Kafka's
/// consumer does.
fn decode(
    topic: &str,
    partition: i32,
    from: i64,
    bytes: &[u8],
    mut aborted: Vec<AbortedTransaction>,
    out: &mut Vec<ConsumerRecord>,
) -> Result<i64> {
    aborted.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
    let mut aborting: BTreeSet<i64> = BTreeSet::new();
    let mut next = from;
    for b in batch::batches(bytes) {
        let Ok(b) = b else { break };
        let h = *b.header();
        while aborted
            .last()
            .is_some_and(|a| a.first_offset <= h.last_offset())
        {
            if let Some(a) = aborted.pop() {
                aborting.insert(a.producer_id.0);
            }
        }
        if h.is_control() {
            if h.is_transactional() && is_abort_marker(&b) {
                aborting.remove(&h.producer_id);
            }
            next = next.max(h.next_offset());
            continue;
        }
        if h.is_transactional() && aborting.contains(&h.producer_id) {
            next = next.max(h.next_offset());
            continue;
        }
        let records = b
            .records(256 << 20)
            .map_err(|e| ClientError::Protocol(format!("{topic}-{partition}: {e}")))?;
        let log_append = h.timestamp_type() == batch::TimestampType::LogAppendTime;
        for r in records.iter() {
            let r = r.map_err(|e| ClientError::Protocol(format!("{topic}-{partition}: {e}")))?;
            let offset = h.base_offset + i64::from(r.offset_delta);
            if offset < from {
                continue;
            }
            out.push(ConsumerRecord {
                topic: topic.to_string(),
                partition,
                offset,
                timestamp: if log_append {
                    h.max_timestamp
                } else {
                    h.base_timestamp + r.timestamp_delta
                },
                key: r.key.map(Bytes::copy_from_slice),
                value: r.value.map(Bytes::copy_from_slice),
                headers: r
                    .headers()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(k).into_owned(),
                            v.map(Bytes::copy_from_slice),
                        )
                    })
                    .collect(),
            });
        }
        next = next.max(h.next_offset());
    }
    Ok(next)
}

/// True when a control batch holds an ABORT marker (control record key: version, type 0).
fn is_abort_marker(b: &batch::RecordBatch<'_>) -> bool {
    let Ok(records) = b.records(1 << 20) else {
        return false;
    };
    let first = records.iter().next();
    matches!(first, Some(Ok(r)) if r.key.is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProducerId;
    use strom_types::compression::Compression;
    use strom_types::record::BatchBuilder;

    /// A batch of `values` at `base`, transactional for `producer` when given.
    fn batch(base: i64, producer: Option<i64>, values: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None);
        if let Some(id) = producer {
            b = b.producer(id, 0, 0).transactional(true);
        }
        for v in values {
            b.append(1000, None, Some(v.as_bytes()), &[]);
        }
        b.build(base).unwrap()
    }

    /// A control batch with one marker: ABORT (type 0) or COMMIT (type 1).
    fn marker(base: i64, producer: i64, commit: bool) -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None)
            .producer(producer, 0, -1)
            .transactional(true)
            .control(true);
        let key = [0, 0, 0, u8::from(commit)];
        b.append(1000, Some(&key), Some(&[0, 0, 0, 0, 0, 0]), &[]);
        b.build(base).unwrap()
    }

    #[test]
    fn read_committed_skips_aborted_transactions_up_to_their_marker() {
        // 0-1: producer 7 aborted; 2: plain; 3: 7's ABORT marker; 4: producer 8, committed;
        // 5: 8's COMMIT; 6-7: producer 7 again, in a transaction not listed as aborted.
        let log = [
            batch(0, Some(7), &["a0", "a1"]),
            batch(2, None, &["plain"]),
            marker(3, 7, false),
            batch(4, Some(8), &["c4"]),
            marker(5, 8, true),
            batch(6, Some(7), &["n6", "n7"]),
        ]
        .concat();
        let aborted = vec![AbortedTransaction::default()
            .with_producer_id(ProducerId(7))
            .with_first_offset(0)];
        let mut out = Vec::new();
        let next = decode("t", 0, 0, &log, aborted, &mut out).unwrap();
        let values: Vec<&[u8]> = out.iter().map(|r| r.value.as_deref().unwrap()).collect();
        assert_eq!(values, vec![&b"plain"[..], b"c4", b"n6", b"n7"]);
        assert_eq!(next, 8);
        // read_uncommitted: everything but the markers.
        let mut all = Vec::new();
        decode("t", 0, 0, &log, Vec::new(), &mut all).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(
            all.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1, 2, 4, 6, 7]
        );
    }
}
