//! Error handling for records, as Kafka Connect's (KIP-298): `errors.tolerance`
//! (`none`: the first bad record fails the task; `all`: it is skipped), retries of
//! retriable failures within `errors.retry.timeout` with backoff up to
//! `errors.retry.delay.max.ms`, `errors.log.enable` / `errors.log.include.messages`, and a
//! sink's dead-letter queue (`errors.deadletterqueue.topic.name`) that gets the record's
//! original bytes, with Kafka's `__connect.errors.*` context headers when
//! `errors.deadletterqueue.context.headers.enable` is set.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::api::Props;
use crate::ConnectError;

/// Where in the pipeline a failure happened (Kafka's `Stage`, whose names the log and the
/// dead-letter headers use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The key converter.
    KeyConverter,
    /// The value converter.
    ValueConverter,
    /// A transformation.
    Transformation,
    /// A source task's poll.
    TaskPoll,
    /// A sink task's put.
    TaskPut,
    /// Producing to Kafka.
    KafkaProduce,
    /// Consuming from Kafka.
    KafkaConsume,
}

impl Stage {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPoll => "TASK_POLL",
            Stage::TaskPut => "TASK_PUT",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
            Stage::KafkaConsume => "KAFKA_CONSUME",
        }
    }
}

/// The Java class Kafka would name for this error (dead-letter headers and statuses).
pub fn exception_class(e: &ConnectError) -> &'static str {
    match e {
        ConnectError::Data(_) => "org.apache.kafka.connect.errors.DataException",
        ConnectError::Config(_) => "org.apache.kafka.common.config.ConfigException",
        ConnectError::Retriable(_) => "org.apache.kafka.connect.errors.RetriableException",
        ConnectError::Connect(_) | ConnectError::Kafka(_) => {
            "org.apache.kafka.connect.errors.ConnectException"
        }
    }
}

/// Where a failed record came from, for the log and the dead-letter queue.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The topic, partition and offset it was read from (sinks).
    pub consumed: Option<(String, i32, i64)>,
    /// Its key and value bytes as read, and headers (sinks).
    pub raw: Option<RawRecord>,
    /// The class of the stage's element (a converter's or transform's class name).
    pub class: String,
}

/// A record's bytes as read from Kafka.
#[derive(Debug, Clone, Default)]
pub struct RawRecord {
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// The headers.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The timestamp.
    pub timestamp: i64,
}

/// The error settings of one connector.
#[derive(Debug, Clone)]
pub struct ErrorPolicy {
    /// errors.tolerance=all.
    pub tolerate_all: bool,
    /// errors.retry.timeout (0: no retries; `None`: retry forever).
    pub retry_timeout: Option<Duration>,
    /// errors.retry.delay.max.ms.
    pub retry_delay_max: Duration,
    /// errors.log.enable.
    pub log: bool,
    /// errors.log.include.messages.
    pub log_messages: bool,
    /// errors.deadletterqueue.topic.name (sinks).
    pub dlq_topic: Option<String>,
    /// errors.deadletterqueue.topic.replication.factor.
    pub dlq_replication_factor: i16,
    /// errors.deadletterqueue.context.headers.enable.
    pub dlq_context_headers: bool,
}

impl ErrorPolicy {
    /// The policy a connector's configuration sets (already validated).
    pub fn from_props(props: &Props) -> Result<ErrorPolicy, ConnectError> {
        let get = |k: &str| props.get(k).map(|v| v.trim());
        let bool_of = |k: &str| -> Result<bool, ConnectError> {
            match get(k) {
                None => Ok(false),
                Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
                Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
                Some(v) => Err(ConnectError::Config(format!(
                    "Invalid value {v} for configuration {k}: Expected value to be either true or false"
                ))),
            }
        };
        let long_of = |k: &str, default: i64| -> Result<i64, ConnectError> {
            match get(k) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| {
                    ConnectError::Config(format!(
                        "Invalid value {v} for configuration {k}: Not a number of type LONG"
                    ))
                }),
            }
        };
        let tolerate_all = match get("errors.tolerance").unwrap_or("none") {
            "none" => false,
            "all" => true,
            v => {
                return Err(ConnectError::Config(format!(
                    "Invalid value {v} for configuration errors.tolerance: String must be one of: none, all"
                )))
            }
        };
        let retry = long_of("errors.retry.timeout", 0)?;
        let dlq_topic = get("errors.deadletterqueue.topic.name")
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok(ErrorPolicy {
            tolerate_all,
            retry_timeout: (retry >= 0).then(|| Duration::from_millis(retry as u64)),
            retry_delay_max: Duration::from_millis(
                long_of("errors.retry.delay.max.ms", 60_000)?.max(1) as u64,
            ),
            log: bool_of("errors.log.enable")?,
            log_messages: bool_of("errors.log.include.messages")?,
            dlq_topic,
            dlq_replication_factor: long_of("errors.deadletterqueue.topic.replication.factor", 3)?
                .clamp(-1, i16::MAX as i64) as i16,
            dlq_context_headers: bool_of("errors.deadletterqueue.context.headers.enable")?,
        })
    }

    /// Runs `op`, again after a backoff while it fails with a retriable error and the
    /// retry timeout allows (Kafka's `RetryWithToleranceOperator`).
    pub async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, ConnectError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectError>>,
    {
        let started = Instant::now();
        let mut delay = Duration::from_millis(300);
        loop {
            match op().await {
                Err(ConnectError::Retriable(why)) => {
                    let left = self
                        .retry_timeout
                        .map(|t| t.saturating_sub(started.elapsed()));
                    if left == Some(Duration::ZERO) {
                        return Err(ConnectError::Retriable(why));
                    }
                    let wait = left.map_or(delay, |l| l.min(delay));
                    tracing::debug!(error = %why, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(self.retry_delay_max);
                }
                other => return other,
            }
        }
    }

    /// Logs a failed record as Kafka's `LogReporter` does, when errors.log.enable is set.
    pub fn log_failure(&self, task: &str, stage: Stage, origin: &Origin, e: &ConnectError) {
        if !self.log {
            return;
        }
        let record = match (&origin.consumed, self.log_messages) {
            (Some((t, p, o)), true) => {
                let raw = origin.raw.as_ref();
                format!(
                    ", where consumed record is {{topic='{t}', partition={p}, offset={o}, timestamp={}, key={:?}, value={:?}}}",
                    raw.map_or(-1, |r| r.timestamp),
                    raw.and_then(|r| r.key.as_deref()).map(String::from_utf8_lossy),
                    raw.and_then(|r| r.value.as_deref()).map(String::from_utf8_lossy),
                )
            }
            (Some((t, p, o)), false) => {
                format!(", where consumed record is {{topic='{t}', partition={p}, offset={o}}}")
            }
            (None, _) => String::new(),
        };
        tracing::error!(
            "Error encountered in task {task}. Executing stage '{}' with class '{}'{record}: {e}",
            stage.name(),
            origin.class,
        );
    }

    /// The dead-letter record of a sink record that failed: its original bytes and
    /// headers, and the context headers when asked for.
    pub fn dead_letter(
        &self,
        connector: &str,
        task: i32,
        stage: Stage,
        origin: &Origin,
        e: &ConnectError,
    ) -> Option<strom_client::ProducerRecord> {
        let topic = self.dlq_topic.clone()?;
        let raw = origin.raw.clone().unwrap_or_default();
        let mut headers = raw.headers;
        if self.dlq_context_headers {
            let mut add = |k: &str, v: String| {
                headers.push((format!("__connect.errors.{k}"), Some(Bytes::from(v))));
            };
            if let Some((t, p, o)) = &origin.consumed {
                add("topic", t.clone());
                add("partition", p.to_string());
                add("offset", o.to_string());
            }
            add("connector.name", connector.to_string());
            add("task.id", task.to_string());
            add("stage", stage.name().to_string());
            add("class.name", origin.class.clone());
            add("exception.class.name", exception_class(e).to_string());
            add("exception.message", e.to_string());
            add(
                "exception.stacktrace",
                format!("{}: {e}", exception_class(e)),
            );
        }
        Some(strom_client::ProducerRecord {
            topic,
            partition: None,
            key: raw.key,
            value: raw.value,
            headers,
            timestamp: Some(raw.timestamp).filter(|t| *t >= 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_are_kafkas_with_kafkas_defaults() {
        let p = ErrorPolicy::from_props(&Props::new()).expect("defaults");
        assert!(!p.tolerate_all && !p.log && p.dlq_topic.is_none());
        assert_eq!(p.retry_timeout, Some(Duration::ZERO));
        assert_eq!(p.dlq_replication_factor, 3);
        let p = ErrorPolicy::from_props(&props(&[
            ("errors.tolerance", "all"),
            ("errors.retry.timeout", "-1"),
            ("errors.deadletterqueue.topic.name", "dlq"),
        ]))
        .expect("set");
        assert!(p.tolerate_all);
        assert_eq!(p.retry_timeout, None, "-1 retries forever");
        let bad = ErrorPolicy::from_props(&props(&[("errors.tolerance", "some")])).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "Invalid value some for configuration errors.tolerance: String must be one of: none, all"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retriable_failures_are_retried_until_the_timeout() {
        let p = ErrorPolicy::from_props(&props(&[("errors.retry.timeout", "2000")])).expect("p");
        let counter = AtomicU32::new(0);
        let calls = &counter;
        let r: Result<(), _> = p
            .retrying(move || async move {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(ConnectError::Retriable("down".into()))
            })
            .await;
        assert!(matches!(r, Err(ConnectError::Retriable(_))));
        assert!(
            calls.load(Ordering::Relaxed) >= 3,
            "retried with backoff within 2 s"
        );

        counter.store(0, Ordering::Relaxed);
        let r = p
            .retrying(move || async move {
                match calls.fetch_add(1, Ordering::Relaxed) {
                    0 => Err(ConnectError::Retriable("once".into())),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(r.expect("second try"), 7);

        counter.store(0, Ordering::Relaxed);
        let r: Result<(), _> = p
            .retrying(move || async move {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(ConnectError::Data("bad".into()))
            })
            .await;
        assert!(matches!(r, Err(ConnectError::Data(_))));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "a data error is not retried"
        );
    }

    #[test]
    fn a_dead_letter_keeps_the_bytes_and_tells_the_context() {
        let p = ErrorPolicy::from_props(&props(&[
            ("errors.deadletterqueue.topic.name", "dlq"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
        ]))
        .expect("p");
        let origin = Origin {
            consumed: Some(("in".into(), 2, 41)),
            raw: Some(RawRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"{not json")),
                headers: vec![("h".into(), None)],
                timestamp: 5,
            }),
            class: "org.apache.kafka.connect.json.JsonConverter".into(),
        };
        let e = ConnectError::Data("Converting byte[] to Kafka Connect data failed".into());
        let r = p
            .dead_letter("sink", 0, Stage::ValueConverter, &origin, &e)
            .expect("a dead letter");
        assert_eq!(r.topic, "dlq");
        assert_eq!(r.value.as_deref(), Some(&b"{not json"[..]));
        let header = |k: &str| {
            r.headers
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.clone())
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        assert_eq!(r.headers[0].0, "h", "the record's own headers come first");
        assert_eq!(header("__connect.errors.topic").as_deref(), Some("in"));
        assert_eq!(header("__connect.errors.partition").as_deref(), Some("2"));
        assert_eq!(header("__connect.errors.offset").as_deref(), Some("41"));
        assert_eq!(
            header("__connect.errors.stage").as_deref(),
            Some("VALUE_CONVERTER")
        );
        assert_eq!(
            header("__connect.errors.exception.class.name").as_deref(),
            Some("org.apache.kafka.connect.errors.DataException")
        );
        let quiet =
            ErrorPolicy::from_props(&props(&[("errors.deadletterqueue.topic.name", "dlq")]))
                .expect("p");
        let r = quiet
            .dead_letter("sink", 0, Stage::ValueConverter, &origin, &e)
            .expect("a dead letter");
        assert_eq!(r.headers.len(), 1, "no context headers unless enabled");
    }
}
