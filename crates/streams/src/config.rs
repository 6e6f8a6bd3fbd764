//! Streams properties under Kafka's names (`StreamsConfig`), and the consumer and producer
//! settings derived from them.
//!
//! Streams' own properties are read here; any other property goes to the clients, as Kafka
//! Streams passes them: `consumer.`/`main.consumer.` and `producer.` prefixes address one
//! client, an unprefixed property goes to every client that knows it. Streams decides some
//! client settings itself (`group.id`, `enable.auto.commit`, the client ids) and ignores
//! attempts to set those, with a warning, as Kafka does.

use std::path::PathBuf;
use std::time::Duration;

use strom_client::{Assignor, ConsumerConfig, ProducerConfig, StartAt};

use crate::error::StreamsError;

/// `processing.guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// `at_least_once`: outputs are flushed before the inputs' offsets are committed.
    AtLeastOnce,
    /// `exactly_once_v2`: outputs, changelog writes and input offsets are committed in one
    /// transaction per commit; inputs and changelogs are read committed.
    ExactlyOnceV2,
}

/// `default.deserialization.exception.handler`: what a record that cannot be read does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeserializationHandler {
    /// `LogAndFailExceptionHandler` (the default): the instance goes to ERROR.
    LogAndFail,
    /// `LogAndContinueExceptionHandler`: the record is logged and skipped.
    LogAndContinue,
}

/// The settings of one [`crate::KafkaStreams`].
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group and the prefix of client ids.
    pub application_id: String,
    /// `client.id` (`<application.id>-<random UUID>` by default, as Kafka's process id).
    pub client_id: String,
    /// `commit.interval.ms` (30 s under at_least_once).
    pub commit_interval: Duration,
    /// `processing.guarantee`.
    pub processing_guarantee: ProcessingGuarantee,
    /// `default.deserialization.exception.handler`.
    pub deserialization_handler: DeserializationHandler,
    /// `state.dir`: where persistent stores and checkpoints live
    /// (`<tmp>/kafka-streams` by default, as Kafka's `${java.io.tmpdir}/kafka-streams`).
    pub state_dir: PathBuf,
    /// `replication.factor` of the internal topics (-1: the broker's default).
    pub replication_factor: i16,
    /// `repartition.purge.interval.ms` (30 s): how often consumed repartition records are
    /// deleted.
    pub repartition_purge_interval: Duration,
    /// The consumer's settings.
    pub consumer: ConsumerConfig,
    /// The producer's settings.
    pub producer: ProducerConfig,
}

/// Client properties Streams sets itself.
const OWNED_BY_STREAMS: &[&str] = &["group.id", "enable.auto.commit", "auto.commit.interval.ms"];

/// Kafka Streams properties for what is not built yet (state stores, standbys, the
/// optimizer, interactive queries): accepted and ignored, so existing configurations load.
const NOT_USED_YET: &[&str] = &[
    "num.standby.replicas",
    "cache.max.bytes.buffering",
    "statestore.cache.max.bytes",
    "topology.optimization",
    "application.server",
    "default.key.serde",
    "default.value.serde",
];

const LOG_AND_FAIL: &str = "org.apache.kafka.streams.errors.LogAndFailExceptionHandler";
const LOG_AND_CONTINUE: &str = "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler";

impl StreamsConfig {
    /// Reads `props`; `application.id` and `bootstrap.servers` are required.
    pub fn from_props<I, K, V>(props: I) -> Result<StreamsConfig, StreamsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let props: Vec<(String, String)> = props
            .into_iter()
            .map(|(k, v)| (k.as_ref().trim().to_string(), v.as_ref().trim().to_string()))
            .collect();
        let get = |key: &str| {
            props
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let invalid = |key: &str, value: &str, reason: &str| StreamsError::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let application_id = get("application.id")
            .filter(|a| !a.is_empty())
            .ok_or(StreamsError::MissingConfig("application.id"))?;
        let bootstrap = get("bootstrap.servers")
            .filter(|b| !b.is_empty())
            .ok_or(StreamsError::MissingConfig("bootstrap.servers"))?;
        let processing_guarantee = match get("processing.guarantee").as_deref() {
            None | Some("at_least_once") => ProcessingGuarantee::AtLeastOnce,
            Some("exactly_once_v2") => ProcessingGuarantee::ExactlyOnceV2,
            Some(v @ ("exactly_once" | "exactly_once_beta")) => {
                return Err(invalid(
                    "processing.guarantee",
                    v,
                    "removed in Kafka 4.0; use exactly_once_v2",
                ))
            }
            Some(v) => {
                return Err(invalid(
                    "processing.guarantee",
                    v,
                    "must be at_least_once or exactly_once_v2",
                ))
            }
        };
        let eos = processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
        let commit_interval = match get("commit.interval.ms") {
            // Kafka's defaults: 100 ms under exactly-once, 30 s otherwise.
            None if eos => Duration::from_millis(100),
            None => Duration::from_secs(30),
            Some(v) => Duration::from_millis(
                v.parse::<u64>()
                    .map_err(|_| invalid("commit.interval.ms", &v, "not a number of ms"))?,
            ),
        };
        let handler_key = [
            "default.deserialization.exception.handler",
            "deserialization.exception.handler",
        ];
        let deserialization_handler = match handler_key.iter().find_map(|k| get(k).map(|v| (*k, v))) {
            None => DeserializationHandler::LogAndFail,
            Some((key, v)) => match v.as_str() {
                LOG_AND_FAIL | "LogAndFailExceptionHandler" => DeserializationHandler::LogAndFail,
                LOG_AND_CONTINUE | "LogAndContinueExceptionHandler" => {
                    DeserializationHandler::LogAndContinue
                }
                _ => {
                    return Err(invalid(
                        key,
                        &v,
                        "known handlers are LogAndFailExceptionHandler and LogAndContinueExceptionHandler",
                    ))
                }
            },
        };
        let state_dir = get("state.dir")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("kafka-streams"));
        let replication_factor = match get("replication.factor") {
            None => -1,
            Some(v) => v
                .parse::<i16>()
                .ok()
                .filter(|r| *r == -1 || *r > 0)
                .ok_or_else(|| invalid("replication.factor", &v, "-1 or a positive number"))?,
        };
        let repartition_purge_interval =
            match get("repartition.purge.interval.ms") {
                None => Duration::from_secs(30),
                Some(v) => Duration::from_millis(v.parse::<u64>().map_err(|_| {
                    invalid("repartition.purge.interval.ms", &v, "not a number of ms")
                })?),
            };
        let client_id = get("client.id")
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| format!("{application_id}-{}", uuid::Uuid::new_v4()));
        match get("num.stream.threads").as_deref() {
            None | Some("1") => {}
            Some(v) => {
                return Err(invalid(
                    "num.stream.threads",
                    v,
                    "only one stream thread is built yet",
                ))
            }
        }

        let mut consumer = ConsumerConfig {
            auto_offset_reset: StartAt::Earliest, // Kafka Streams' default
            ..ConsumerConfig::default()
        };
        let mut producer = ProducerConfig::default();
        let set_consumer = |c: &mut ConsumerConfig, k: &str, v: &str| {
            c.set(k, v).map_err(|source| StreamsError::ClientConfig {
                key: k.to_string(),
                source,
            })
        };
        let set_producer = |p: &mut ProducerConfig, k: &str, v: &str| {
            p.set(k, v).map_err(|source| StreamsError::ClientConfig {
                key: k.to_string(),
                source,
            })
        };
        set_consumer(&mut consumer, "bootstrap.servers", &bootstrap)?;
        set_producer(&mut producer, "bootstrap.servers", &bootstrap)?;
        for (key, value) in &props {
            if is_streams_property(key) {
                continue;
            }
            if NOT_USED_YET.contains(&key.as_str()) {
                tracing::warn!(property = %key, "a Kafka Streams property that phase 1 does not use; ignored");
                continue;
            }
            let (target, name) = if let Some(k) = key.strip_prefix("main.consumer.") {
                (Target::Consumer, k)
            } else if let Some(k) = key.strip_prefix("consumer.") {
                (Target::Consumer, k)
            } else if let Some(k) = key.strip_prefix("producer.") {
                (Target::Producer, k)
            } else {
                (Target::Both, key.as_str())
            };
            if OWNED_BY_STREAMS.contains(&name) || name == "client.id" {
                tracing::warn!(property = %key, "set by Kafka Streams itself; ignored");
                continue;
            }
            match target {
                Target::Consumer => set_consumer(&mut consumer, name, value)?,
                Target::Producer => set_producer(&mut producer, name, value)?,
                Target::Both => {
                    let c = consumer.set(name, value);
                    let p = producer.set(name, value);
                    if let (Err(source), Err(_)) = (c, p) {
                        return Err(StreamsError::ClientConfig {
                            key: key.clone(),
                            source,
                        });
                    }
                }
            }
        }
        consumer.group_id = Some(application_id.clone());
        // The range assignor gives one member the same partition number of every topic it
        // subscribes to: a task's partitions stay together.
        consumer.partition_assignment_strategy = vec![Assignor::Range];
        // The consumer commits by itself only when partitions are revoked or it closes;
        // both happen inside poll/close, when every processed record has been flushed.
        // The periodic commit is Streams' own, after a flush.
        consumer.enable_auto_commit = true;
        consumer.auto_commit_interval = Duration::from_secs(u32::MAX as u64);
        if eos {
            // Offsets go in the transaction, never by the consumer itself; inputs (other
            // applications' transactions) and changelogs are read committed.
            consumer.enable_auto_commit = false;
            consumer.read_committed = true;
            // Kafka's transactional.id for a stream thread: <application.id>-<process id>-<n>.
            producer.transactional_id =
                Some(format!("{application_id}-{}-1", uuid::Uuid::new_v4()));
            producer.enable_idempotence = true;
            producer.transaction_timeout = Duration::from_secs(10);
        }
        consumer.client_id = format!("{client_id}-StreamThread-1-consumer");
        producer.client_id = format!("{client_id}-StreamThread-1-producer");
        Ok(StreamsConfig {
            application_id,
            client_id,
            commit_interval,
            processing_guarantee,
            deserialization_handler,
            state_dir,
            replication_factor,
            repartition_purge_interval,
            consumer,
            producer,
        })
    }
}

enum Target {
    Consumer,
    Producer,
    Both,
}

/// Streams' own property names (read above, or refused there, or meaningless to the clients).
fn is_streams_property(key: &str) -> bool {
    matches!(
        key,
        "application.id"
            | "bootstrap.servers"
            | "client.id"
            | "commit.interval.ms"
            | "processing.guarantee"
            | "default.deserialization.exception.handler"
            | "deserialization.exception.handler"
            | "num.stream.threads"
            | "state.dir"
            | "replication.factor"
            | "repartition.purge.interval.ms"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("application.id", "app"),
            ("bootstrap.servers", "127.0.0.1:9092"),
        ]
    }

    #[test]
    fn defaults_follow_kafka_streams() {
        let c = StreamsConfig::from_props(base()).unwrap();
        assert_eq!(c.commit_interval, Duration::from_secs(30));
        assert_eq!(
            c.deserialization_handler,
            DeserializationHandler::LogAndFail
        );
        assert_eq!(c.consumer.group_id.as_deref(), Some("app"));
        assert_eq!(c.consumer.auto_offset_reset, StartAt::Earliest);
        assert!(c.client_id.starts_with("app-"));
        assert!(c.producer.client_id.ends_with("-StreamThread-1-producer"));
        assert!(c.producer.client_id.starts_with("app-"));
    }

    #[test]
    fn refuses_what_is_missing_or_not_built() {
        assert!(matches!(
            StreamsConfig::from_props([("bootstrap.servers", "x:1")]),
            Err(StreamsError::MissingConfig("application.id"))
        ));
        let mut p = base();
        p.push(("processing.guarantee", "exactly_once"));
        let e = StreamsConfig::from_props(p).unwrap_err();
        assert!(e.to_string().contains("use exactly_once_v2"), "{e}");
        let mut p = base();
        p.push(("processing.guarantee", "exactly_once_v2"));
        let c = StreamsConfig::from_props(p).unwrap();
        assert_eq!(c.commit_interval, Duration::from_millis(100));
        assert!(c.consumer.read_committed && !c.consumer.enable_auto_commit);
        let id = c.producer.transactional_id.unwrap();
        assert!(id.starts_with("app-") && id.ends_with("-1"), "{id}");
    }

    #[test]
    fn handlers_and_client_properties() {
        let mut p = base();
        p.push((
            "default.deserialization.exception.handler",
            "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler",
        ));
        p.push(("session.timeout.ms", "6000"));
        p.push(("producer.linger.ms", "5"));
        p.push(("group.id", "ignored"));
        p.push(("commit.interval.ms", "100"));
        let c = StreamsConfig::from_props(p).unwrap();
        assert_eq!(
            c.deserialization_handler,
            DeserializationHandler::LogAndContinue
        );
        assert_eq!(c.consumer.session_timeout, Duration::from_secs(6));
        assert_eq!(c.producer.linger, Duration::from_millis(5));
        assert_eq!(c.consumer.group_id.as_deref(), Some("app"));
        assert_eq!(c.commit_interval, Duration::from_millis(100));
        let mut p = base();
        p.push(("no.such.property", "1"));
        assert!(matches!(
            StreamsConfig::from_props(p),
            Err(StreamsError::ClientConfig { .. })
        ));
    }
}
