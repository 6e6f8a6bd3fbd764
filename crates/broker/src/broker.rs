//! [`Broker`]: the state one node serves from: its config, the partition logs, and the
//! metadata log whose image says which topics and partitions exist.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strom_coordinator::{GroupCoordinator, OFFSETS_TOPIC};
use strom_metadata::{LocalMetadataLog, MetadataImage, MetadataLog, MetadataRecord, TopicImage};
use strom_storage::{LogConfig, LogManager, LogManagerConfig, LOG_CONFIG_NAMES};
use strom_types::TopicPartition;

use crate::config::BrokerConfig;
use crate::dynamic_config;

/// Names only the broker itself may create (Kafka's internal topics).
pub const RESERVED_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Topic configs that are not log configs but that topics accept.
const OTHER_TOPIC_CONFIGS: &[&str] = &["min.insync.replicas", "unclean.leader.election.enable"];

/// A topic operation refused with a Kafka error code and message.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Kafka error code.
    pub code: i16,
    /// Human-readable reason.
    pub message: String,
}

impl Refusal {
    fn new(e: ResponseError, message: impl Into<String>) -> Self {
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
    /// Every partition log.
    pub logs: Arc<LogManager>,
    /// The metadata quorum (one voter).
    pub metadata: Arc<LocalMetadataLog>,
    advertised: Mutex<(String, u16)>,
    topic_changes: Mutex<()>,
    /// The producer-id block in use: next id to give and the end of the block.
    producer_ids: Mutex<(i64, i64)>,
    /// Consumer groups and committed offsets.
    pub coordinator: Arc<GroupCoordinator>,
}

/// Producer ids are reserved in the metadata log this many at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .finish()
    }
}

impl Broker {
    /// Opens the metadata log and every partition log, creating logs the metadata names but
    /// the disk lacks.
    pub fn open(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        let first_dir = config
            .log_dirs
            .first()
            .ok_or_else(|| anyhow::anyhow!("log.dirs is empty"))?
            .clone();
        std::fs::create_dir_all(&first_dir)?;
        let metadata = Arc::new(LocalMetadataLog::open(&first_dir)?);
        let image = metadata.image();
        let mut manager_config = LogManagerConfig::new(config.log_dirs.clone());
        manager_config.default_config = config.log_defaults.clone();
        manager_config.retention_check_interval_ms = config.log_retention_check_interval_ms;
        let defaults = config.log_defaults.clone();
        let node = config.node_id;
        let logs = LogManager::open_with(manager_config, &|tp: &TopicPartition| {
            topic_log_config(&defaults, &image, node, &tp.topic)
        })?;
        let advertised = config
            .advertised_listeners
            .first()
            .map(|l| (l.host.clone(), l.port))
            .unwrap_or_else(|| ("127.0.0.1".into(), 9092));
        let coordinator_config = config.coordinator.clone();
        let broker = Arc::new(Broker {
            config,
            logs,
            metadata,
            advertised: Mutex::new(advertised),
            topic_changes: Mutex::new(()),
            producer_ids: Mutex::new((0, 0)),
            coordinator: GroupCoordinator::new(coordinator_config),
        });
        for topic in image.topics.values() {
            for p in topic.partitions.keys() {
                broker.logs.get_or_create(
                    &TopicPartition::new(topic.name.clone(), *p),
                    broker.log_config(&image, &topic.name),
                )?;
            }
        }
        broker
            .load_offsets_partitions()
            .map_err(|r| anyhow::anyhow!("loading {OFFSETS_TOPIC}: {}", r.message))?;
        broker.logs.start_background();
        broker.coordinator.start_expiry();
        Ok(broker)
    }

    /// A producer id never handed out before, not even before a restart: ids come from
    /// blocks reserved in the metadata log (as KRaft's controller allocates them).
    pub fn allocate_producer_id(&self) -> Result<i64, Refusal> {
        let mut ids = self.producer_ids.lock();
        if ids.0 >= ids.1 {
            let start = self.image().next_producer_id;
            let end = start + PRODUCER_ID_BLOCK_SIZE;
            self.metadata
                .append(&[MetadataRecord::ProducerIds {
                    broker_id: self.config.node_id,
                    next_producer_id: end,
                }])
                .map_err(|e| {
                    Refusal::new(
                        ResponseError::UnknownServerError,
                        format!("metadata log: {e}"),
                    )
                })?;
            *ids = (start, end);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// The host and port clients are told to use.
    pub fn advertised(&self) -> (String, u16) {
        self.advertised.lock().clone()
    }

    /// Sets the advertised port once the listener is bound (port 0 in tests).
    pub fn set_advertised_port(&self, port: u16) {
        self.advertised.lock().1 = port;
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
    /// cluster-wide default) with `configs`, and applies them to every log at once.
    pub fn set_broker_configs(
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
        let _one_at_a_time = self.topic_changes.lock();
        let image = self.image();
        let current = image
            .broker_configs
            .get(resource)
            .cloned()
            .unwrap_or_default();
        let records = config_changes(&current, configs, |name, value| {
            MetadataRecord::BrokerConfig {
                broker: resource.to_string(),
                name,
                value,
            }
        });
        if validate_only || records.is_empty() {
            return Ok(());
        }
        let image = self.append_metadata(&records)?;
        for topic in image.topics.values() {
            self.apply_log_config(&image, topic);
        }
        Ok(())
    }

    /// Replaces a group's config overrides (KIP-848) with `configs`.
    pub fn set_group_configs(
        &self,
        group: &str,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let defaults = self.group_defaults();
        dynamic_config::check_group_configs(configs, defaults)?;
        let _one_at_a_time = self.topic_changes.lock();
        let image = self.image();
        let current = image.group_configs.get(group).cloned().unwrap_or_default();
        let records = config_changes(&current, configs, |name, value| {
            MetadataRecord::GroupConfig {
                group: group.to_string(),
                name,
                value,
            }
        });
        if !validate_only && !records.is_empty() {
            self.append_metadata(&records)?;
        }
        Ok(())
    }

    /// Gives every partition log of `topic` the config `image` makes for it.
    fn apply_log_config(&self, image: &MetadataImage, topic: &TopicImage) {
        let config = self.log_config(image, &topic.name);
        for p in topic.partitions.keys() {
            if let Some(log) = self.logs.get(&TopicPartition::new(topic.name.as_str(), *p)) {
                log.set_config(config.clone());
            }
        }
    }

    /// The broker's `group.consumer.*` (session timeout, heartbeat interval) in ms.
    fn group_defaults(&self) -> (i32, i32) {
        let c = self.coordinator.config();
        (
            c.consumer_session_timeout_ms,
            c.consumer_heartbeat_interval_ms,
        )
    }

    fn append_metadata(&self, records: &[MetadataRecord]) -> Result<Arc<MetadataImage>, Refusal> {
        self.metadata.append(records).map_err(|e| {
            Refusal::new(
                ResponseError::UnknownServerError,
                format!("metadata log: {e}"),
            )
        })
    }

    /// Creates a topic (or only validates, with `validate_only`), recording it in the
    /// metadata log, then creating its partition logs.
    pub fn create_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        configs: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<TopicImage, Refusal> {
        self.create_topic_as(
            name,
            num_partitions,
            replication_factor,
            configs,
            validate_only,
            false,
        )
    }

    /// Creates `__consumer_offsets` if it does not exist yet (Kafka does so on the first
    /// FindCoordinator for a group) and makes this node the coordinator of its partitions.
    /// Its replication factor is offsets.topic.replication.factor capped at the brokers
    /// that exist (one), where Kafka would wait for enough brokers.
    pub fn ensure_offsets_topic(&self) -> Result<(), Refusal> {
        if self.image().topics.contains_key(OFFSETS_TOPIC) {
            return Ok(());
        }
        let configs = [
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            (
                "segment.bytes".to_string(),
                Some(self.config.offsets_topic_segment_bytes.to_string()),
            ),
        ];
        let partitions = self.coordinator.config().offsets_topic_partitions;
        match self.create_topic_as(OFFSETS_TOPIC, partitions, 1, &configs, false, true) {
            Ok(_) => {}
            Err(r) if r.code == ResponseError::TopicAlreadyExists.code() => return Ok(()),
            Err(r) => return Err(r),
        }
        self.load_offsets_partitions()
    }

    /// Loads every partition of `__consumer_offsets` this node leads into the coordinator.
    fn load_offsets_partitions(&self) -> Result<(), Refusal> {
        let image = self.image();
        let Some(topic) = image.topics.get(OFFSETS_TOPIC) else {
            return Ok(());
        };
        for (p, placement) in &topic.partitions {
            if placement.leader != self.config.node_id || self.coordinator.is_partition_loaded(*p) {
                continue;
            }
            let log = self
                .logs
                .get(&TopicPartition::new(OFFSETS_TOPIC, *p))
                .ok_or_else(|| Refusal::new(ResponseError::KafkaStorageError, "no log"))?;
            self.coordinator
                .load_partition(*p, log, placement.leader_epoch)
                .map_err(|e| Refusal::new(ResponseError::CoordinatorLoadInProgress, e))?;
        }
        Ok(())
    }

    fn create_topic_as(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        configs: &[(String, Option<String>)],
        validate_only: bool,
        internal: bool,
    ) -> Result<TopicImage, Refusal> {
        validate_topic_name(name)?;
        if RESERVED_TOPICS.contains(&name) && !internal {
            return Err(Refusal::new(
                ResponseError::InvalidTopicException,
                format!("{name} is reserved for the broker's internal use"),
            ));
        }
        let partitions = if num_partitions == -1 {
            self.config.num_partitions
        } else {
            num_partitions
        };
        if partitions < 1 {
            return Err(Refusal::new(
                ResponseError::InvalidPartitions,
                format!("number of partitions must be at least 1, got {num_partitions}"),
            ));
        }
        let rf = if replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        if rf != 1 {
            return Err(Refusal::new(
                ResponseError::InvalidReplicationFactor,
                format!("replication factor {rf} is larger than the 1 available broker"),
            ));
        }
        let mut log_config = self.config.log_defaults.clone();
        let mut records_configs = Vec::new();
        for (key, value) in configs {
            let Some(value) = value else { continue };
            validate_topic_config(&mut log_config, key, value)?;
            records_configs.push((key.clone(), value.clone()));
        }
        let _one_at_a_time = self.topic_changes.lock();
        if self.image().topics.contains_key(name) {
            return Err(Refusal::new(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        let topic_id = uuid::Uuid::new_v4();
        let node = self.config.node_id;
        if validate_only {
            return Ok(TopicImage {
                name: name.to_string(),
                topic_id,
                partitions: Default::default(),
                configs: records_configs.into_iter().collect(),
            });
        }
        let mut records = vec![MetadataRecord::Topic {
            name: name.to_string(),
            topic_id,
        }];
        records.extend(
            records_configs
                .iter()
                .map(|(k, v)| MetadataRecord::TopicConfig {
                    topic: name.to_string(),
                    name: k.clone(),
                    value: Some(v.clone()),
                }),
        );
        records.extend((0..partitions).map(|p| MetadataRecord::Partition {
            topic_id,
            partition: p,
            replicas: vec![node],
            isr: vec![node],
            leader: node,
            leader_epoch: 0,
        }));
        let image = self.metadata.append(&records).map_err(|e| {
            Refusal::new(
                ResponseError::UnknownServerError,
                format!("metadata log: {e}"),
            )
        })?;
        let config = self.log_config(&image, name);
        for p in 0..partitions {
            self.logs
                .get_or_create(&TopicPartition::new(name, p), config.clone())
                .map_err(|e| Refusal::new(ResponseError::KafkaStorageError, e.to_string()))?;
        }
        tracing::info!(topic = name, partitions, "created topic");
        image
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| Refusal::new(ResponseError::UnknownServerError, "topic vanished"))
    }

    /// Checks a manual replica assignment (CreateTopics, CreatePartitions) as Kafka does:
    /// every partition names the same number of distinct brokers, each of them registered
    /// (on one node: this node). Returns that replication factor.
    pub fn check_replica_assignment(&self, assignment: &[Vec<i32>]) -> Result<i16, Refusal> {
        let invalid = |m: String| Refusal::new(ResponseError::InvalidReplicaAssignment, m);
        let Some(first) = assignment.first() else {
            return Err(invalid("the assignment names no partitions".into()));
        };
        for (i, replicas) in assignment.iter().enumerate() {
            if replicas.is_empty() {
                return Err(invalid(format!("partition {i} has no replicas")));
            }
            if replicas.len() != first.len() {
                return Err(invalid(format!(
                    "inconsistent replication factor: {} replicas for one partition, {} for another",
                    first.len(),
                    replicas.len()
                )));
            }
            let mut seen = replicas.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != replicas.len() {
                return Err(invalid(format!("duplicate brokers in {replicas:?}")));
            }
            if let Some(unknown) = replicas.iter().find(|&&b| b != self.config.node_id) {
                return Err(invalid(format!(
                    "unknown broker {unknown}: the registered brokers are [{}]",
                    self.config.node_id
                )));
            }
        }
        i16::try_from(first.len()).map_err(|_| invalid("too many replicas".into()))
    }

    /// Deletes a topic: removed from the metadata, then its logs are deleted.
    pub fn delete_topic(&self, name: &str) -> Result<uuid::Uuid, Refusal> {
        let _one_at_a_time = self.topic_changes.lock();
        let image = self.image();
        let topic = existing(&image, name)?;
        self.metadata
            .append(&[MetadataRecord::RemoveTopic {
                topic_id: topic.topic_id,
            }])
            .map_err(|e| Refusal::new(ResponseError::UnknownServerError, e.to_string()))?;
        for p in topic.partitions.keys() {
            self.logs
                .delete(&TopicPartition::new(name, *p))
                .map_err(|e| Refusal::new(ResponseError::KafkaStorageError, e.to_string()))?;
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.topic_id)
    }

    /// Grows a topic to `count` partitions, with the replicas of each new partition given
    /// by `assignment` when there is one.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignment: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let _one_at_a_time = self.topic_changes.lock();
        let image = self.image();
        let topic = existing(&image, name)?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(Refusal::new(
                ResponseError::InvalidPartitions,
                format!(
                    "topic currently has {current} partitions, {count} would not be an increase"
                ),
            ));
        }
        if let Some(assignment) = assignment {
            if assignment.len() as i32 != count - current {
                return Err(Refusal::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "{} new partitions but {} assignments",
                        count - current,
                        assignment.len()
                    ),
                ));
            }
            self.check_replica_assignment(assignment)?;
        }
        if validate_only {
            return Ok(());
        }
        let node = self.config.node_id;
        let records: Vec<_> = (current..count)
            .map(|p| MetadataRecord::Partition {
                topic_id: topic.topic_id,
                partition: p,
                replicas: vec![node],
                isr: vec![node],
                leader: node,
                leader_epoch: 0,
            })
            .collect();
        let image = self
            .metadata
            .append(&records)
            .map_err(|e| Refusal::new(ResponseError::UnknownServerError, e.to_string()))?;
        let config = self.log_config(&image, name);
        for p in current..count {
            self.logs
                .get_or_create(&TopicPartition::new(name, p), config.clone())
                .map_err(|e| Refusal::new(ResponseError::KafkaStorageError, e.to_string()))?;
        }
        Ok(())
    }

    /// Replaces a topic's config overrides with `configs` (validated), and applies them to
    /// its logs at once.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let mut check = self.config.log_defaults.clone();
        for (k, v) in configs {
            validate_topic_config(&mut check, k, v)?;
        }
        let _one_at_a_time = self.topic_changes.lock();
        let image = self.image();
        let topic = existing(&image, name)?;
        if validate_only {
            return Ok(());
        }
        let records = config_changes(&topic.configs, configs, |k, value| {
            MetadataRecord::TopicConfig {
                topic: name.to_string(),
                name: k,
                value,
            }
        });
        if records.is_empty() {
            return Ok(());
        }
        let image = self.append_metadata(&records)?;
        self.apply_log_config(&image, topic);
        Ok(())
    }

    /// Closes every log and writes the clean-shutdown marker.
    pub fn shutdown(&self) -> anyhow::Result<()> {
        self.logs.shutdown()?;
        self.metadata.close()?;
        Ok(())
    }
}

/// The topic, or UNKNOWN_TOPIC_OR_PARTITION.
fn existing<'a>(image: &'a MetadataImage, name: &str) -> Result<&'a TopicImage, Refusal> {
    image.topics.get(name).ok_or_else(|| {
        Refusal::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })
}

/// The records that turn a resource's `current` configs into `wanted`: removals first.
fn config_changes(
    current: &strom_metadata::records::Configs,
    wanted: &BTreeMap<String, String>,
    record: impl Fn(String, Option<String>) -> MetadataRecord,
) -> Vec<MetadataRecord> {
    let removed = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .map(|k| record(k.clone(), None));
    let set = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| record(k.clone(), Some(v.clone())));
    removed.chain(set).collect()
}

fn topic_log_config(
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
