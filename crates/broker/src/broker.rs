//! [`Broker`]: the state one node serves from: its config, the partition logs, the group
//! coordinator, and the metadata node whose image says which topics and partitions exist
//! and who leads them. Metadata changes go to the active controller through
//! [`MetadataNode::submit`]; the broker acts on the image that comes back
//! ([`crate::partitions`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strom_coordinator::txn::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};
use strom_coordinator::{GroupCoordinator, OFFSETS_TOPIC};
use strom_metadata::controller::ControllerConfig;
use strom_metadata::controller::NewTopic;
use strom_metadata::records::Endpoint;
use strom_metadata::{
    BrokerImage, ConfigResource, ControllerReply, ControllerRequest, MetadataImage, MetadataNode,
    QuorumConfig, TopicImage, METADATA_DIR,
};
use strom_replication::{Partition, ReplicaManager};
use strom_storage::{LogConfig, LogManager, LogManagerConfig, LOG_CONFIG_NAMES};
use strom_types::TopicPartition;

use crate::config::BrokerConfig;
use crate::dynamic_config;
use crate::errors::controller_refusal;

/// A topic to create, as a client asked for it (-1: the broker's default).
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions, or -1.
    pub num_partitions: i32,
    /// Replication factor, or -1.
    pub replication_factor: i16,
    /// Config overrides (`None` values are ignored, as Kafka does).
    pub configs: Vec<(String, Option<String>)>,
    /// Replicas of each partition, when the client chose them.
    pub assignment: Option<Vec<Vec<i32>>>,
}

/// What a group coordinator wrote, for the error a failed replication of it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupWrite {
    /// A classic group's assignment (SyncGroup): a timeout is REBALANCE_IN_PROGRESS.
    Assignment,
    /// Committed offsets, KIP-848 member and assignment records: a timeout is
    /// REQUEST_TIMED_OUT.
    Other,
}

/// Names only the broker itself may create (Kafka's internal topics).
pub const RESERVED_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Topic configs that are not log configs but that topics accept.
const OTHER_TOPIC_CONFIGS: &[&str] = &[
    "min.insync.replicas",
    "unclean.leader.election.enable",
    crate::dynamic_config::LEADER_THROTTLED_REPLICAS,
    crate::dynamic_config::FOLLOWER_THROTTLED_REPLICAS,
];

/// How long a metadata change may wait for the active controller when the request names
/// no timeout of its own (Kafka's default `request.timeout.ms`).
pub const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request waits for a topic it caused to be created (see
/// [`Broker::auto_create`]).
pub const AUTO_CREATE_WAIT: Duration = Duration::from_secs(2);

/// A client's `timeout_ms` as the bound of a metadata change; zero or less means the
/// default (Kafka answers those without waiting, which would turn every such request into a
/// timeout here, since this broker answers only once the change is committed).
pub fn client_timeout(timeout_ms: i32) -> Duration {
    if timeout_ms > 0 {
        Duration::from_millis(timeout_ms as u64)
    } else {
        CONTROLLER_TIMEOUT
    }
}

/// A topic operation refused with a Kafka error code and message.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Kafka error code.
    pub code: i16,
    /// Human-readable reason.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(e: ResponseError, message: impl Into<String>) -> Self {
        Refusal {
            code: e.code(),
            message: message.into(),
        }
    }
}

/// One node's state.
pub struct Broker {
    /// The configuration it started with.
    pub config: BrokerConfig,
    /// Every partition log this node holds a replica of.
    pub logs: Arc<LogManager>,
    /// The partition replicas over those logs: leaders, followers, high watermarks.
    pub replicas: Arc<ReplicaManager>,
    /// The metadata quorum, the controller (on voters), and the way to the active one.
    pub metadata: Arc<MetadataNode>,
    /// This node's advertised listeners, as bound (port 0 in tests becomes the real one).
    advertised: Vec<Endpoint>,
    /// The producer-id block in use: next id to give and the end of the block.
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Consumer groups and committed offsets.
    pub coordinator: Arc<GroupCoordinator>,
    /// Transactions (`__transaction_state`).
    pub transactions: Arc<TransactionCoordinator>,
    /// Connections to other brokers for transaction markers and KIP-890 verification.
    pub(crate) txn_links: crate::txn::BrokerConnections,
    /// How this node's connections to other brokers are secured (the inter-broker
    /// listener's protocol).
    pub(crate) inter_broker: Arc<strom_client::Connector>,
    /// ACL enforcement (`authorizer.class.name`).
    pub authorizer: crate::authz::Authorizer,
    /// Client quotas' rates.
    pub quotas: crate::quotas::Quotas,
    /// Event metrics (recorded only when an HTTP listener can serve them).
    pub metrics: crate::metrics::Metrics,
    /// Set while the Kafka listeners accept connections.
    pub(crate) serving: std::sync::atomic::AtomicBool,
    /// This process's incarnation (BrokerRegistration).
    pub(crate) incarnation_id: uuid::Uuid,
    /// The broker epoch the controller gave this incarnation (-1 before registration).
    pub(crate) epoch: AtomicI64,
    /// The image the logs and coordinator were last brought in line with.
    pub(crate) applied: Mutex<Arc<MetadataImage>>,
    /// Set once this node has caught up with the metadata log (when first unfenced): until
    /// then images are not applied, so a restarted broker never acts on the stale
    /// leaderships of its own old log (Kafka's brokers likewise publish metadata to their
    /// replica manager only once caught up).
    pub(crate) joined: std::sync::atomic::AtomicBool,
    /// Set once this node is registered and unfenced: requests wait for it.
    pub(crate) ready: tokio::sync::watch::Sender<bool>,
    /// Topics being created on first use, so concurrent requests start one creation.
    auto_creating: Mutex<std::collections::BTreeSet<String>>,
    /// Set by [`Broker::controlled_shutdown`]; the lifecycle task acts on it.
    pub(crate) shutdown_wanted: tokio::sync::watch::Sender<bool>,
    /// Set once the controller let this broker go.
    pub(crate) shutdown_done: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .finish()
    }
}

/// The quorum settings of a node: its voters (this node alone when none are configured)
/// and where the leader reaches it. `raft_addr` is the bound controller listener, else the
/// bound broker listener.
pub fn quorum_config(config: &BrokerConfig, raft_addr: &str) -> anyhow::Result<QuorumConfig> {
    let first_dir = config
        .log_dirs
        .first()
        .ok_or_else(|| anyhow::anyhow!("log.dirs is empty"))?
        .clone();
    std::fs::create_dir_all(&first_dir)?;
    let voters = if config.controller_quorum_voters.is_empty() {
        [(config.node_id, raft_addr.to_string())].into()
    } else {
        config.controller_quorum_voters.clone()
    };
    // One voter has no one to wait for: elect at once.
    let election = if voters.len() == 1 {
        50
    } else {
        config.controller_quorum_election_timeout_ms
    };
    Ok(QuorumConfig {
        node_id: config.node_id,
        voters,
        own_addr: raft_addr.to_string(),
        dir: first_dir.join(METADATA_DIR),
        segment_bytes: config.metadata_log_segment_bytes,
        snapshot_max_bytes: config.metadata_snapshot_max_bytes,
        snapshot_interval_ms: config.metadata_snapshot_interval_ms,
        election_timeout_ms: election,
        election_timeout_max_ms: None,
        tls: quorum_tls(config)?,
    })
}

/// The quorum's mutual TLS, when the controller listener is SSL: its keystore and truststore
/// serve both the controller listener and this node's connections to voters.
fn quorum_tls(config: &BrokerConfig) -> anyhow::Result<Option<strom_metadata::raft::QuorumTls>> {
    let Some(name) = config.controller_listener_names.first() else {
        return Ok(None);
    };
    if config.security_protocol(name) != crate::config::SecurityProtocol::Ssl {
        return Ok(None);
    }
    let settings = crate::tls::SslSettings::resolve(&config.raw, name);
    let server = settings
        .server_config()
        .map_err(|e| anyhow::anyhow!("controller listener {name}: {e}"))?;
    let mut client = strom_client::SecurityConfig::default();
    client.set("security.protocol", "SSL")?;
    for (k, v) in settings.client_properties() {
        client.set(k, &v)?;
    }
    let client = client
        .tls_client_config()
        .map_err(|e| anyhow::anyhow!("controller listener {name}: {e}"))?;
    Ok(Some(strom_metadata::raft::QuorumTls { client, server }))
}

/// Joins the metadata quorum: the node every process role starts with.
pub async fn start_metadata(
    config: &BrokerConfig,
    raft_addr: &str,
) -> anyhow::Result<Arc<MetadataNode>> {
    let quorum = quorum_config(config, raft_addr)?;
    let controller = ControllerConfig {
        broker_session_timeout_ms: config.broker_session_timeout_ms,
        broker_heartbeat_interval_ms: config.broker_heartbeat_interval_ms,
        auto_leader_rebalance: config.auto_leader_rebalance_enable,
        leader_imbalance_check_interval_ms: config.leader_imbalance_check_interval_seconds * 1000,
        leader_imbalance_per_broker_percentage: config.leader_imbalance_per_broker_percentage,
    };
    Ok(MetadataNode::start(quorum, controller).await?)
}

impl Broker {
    /// Opens every partition log this node's image names, starts following the metadata
    /// and registers with the controller (in the background: requests wait until this node
    /// is registered and unfenced).
    /// `advertised` is what clients and brokers are told of each listener (the bound port
    /// when the configured one is 0).
    pub async fn start(
        config: BrokerConfig,
        metadata: Arc<MetadataNode>,
        advertised: Vec<Endpoint>,
    ) -> anyhow::Result<Arc<Broker>> {
        let inter_broker = crate::auth::inter_broker_security(&config)?
            .connector()
            .map_err(|e| anyhow::anyhow!("the inter-broker listener's client settings: {e}"))?;
        let image = metadata.image();
        let mut manager_config = LogManagerConfig::new(config.log_dirs.clone());
        manager_config.default_config = config.log_defaults.clone();
        manager_config.retention_check_interval_ms = config.log_retention_check_interval_ms;
        let defaults = config.log_defaults.clone();
        let node = config.node_id;
        let logs = tokio::task::block_in_place(|| {
            LogManager::open_with(manager_config, &|tp: &TopicPartition| {
                topic_log_config(&defaults, &image, node, &tp.topic)
            })
        })?;
        let coordinator_config = config.coordinator.clone();
        let txn_config = config.transactions.clone();
        let replication = config.replication.clone();
        let authorizer = crate::authz::Authorizer::new(config.authorizer.clone());
        let quotas = crate::quotas::Quotas::new(config.quota_windows);
        let metrics = if config.http_listeners.is_empty() {
            crate::metrics::Metrics::off()
        } else {
            crate::metrics::Metrics::on()
        };
        let broker = Arc::new_cyclic(|me| Broker {
            replicas: ReplicaManager::new(
                node,
                replication,
                logs.clone(),
                Arc::new(crate::replica_link::BrokerLinks::new(me.clone())),
                Arc::new(crate::replica_link::BrokerProposer(me.clone())),
            ),
            config,
            logs,
            metadata,
            advertised,
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            coordinator: GroupCoordinator::new(coordinator_config),
            transactions: TransactionCoordinator::new(txn_config),
            txn_links: crate::txn::BrokerConnections::default(),
            inter_broker,
            authorizer,
            quotas,
            metrics,
            serving: std::sync::atomic::AtomicBool::new(false),
            incarnation_id: uuid::Uuid::new_v4(),
            epoch: AtomicI64::new(-1),
            applied: Mutex::new(Arc::new(MetadataImage::default())),
            joined: std::sync::atomic::AtomicBool::new(false),
            ready: tokio::sync::watch::channel(false).0,
            auto_creating: Mutex::new(Default::default()),
            shutdown_wanted: tokio::sync::watch::channel(false).0,
            shutdown_done: tokio::sync::watch::channel(false).0,
        });
        broker.replicas.start();
        broker.logs.start_background();
        broker.coordinator.start_expiry();
        broker
            .transactions
            .set_host(Arc::new(crate::txn::BrokerTxnHost(Arc::downgrade(&broker))));
        broker.transactions.start_timers();
        if broker.metrics.enabled() {
            tokio::spawn(upkeep_metrics(Arc::downgrade(&broker)));
        }
        tokio::spawn(crate::partitions::follow(Arc::downgrade(&broker)));
        tokio::spawn(crate::lifecycle::run(Arc::downgrade(&broker)));
        Ok(broker)
    }

    /// Whether this broker is registered, unfenced and caught up with the metadata log.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Whether its Kafka listeners accept connections.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Waits (up to `timeout`) until this broker is registered and unfenced.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        if *self.ready.borrow() {
            return true;
        }
        let mut rx = self.ready.subscribe();
        let ready = tokio::time::timeout(timeout, rx.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok());
        ready
    }

    /// The broker epoch of this incarnation, -1 before it registered.
    pub fn broker_epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Sends `request` to the active controller; the local image includes the change when
    /// this returns.
    pub(crate) async fn submit(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, Refusal> {
        self.submit_within(request, CONTROLLER_TIMEOUT).await
    }

    /// [`Broker::submit`] bounded by a client's own timeout (`timeout_ms` of CreateTopics
    /// and the like): past it the answer is REQUEST_TIMED_OUT.
    pub(crate) async fn submit_within(
        &self,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, Refusal> {
        let reply = self
            .metadata
            .submit(request, timeout)
            .await
            .map_err(|e| controller_refusal(&e))?;
        self.catch_up();
        Ok(reply)
    }

    /// A producer id never handed out before, not even before a restart: ids come from
    /// blocks the controller reserves in the metadata log.
    pub async fn allocate_producer_id(&self) -> Result<i64, Refusal> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let reply = self
                .submit(ControllerRequest::AllocateProducerIds {
                    broker_id: self.config.node_id,
                })
                .await?;
            let ControllerReply::ProducerIds { start, end, .. } = reply else {
                return Err(Refusal::new(
                    ResponseError::UnknownServerError,
                    "the controller answered AllocateProducerIds with something else",
                ));
            };
            *ids = (start, end);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// The registered, unfenced brokers, by id.
    pub fn live_brokers(&self, image: &MetadataImage) -> Vec<BrokerImage> {
        image.active_brokers().cloned().collect()
    }

    /// The id clients are given as the controller (they send it CreateTopics and the like,
    /// which any broker forwards): the active controller when it is a live broker; in split
    /// roles the lowest live broker, so every broker names the same one; and this broker
    /// itself while no controller is known (the quorum lost its majority), as the one node
    /// the client surely reaches.
    pub fn controller_for_clients(&self, image: &MetadataImage) -> i32 {
        match self.metadata.controller_id() {
            Some(l) if image.brokers.get(&l).is_some_and(|b| b.is_active()) => l,
            Some(_) => image
                .active_brokers()
                .map(|b| b.id)
                .next()
                .unwrap_or(self.config.node_id),
            None => self.config.node_id,
        }
    }

    /// The replica of a partition this broker leads: UNKNOWN_TOPIC_OR_PARTITION when the
    /// image has no such partition, NOT_LEADER_OR_FOLLOWER when another broker leads it (or
    /// none does), so clients refresh their metadata and go to the leader.
    pub fn leader_partition(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Partition>, (i16, String)> {
        let Some(p) = image
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(&partition))
        else {
            return Err((
                ResponseError::UnknownTopicOrPartition.code(),
                format!("{topic}-{partition} does not exist"),
            ));
        };
        let not_leader = |why: String| (ResponseError::NotLeaderOrFollower.code(), why);
        if p.leader != self.config.node_id {
            return Err(not_leader(format!(
                "broker {} does not lead {topic}-{partition} (its leader is {})",
                self.config.node_id, p.leader
            )));
        }
        match self.replicas.get(&TopicPartition::new(topic, partition)) {
            Some(r) if r.role() == strom_replication::Role::Leader => Ok(r),
            _ => Err(not_leader(format!(
                "{topic}-{partition} is not led from this broker yet"
            ))),
        }
    }

    /// Waits until the `__consumer_offsets` partition of `group` has replicated everything
    /// written to it so far (its high watermark reaches its log end), as acks=all would, up
    /// to `offsets.commit.timeout.ms`. A failure is answered with the code Kafka's group
    /// coordinator gives for `write` (its GroupMetadataManager's mapping).
    pub async fn wait_group_replicated(&self, group: &str, write: GroupWrite) -> Result<(), i16> {
        let tp = TopicPartition::new(OFFSETS_TOPIC, self.coordinator.partition_for(group));
        let Some(partition) = self.replicas.get(&tp) else {
            return Err(ResponseError::NotCoordinator.code());
        };
        partition.refresh_high_watermark();
        let end = partition.log().log_end_offset();
        if partition.high_watermark() >= end {
            return Ok(());
        }
        let timeout = Duration::from_millis(self.config.offsets_commit_timeout_ms);
        let waited = partition
            .wait_replicated(end, partition.leader_epoch(), timeout)
            .await;
        use strom_replication::ReplicationError as E;
        waited.map_err(|e| match e {
            E::UnknownPartition(_)
            | E::NotEnoughReplicas { .. }
            | E::NotEnoughReplicasAfterAppend { .. } => {
                ResponseError::CoordinatorNotAvailable.code()
            }
            E::NotLeader { .. } | E::NotReplica { .. } | E::Storage(_) => {
                ResponseError::NotCoordinator.code()
            }
            E::Timeout(_) if write == GroupWrite::Assignment => {
                ResponseError::RebalanceInProgress.code()
            }
            other => crate::errors::replication_error_code(&other),
        })
    }

    /// Where broker `id` is reached on listener `listener` (as Kafka answers, the endpoint
    /// of the listener a request came in on); `None` if it has no such listener.
    pub fn endpoint_of(
        &self,
        image: &MetadataImage,
        id: i32,
        listener: &str,
    ) -> Option<(String, u16)> {
        let endpoints = if id == self.config.node_id {
            &self.advertised
        } else {
            &image.brokers.get(&id)?.listeners
        };
        endpoints
            .iter()
            .find(|l| l.name == listener)
            .map(|l| (l.host.clone(), l.port))
    }

    /// Where broker `id` is reached by this one (`inter.broker.listener.name`).
    pub fn inter_broker_endpoint_of(
        &self,
        image: &MetadataImage,
        id: i32,
    ) -> Option<(String, u16)> {
        self.endpoint_of(image, id, self.config.inter_broker_listener()?)
    }

    /// This node's advertised listeners.
    pub fn advertised(&self) -> &[Endpoint] {
        &self.advertised
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.metadata.image()
    }

    /// The log config of a topic: broker defaults overlaid with the topic's overrides.
    pub fn log_config(&self, image: &MetadataImage, topic: &str) -> LogConfig {
        topic_log_config(&self.config.log_defaults, image, self.config.node_id, topic)
    }

    /// A topic's min.insync.replicas: its own, else the broker's (dynamic, then static).
    pub fn min_insync_replicas(&self, image: &MetadataImage, topic: &str) -> i32 {
        image
            .topics
            .get(topic)
            .and_then(|t| t.configs.get("min.insync.replicas"))
            .or_else(|| image.dynamic_broker_config(self.config.node_id, "min.insync.replicas"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.config.min_insync_replicas)
    }

    /// A KIP-848 group's (session timeout, heartbeat interval) in ms: its group configs,
    /// else the broker's `group.consumer.*`.
    pub fn group_timeouts(&self, image: &MetadataImage, group: &str) -> (i32, i32) {
        let defaults = self.group_defaults();
        match image.group_configs.get(group) {
            Some(overrides) => dynamic_config::group_values(overrides, defaults),
            None => defaults,
        }
    }

    /// Replaces the dynamic configs of `resource` (this broker's id, or empty for the
    /// cluster-wide default) with `configs`; every log picks them up from the image.
    pub async fn set_broker_configs(
        &self,
        resource: &str,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        if !resource.is_empty() && resource != self.config.node_id.to_string() {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("broker {resource} is not this broker"),
            ));
        }
        dynamic_config::check_broker_configs(configs)?;
        self.set_configs(
            ConfigResource::Broker(resource.to_string()),
            configs,
            validate_only,
        )
        .await
    }

    /// Replaces a group's config overrides (KIP-848) with `configs`.
    pub async fn set_group_configs(
        &self,
        group: &str,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let defaults = self.group_defaults();
        dynamic_config::check_group_configs(configs, defaults)?;
        self.set_configs(
            ConfigResource::Group(group.to_string()),
            configs,
            validate_only,
        )
        .await
    }

    /// Replaces a topic's config overrides with `configs` (validated); its logs pick them
    /// up from the image.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let mut check = self.config.log_defaults.clone();
        for (k, v) in configs {
            validate_topic_config(&mut check, k, v)?;
        }
        self.set_configs(
            ConfigResource::Topic(name.to_string()),
            configs,
            validate_only,
        )
        .await
    }

    async fn set_configs(
        &self,
        resource: ConfigResource,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        self.submit(ControllerRequest::SetConfigs {
            resource,
            configs: configs.clone(),
            validate_only,
        })
        .await
        .map(|_| ())
    }

    /// The broker's `group.consumer.*` (session timeout, heartbeat interval) in ms.
    fn group_defaults(&self) -> (i32, i32) {
        let c = self.coordinator.config();
        (
            c.consumer_session_timeout_ms,
            c.consumer_heartbeat_interval_ms,
        )
    }

    /// Creates a topic (or only validates, with `validate_only`) through the controller;
    /// returns it as this node's image holds it. `assignment` gives each partition's
    /// replicas; without it the controller places them.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        configs: &[(String, Option<String>)],
        assignment: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        timeout: Duration,
    ) -> Result<TopicImage, Refusal> {
        let spec = TopicSpec {
            name: name.to_string(),
            num_partitions,
            replication_factor,
            configs: configs.to_vec(),
            assignment,
        };
        self.create_topics_as(vec![spec], (validate_only, timeout), false)
            .await
            .pop()
            .unwrap_or_else(|| Err(Refusal::new(ResponseError::UnknownServerError, "no result")))
    }

    /// Creates topics through the controller in one commit (each checked on its own; the
    /// ones that pass are created together), in the order given.
    pub async fn create_topics(
        &self,
        specs: Vec<TopicSpec>,
        validate_only: bool,
        timeout: Duration,
    ) -> Vec<Result<TopicImage, Refusal>> {
        self.create_topics_as(specs, (validate_only, timeout), false)
            .await
    }

    /// Creates `__consumer_offsets` if it does not exist yet (Kafka does so on the first
    /// FindCoordinator for a group). Its replication factor is
    /// offsets.topic.replication.factor, capped at the brokers registered (where Kafka would
    /// refuse until enough brokers exist), so a single node keeps working.
    pub async fn ensure_offsets_topic(self: &Arc<Self>) -> Result<(), Refusal> {
        self.ensure_internal_topic(OFFSETS_TOPIC).await
    }

    /// Creates internal topic `name` if it does not exist yet.
    pub async fn ensure_internal_topic(self: &Arc<Self>, name: &str) -> Result<(), Refusal> {
        if self.image().topics.contains_key(name) {
            return Ok(());
        }
        self.auto_create(name, true).await
    }

    /// Creates `name` as Metadata and FindCoordinator do on first use, in the background:
    /// the request waits up to [`AUTO_CREATE_WAIT`] for it, then is answered
    /// LEADER_NOT_AVAILABLE ("being created") while the creation carries on, so a request
    /// never holds its connection for long when the controller is slow or unreachable.
    pub async fn auto_create(self: &Arc<Self>, name: &str, internal: bool) -> Result<(), Refusal> {
        let being_created = || {
            Refusal::new(
                ResponseError::LeaderNotAvailable,
                format!("topic '{name}' is being created"),
            )
        };
        if !self.auto_creating.lock().insert(name.to_string()) {
            return Err(being_created());
        }
        let broker = self.clone();
        let topic = name.to_string();
        let task = tokio::spawn(async move {
            let outcome = if internal {
                broker.create_internal_topic(&topic).await
            } else {
                broker
                    .create_topic(&topic, -1, -1, &[], None, false, CONTROLLER_TIMEOUT)
                    .await
                    .map(|_| ())
            };
            broker.auto_creating.lock().remove(&topic);
            if let Err(r) = &outcome {
                tracing::info!(topic, reason = %r.message, "auto-creation refused");
            }
            outcome
        });
        match tokio::time::timeout(AUTO_CREATE_WAIT, task).await {
            Ok(Ok(Err(r))) if r.code == ResponseError::TopicAlreadyExists.code() => Ok(()),
            Ok(Ok(outcome)) => outcome,
            Ok(Err(join)) => Err(Refusal::new(
                ResponseError::UnknownServerError,
                format!("creating '{name}' failed: {join}"),
            )),
            Err(_) => Err(being_created()),
        }
    }

    /// Creates `__consumer_offsets` or `__transaction_state` with the partitions,
    /// replication factor (capped at the brokers registered) and configs the broker's
    /// `offsets.topic.*` or `transaction.state.log.*` settings give.
    async fn create_internal_topic(&self, name: &str) -> Result<(), Refusal> {
        let image = self.image();
        let registered = image.brokers.len().max(1);
        let c = &self.config;
        let (partitions, rf, segment_bytes) = if name == TRANSACTION_STATE_TOPIC {
            (
                c.transactions.partitions,
                c.transaction_state_replication_factor,
                c.transaction_state_segment_bytes,
            )
        } else {
            (
                self.coordinator.config().offsets_topic_partitions,
                c.offsets_topic_replication_factor,
                c.offsets_topic_segment_bytes,
            )
        };
        let rf = (rf as usize).min(registered) as i16;
        let mut configs = vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            ("segment.bytes".to_string(), Some(segment_bytes.to_string())),
        ];
        if name == TRANSACTION_STATE_TOPIC {
            let min_isr = c.transaction_state_min_isr.min(i32::from(rf)).max(1);
            configs.push(("min.insync.replicas".to_string(), Some(min_isr.to_string())));
        }
        let spec = TopicSpec {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor: rf,
            configs,
            assignment: None,
        };
        let created = self
            .create_topics_as(vec![spec], (false, CONTROLLER_TIMEOUT), true)
            .await
            .pop();
        match created
            .unwrap_or_else(|| Err(Refusal::new(ResponseError::UnknownServerError, "no result")))
        {
            Ok(_) => Ok(()),
            Err(r) if r.code == ResponseError::TopicAlreadyExists.code() => Ok(()),
            Err(r) => Err(r),
        }
    }

    /// What a broker checks of a new topic before the controller sees it: name, reserved
    /// names, partition count, config values; and the broker defaults it fills in.
    fn new_topic(&self, spec: TopicSpec, internal: bool) -> Result<NewTopic, Refusal> {
        let name = spec.name;
        validate_topic_name(&name)?;
        if RESERVED_TOPICS.contains(&name.as_str()) && !internal {
            return Err(Refusal::new(
                ResponseError::InvalidTopicException,
                format!("{name} is reserved for the broker's internal use"),
            ));
        }
        let partitions = match (&spec.assignment, spec.num_partitions) {
            (Some(a), _) => a.len() as i32,
            (None, -1) => self.config.num_partitions,
            (None, n) => n,
        };
        if partitions < 1 {
            return Err(Refusal::new(
                ResponseError::InvalidPartitions,
                format!(
                    "number of partitions must be at least 1, got {}",
                    spec.num_partitions
                ),
            ));
        }
        let replication_factor = if spec.replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            spec.replication_factor
        };
        let mut log_config = self.config.log_defaults.clone();
        let mut configs = BTreeMap::new();
        for (key, value) in spec.configs {
            let Some(value) = value else { continue };
            validate_topic_config(&mut log_config, &key, &value)?;
            configs.insert(key, value);
        }
        Ok(NewTopic {
            name,
            partitions,
            replication_factor,
            configs,
            assignment: spec.assignment,
        })
    }

    async fn create_topics_as(
        &self,
        specs: Vec<TopicSpec>,
        (validate_only, timeout): (bool, Duration),
        internal: bool,
    ) -> Vec<Result<TopicImage, Refusal>> {
        let mut out: Vec<Result<TopicImage, Refusal>> = Vec::with_capacity(specs.len());
        let mut asked = Vec::new();
        for spec in specs {
            match self.new_topic(spec, internal) {
                Ok(t) => {
                    asked.push((out.len(), t));
                    // Replaced below by the controller's answer.
                    out.push(Err(Refusal::new(
                        ResponseError::UnknownServerError,
                        "pending",
                    )));
                }
                Err(r) => out.push(Err(r)),
            }
        }
        if asked.is_empty() {
            return out;
        }
        let topics: Vec<NewTopic> = asked.iter().map(|(_, t)| t.clone()).collect();
        let reply = self
            .submit_within(
                ControllerRequest::CreateTopics {
                    topics,
                    validate_only,
                },
                timeout,
            )
            .await;
        let results = match reply {
            Ok(ControllerReply::Topics { results, .. }) if results.len() == asked.len() => results,
            Ok(_) => {
                let r = Refusal::new(
                    ResponseError::UnknownServerError,
                    "the controller answered CreateTopics with something else",
                );
                for (i, _) in &asked {
                    out[*i] = Err(r.clone());
                }
                return out;
            }
            Err(r) => {
                for (i, _) in &asked {
                    out[*i] = Err(r.clone());
                }
                return out;
            }
        };
        let image = self.image();
        for ((i, topic), result) in asked.into_iter().zip(results) {
            out[i] = match result {
                Err(e) => Err(controller_refusal(&e)),
                Ok(topic_id) if validate_only => Ok(TopicImage {
                    name: topic.name,
                    topic_id,
                    partitions: Default::default(),
                    configs: topic.configs,
                }),
                Ok(topic_id) => {
                    tracing::info!(
                        topic = %topic.name,
                        partitions = topic.partitions,
                        replication_factor = topic.replication_factor,
                        "created topic"
                    );
                    image
                        .topics
                        .get(&topic.name)
                        .filter(|t| t.topic_id == topic_id)
                        .cloned()
                        .ok_or_else(|| {
                            Refusal::new(
                                ResponseError::UnknownServerError,
                                "the topic was committed but this node's image does not hold it yet",
                            )
                        })
                }
            };
        }
        out
    }

    /// Checks what a manual replica assignment (CreateTopics, CreatePartitions) can be
    /// checked for before it reaches the controller, which also checks that the brokers it
    /// names are registered. Returns its replication factor.
    pub fn check_replica_assignment(&self, assignment: &[Vec<i32>]) -> Result<i16, Refusal> {
        strom_metadata::controller::topics::assignment_shape(assignment)
            .map_err(|e| controller_refusal(&e))
    }

    /// Deletes a topic through the controller; its logs go as the image drops it.
    pub async fn delete_topic(&self, name: &str, timeout: Duration) -> Result<uuid::Uuid, Refusal> {
        let reply = self
            .submit_within(
                ControllerRequest::DeleteTopic {
                    name: name.to_string(),
                },
                timeout,
            )
            .await?;
        tracing::info!(topic = name, "deleted topic");
        match reply {
            ControllerReply::Topic { topic_id, .. } => Ok(topic_id),
            _ => Err(Refusal::new(
                ResponseError::UnknownServerError,
                "the controller answered DeleteTopic with something else",
            )),
        }
    }

    /// Grows a topic to `count` partitions, with the replicas of each new partition given
    /// by `assignment` when there is one.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignment: Option<&[Vec<i32>]>,
        validate_only: bool,
        timeout: Duration,
    ) -> Result<(), Refusal> {
        if let Some(a) = assignment {
            self.check_replica_assignment(a)?;
        }
        self.submit_within(
            ControllerRequest::CreatePartitions {
                name: name.to_string(),
                count,
                assignment: assignment.map(<[Vec<i32>]>::to_vec),
                validate_only,
            },
            timeout,
        )
        .await
        .map(|_| ())
    }

    /// Asks the controller to move this broker's leaderships away, then waits (up to
    /// `timeout`) until it lets the broker go. Returns whether it did.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> bool {
        self.shutdown_wanted.send_replace(true);
        let mut done = self.shutdown_done.subscribe();
        let let_go = tokio::time::timeout(timeout, done.wait_for(|d| *d))
            .await
            .is_ok_and(|r| r.is_ok());
        let_go
    }

    /// Stops the replica fetchers and checkpoints the high watermarks, closes every log and
    /// writes the clean-shutdown marker, then leaves the quorum.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| self.replicas.shutdown())?;
        tokio::task::block_in_place(|| self.logs.shutdown())?;
        self.metadata.shutdown().await;
        Ok(())
    }
}

pub(crate) fn topic_log_config(
    defaults: &LogConfig,
    image: &MetadataImage,
    node: i32,
    topic: &str,
) -> LogConfig {
    let mut config = dynamic_config::log_defaults(defaults, image, node);
    if let Some(t) = image.topics.get(topic) {
        for (k, v) in &t.configs {
            if let Err(e) = config.set(k, v) {
                tracing::warn!(topic, key = %k, error = %e, "ignoring an invalid stored topic config");
            }
        }
    }
    config
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), Refusal> {
    let invalid = |why: &str| {
        Err(Refusal::new(
            ResponseError::InvalidTopicException,
            format!("topic name '{name}' is illegal: {why}"),
        ))
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if name.len() > 249 {
        return invalid("it is longer than 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn validate_topic_config(config: &mut LogConfig, key: &str, value: &str) -> Result<(), Refusal> {
    let invalid = |msg: String| Err(Refusal::new(ResponseError::InvalidConfig, msg));
    if key.ends_with(".replication.throttled.replicas") && OTHER_TOPIC_CONFIGS.contains(&key) {
        return if strom_replication::throttle::valid_replica_list(value) {
            Ok(())
        } else {
            invalid(format!(
                "invalid value '{value}' for config {key}: expected '*' or a list of partition:broker"
            ))
        };
    }
    if OTHER_TOPIC_CONFIGS.contains(&key) {
        return match value.parse::<i64>() {
            Ok(v) if key != "min.insync.replicas" || v >= 1 => Ok(()),
            _ if key == "unclean.leader.election.enable" && value.parse::<bool>().is_ok() => Ok(()),
            _ => invalid(format!("invalid value '{value}' for config {key}")),
        };
    }
    if !LOG_CONFIG_NAMES.contains(&key) {
        return invalid(format!("unknown topic config {key}"));
    }
    match config.set(key, value) {
        Ok(_) => Ok(()),
        Err(e) => invalid(e.to_string()),
    }
}

/// Keeps the metrics' histograms drained between scrapes, while the broker lives.
async fn upkeep_metrics(broker: std::sync::Weak<Broker>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        match broker.upgrade() {
            Some(b) => b.metrics.upkeep(),
            None => return,
        }
    }
}
