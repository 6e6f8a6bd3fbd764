//! The controller: the only writer of metadata. It runs on every voter and acts while its
//! node leads the quorum (the active controller). Each [`ControllerRequest`] is checked
//! against the latest image, turned into records, committed through the quorum, and
//! answered with the log offset of the commit, so the asker can wait until its own image
//! includes the change.
//!
//! - [`topics`]: topics, partitions, configs and producer-id blocks.
//! - [`brokers`]: registration, heartbeats, fencing, controlled shutdown and the partition
//!   leader elections they cause.
//! - [`partitions`]: ISR changes leaders propose (AlterPartition) and leader elections.
//! - [`placement`]: where the replicas of new partitions go.
//! - [`reassign`]: moving replicas between brokers (AlterPartitionReassignments).
//! - [`scram`]: users' SCRAM credentials (AlterUserScramCredentials).
//! - [`acls`]: access control lists (CreateAcls, DeleteAcls).
//! - [`quotas`]: client quotas (AlterClientQuotas).
//!
//! Requests are handled one at a time (an async mutex), each after a read barrier on the
//! quorum, so every check sees the effect of every earlier commit.

pub mod acls;
pub mod brokers;
pub mod partitions;
pub mod placement;
pub mod quotas;
pub mod reassign;
pub mod scram;
pub mod topics;

/// A small image for the controller's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::image::{MetadataImage, PartitionImage};
    use crate::records::MetadataRecord;

    /// The id of topic `t`.
    pub(crate) const TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u128(7);

    /// Brokers `brokers`, registered at epoch `epoch_base + id` and unfenced, and topic `t`
    /// with partition 0 as `p`.
    pub(crate) fn image(brokers: &[i32], epoch_base: i64, p: &PartitionImage) -> MetadataImage {
        let mut records = Vec::new();
        for id in brokers {
            let epoch = epoch_base + i64::from(*id);
            records.push(MetadataRecord::RegisterBroker {
                broker_id: *id,
                incarnation_id: uuid::Uuid::from_u128(*id as u128),
                epoch,
                listeners: Vec::new(),
                rack: None,
            });
            records.push(MetadataRecord::UnfenceBroker {
                broker_id: *id,
                epoch,
            });
        }
        records.push(MetadataRecord::Topic {
            name: "t".into(),
            topic_id: TOPIC_ID,
        });
        records.push(MetadataRecord::partition(TOPIC_ID, 0, p));
        let mut image = MetadataImage::default();
        for (i, r) in records.iter().enumerate() {
            image.apply(i as i64, r);
        }
        image
    }
}

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::raft::{Quorum, QuorumError};
use crate::records::{Endpoint, MetadataRecord};

/// A resource whose configs can be set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker by id as a string, or empty for the cluster-wide default.
    Broker(String),
    /// A consumer group (KIP-848).
    Group(String),
}

/// A change asked of the active controller. Stateless checks (names, config values) are the
/// asking broker's; the controller checks what depends on the current metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// Create topics (CreateTopics): each succeeds or fails on its own; those that succeed
    /// are committed together, in one entry.
    CreateTopics {
        /// The topics.
        topics: Vec<NewTopic>,
        /// Check only.
        validate_only: bool,
    },
    /// Delete a topic (DeleteTopics).
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Add partitions to a topic (CreatePartitions).
    CreatePartitions {
        /// Topic.
        name: String,
        /// The new total.
        count: i32,
        /// Replicas of each new partition, when the client chose them.
        assignment: Option<Vec<Vec<i32>>>,
        /// Check only.
        validate_only: bool,
    },
    /// Replace a resource's config overrides (AlterConfigs, IncrementalAlterConfigs).
    SetConfigs {
        /// Whose.
        resource: ConfigResource,
        /// The complete new set of overrides, validated.
        configs: BTreeMap<String, String>,
        /// Check only.
        validate_only: bool,
    },
    /// Reserve a block of producer ids (AllocateProducerIds).
    AllocateProducerIds {
        /// The broker asking.
        broker_id: i32,
    },
    /// A broker starting (BrokerRegistration).
    RegisterBroker {
        /// `node.id`.
        broker_id: i32,
        /// Random per process start.
        incarnation_id: uuid::Uuid,
        /// Advertised listeners.
        listeners: Vec<Endpoint>,
        /// `broker.rack`.
        rack: Option<String>,
        /// Where the leader sends metadata entries to a broker-only node.
        raft_addr: String,
    },
    /// A broker is alive (BrokerHeartbeat).
    Heartbeat {
        /// `node.id`.
        broker_id: i32,
        /// The epoch its registration got.
        epoch: i64,
        /// How far it has applied the metadata log.
        metadata_offset: i64,
        /// It is shutting down and wants its leaderships moved first.
        want_shut_down: bool,
    },
    /// A partition leader's new ISR (AlterPartition).
    AlterPartition(partitions::AlterPartition),
    /// Elect leaders (ElectLeaders): preferred or unclean, for the partitions named or all.
    ElectLeaders {
        /// Preferred or unclean.
        kind: partitions::ElectionType,
        /// (topic, partition) pairs; `None` for every partition.
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Start or cancel partition reassignments (AlterPartitionReassignments).
    AlterReassignments {
        /// The partitions and their targets.
        changes: Vec<reassign::Reassignment>,
        /// KIP-860: whether a target may have another size than the current replicas.
        allow_replication_factor_change: bool,
    },
    /// Set or delete users' SCRAM credentials (AlterUserScramCredentials).
    AlterScramCredentials {
        /// Per user, in request order.
        users: Vec<scram::UserChange>,
    },
    /// Set or remove client quotas (AlterClientQuotas).
    AlterClientQuotas {
        /// Per entity, in request order.
        changes: Vec<quotas::QuotaChange>,
    },
    /// Create ACLs (CreateAcls).
    CreateAcls {
        /// In request order.
        acls: Vec<strom_types::acl::AclBinding>,
    },
    /// Delete the ACLs filters select (DeleteAcls).
    DeleteAcls {
        /// In request order.
        filters: Vec<strom_types::acl::AclFilter>,
    },
}

/// One topic of a [`ControllerRequest::CreateTopics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count (at least 1).
    pub partitions: i32,
    /// Replicas per partition (ignored with an assignment).
    pub replication_factor: i16,
    /// Validated config overrides.
    pub configs: BTreeMap<String, String>,
    /// Replicas of each partition, when the client chose them.
    pub assignment: Option<Vec<Vec<i32>>>,
}

/// What a committed request answers. `offset` is where the change was committed (the
/// current image's offset when nothing had to change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerReply {
    /// Done.
    Done {
        /// Commit offset.
        offset: i64,
    },
    /// Per topic of a CreateTopics, in order: its id, or why it was refused.
    Topics {
        /// The outcomes.
        results: Vec<Result<uuid::Uuid, ControllerError>>,
        /// Commit offset.
        offset: i64,
    },
    /// A topic was deleted.
    Topic {
        /// Its id.
        topic_id: uuid::Uuid,
        /// Commit offset.
        offset: i64,
    },
    /// Producer ids `start..end` are this broker's.
    ProducerIds {
        /// First id.
        start: i64,
        /// One past the last.
        end: i64,
        /// Commit offset.
        offset: i64,
    },
    /// The broker is registered.
    Registered {
        /// Its broker epoch.
        epoch: i64,
        /// Commit offset.
        offset: i64,
    },
    /// The heartbeat was heard.
    Heartbeat {
        /// Whether the broker is fenced.
        fenced: bool,
        /// Controlled shutdown is complete: the broker may exit.
        should_shut_down: bool,
        /// Commit offset.
        offset: i64,
    },
    /// Each item's outcome, in request order (AlterPartitionReassignments' partitions,
    /// AlterUserScramCredentials' users).
    Outcomes {
        /// The outcomes.
        outcomes: Vec<Result<(), ControllerError>>,
        /// Commit offset.
        offset: i64,
    },
    /// Per DeleteAcls filter, the ACLs it deleted or why it was refused.
    DeletedAcls {
        /// In request order.
        results: Vec<Result<Vec<strom_types::acl::AclBinding>, ControllerError>>,
        /// Commit offset.
        offset: i64,
    },
    /// Each partition's outcome of an ElectLeaders.
    Elections {
        /// In request order.
        outcomes: Vec<partitions::PartitionOutcome>,
        /// Commit offset.
        offset: i64,
    },
}

impl ControllerReply {
    /// Where the change was committed.
    pub fn offset(&self) -> i64 {
        match self {
            ControllerReply::Done { offset }
            | ControllerReply::Topic { offset, .. }
            | ControllerReply::Topics { offset, .. }
            | ControllerReply::ProducerIds { offset, .. }
            | ControllerReply::Registered { offset, .. }
            | ControllerReply::Heartbeat { offset, .. }
            | ControllerReply::Elections { offset, .. }
            | ControllerReply::Outcomes { offset, .. }
            | ControllerReply::DeletedAcls { offset, .. } => *offset,
        }
    }
}

/// Why the controller refused or could not complete a request. It crosses the wire between
/// nodes, so causes travel as their message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControllerError {
    /// The node asked is not the active controller.
    #[error("not the active controller (the leader is {leader:?})")]
    NotController {
        /// The leader it knows of.
        leader: Option<i32>,
    },
    /// TOPIC_ALREADY_EXISTS.
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// INVALID_PARTITIONS.
    #[error("{0}")]
    InvalidPartitions(String),
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// INVALID_REQUEST.
    #[error("{0}")]
    InvalidRequest(String),
    /// DUPLICATE_BROKER_REGISTRATION.
    #[error("{0}")]
    DuplicateBrokerRegistration(String),
    /// STALE_BROKER_EPOCH: the broker must register again.
    #[error("{0}")]
    StaleBrokerEpoch(String),
    /// REQUEST_TIMED_OUT: no controller committed the change in time.
    #[error("{0}")]
    Timeout(String),
    /// FENCED_LEADER_EPOCH: the proposer does not lead the partition in that epoch.
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// INVALID_UPDATE_VERSION: the partition changed since the proposal was made.
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// INELIGIBLE_REPLICA: a proposed ISR member is not a live replica.
    #[error("{0}")]
    IneligibleReplica(String),
    /// NO_REASSIGNMENT_IN_PROGRESS: a cancel of a partition not being reassigned.
    #[error("{0}")]
    NoReassignmentInProgress(String),
    /// RESOURCE_NOT_FOUND: a delete of something that does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// The quorum failed (UNKNOWN_SERVER_ERROR).
    #[error("the metadata quorum failed: {0}")]
    Quorum(String),
}

impl From<QuorumError> for ControllerError {
    fn from(e: QuorumError) -> Self {
        match e {
            QuorumError::NotLeader { leader } => ControllerError::NotController { leader },
            QuorumError::Raft(cause) => ControllerError::Quorum(cause.to_string()),
        }
    }
}

/// The controller's settings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms` (9000): a broker whose heartbeats stop this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms` (500): a broker a fifth of an interval late is
    /// probed (see [`Controller`]'s fencing).
    pub broker_heartbeat_interval_ms: u64,
    /// `auto.leader.rebalance.enable` (true): move leadership back to preferred replicas.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds` (300), in ms.
    pub leader_imbalance_check_interval_ms: u64,
    /// `leader.imbalance.per.broker.percentage` (10).
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            broker_session_timeout_ms: 9000,
            broker_heartbeat_interval_ms: 500,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// The controller of one voter node.
pub struct Controller {
    quorum: Arc<Quorum>,
    config: ControllerConfig,
    one_at_a_time: tokio::sync::Mutex<()>,
    /// When each broker was last heard by this node as the active controller.
    heard: Mutex<BTreeMap<i32, Instant>>,
    /// When this node last became the active controller: brokers it has not heard from yet
    /// are given a session from then before they are fenced.
    active_since: Mutex<Instant>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller over `quorum`; it starts its leadership and fencing task.
    pub fn start(quorum: Arc<Quorum>, config: ControllerConfig) -> Arc<Controller> {
        let controller = Arc::new(Controller {
            quorum,
            config,
            one_at_a_time: tokio::sync::Mutex::new(()),
            heard: Mutex::new(BTreeMap::new()),
            active_since: Mutex::new(Instant::now()),
        });
        tokio::spawn(leadership_loop(Arc::downgrade(&controller)));
        controller
    }

    /// The quorum it writes through.
    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    /// Handles `request` if this node is the active controller.
    pub async fn handle(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, ControllerError> {
        let _one = self.one_at_a_time.lock().await;
        self.quorum.linearize().await?;
        let image = self.quorum.image();
        match request {
            ControllerRequest::RegisterBroker {
                broker_id,
                incarnation_id,
                listeners,
                rack,
                raft_addr,
            } => {
                let recently_heard = self.heard_within(broker_id);
                let (records, epoch) = brokers::register(
                    &image,
                    broker_id,
                    incarnation_id,
                    listeners,
                    rack,
                    recently_heard,
                )?;
                let offset = self.commit(records, image.offset).await?;
                self.heard.lock().insert(broker_id, Instant::now());
                if let Err(e) = self.quorum.add_observer(broker_id, &raft_addr).await {
                    tracing::warn!(broker_id, error = %e, "could not add the broker as an observer of the metadata log");
                }
                tracing::info!(broker_id, epoch, "broker registered");
                Ok(ControllerReply::Registered { epoch, offset })
            }
            ControllerRequest::Heartbeat {
                broker_id,
                epoch,
                metadata_offset,
                want_shut_down,
            } => {
                let outcome =
                    brokers::heartbeat(&image, broker_id, epoch, metadata_offset, want_shut_down)?;
                self.heard.lock().insert(broker_id, Instant::now());
                let offset = self.commit(outcome.records, image.offset).await?;
                Ok(ControllerReply::Heartbeat {
                    fenced: outcome.fenced,
                    should_shut_down: outcome.should_shut_down,
                    offset,
                })
            }
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            } => {
                let (records, results) = topics::create_topics(&image, topics, validate_only);
                let offset = self.commit(records, image.offset).await?;
                Ok(ControllerReply::Topics { results, offset })
            }
            ControllerRequest::AlterPartition(change) => {
                let records = partitions::alter_partition(&image, &change)?;
                if !records.is_empty() {
                    tracing::info!(topic_id = %change.topic_id, partition = change.partition, isr = ?change.new_isr, "ISR change committed");
                }
                let offset = self.commit(records, image.offset).await?;
                Ok(ControllerReply::Done { offset })
            }
            ControllerRequest::ElectLeaders { kind, partitions } => {
                let (records, outcomes) =
                    partitions::elect_leaders(&image, kind, partitions.as_deref());
                let offset = self.commit(records, image.offset).await?;
                Ok(ControllerReply::Elections { outcomes, offset })
            }
            ControllerRequest::AlterReassignments {
                changes,
                allow_replication_factor_change,
            } => {
                let (records, outcomes) = reassign::alter_reassignments(
                    &image,
                    &changes,
                    allow_replication_factor_change,
                );
                if !records.is_empty() {
                    tracing::info!(
                        partitions = records.len(),
                        "partition reassignments committed"
                    );
                }
                let offset = self.commit(records, image.offset).await?;
                Ok(ControllerReply::Outcomes { outcomes, offset })
            }
            ControllerRequest::AlterScramCredentials { users } => {
                let (records, outcomes) = scram::alter(&image, &users);
                let offset = self.commit(records, image.offset).await?;
                Ok(ControllerReply::Outcomes { outcomes, offset })
            }
            ControllerRequest::AlterClientQuotas { changes } => {
                let (records, outcomes) = quotas::alter(&image, &changes);
                let offset = self.commit(records, image.offset).await?;
                Ok(ControllerReply::Outcomes { outcomes, offset })
            }
            ControllerRequest::CreateAcls { acls } => {
                let (records, outcomes) = acls::create(&image, &acls);
                let offset = self.commit(records, image.offset).await?;
                Ok(ControllerReply::Outcomes { outcomes, offset })
            }
            ControllerRequest::DeleteAcls { filters } => {
                let (records, results) = acls::delete(&image, &filters);
                let offset = self.commit(records, image.offset).await?;
                Ok(ControllerReply::DeletedAcls { results, offset })
            }
            ControllerRequest::AllocateProducerIds { broker_id } => {
                let (records, start, end) = topics::allocate_producer_ids(&image, broker_id);
                let offset = self.commit(records, image.offset).await?;
                Ok(ControllerReply::ProducerIds { start, end, offset })
            }
            other => {
                let (records, topic_id) = topics::change(&image, other)?;
                let offset = self.commit(records, image.offset).await?;
                Ok(match topic_id {
                    Some(topic_id) => ControllerReply::Topic { topic_id, offset },
                    None => ControllerReply::Done { offset },
                })
            }
        }
    }

    /// Commits `records` (nothing to commit answers `current`).
    async fn commit(
        &self,
        records: Vec<MetadataRecord>,
        current: i64,
    ) -> Result<i64, ControllerError> {
        if records.is_empty() {
            return Ok(current);
        }
        Ok(self.quorum.write(records).await?)
    }

    /// Whether `broker` itself was heard within the session timeout (a restarted
    /// controller has heard no one: a broker killed with it may register again at once).
    fn heard_within(&self, broker: i32) -> bool {
        let timeout = Duration::from_millis(self.config.broker_session_timeout_ms);
        self.heard
            .lock()
            .get(&broker)
            .is_some_and(|t| t.elapsed() < timeout)
    }

    /// How long since `broker` was last heard, counting from when this node became active
    /// for a broker it has not heard yet.
    fn silent_for(&self, broker: i32) -> Duration {
        let since = *self.active_since.lock();
        let last = self
            .heard
            .lock()
            .get(&broker)
            .copied()
            .unwrap_or(since)
            .max(since);
        last.elapsed()
    }

    /// Whether `broker`'s session is still open: heard within the timeout, or not yet
    /// due since this node became active.
    fn session_open(&self, broker: i32) -> bool {
        self.silent_for(broker) < Duration::from_millis(self.config.broker_session_timeout_ms)
    }

    /// Whether `broker`'s listener should be probed: this node has not heard it since it
    /// became the active controller (a controller that took over from a dead one learns
    /// at once whether that node's broker is gone too), or it is a fifth of an interval
    /// late with its heartbeat. Probing a live broker costs one accepted connection.
    fn should_probe(&self, broker: i32) -> bool {
        let heard = self.heard.lock().contains_key(&broker);
        !heard
            || self.silent_for(broker)
                > Duration::from_millis(self.config.broker_heartbeat_interval_ms * 6 / 5)
    }

    /// Fences every unfenced broker not heard from within the session timeout, and at once
    /// one that is late with its heartbeat (or not yet heard by a new controller) and whose
    /// listener refuses connections.
    ///
    /// The second is the fast failure detector: a refused connection on loopback or a LAN
    /// means no process listens on the broker's port any more (killed, crashed, exited),
    /// which a heartbeat timeout would only conclude seconds later. It cannot fire for a
    /// broker that is merely slow or paused (SIGSTOP, a long GC-like stall): the kernel
    /// still accepts connections on a live process's listening socket, so such a broker
    /// keeps its full `broker.session.timeout.ms`. An unreachable host (timeout, not
    /// refusal) also waits for the session timeout.
    async fn fence_silent_brokers(&self) -> Result<(), ControllerError> {
        let image = self.quorum.image();
        let mut gone = Vec::new();
        for b in image.active_brokers() {
            if !self.should_probe(b.id) || !self.session_open(b.id) {
                continue;
            }
            if let Some(l) = b.listeners.first() {
                let addr = format!("{}:{}", l.host, l.port);
                let probe = tokio::time::timeout(
                    Duration::from_millis(200),
                    tokio::net::TcpStream::connect(&addr),
                )
                .await;
                if let Ok(Err(e)) = probe {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        gone.push(b.id);
                    }
                }
            }
        }
        let _one = self.one_at_a_time.lock().await;
        let image = self.quorum.image();
        for id in gone {
            // Heard from while probing: it is alive.
            if !self.should_probe(id) {
                continue;
            }
            let records = brokers::fence(&image, id);
            if !records.is_empty() {
                tracing::warn!(
                    broker_id = id,
                    "broker missed a heartbeat and its listener refuses connections: fencing it"
                );
                self.quorum.write(records).await?;
                return Ok(());
            }
        }
        let silent: Vec<i32> = image
            .active_brokers()
            .map(|b| b.id)
            .filter(|id| !self.session_open(*id))
            .collect();
        for id in silent {
            let image = self.quorum.image();
            let records = brokers::fence(&image, id);
            if !records.is_empty() {
                tracing::warn!(broker_id = id, "broker heartbeats stopped: fencing it");
                self.quorum.write(records).await?;
            }
        }
        Ok(())
    }

    /// Moves leadership back to preferred replicas where a broker leads too few of the
    /// partitions it prefers (`auto.leader.rebalance.enable`).
    async fn rebalance_leaders(&self) -> Result<(), ControllerError> {
        let _one = self.one_at_a_time.lock().await;
        let image = self.quorum.image();
        let records = partitions::rebalance_leaders(
            &image,
            self.config.leader_imbalance_per_broker_percentage,
        );
        if !records.is_empty() {
            tracing::info!(
                partitions = records.len(),
                "moving leaders back to preferred replicas"
            );
            self.quorum.write(records).await?;
        }
        Ok(())
    }

    /// What to do on becoming the active controller: give the cluster its id if it has
    /// none, and give every broker a fresh session (a new controller has no history).
    async fn become_active(&self) -> Result<(), ControllerError> {
        let _one = self.one_at_a_time.lock().await;
        self.quorum.linearize().await?;
        let image = self.quorum.image();
        self.heard.lock().clear();
        *self.active_since.lock() = Instant::now();
        if image.cluster_id.is_empty() {
            self.quorum
                .write(vec![MetadataRecord::Cluster {
                    cluster_id: crate::log::new_cluster_id(),
                }])
                .await?;
        }
        tracing::info!(
            node_id = self.quorum.config().node_id,
            "this node is the active controller"
        );
        Ok(())
    }
}

/// Follows the quorum's leadership: on becoming leader, [`Controller::become_active`];
/// while leader, checks for silent brokers every half heartbeat interval.
async fn leadership_loop(controller: std::sync::Weak<Controller>) {
    let mut active = false;
    let mut last_rebalance = Instant::now();
    loop {
        let Some(c) = controller.upgrade() else {
            return;
        };
        let leader = c.quorum.is_leader();
        if leader && !active {
            match c.become_active().await {
                Ok(()) => active = true,
                Err(e) => tracing::debug!(error = %e, "not yet the active controller"),
            }
        } else if !leader {
            active = false;
        }
        if active {
            if let Err(e) = c.fence_silent_brokers().await {
                tracing::debug!(error = %e, "fencing check");
            }
            if c.config.auto_leader_rebalance
                && last_rebalance.elapsed()
                    >= Duration::from_millis(c.config.leader_imbalance_check_interval_ms)
            {
                last_rebalance = Instant::now();
                if let Err(e) = c.rebalance_leaders().await {
                    tracing::debug!(error = %e, "leader rebalance");
                }
            }
        }
        let quorum = c.quorum.clone();
        let every =
            Duration::from_millis((c.config.broker_heartbeat_interval_ms / 2).clamp(50, 500));
        drop(c);
        let _ = tokio::time::timeout(every, quorum.leader_changed()).await;
    }
}
