//! Configs changed at runtime: Kafka's dynamic broker configs (AlterConfigs and
//! IncrementalAlterConfigs on a BROKER resource, for one broker or the cluster-wide
//! default) and KIP-848's group configs (GROUP resource). Both are metadata records; this
//! module owns which keys may change, how values are checked, and the effective value
//! (group or topic override, then the broker's dynamic value, then its static one).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use strom_metadata::records::Configs;
use strom_metadata::MetadataImage;
use strom_storage::LogConfig;

use crate::broker::Refusal;

/// Broker properties that are the defaults of topic configs: (topic key, broker key), as
/// Kafka pairs them (its config synonyms). All of them can change at runtime.
pub const TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("segment.bytes", "log.segment.bytes"),
    ("segment.ms", "log.roll.ms"),
    ("retention.ms", "log.retention.ms"),
    ("retention.bytes", "log.retention.bytes"),
    ("cleanup.policy", "log.cleanup.policy"),
    ("flush.messages", "log.flush.interval.messages"),
    ("flush.ms", "log.flush.interval.ms"),
    ("max.message.bytes", "message.max.bytes"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("index.interval.bytes", "log.index.interval.bytes"),
    ("segment.index.bytes", "log.index.size.max.bytes"),
    ("message.timestamp.type", "log.message.timestamp.type"),
    ("delete.retention.ms", "log.cleaner.delete.retention.ms"),
    (
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
    ),
    ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"),
    ("file.delete.delay.ms", "log.segment.delete.delay.ms"),
    ("compression.type", "compression.type"),
];

/// Dynamic broker configs Kafka accepts that size parts Strom does not have (thread
/// pools, Kerberos logins): stored and described, with no effect.
pub const WITHOUT_EFFECT: &[&str] = &[
    "background.threads",
    "num.io.threads",
    "num.network.threads",
    "num.replica.fetchers",
    "num.recovery.threads.per.data.dir",
    "log.cleaner.threads",
    "sasl.kerberos.min.time.before.relogin",
];

/// Broker property: bytes per second a leader sends its throttled followers.
pub const LEADER_THROTTLED_RATE: &str = "leader.replication.throttled.rate";
/// Broker property: bytes per second a broker's throttled replicas fetch.
pub const FOLLOWER_THROTTLED_RATE: &str = "follower.replication.throttled.rate";
/// Topic config: the replicas (`partition:broker` or `*`) throttled when leading.
pub const LEADER_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";
/// Topic config: the replicas throttled when following.
pub const FOLLOWER_THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Dynamic broker configs that take effect at once without being topic defaults.
pub const REPLICATION_RATES: &[&str] = &[LEADER_THROTTLED_RATE, FOLLOWER_THROTTLED_RATE];

/// KIP-848 group configs and the broker property each defaults to.
pub const GROUP_CONFIGS: &[(&str, &str)] = &[
    (
        "consumer.session.timeout.ms",
        "group.consumer.session.timeout.ms",
    ),
    (
        "consumer.heartbeat.interval.ms",
        "group.consumer.heartbeat.interval.ms",
    ),
];

/// True for the broker properties AlterConfigs may change at runtime.
pub fn is_dynamic_broker_config(key: &str) -> bool {
    TOPIC_DEFAULTS.iter().any(|(_, b)| *b == key)
        || WITHOUT_EFFECT.contains(&key)
        || REPLICATION_RATES.contains(&key)
}

/// The broker property a topic config falls back to.
pub fn broker_key_of(topic_key: &str) -> Option<&'static str> {
    TOPIC_DEFAULTS
        .iter()
        .find(|(t, _)| *t == topic_key)
        .map(|(_, b)| *b)
}

fn refuse(e: ResponseError, message: String) -> Refusal {
    Refusal {
        code: e.code(),
        message,
    }
}

/// Checks a broker's complete set of dynamic configs: every key may change at runtime and
/// every value is valid.
pub fn check_broker_configs(configs: &BTreeMap<String, String>) -> Result<(), Refusal> {
    let mut log = LogConfig::default();
    for (key, value) in configs {
        if let Some((topic_key, _)) = TOPIC_DEFAULTS.iter().find(|(_, b)| b == key) {
            if *topic_key == "min.insync.replicas" {
                positive(key, value)?;
            } else if let Err(e) = log.set(topic_key, value) {
                return Err(refuse(ResponseError::InvalidConfig, e.to_string()));
            }
        } else if WITHOUT_EFFECT.contains(&key.as_str())
            || REPLICATION_RATES.contains(&key.as_str())
        {
            positive(key, value)?;
        } else {
            return Err(refuse(
                ResponseError::InvalidRequest,
                format!("cannot update {key} dynamically"),
            ));
        }
    }
    Ok(())
}

/// Checks a group's complete set of config overrides against the broker's defaults.
pub fn check_group_configs(
    configs: &BTreeMap<String, String>,
    defaults: (i32, i32),
) -> Result<(), Refusal> {
    for (key, value) in configs {
        if !GROUP_CONFIGS.iter().any(|(k, _)| k == key) {
            return Err(refuse(
                ResponseError::InvalidConfig,
                format!("unknown group config {key}"),
            ));
        }
        positive(key, value)?;
    }
    let (session, interval) = group_values(configs, defaults);
    if interval >= session {
        return Err(refuse(
            ResponseError::InvalidConfig,
            format!(
                "consumer.heartbeat.interval.ms ({interval}) must be below consumer.session.timeout.ms ({session})"
            ),
        ));
    }
    Ok(())
}

fn positive(key: &str, value: &str) -> Result<i64, Refusal> {
    match value.trim().parse::<i64>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(refuse(
            ResponseError::InvalidConfig,
            format!(
                "invalid value '{value}' for config {key}: must be a whole number of at least 1"
            ),
        )),
    }
}

/// A group's (session timeout, heartbeat interval): its overrides, else `defaults`.
pub fn group_values(overrides: &Configs, defaults: (i32, i32)) -> (i32, i32) {
    let get = |k: &str, d: i32| {
        overrides
            .get(k)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(d)
    };
    (
        get("consumer.session.timeout.ms", defaults.0),
        get("consumer.heartbeat.interval.ms", defaults.1),
    )
}

/// The topic defaults in effect on `node`: the static ones with the dynamic broker configs
/// (cluster-wide, then this node's) laid over them.
pub fn log_defaults(statics: &LogConfig, image: &MetadataImage, node: i32) -> LogConfig {
    let mut config = statics.clone();
    for (topic_key, broker_key) in TOPIC_DEFAULTS {
        if let Some(v) = image.dynamic_broker_config(node, broker_key) {
            // Values were checked when altered; min.insync.replicas is not a log config.
            let _ = config.set(topic_key, v);
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_dynamic_keys_with_valid_values_are_accepted() {
        assert!(check_broker_configs(&map(&[
            ("log.cleanup.policy", "compact,delete"),
            ("compression.type", "zstd"),
            ("background.threads", "9"),
        ]))
        .is_ok());
        let code = |pairs| check_broker_configs(&map(pairs)).unwrap_err().code;
        assert_eq!(
            code(&[("log.dirs", "/tmp")]),
            ResponseError::InvalidRequest.code()
        );
        assert_eq!(
            code(&[("log.cleanup.policy", "shred")]),
            ResponseError::InvalidConfig.code()
        );
        assert_eq!(
            code(&[("min.insync.replicas", "0")]),
            ResponseError::InvalidConfig.code()
        );
        assert!(check_group_configs(
            &map(&[("consumer.session.timeout.ms", "50000")]),
            (45_000, 5_000)
        )
        .is_ok());
        assert_eq!(
            check_group_configs(
                &map(&[("consumer.session.timeout.ms", "4000")]),
                (45_000, 5_000)
            )
            .unwrap_err()
            .code,
            ResponseError::InvalidConfig.code()
        );
        assert!(check_group_configs(
            &map(&[("share.record.lock.duration.ms", "1")]),
            (45_000, 5_000)
        )
        .is_err());
    }

    #[test]
    fn the_nodes_own_value_wins_over_the_cluster_default() {
        let mut image = MetadataImage::default();
        for (broker, value) in [("", "compact"), ("1", "compact,delete")] {
            image.apply(
                0,
                &strom_metadata::MetadataRecord::BrokerConfig {
                    broker: broker.into(),
                    name: "log.cleanup.policy".into(),
                    value: Some(value.into()),
                },
            );
        }
        let statics = LogConfig::default();
        assert_eq!(
            log_defaults(&statics, &image, 1).cleanup_policy.name(),
            "compact,delete"
        );
        assert_eq!(
            log_defaults(&statics, &image, 2).cleanup_policy.name(),
            "compact"
        );
    }
}
