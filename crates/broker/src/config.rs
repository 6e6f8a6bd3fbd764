//! Broker configuration under Kafka's server property names, in `server.properties` format.
//!
//! Unknown keys are logged and ignored (as Kafka warns about unused configs); a value that
//! does not parse stops startup with an error naming the key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use strom_coordinator::CoordinatorConfig;
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
            min_insync_replicas: 1,
            log_retention_check_interval_ms: 300_000,
            log_defaults: LogConfig::default(),
            coordinator: CoordinatorConfig::default(),
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            raw: BTreeMap::new(),
        }
    }
}

/// Properties Strom reads but that only matter once the cluster work lands.
const ACCEPTED: &[&str] = &[
    "offsets.topic.replication.factor",
    "listener.security.protocol.map",
    "controller.listener.names",
    "controller.quorum.voters",
    "inter.broker.listener.name",
];

impl BrokerConfig {
    /// Parses `server.properties` text (`key=value` or `key: value`, `#`/`!` comments).
    pub fn parse_properties(text: &str) -> Vec<(String, String)> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .filter_map(|l| {
                let i = l.find(['=', ':'])?;
                Some((l[..i].trim().to_string(), l[i + 1..].trim().to_string()))
            })
            .collect()
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
                k if ACCEPTED.contains(&k) => {}
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
            c.advertised_listeners = c.listeners.clone();
        }
        Ok(c)
    }
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
    fn invalid_values_name_their_key() {
        for text in [
            "num.partitions=zero",
            "num.partitions=0",
            "listeners=localhost:9092",
            "log.segment.bytes=1",
            "auto.create.topics.enable=maybe",
            "log.cleanup.policy=shred",
            "process.roles=router",
        ] {
            let err = BrokerConfig::from_pairs(&pairs(text)).unwrap_err();
            let key = text.split('=').next().unwrap();
            assert_eq!(err.key, key);
            assert!(err.to_string().contains(key));
        }
    }
}
