//! Distributed mode (Kafka's `connect-distributed`): workers with the same `group.id` share
//! the connectors and tasks through the Kafka group coordinator, and keep everything in
//! three compacted topics, so any worker can die and another carries on from where it was.
//!
//! - [`log`]: a storage topic read from the start and followed.
//! - [`state`]: what the config, status and offset topics hold.
//! - [`assign`]: the leader's incremental cooperative assignor and the group's messages.
//! - [`herder`]: the distributed herder: the group loop, running what this worker was
//!   given, and the REST API's answers (changes go through the leader).

pub mod assign;
pub mod herder;
pub mod log;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::api::Props;
use crate::worker::{Plugins, Worker, WorkerConfig};
use crate::ConnectError;
use log::{KafkaLog, TopicSpec};
use state::{Configs, KafkaOffsetStore, Statuses};

/// The settings of distributed mode, with Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct DistributedConfig {
    /// group.id (required).
    pub group_id: String,
    /// config.storage.topic (required; one partition).
    pub config_topic: TopicSpec,
    /// offset.storage.topic (required), offset.storage.partitions (25).
    pub offset_topic: TopicSpec,
    /// status.storage.topic (required), status.storage.partitions (5).
    pub status_topic: TopicSpec,
    /// session.timeout.ms (10 s).
    pub session_timeout: Duration,
    /// heartbeat.interval.ms (3 s).
    pub heartbeat_interval: Duration,
    /// rebalance.timeout.ms (60 s).
    pub rebalance_timeout: Duration,
    /// scheduled.rebalance.max.delay.ms (5 min): how long a departed worker's work waits
    /// for it to come back.
    pub max_delay: Duration,
}

fn required(props: &Props, key: &str) -> Result<String, ConnectError> {
    props
        .get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ConnectError::Config(format!(
                "Missing required configuration \"{key}\" which has no default value."
            ))
        })
}

fn number<T: std::str::FromStr>(props: &Props, key: &str, default: T) -> Result<T, ConnectError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            ConnectError::Config(format!(
                "Invalid value {v} for configuration {key}: Not a number"
            ))
        }),
    }
}

impl DistributedConfig {
    /// The settings in a worker's properties.
    pub fn from_props(props: &Props) -> Result<DistributedConfig, ConnectError> {
        let ms = |key: &str, default: u64| number(props, key, default).map(Duration::from_millis);
        let topic = |name: &str,
                     partitions: Option<(&str, i32)>|
         -> Result<TopicSpec, ConnectError> {
            let prefix = name.trim_end_matches(".topic");
            let replication_factor: i16 =
                number(props, &format!("{prefix}.replication.factor"), 3)?;
            if replication_factor < 1 && replication_factor != -1 {
                return Err(ConnectError::Config(format!(
                    "Invalid value {replication_factor} for configuration {prefix}.replication.factor: must be at least 1, or -1 for the broker's default"
                )));
            }
            Ok(TopicSpec {
                name: required(props, name)?,
                partitions: match partitions {
                    Some((key, default)) => number(props, key, default)?.max(1),
                    None => 1,
                },
                replication_factor,
            })
        };
        Ok(DistributedConfig {
            group_id: required(props, "group.id")?,
            config_topic: topic("config.storage.topic", None)?,
            offset_topic: topic(
                "offset.storage.topic",
                Some(("offset.storage.partitions", 25)),
            )?,
            status_topic: topic(
                "status.storage.topic",
                Some(("status.storage.partitions", 5)),
            )?,
            session_timeout: ms("session.timeout.ms", 10_000)?,
            heartbeat_interval: ms("heartbeat.interval.ms", 3_000)?,
            rebalance_timeout: ms("rebalance.timeout.ms", 60_000)?,
            max_delay: ms("scheduled.rebalance.max.delay.ms", 300_000)?,
        })
    }
}

/// Runs a distributed worker until `shutdown` resolves; `listening` is told the REST API's
/// address once it is bound.
pub async fn run(
    worker_props: Props,
    plugins: Plugins,
    listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConnectError> {
    let config = WorkerConfig::from_props(worker_props)?;
    let settings = DistributedConfig::from_props(&config.props)?;
    let (listener, bound) = crate::standalone::bind(&config).await?;
    let id = crate::standalone::worker_id(&config, bound);
    let cluster_id = crate::standalone::cluster_id(&config).await?;
    let client = format!("connect-{}", settings.group_id);

    let configs = Arc::new(Mutex::new(Configs::default()));
    let statuses = Arc::new(RwLock::new(Statuses::default()));
    let changed = Arc::new(tokio::sync::Notify::new());
    let config_log = {
        let (configs, changed) = (configs.clone(), changed.clone());
        KafkaLog::open(
            &config,
            &settings.config_topic,
            &format!("{client}-configs"),
            Box::new(move |_, offset, key, value| {
                configs.lock().apply(offset, key, value);
                changed.notify_one();
            }),
        )
        .await?
    };
    configs.lock().live = true;
    let status_log = {
        let statuses = statuses.clone();
        KafkaLog::open(
            &config,
            &settings.status_topic,
            &format!("{client}-statuses"),
            Box::new(move |_, _, key, value| statuses.write().apply(key, value)),
        )
        .await?
    };
    let offsets = {
        let (entries, apply) = state::offset_entries();
        let log = KafkaLog::open(
            &config,
            &settings.offset_topic,
            &format!("{client}-offsets"),
            apply,
        )
        .await?;
        Arc::new(KafkaOffsetStore::new(entries, log))
    };
    tracing::info!(worker = %id, group = %settings.group_id, cluster = %cluster_id, "distributed worker started");
    let worker = Arc::new(Worker {
        id,
        config,
        plugins,
        offsets: offsets.clone(),
    });
    let herder = herder::DistributedHerder::start(
        worker,
        settings,
        herder::Logs {
            configs,
            statuses,
            changed,
            config_log,
            status_log,
            offsets,
        },
    );
    listening(bound);
    let served = crate::rest::serve(listener, herder.clone(), Some(cluster_id), shutdown).await;
    herder.shutdown().await;
    served.map_err(|e| ConnectError::Connect(format!("REST API: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_have_kafkas_names_defaults_and_messages() {
        let mut p: Props = [
            ("group.id", "g"),
            ("config.storage.topic", "c"),
            ("offset.storage.topic", "o"),
            ("status.storage.topic", "s"),
            ("status.storage.replication.factor", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = DistributedConfig::from_props(&p).unwrap();
        assert_eq!(c.offset_topic.partitions, 25);
        assert_eq!(c.status_topic.partitions, 5);
        assert_eq!(c.config_topic.partitions, 1);
        assert_eq!(c.config_topic.replication_factor, 3);
        assert_eq!(c.status_topic.replication_factor, 1);
        assert_eq!(c.max_delay, Duration::from_secs(300));
        p.remove("group.id");
        let e = DistributedConfig::from_props(&p).unwrap_err().to_string();
        assert!(e.contains("\"group.id\""), "{e}");
        p.insert("group.id".into(), "g".into());
        p.insert("offset.storage.replication.factor".into(), "0".into());
        assert!(DistributedConfig::from_props(&p).is_err());
    }
}
