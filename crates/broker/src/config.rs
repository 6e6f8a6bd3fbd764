//! Broker configuration under Kafka's server property names, in `server.properties` format.
//!
//! Unknown keys are logged and ignored (as Kafka warns about unused configs); a value that
//! does not parse stops startup with an error naming the key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::time::Duration;

use strom_coordinator::txn::TxnCoordinatorConfig;
use strom_coordinator::CoordinatorConfig;
use strom_replication::ReplicationConfig;
use strom_storage::LogConfig;

/// An invalid configuration value.
#[derive(Debug, thiserror::Error)]
#[error("invalid value '{value}' for {key}: {reason}")]
pub struct ConfigError {
    /// The property.
    pub key: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// A listener: name, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, e.g. `PLAINTEXT`.
    pub name: String,
    /// Host to bind or advertise.
    pub host: String,
    /// Port (0 = any free port, for tests).
    pub port: u16,
}

/// The broker's settings. Field docs name the property and its default.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (1).
    pub node_id: i32,
    /// `process.roles` (broker,controller).
    pub process_roles: Vec<String>,
    /// `listeners` (PLAINTEXT://127.0.0.1:9092).
    pub listeners: Vec<Listener>,
    /// `advertised.listeners` (the listeners).
    pub advertised_listeners: Vec<Listener>,
    /// `log.dirs` (./strom-data).
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions` (1).
    pub num_partitions: i32,
    /// `default.replication.factor` (1).
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable` (true).
    pub auto_create_topics_enable: bool,
    /// `socket.request.max.bytes` (100 MiB).
    pub socket_request_max_bytes: usize,
    /// `connections.max.idle.ms` (10 minutes).
    pub connections_max_idle_ms: u64,
    /// `connections.max.reauth.ms` (0: SASL sessions do not expire): how long a SASL
    /// authentication holds before the client must re-authenticate (KIP-368).
    pub connections_max_reauth_ms: u64,
    /// `sasl.server.max.receive.size` (512 KiB): the largest frame a connection may send
    /// before it has authenticated.
    pub sasl_server_max_receive_size: usize,
    /// `connection.failed.authentication.delay.ms` (100): how long a failed authentication
    /// waits before it is answered and the connection closed.
    pub connection_failed_authentication_delay_ms: u64,
    /// `max.connections`, `max.connections.per.ip` (and overrides),
    /// `max.connection.creation.rate`, and their listener forms ([`crate::limits`]).
    pub connection_limits: std::sync::Arc<crate::limits::ConnectionLimits>,
    /// The SASL settings of each SASL_PLAINTEXT and SASL_SSL listener, by listener name
    /// (`sasl.enabled.mechanisms`, the PLAIN JAAS users).
    pub sasl: BTreeMap<String, std::sync::Arc<crate::auth::sasl::ListenerSasl>>,
    /// `authorizer.class.name` (none: every request is allowed), `super.users`,
    /// `allow.everyone.if.no.acl.found`.
    pub authorizer: Option<crate::authz::AuthorizerConfig>,
    /// `quota.window.num`, `quota.window.size.seconds` and their `controller.` forms.
    pub quota_windows: crate::quotas::QuotaWindows,
    /// `min.insync.replicas` (1).
    pub min_insync_replicas: i32,
    /// `log.retention.check.interval.ms` (5 minutes).
    pub log_retention_check_interval_ms: i64,
    /// Topic defaults from the `log.*` properties and `message.max.bytes`.
    pub log_defaults: LogConfig,
    /// The group coordinator's settings (offsets.topic.num.partitions, group.*).
    pub coordinator: CoordinatorConfig,
    /// offsets.topic.segment.bytes (100 MiB).
    pub offsets_topic_segment_bytes: u64,
    /// `offsets.topic.replication.factor` (3; capped at the brokers registered).
    pub offsets_topic_replication_factor: i16,
    /// The transaction coordinator's settings (transaction.state.log.num.partitions,
    /// transaction.max.timeout.ms, transactional.id.expiration.ms, the cleanup intervals).
    pub transactions: TxnCoordinatorConfig,
    /// `transaction.state.log.replication.factor` (3; capped at the brokers registered).
    pub transaction_state_replication_factor: i16,
    /// `transaction.state.log.min.isr` (2; capped at the replication factor).
    pub transaction_state_min_isr: i32,
    /// `transaction.state.log.segment.bytes` (100 MiB).
    pub transaction_state_segment_bytes: u64,
    /// `controller.quorum.voters` (`id@host:port,...`). Empty: this node alone, a one-voter
    /// quorum when it is a controller.
    pub controller_quorum_voters: BTreeMap<i32, String>,
    /// `controller.listener.names`: listeners that serve the quorum, not clients.
    pub controller_listener_names: Vec<String>,
    /// `listener.security.protocol.map` (each security protocol's name to itself): the
    /// security protocol of each listener name.
    pub security_protocols: BTreeMap<String, SecurityProtocol>,
    /// `inter.broker.listener.name` (the first broker listener): where brokers reach each
    /// other.
    pub inter_broker_listener_name: Option<String>,
    /// `http.listeners` (`http://127.0.0.1:9644`; empty: none): where `/metrics`, the
    /// health probes and the console are served. Port 0 picks a free port. With none,
    /// metrics are not recorded at all.
    pub http_listeners: Vec<Listener>,
    /// `console.actions.enable` (false): whether the web console may change anything
    /// (topics, configs, group offsets, test records); read-only otherwise.
    pub console_actions_enable: bool,
    /// `logger.format` (`text`): `text` (no colour codes off a terminal) or `json`, one
    /// object a line.
    pub logger_format: String,
    /// `logger.levels` (`info,openraft=warn`): the level overall and per module, as
    /// `RUST_LOG` takes it (`warn,strom_broker::server=debug`); `RUST_LOG` wins when set.
    pub logger_levels: String,
    /// `broker.rack` (none).
    pub broker_rack: Option<String>,
    /// `broker.heartbeat.interval.ms` (500; Kafka's is 2000): also paces the controller's
    /// fast failure detection.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms` (9000).
    pub broker_session_timeout_ms: u64,
    /// `controller.quorum.election.timeout.ms` (1000).
    pub controller_quorum_election_timeout_ms: u64,
    /// `metadata.log.segment.bytes` (1 GiB).
    pub metadata_log_segment_bytes: u64,
    /// `metadata.log.max.record.bytes.between.snapshots` (20 MiB).
    pub metadata_snapshot_max_bytes: u64,
    /// `metadata.log.max.snapshot.interval.ms` (1 hour).
    pub metadata_snapshot_interval_ms: u64,
    /// Replication: `num.replica.fetchers`, `replica.fetch.*`, `replica.lag.time.max.ms`,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub replication: ReplicationConfig,
    /// `replica.selector.class` names the rack-aware selector (KIP-392): consumers with a
    /// `client.rack` are sent to an in-sync replica in their rack. Off by default.
    pub rack_aware_replica_selector: bool,
    /// `offsets.commit.timeout.ms` (5000): how long an offset commit waits to be replicated.
    pub offsets_commit_timeout_ms: u64,
    /// `auto.leader.rebalance.enable` (true).
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds` (300).
    pub leader_imbalance_check_interval_seconds: u64,
    /// `leader.imbalance.per.broker.percentage` (10).
    pub leader_imbalance_per_broker_percentage: u32,
    /// Every property as given.
    pub raw: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let listener = Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        };
        BrokerConfig {
            node_id: 1,
            process_roles: vec!["broker".into(), "controller".into()],
            listeners: vec![listener.clone()],
            advertised_listeners: vec![listener],
            log_dirs: vec![PathBuf::from("./strom-data")],
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            socket_request_max_bytes: 100 * 1024 * 1024,
            connections_max_idle_ms: 600_000,
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: 100,
            sasl_server_max_receive_size: 524_288,
            sasl: BTreeMap::new(),
            connection_limits: std::sync::Arc::new(
                crate::limits::ConnectionLimits::resolve(&BTreeMap::new(), None)
                    .unwrap_or_else(|_| unreachable!("no settings, no error")),
            ),
            authorizer: None,
            quota_windows: Default::default(),
            min_insync_replicas: 1,
            log_retention_check_interval_ms: 300_000,
            log_defaults: LogConfig::default(),
            coordinator: CoordinatorConfig::default(),
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            offsets_topic_replication_factor: 3,
            transactions: TxnCoordinatorConfig::default(),
            transaction_state_replication_factor: 3,
            transaction_state_min_isr: 2,
            transaction_state_segment_bytes: 100 * 1024 * 1024,
            controller_quorum_voters: BTreeMap::new(),
            controller_listener_names: vec!["CONTROLLER".into()],
            security_protocols: BTreeMap::new(),
            inter_broker_listener_name: None,
            broker_rack: None,
            http_listeners: vec![Listener {
                name: "http".into(),
                host: "127.0.0.1".into(),
                port: 9644,
            }],
            console_actions_enable: false,
            logger_format: "text".into(),
            logger_levels: "info,openraft=warn".into(),
            broker_heartbeat_interval_ms: 500,
            broker_session_timeout_ms: 9000,
            controller_quorum_election_timeout_ms: 1000,
            metadata_log_segment_bytes: 1 << 30,
            metadata_snapshot_max_bytes: 20 * 1024 * 1024,
            metadata_snapshot_interval_ms: 3_600_000,
            replication: ReplicationConfig::default(),
            rack_aware_replica_selector: false,
            offsets_commit_timeout_ms: 5000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            raw: BTreeMap::new(),
        }
    }
}

/// Properties Strom accepts and reads elsewhere: the listeners' `ssl.*` settings
/// ([`crate::tls::SETTINGS`], read by [`crate::tls::SslSettings`]) and SASL settings
/// ([`crate::auth::sasl::SETTINGS`], read by [`crate::auth::sasl::ListenerSasl`]) from the
/// raw properties, and their `listener.name.<name>.` forms.
fn accepted_elsewhere(key: &str) -> bool {
    crate::tls::SETTINGS.contains(&key)
        || crate::auth::sasl::SETTINGS.contains(&key)
        || crate::limits::SETTINGS.contains(&key)
        || key.starts_with("listener.name.")
}

/// A listener's security protocol (`listener.security.protocol.map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No encryption, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plaintext.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(name: &str) -> Option<SecurityProtocol> {
        Some(match name {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl BrokerConfig {
    /// Parses `server.properties` text (`key=value` or `key: value`, `#`/`!` comments).
    pub fn parse_properties(text: &str) -> Vec<(String, String)> {
        strom_types::properties::parse(text)
    }

    /// Defaults overlaid with `pairs`, in order (later wins).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<BrokerConfig, ConfigError> {
        let mut c = BrokerConfig::default();
        let mut advertised_set = false;
        let mut retention: (Option<i64>, Option<i64>, Option<i64>) = (None, None, None);
        for (key, value) in pairs {
            let bad = |reason: &str| ConfigError {
                key: key.clone(),
                value: value.clone(),
                reason: reason.to_string(),
            };
            let int = || value.parse::<i64>().map_err(|_| bad("not a whole number"));
            let boolean = || {
                value
                    .parse::<bool>()
                    .map_err(|_| bad("expected true or false"))
            };
            let positive = |v: i64| {
                if (1..=i64::from(u32::MAX)).contains(&v) {
                    Ok(v)
                } else {
                    Err(bad("must be at least 1"))
                }
            };
            c.raw.insert(key.clone(), value.clone());
            match key.as_str() {
                "node.id" | "broker.id" => c.node_id = int()? as i32,
                "process.roles" => {
                    c.process_roles = value.split(',').map(|s| s.trim().to_string()).collect();
                    if c.process_roles
                        .iter()
                        .any(|r| r != "broker" && r != "controller")
                    {
                        return Err(bad("roles are broker and controller"));
                    }
                }
                "listeners" => c.listeners = parse_listeners(value).map_err(|e| bad(&e))?,
                "advertised.listeners" => {
                    c.advertised_listeners = parse_listeners(value).map_err(|e| bad(&e))?;
                    advertised_set = true;
                }
                "log.dirs" | "log.dir" => {
                    c.log_dirs = value.split(',').map(|s| PathBuf::from(s.trim())).collect();
                    if c.log_dirs.iter().any(|d| d.as_os_str().is_empty()) {
                        return Err(bad("empty directory"));
                    }
                }
                "num.partitions" => {
                    c.num_partitions = int()? as i32;
                    if c.num_partitions < 1 {
                        return Err(bad("must be at least 1"));
                    }
                }
                "default.replication.factor" => c.default_replication_factor = int()? as i16,
                "auto.create.topics.enable" => c.auto_create_topics_enable = boolean()?,
                "socket.request.max.bytes" => {
                    let v = int()?;
                    if v < 1 {
                        return Err(bad("must be at least 1"));
                    }
                    c.socket_request_max_bytes = v as usize;
                }
                "connections.max.idle.ms" => c.connections_max_idle_ms = int()?.max(1) as u64,
                "connections.max.reauth.ms" => c.connections_max_reauth_ms = int()?.max(0) as u64,
                "quota.window.num" => c.quota_windows.samples = positive(int()?)? as u32,
                "quota.window.size.seconds" => {
                    c.quota_windows.sample = Duration::from_secs(positive(int()?)? as u64)
                }
                "controller.quota.window.num" => {
                    c.quota_windows.controller_samples = positive(int()?)? as u32
                }
                "controller.quota.window.size.seconds" => {
                    c.quota_windows.controller_sample =
                        Duration::from_secs(positive(int()?)? as u64)
                }
                "sasl.server.max.receive.size" => {
                    c.sasl_server_max_receive_size = int()?.max(64) as usize
                }
                "connection.failed.authentication.delay.ms" => {
                    c.connection_failed_authentication_delay_ms = int()?.max(0) as u64
                }
                "min.insync.replicas" => {
                    c.min_insync_replicas = int()? as i32;
                    if c.min_insync_replicas < 1 {
                        return Err(bad("must be at least 1"));
                    }
                }
                "message.max.bytes" => {
                    c_set(&mut c.log_defaults, "max.message.bytes", value).map_err(|e| bad(&e))?
                }
                "log.segment.bytes" => {
                    c_set(&mut c.log_defaults, "segment.bytes", value).map_err(|e| bad(&e))?
                }
                "log.roll.ms" => {
                    c_set(&mut c.log_defaults, "segment.ms", value).map_err(|e| bad(&e))?
                }
                "log.roll.hours" => {
                    let ms = (int()? * 3_600_000).to_string();
                    c_set(&mut c.log_defaults, "segment.ms", &ms).map_err(|e| bad(&e))?
                }
                "log.retention.ms" => retention.0 = Some(int()?),
                "log.retention.minutes" => retention.1 = Some(int()?),
                "log.retention.hours" => retention.2 = Some(int()?),
                "log.retention.bytes" => {
                    c_set(&mut c.log_defaults, "retention.bytes", value).map_err(|e| bad(&e))?
                }
                "log.retention.check.interval.ms" => {
                    c.log_retention_check_interval_ms = int()?.max(1)
                }
                "log.cleanup.policy" => {
                    c_set(&mut c.log_defaults, "cleanup.policy", value).map_err(|e| bad(&e))?
                }
                "log.flush.interval.messages" => {
                    c_set(&mut c.log_defaults, "flush.messages", value).map_err(|e| bad(&e))?
                }
                "log.flush.interval.ms" => {
                    c_set(&mut c.log_defaults, "flush.ms", value).map_err(|e| bad(&e))?
                }
                "log.index.interval.bytes" => {
                    c_set(&mut c.log_defaults, "index.interval.bytes", value)
                        .map_err(|e| bad(&e))?
                }
                "log.index.size.max.bytes" => {
                    c_set(&mut c.log_defaults, "segment.index.bytes", value).map_err(|e| bad(&e))?
                }
                "log.message.timestamp.type" => {
                    c_set(&mut c.log_defaults, "message.timestamp.type", value)
                        .map_err(|e| bad(&e))?
                }
                "log.cleaner.delete.retention.ms" => {
                    c_set(&mut c.log_defaults, "delete.retention.ms", value).map_err(|e| bad(&e))?
                }
                "log.cleaner.min.cleanable.ratio" => {
                    c_set(&mut c.log_defaults, "min.cleanable.dirty.ratio", value)
                        .map_err(|e| bad(&e))?
                }
                "log.cleaner.min.compaction.lag.ms" => {
                    c_set(&mut c.log_defaults, "min.compaction.lag.ms", value)
                        .map_err(|e| bad(&e))?
                }
                "compression.type" => {
                    c_set(&mut c.log_defaults, "compression.type", value).map_err(|e| bad(&e))?
                }
                "log.segment.delete.delay.ms" => {
                    c_set(&mut c.log_defaults, "file.delete.delay.ms", value)
                        .map_err(|e| bad(&e))?
                }
                "offsets.topic.num.partitions" => {
                    let v = int()?;
                    if !(1..=10_000).contains(&v) {
                        return Err(bad("must be between 1 and 10000"));
                    }
                    c.coordinator.offsets_topic_partitions = v as i32;
                }
                "offsets.topic.segment.bytes" => {
                    let v = int()?;
                    if v < 1024 {
                        return Err(bad("must be at least 1024"));
                    }
                    c.offsets_topic_segment_bytes = v as u64;
                }
                "offset.metadata.max.bytes" => {
                    c.coordinator.offset_metadata_max_bytes = int()?.max(0) as usize
                }
                "group.initial.rebalance.delay.ms" => {
                    c.coordinator.limits.initial_rebalance_delay_ms = int()?.max(0)
                }
                "group.min.session.timeout.ms" => {
                    c.coordinator.limits.min_session_timeout_ms =
                        int()?.clamp(0, i32::MAX as i64) as i32
                }
                "group.max.session.timeout.ms" => {
                    c.coordinator.limits.max_session_timeout_ms =
                        int()?.clamp(0, i32::MAX as i64) as i32
                }
                "offsets.retention.minutes" => {
                    let v = int()?;
                    if v < 1 {
                        return Err(bad("must be at least 1"));
                    }
                    c.coordinator.offsets_retention_ms = v.saturating_mul(60_000);
                }
                "offsets.retention.check.interval.ms" => {
                    c.coordinator.offsets_retention_check_interval_ms = int()?.max(1) as u64
                }
                "group.consumer.session.timeout.ms" => {
                    c.coordinator.consumer_session_timeout_ms =
                        int()?.clamp(1, i64::from(i32::MAX)) as i32
                }
                "group.consumer.heartbeat.interval.ms" => {
                    c.coordinator.consumer_heartbeat_interval_ms =
                        int()?.clamp(1, i64::from(i32::MAX)) as i32
                }
                "group.max.size" => {
                    let v = int()?;
                    if v < 1 {
                        return Err(bad("must be at least 1"));
                    }
                    c.coordinator.limits.max_size = v as usize;
                }
                "offsets.topic.replication.factor" => {
                    let v = int()?;
                    if !(1..=i64::from(i16::MAX)).contains(&v) {
                        return Err(bad("must be at least 1"));
                    }
                    c.offsets_topic_replication_factor = v as i16;
                }
                "transaction.state.log.num.partitions" => {
                    let v = int()?;
                    if !(1..=10_000).contains(&v) {
                        return Err(bad("must be between 1 and 10000"));
                    }
                    c.transactions.partitions = v as i32;
                }
                "transaction.state.log.replication.factor" => {
                    let v = int()?;
                    if !(1..=i64::from(i16::MAX)).contains(&v) {
                        return Err(bad("must be at least 1"));
                    }
                    c.transaction_state_replication_factor = v as i16;
                }
                "transaction.state.log.min.isr" => {
                    let v = int()?;
                    if !(1..=i64::from(i16::MAX)).contains(&v) {
                        return Err(bad("must be at least 1"));
                    }
                    c.transaction_state_min_isr = v as i32;
                }
                "transaction.state.log.segment.bytes" => {
                    let v = int()?;
                    if v < 1024 {
                        return Err(bad("must be at least 1024"));
                    }
                    c.transaction_state_segment_bytes = v as u64;
                }
                "transaction.max.timeout.ms" => {
                    let v = int()?;
                    if !(1..=i64::from(i32::MAX)).contains(&v) {
                        return Err(bad("must be at least 1"));
                    }
                    c.transactions.max_timeout_ms = v as i32;
                }
                "transactional.id.expiration.ms" => {
                    let v = int()?;
                    if !(1..=i64::from(i32::MAX)).contains(&v) {
                        return Err(bad("must be at least 1"));
                    }
                    c.transactions.id_expiration_ms = v;
                }
                "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                    c.transactions.abort_check_interval_ms = int()?.max(1) as u64
                }
                "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                    c.transactions.expiration_check_interval_ms = int()?.max(1) as u64
                }
                "controller.quorum.voters" => {
                    c.controller_quorum_voters = parse_voters(value).map_err(|e| bad(&e))?
                }
                "controller.listener.names" => {
                    c.controller_listener_names = value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                "http.listeners" => {
                    c.http_listeners = if value.trim().is_empty() {
                        Vec::new()
                    } else {
                        let parsed = parse_listeners(value).map_err(|e| bad(&e))?;
                        if parsed.iter().any(|l| !l.name.eq_ignore_ascii_case("http")) {
                            return Err(bad("each HTTP listener is http://host:port"));
                        }
                        parsed
                    };
                }
                "logger.format" => {
                    if !matches!(value.as_str(), "text" | "json") {
                        return Err(bad("logger.format is text or json"));
                    }
                    c.logger_format = value.clone();
                }
                "logger.levels" => c.logger_levels = value.clone(),
                "console.actions.enable" => c.console_actions_enable = boolean()?,
                "broker.rack" => c.broker_rack = Some(value.clone()).filter(|r| !r.is_empty()),
                "broker.heartbeat.interval.ms" => {
                    c.broker_heartbeat_interval_ms = int()?.max(1) as u64
                }
                "broker.session.timeout.ms" => c.broker_session_timeout_ms = int()?.max(1) as u64,
                "offsets.commit.timeout.ms" => c.offsets_commit_timeout_ms = int()?.max(1) as u64,
                "auto.leader.rebalance.enable" => c.auto_leader_rebalance_enable = boolean()?,
                "leader.imbalance.check.interval.seconds" => {
                    c.leader_imbalance_check_interval_seconds = int()?.max(1) as u64
                }
                "leader.imbalance.per.broker.percentage" => {
                    c.leader_imbalance_per_broker_percentage = int()?.clamp(0, 100) as u32
                }
                "num.replica.fetchers" => {
                    c.replication.num_replica_fetchers = int()?.clamp(1, 64) as usize
                }
                "replica.fetch.wait.max.ms" => {
                    c.replication.fetch_wait_max_ms = int()?.clamp(0, i32::MAX as i64) as i32
                }
                "replica.fetch.min.bytes" => {
                    c.replication.fetch_min_bytes = int()?.clamp(1, i32::MAX as i64) as i32
                }
                "replica.fetch.max.bytes" => {
                    c.replication.fetch_max_bytes = int()?.clamp(1, i32::MAX as i64) as i32
                }
                "replica.fetch.response.max.bytes" => {
                    c.replication.fetch_response_max_bytes = int()?.clamp(1, i32::MAX as i64) as i32
                }
                "replica.fetch.backoff.ms" => {
                    c.replication.fetch_backoff = Duration::from_millis(int()?.max(0) as u64)
                }
                "replica.lag.time.max.ms" => {
                    c.replication.lag_time_max = Duration::from_millis(int()?.max(1) as u64)
                }
                "replica.high.watermark.checkpoint.interval.ms" => {
                    c.replication.hwm_checkpoint_interval =
                        Duration::from_millis(int()?.max(1) as u64)
                }
                "replica.selector.class" => {
                    c.rack_aware_replica_selector = match value.trim() {
                        "" => false,
                        "org.apache.kafka.common.replica.RackAwareReplicaSelector"
                        | "RackAwareReplicaSelector"
                        | "rack-aware" => true,
                        other => {
                            return Err(bad(&format!(
                                "{other} is not a replica selector Strom has; use org.apache.kafka.common.replica.RackAwareReplicaSelector"
                            )))
                        }
                    }
                }
                "controller.quorum.election.timeout.ms" => {
                    c.controller_quorum_election_timeout_ms = int()?.max(10) as u64
                }
                "metadata.log.segment.bytes" => {
                    let v = int()?;
                    if v < 1024 {
                        return Err(bad("must be at least 1024"));
                    }
                    c.metadata_log_segment_bytes = v as u64;
                }
                "metadata.log.max.record.bytes.between.snapshots" => {
                    c.metadata_snapshot_max_bytes = int()?.max(1) as u64
                }
                "metadata.log.max.snapshot.interval.ms" => {
                    c.metadata_snapshot_interval_ms = int()?.max(1) as u64
                }
                "listener.security.protocol.map" => {
                    let mut map = BTreeMap::new();
                    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                        let (name, protocol) = item
                            .split_once(':')
                            .ok_or_else(|| bad(&format!("'{item}' is not NAME:PROTOCOL")))?;
                        let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
                            bad(&format!(
                                "'{protocol}' is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                            ))
                        })?;
                        map.insert(name.trim().to_string(), protocol);
                    }
                    c.security_protocols = map;
                }
                "inter.broker.listener.name" => {
                    c.inter_broker_listener_name = Some(value.trim().to_string())
                }
                "authorizer.class.name" => {
                    let name = value.trim();
                    if name.is_empty() {
                        c.authorizer = None;
                    } else if crate::authz::AUTHORIZER_NAMES.contains(&name) {
                        c.authorizer.get_or_insert_with(Default::default);
                    } else {
                        return Err(bad(&format!(
                            "Strom's authorizer has Kafka's StandardAuthorizer semantics; name it {}",
                            crate::authz::AUTHORIZER_NAMES[0]
                        )));
                    }
                }
                "super.users" | "allow.everyone.if.no.acl.found" => {}
                k if accepted_elsewhere(k) => {}
                other => tracing::warn!(key = other, "unknown configuration ignored"),
            }
        }
        // Kafka's precedence: ms, then minutes, then hours.
        let retention_ms = match retention {
            (Some(ms), _, _) => Some(ms),
            (None, Some(m), _) => Some(m * 60_000),
            (None, None, Some(h)) => Some(h * 3_600_000),
            _ => None,
        };
        if let Some(ms) = retention_ms {
            c_set(&mut c.log_defaults, "retention.ms", &ms.to_string()).map_err(|e| {
                ConfigError {
                    key: "log.retention.ms".into(),
                    value: ms.to_string(),
                    reason: e,
                }
            })?;
        }
        if !advertised_set {
            c.advertised_listeners = c
                .listeners
                .iter()
                .filter(|l| !c.controller_listener_names.contains(&l.name))
                .cloned()
                .collect();
        }
        if let Some(authorizer) = &mut c.authorizer {
            authorizer.super_users = c
                .raw
                .get("super.users")
                .map(|v| {
                    v.split(';')
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(bad_user) = authorizer.super_users.iter().find(|u| !u.contains(':')) {
                return Err(ConfigError {
                    key: "super.users".into(),
                    value: bad_user.clone(),
                    reason: "a super user is a principal, TYPE:NAME (User:admin)".into(),
                });
            }
            authorizer.allow_everyone_if_no_acl_found = match c
                .raw
                .get("allow.everyone.if.no.acl.found")
                .map(|v| v.trim())
            {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(ConfigError {
                        key: "allow.everyone.if.no.acl.found".into(),
                        value: other.into(),
                        reason: "must be true or false".into(),
                    })
                }
            };
        }
        let roles = (c.is_broker(), c.is_controller());
        let bad = |key: &str, value: String, reason: &str| ConfigError {
            key: key.into(),
            value,
            reason: reason.into(),
        };
        if roles.0 && c.broker_listeners().next().is_none() {
            return Err(bad(
                "listeners",
                c.raw.get("listeners").cloned().unwrap_or_default(),
                "a broker needs a listener that is not a controller listener",
            ));
        }
        c.check_security(roles.0)?;
        let limits = crate::limits::ConnectionLimits::resolve(&c.raw, c.inter_broker_listener())?;
        let limits = std::sync::Arc::new(limits);
        for l in &c.listeners {
            limits.listener(&l.name)?;
        }
        c.connection_limits = limits;
        for l in &c.listeners {
            if matches!(
                c.security_protocol(&l.name),
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
            ) {
                let sasl =
                    crate::auth::sasl::ListenerSasl::resolve(&c.raw, &l.name).map_err(|e| {
                        ConfigError {
                            // A JAAS config holds passwords: never in an error.
                            value: match e.property.ends_with("jaas.config") {
                                true => "(hidden)".into(),
                                false => c.raw.get(&e.property).cloned().unwrap_or_default(),
                            },
                            key: e.property,
                            reason: e.reason,
                        }
                    })?;
                c.sasl.insert(l.name.clone(), std::sync::Arc::new(sasl));
            }
        }
        if roles.1 && !c.controller_quorum_voters.is_empty() {
            if !c.controller_quorum_voters.contains_key(&c.node_id) {
                return Err(bad(
                    "controller.quorum.voters",
                    c.raw
                        .get("controller.quorum.voters")
                        .cloned()
                        .unwrap_or_default(),
                    "a controller must be one of the voters (its node.id is not listed)",
                ));
            }
            if c.controller_listener().is_none() && c.controller_quorum_voters.len() > 1 {
                return Err(bad(
                    "controller.listener.names",
                    c.controller_listener_names.join(","),
                    "no listener in `listeners` has this name; voters talk on it",
                ));
            }
        }
        if !roles.1 && c.controller_quorum_voters.contains_key(&c.node_id) {
            return Err(bad(
                "node.id",
                c.node_id.to_string(),
                "a broker-only node must not be one of controller.quorum.voters (its node.id is listed)",
            ));
        }
        if !roles.1 && c.controller_quorum_voters.is_empty() {
            return Err(bad(
                "controller.quorum.voters",
                String::new(),
                "a broker-only node must name the controllers it joins",
            ));
        }
        Ok(c)
    }

    /// Whether this node serves clients.
    pub fn is_broker(&self) -> bool {
        self.process_roles.iter().any(|r| r == "broker")
    }

    /// Whether this node is a voter of the metadata quorum.
    pub fn is_controller(&self) -> bool {
        self.process_roles.iter().any(|r| r == "controller")
    }

    /// The listeners clients use.
    pub fn broker_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
    }

    /// The security protocol of listener `name`: the map's, or, for a name the map does
    /// not list, the protocol of that name when it is one, else PLAINTEXT (so a config
    /// without a map keeps working with names such as CONTROLLER or INTERNAL).
    pub fn security_protocol(&self, name: &str) -> SecurityProtocol {
        self.security_protocols
            .get(name)
            .copied()
            .or_else(|| SecurityProtocol::parse(name))
            .unwrap_or(SecurityProtocol::Plaintext)
    }

    /// The listener other brokers are reached on: `inter.broker.listener.name`, or the
    /// first PLAINTEXT broker listener (Kafka's `security.inter.broker.protocol` default),
    /// or the first broker listener. Brokers connect to it as its protocol asks
    /// ([`crate::auth::inter_broker_security`]).
    pub fn inter_broker_listener(&self) -> Option<&str> {
        if let Some(name) = &self.inter_broker_listener_name {
            return Some(name.as_str());
        }
        self.broker_listeners()
            .find(|l| self.security_protocol(&l.name) == SecurityProtocol::Plaintext)
            .or_else(|| self.broker_listeners().next())
            .map(|l| l.name.as_str())
    }

    /// Listener names and protocols that cannot be served: SASL, or TLS without mutual
    /// authentication, on the controller listener.
    fn check_security(&self, broker: bool) -> Result<(), ConfigError> {
        let map_text = || {
            self.raw
                .get("listener.security.protocol.map")
                .cloned()
                .unwrap_or_default()
        };
        for l in &self.listeners {
            if !self.security_protocols.is_empty()
                && !self.security_protocols.contains_key(&l.name)
                && SecurityProtocol::parse(&l.name).is_none()
            {
                return Err(ConfigError {
                    key: "listener.security.protocol.map".into(),
                    value: map_text(),
                    reason: format!("no security protocol for listener {}", l.name),
                });
            }
            let protocol = self.security_protocol(&l.name);
            if self.controller_listener_names.contains(&l.name) {
                self.check_controller_listener(l, protocol)?;
            }
        }
        if broker && !self.is_controller() {
            if let Some(l) = self.inter_broker_listener() {
                let protocol = self.security_protocol(l);
                if protocol != SecurityProtocol::Plaintext {
                    return Err(ConfigError {
                        key: "inter.broker.listener.name".into(),
                        value: l.to_string(),
                        reason: format!("a broker-only node receives the metadata log on its inter-broker listener, which must be PLAINTEXT (not {}): the quorum's leader sends observers entries in plaintext", protocol.name()),
                    });
                }
            }
        }
        if let Some(name) = &self.inter_broker_listener_name {
            if broker && !self.broker_listeners().any(|l| &l.name == name) {
                return Err(ConfigError {
                    key: "inter.broker.listener.name".into(),
                    value: name.clone(),
                    reason: "no broker listener in `listeners` has this name".into(),
                });
            }
        }
        Ok(())
    }

    /// The controller listener is PLAINTEXT or SSL with `ssl.client.auth=required`: the
    /// quorum's RPCs carry no principal, so only certificates the truststore vouches for may
    /// send them. SASL is not spoken there.
    fn check_controller_listener(
        &self,
        l: &Listener,
        protocol: SecurityProtocol,
    ) -> Result<(), ConfigError> {
        let bad = |reason: String| ConfigError {
            key: "listeners".into(),
            value: format!("{}://{}:{}", l.name, l.host, l.port),
            reason,
        };
        match protocol {
            SecurityProtocol::Plaintext => Ok(()),
            SecurityProtocol::Ssl => {
                let auth = crate::tls::SslSettings::resolve(&self.raw, &l.name)
                    .client_auth()
                    .map_err(|e| bad(e.to_string()))?;
                if auth == crate::tls::ClientAuth::Required {
                    Ok(())
                } else {
                    Err(bad("an SSL controller listener needs mutual TLS: set ssl.client.auth=required for it (listener.name.<name>.ssl.client.auth)".into()))
                }
            }
            other => Err(bad(format!(
                "{} on the controller listener is not supported: use SSL with mutual TLS",
                other.name()
            ))),
        }
    }

    /// The listener the quorum's RPCs arrive on, if there is one.
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| self.controller_listener_names.contains(&l.name))
    }
}

/// Parses `controller.quorum.voters`: `id@host:port` separated by commas.
fn parse_voters(value: &str) -> Result<BTreeMap<i32, String>, String> {
    let mut out = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| format!("'{item}' is not id@host:port"))?;
        let id: i32 = id.parse().map_err(|_| format!("'{id}' is not a node id"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("'{addr}' has no port"))?;
        port.parse::<u16>()
            .map_err(|_| format!("'{port}' is not a port"))?;
        if host.is_empty() {
            return Err(format!("'{item}' has no host"));
        }
        if out.insert(id, addr.to_string()).is_some() {
            return Err(format!("voter {id} is listed twice"));
        }
    }
    if out.is_empty() {
        return Err("no voter".into());
    }
    Ok(out)
}

fn c_set(config: &mut LogConfig, key: &str, value: &str) -> Result<(), String> {
    match config.set(key, value) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{key} is not a log config")),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_listeners(value: &str) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| format!("'{item}' is not NAME://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("'{item}' has no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("'{port}' is not a port"))?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        out.push(Listener {
            name: name.to_string(),
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        });
    }
    if out.is_empty() {
        return Err("no listener".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        BrokerConfig::parse_properties(text)
    }

    #[test]
    fn kafka_properties_map_onto_the_broker_and_log_defaults() {
        let c = BrokerConfig::from_pairs(&pairs(
            "# comment\nnode.id=3\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs=/a,/b\n\
             log.retention.hours=2\nlog.segment.bytes=1048576\nmessage.max.bytes=2000\n\
             log.cleanup.policy=compact\nnum.partitions = 4\nsome.unknown=1\n",
        ))
        .unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.listeners[0].port, 0);
        assert_eq!(c.advertised_listeners, c.listeners);
        assert_eq!(c.log_dirs.len(), 2);
        assert_eq!(c.log_defaults.retention_ms, 7_200_000);
        assert_eq!(c.log_defaults.segment_bytes, 1_048_576);
        assert_eq!(c.log_defaults.max_message_bytes, 2000);
        assert!(c.log_defaults.cleanup_policy.compact);
        assert_eq!(c.num_partitions, 4);
        let c =
            BrokerConfig::from_pairs(&pairs("log.retention.ms=5\nlog.retention.hours=9")).unwrap();
        assert_eq!(c.log_defaults.retention_ms, 5, "ms wins over hours");
    }

    #[test]
    fn http_listeners_default_to_loopback_and_can_be_turned_off() {
        let c = BrokerConfig::from_pairs(&[]).unwrap();
        assert_eq!(
            (c.http_listeners[0].host.as_str(), c.http_listeners[0].port),
            ("127.0.0.1", 9644)
        );
        let c = BrokerConfig::from_pairs(&pairs("http.listeners=")).unwrap();
        assert!(c.http_listeners.is_empty());
        let c = BrokerConfig::from_pairs(&pairs("http.listeners=http://0.0.0.0:0")).unwrap();
        assert_eq!(c.http_listeners[0].port, 0);
        for bad in [
            "http.listeners=https://127.0.0.1:1",
            "http.listeners=127.0.0.1",
            "logger.format=xml",
        ] {
            let e = BrokerConfig::from_pairs(&pairs(bad)).unwrap_err();
            assert_eq!(e.key, bad.split('=').next().unwrap());
        }
    }

    #[test]
    fn invalid_values_name_their_key() {
        for text in [
            "num.partitions=zero",
            "num.partitions=0",
            "listeners=localhost:9092",
            "log.segment.bytes=1",
            "auto.create.topics.enable=maybe",
            "log.cleanup.policy=shred",
            "process.roles=router",
            "controller.quorum.voters=1@localhost",
            "controller.quorum.voters=one@localhost:9093",
            "controller.quorum.voters=1@a:1,1@b:2",
        ] {
            let err = BrokerConfig::from_pairs(&pairs(text)).unwrap_err();
            let key = text.split('=').next().unwrap();
            assert_eq!(err.key, key);
            assert!(err.to_string().contains(key));
        }
    }

    #[test]
    fn roles_voters_and_listeners_fit_together() {
        let c = BrokerConfig::from_pairs(&pairs(
            "node.id=2\nprocess.roles=broker,controller\n\
             listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
             controller.quorum.voters=1@h1:9093,2@127.0.0.1:9093,3@h3:9093\nbroker.rack=r1",
        ))
        .unwrap();
        assert_eq!(c.controller_quorum_voters.len(), 3);
        assert_eq!(c.controller_listener().unwrap().port, 9093);
        assert_eq!(
            c.advertised_listeners.len(),
            1,
            "the controller listener is not advertised"
        );
        assert_eq!(c.broker_rack.as_deref(), Some("r1"));
        // A controller must be a voter; a broker-only node must know the voters.
        let err = BrokerConfig::from_pairs(&pairs(
            "node.id=4\nlisteners=PLAINTEXT://:9092,CONTROLLER://:9093\ncontroller.quorum.voters=1@h1:9093",
        ))
        .unwrap_err();
        assert_eq!(err.key, "controller.quorum.voters");
        let err = BrokerConfig::from_pairs(&pairs("process.roles=broker")).unwrap_err();
        assert_eq!(err.key, "controller.quorum.voters");
        let err = BrokerConfig::from_pairs(&pairs(
            "node.id=1\nprocess.roles=broker\ncontroller.quorum.voters=1@h1:9093",
        ))
        .unwrap_err();
        assert_eq!(err.key, "node.id", "a broker-only node cannot be a voter");
        let err = BrokerConfig::from_pairs(&pairs(
            "process.roles=controller\nlisteners=CONTROLLER://:9093\ncontroller.quorum.voters=1@h1:9093",
        ));
        assert!(
            err.is_ok(),
            "a controller-only node needs no client listener"
        );
    }

    #[test]
    fn listeners_security_protocols_and_the_inter_broker_listener() {
        let c = BrokerConfig::from_pairs(&pairs(
            "listeners=SSL://127.0.0.1:0,INTERNAL://127.0.0.1:0\n\
             listener.security.protocol.map=SSL:SSL,INTERNAL:PLAINTEXT",
        ))
        .unwrap();
        assert_eq!(c.security_protocol("SSL"), SecurityProtocol::Ssl);
        assert_eq!(c.security_protocol("INTERNAL"), SecurityProtocol::Plaintext);
        // The first PLAINTEXT listener carries broker traffic unless told otherwise.
        assert_eq!(c.inter_broker_listener(), Some("INTERNAL"));
        let err = |text: &str| {
            BrokerConfig::from_pairs(&pairs(text))
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("listeners=A://127.0.0.1:0\nlistener.security.protocol.map=B:SSL")
                .contains("no security protocol for listener A")
        );
        assert!(err("listener.security.protocol.map=A:TLS").contains("is not PLAINTEXT, SSL"));
        assert!(err("authorizer.class.name=com.example.Custom").contains("StandardAuthorizer"));
        assert!(err(
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
             super.users=admin"
        )
        .contains("TYPE:NAME"));
        let c = BrokerConfig::from_pairs(&pairs(
            "super.users=User:admin; User:broker\n\
             authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ))
        .unwrap();
        assert_eq!(
            c.authorizer,
            Some(crate::authz::AuthorizerConfig {
                super_users: vec!["User:admin".into(), "User:broker".into()],
                allow_everyone_if_no_acl_found: false,
            })
        );
        assert_eq!(BrokerConfig::default().authorizer, None);
        assert!(err(
            "listeners=PLAINTEXT://127.0.0.1:0\nlistener.name.plaintext.max.connections=x"
        )
        .contains("not a whole number"));
        assert!(err(
            "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0\n\
                     listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL"
        )
        .contains("controller listener"));
        // The only listener carries broker traffic: brokers connect to it as it asks.
        let c = BrokerConfig::from_pairs(&pairs("listeners=SSL://127.0.0.1:0")).unwrap();
        assert!(crate::auth::inter_broker_security(&c).is_ok());
        let c = BrokerConfig::from_pairs(&pairs(
            "listeners=SASL_PLAINTEXT://127.0.0.1:0\n\
             listener.name.sasl_plaintext.plain.sasl.jaas.config=M required user_a=\"x\";",
        ))
        .unwrap();
        let e = crate::auth::inter_broker_security(&c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("username"), "{e}");
        assert!(!e.contains("\"x\""), "the error hides the JAAS text: {e}");
        assert!(
            err("listeners=PLAINTEXT://127.0.0.1:0\ninter.broker.listener.name=X")
                .contains("no broker listener")
        );
    }

    #[test]
    fn continued_lines_join() {
        let p = pairs("a=1 \\\n   2\nb=x\n# c=\\\nd=4");
        assert_eq!(
            p,
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "x".into()),
                ("d".into(), "4".into())
            ]
        );
    }

    #[test]
    fn sasl_listeners_resolve_their_mechanisms_and_plain_users() {
        use crate::auth::sasl::Mechanism;
        use strom_metadata::records::ScramMechanism;
        let base = "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0\n";
        let c = BrokerConfig::from_pairs(&pairs(base)).unwrap();
        assert_eq!(
            c.sasl["SASL_PLAINTEXT"].mechanisms,
            vec![
                Mechanism::Scram(ScramMechanism::Sha256),
                Mechanism::Scram(ScramMechanism::Sha512)
            ],
            "SCRAM by default; PLAIN only with its users"
        );
        assert!(!c.sasl.contains_key("PLAINTEXT"));
        let jaas = "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";";
        let c = BrokerConfig::from_pairs(&pairs(&format!("{base}{jaas}"))).unwrap();
        assert!(c.sasl["SASL_PLAINTEXT"]
            .mechanisms
            .contains(&Mechanism::Plain));
        let c = BrokerConfig::from_pairs(&pairs(&format!(
            "{base}{jaas}\nlistener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512"
        )))
        .unwrap();
        assert_eq!(
            c.sasl["SASL_PLAINTEXT"].mechanisms,
            vec![Mechanism::Scram(ScramMechanism::Sha512)]
        );
        let err = |text: &str| {
            BrokerConfig::from_pairs(&pairs(&format!("{base}{text}")))
                .unwrap_err()
                .to_string()
        };
        assert!(err("sasl.enabled.mechanisms=GSSAPI").contains("GSSAPI is not supported"));
        assert!(err("sasl.enabled.mechanisms=PLAIN").contains("names no users"));
        let broken = err(
            "listener.name.sasl_plaintext.plain.sasl.jaas.config=M required password=\"hunter2\"",
        );
        assert!(broken.contains("end with ';'"), "{broken}");
        assert!(
            !broken.contains("hunter2"),
            "the error hides the JAAS text: {broken}"
        );
    }
}
