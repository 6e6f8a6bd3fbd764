//! Connectors for testing Connect itself, as Kafka's `org.apache.kafka.connect.tools`
//! package: the VerifiableSource, which Kafka's system tests run to check that a source
//! connector's records survive restarts, rebalances and moves between workers. Each task
//! counts: its records carry the task's id and a sequence number, and the sequence number
//! is the source offset, so a task restarted anywhere goes on from the number after the
//! last one stored. Reading the topic back, every task's numbers must form a run from 0
//! with no gap (a replayed tail after a crash is allowed: delivery is at least once).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::time::Instant;

use crate::api::{Connector, Plugin, Props, SourceTask, SourceTaskContext, TaskFactory};
use crate::config::{ConfigDef, Importance, Kind, Setting, Validator};
use crate::data::{Schema, Type, Value};
use crate::record::{Record, SourceMap, SourceRecord};
use crate::ConnectError;

/// `org.apache.kafka.connect.tools.VerifiableSourceConnector`.
pub const VERIFIABLE_SOURCE: Plugin = Plugin {
    class: "org.apache.kafka.connect.tools.VerifiableSourceConnector",
    aliases: &["VerifiableSource", "VerifiableSourceConnector"],
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(VerifiableSourceConnector::default()),
    tasks: TaskFactory::Source(|| Box::new(VerifiableSourceTask::default())),
};

/// The task's number, which the connector adds to each task configuration.
pub const ID_CONFIG: &str = "id";
/// The connector's name, which every task configuration has (the connector's own).
pub const NAME_CONFIG: &str = "name";
/// The topic written to.
pub const TOPIC_CONFIG: &str = "topic";
/// Records per second per task; negative: as fast as polled; 0: none.
pub const THROUGHPUT_CONFIG: &str = "throughput";

/// The source partition's key (its value is the task's id).
const ID_FIELD: &str = "id";
/// The source offset's key (its value is the sequence number of the record).
const SEQNO_FIELD: &str = "seqno";

/// Records in one poll, at most.
const MAX_BATCH: i64 = 100;

/// How long a poll waits when it has nothing to send, at most (a task's poll should come
/// back within about a second, so that pause and stop take effect).
const MAX_WAIT: Duration = Duration::from_secs(1);

/// How far behind its schedule a paced task may fall (after a pause, or a slow broker)
/// before it starts a new schedule from now, rather than catching up in a burst.
const MAX_LAG: Duration = Duration::from_secs(1);

fn def() -> ConfigDef {
    ConfigDef::new()
        .define(
            TOPIC_CONFIG,
            Kind::String,
            None,
            Importance::High,
            "The topic to publish data to",
        )
        .validated(Validator::NonEmpty)
        .define(
            THROUGHPUT_CONFIG,
            Kind::Long,
            Some("-1"),
            Importance::High,
            "The number of messages each task produces per second; negative for as many as possible",
        )
}

/// The connector: `tasks.max` tasks, each with its id.
#[derive(Debug, Default)]
pub struct VerifiableSourceConnector {
    props: Props,
}

#[async_trait]
impl Connector for VerifiableSourceConnector {
    fn config_def(&self) -> ConfigDef {
        def()
    }

    async fn start(&mut self, props: Props) -> Result<(), ConnectError> {
        self.props = props;
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        (0..max_tasks)
            .map(|i| {
                let mut props = self.props.clone();
                props.insert(ID_CONFIG.into(), i.to_string());
                props
            })
            .collect()
    }
}

/// Counts, from 0 or from the number after the stored one.
#[derive(Debug, Default)]
pub struct VerifiableSourceTask {
    name: String,
    id: i32,
    topic: String,
    /// Records per second (negative: unpaced).
    throughput: i64,
    /// The next record's sequence number.
    seqno: i64,
    /// When the current pacing schedule began, and the sequence number it began at.
    schedule: Option<(Instant, i64)>,
    partition: SourceMap,
    key_schema: Option<std::sync::Arc<Schema>>,
    value_schema: Option<std::sync::Arc<Schema>>,
}

impl VerifiableSourceTask {
    /// The next record's sequence number.
    pub fn seqno(&self) -> i64 {
        self.seqno
    }

    /// How many records this poll sends, after waiting until they are due (0: none now).
    async fn pace(&mut self) -> i64 {
        if self.throughput < 0 {
            return MAX_BATCH;
        }
        if self.throughput == 0 {
            // Kafka's task waits forever; this one comes back now and then, empty-handed.
            tokio::time::sleep(MAX_WAIT).await;
            return 0;
        }
        let rate = self.throughput;
        // About ten batches a second, so that the flow is smooth.
        let batch = (rate / 10).clamp(1, MAX_BATCH);
        let now = Instant::now();
        let (start, first) = *self.schedule.get_or_insert((now, self.seqno));
        // When the batch's last record is due.
        let sent = self.seqno - first + batch;
        let due = start + Duration::from_secs_f64((sent - 1).max(0) as f64 / rate as f64);
        if due > now {
            let wait = due - now;
            if wait > MAX_WAIT {
                tokio::time::sleep(MAX_WAIT).await;
                return 0;
            }
            tokio::time::sleep(wait).await;
        } else if now - due > MAX_LAG {
            self.schedule = Some((now, self.seqno));
        }
        batch
    }

    fn record(&self, seqno: i64) -> SourceRecord {
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let data = json!({
            "name": self.name,
            "task": self.id,
            "topic": self.topic,
            "time_ms": time_ms,
            "seqno": seqno,
        });
        let mut offset = SourceMap::new();
        offset.insert(SEQNO_FIELD.into(), json!(seqno));
        SourceRecord {
            record: Record::new(self.topic.clone())
                .with_key(self.key_schema.clone(), Value::Int32(self.id))
                .with_value(self.value_schema.clone(), Value::String(data.to_string())),
            source_partition: self.partition.clone(),
            source_offset: offset,
        }
    }
}

#[async_trait]
impl SourceTask for VerifiableSourceTask {
    async fn start(
        &mut self,
        context: SourceTaskContext,
        props: Props,
    ) -> Result<(), ConnectError> {
        let parsed = def().parse(&props)?;
        let invalid = || ConnectError::Connect("Invalid VerifiableSourceTask configuration".into());
        self.name = props.get(NAME_CONFIG).cloned().unwrap_or_default();
        self.id = props
            .get(ID_CONFIG)
            .and_then(|id| id.trim().parse::<i32>().ok())
            .ok_or_else(invalid)?;
        self.topic = match parsed.get(TOPIC_CONFIG) {
            Some(Setting::String(t)) => t.clone(),
            _ => return Err(invalid()),
        };
        self.throughput = match parsed.get(THROUGHPUT_CONFIG) {
            Some(Setting::Long(n)) => *n,
            _ => -1,
        };
        self.partition = SourceMap::new();
        self.partition.insert(ID_FIELD.into(), json!(self.id));
        self.seqno = match context.offsets.offset(&self.partition) {
            None => 0,
            Some(offset) => match offset.get(SEQNO_FIELD).and_then(|s| s.as_i64()) {
                Some(s) => s + 1,
                None => {
                    return Err(ConnectError::Connect(format!(
                        "Offset seqno is the incorrect type: {:?}",
                        offset.get(SEQNO_FIELD)
                    )))
                }
            },
        };
        self.schedule = None;
        self.key_schema = Some(std::sync::Arc::new(Schema::of(Type::Int32)));
        self.value_schema = Some(std::sync::Arc::new(Schema::of(Type::String)));
        tracing::info!(
            "Started VerifiableSourceTask {}-{} producing to topic {} resuming from seqno {}",
            self.name,
            self.id,
            self.topic,
            self.seqno
        );
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let n = self.pace().await;
        let records = (self.seqno..self.seqno + n)
            .map(|s| self.record(s))
            .collect();
        self.seqno += n;
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::api::OffsetReader;

    /// Offsets stored per partition.
    struct Stored(HashMap<String, SourceMap>);

    impl OffsetReader for Stored {
        fn offset(&self, partition: &SourceMap) -> Option<SourceMap> {
            self.0
                .get(&serde_json::to_string(partition).unwrap())
                .cloned()
        }
    }

    fn context(stored: &[(i32, serde_json::Value)]) -> SourceTaskContext {
        let map = stored
            .iter()
            .map(|(id, seqno)| {
                let mut p = SourceMap::new();
                p.insert("id".into(), json!(id));
                let mut o = SourceMap::new();
                o.insert("seqno".into(), seqno.clone());
                (serde_json::to_string(&p).unwrap(), o)
            })
            .collect();
        SourceTaskContext {
            offsets: Arc::new(Stored(map)),
        }
    }

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn configs(max: usize) -> Vec<Props> {
        let mut c = VerifiableSourceConnector::default();
        c.start(props(&[
            ("name", "verify"),
            ("connector.class", "VerifiableSource"),
            ("topic", "verifiable"),
            ("throughput", "-1"),
            ("tasks.max", &max.to_string()),
        ]))
        .await
        .expect("start");
        c.task_configs(max)
    }

    fn data(r: &SourceRecord) -> serde_json::Value {
        match &r.record.value {
            Value::String(s) => serde_json::from_str(s).expect("json"),
            other => panic!("a string value, not {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_task_gets_its_id_and_the_connectors_settings() {
        let tasks = configs(6).await;
        assert_eq!(tasks.len(), 6, "exactly tasks.max tasks");
        for (i, t) in tasks.iter().enumerate() {
            assert_eq!(t["id"], i.to_string());
            assert_eq!(t["name"], "verify");
            assert_eq!(t["topic"], "verifiable");
        }
        assert_eq!(configs(1).await.len(), 1);
        assert!(VERIFIABLE_SOURCE.is_named("VerifiableSource"));
        assert!(VERIFIABLE_SOURCE.is_named("VerifiableSourceConnector"));
        assert!(
            VERIFIABLE_SOURCE.is_named("org.apache.kafka.connect.tools.VerifiableSourceConnector")
        );
        assert_eq!(VERIFIABLE_SOURCE.kind(), crate::api::ConnectorType::Source);
    }

    #[tokio::test]
    async fn a_task_counts_from_zero_with_its_id_as_key_and_partition() {
        let tasks = configs(3).await;
        let mut task = VerifiableSourceTask::default();
        task.start(context(&[]), tasks[2].clone())
            .await
            .expect("start");
        let first = task.poll().await.expect("poll");
        let second = task.poll().await.expect("poll");
        let all: Vec<_> = first.iter().chain(&second).collect();
        assert_eq!(all.len() as i64, 2 * MAX_BATCH, "unpaced: full batches");
        for (n, r) in all.iter().enumerate() {
            assert_eq!(r.record.topic, "verifiable");
            assert_eq!(r.record.key, Value::Int32(2));
            assert_eq!(r.record.key_schema.as_ref().unwrap().kind, Type::Int32);
            assert_eq!(r.record.value_schema.as_ref().unwrap().kind, Type::String);
            assert_eq!(r.source_partition.get("id"), Some(&json!(2)));
            assert_eq!(r.source_offset.get("seqno"), Some(&json!(n)));
            let d = data(r);
            assert_eq!(d["name"], "verify");
            assert_eq!(d["task"], 2);
            assert_eq!(d["seqno"], n);
            assert_eq!(d["topic"], "verifiable");
        }
    }

    #[tokio::test]
    async fn a_task_resumes_after_its_stored_seqno() {
        let tasks = configs(2).await;
        // Task 1 has an offset stored; task 0 has none.
        let ctx = context(&[(1, json!(41))]);
        let mut one = VerifiableSourceTask::default();
        one.start(ctx.clone(), tasks[1].clone())
            .await
            .expect("start");
        assert_eq!(one.seqno(), 42);
        let got = one.poll().await.expect("poll");
        assert_eq!(got[0].source_offset.get("seqno"), Some(&json!(42)));
        assert_eq!(data(&got[0])["seqno"], 42);
        assert_eq!(data(got.last().unwrap())["seqno"], 42 + MAX_BATCH - 1);

        let mut zero = VerifiableSourceTask::default();
        zero.start(ctx, tasks[0].clone()).await.expect("start");
        assert_eq!(zero.seqno(), 0);

        // A stored offset of the wrong type fails the start.
        let mut bad = VerifiableSourceTask::default();
        assert!(bad
            .start(context(&[(1, json!("x"))]), tasks[1].clone())
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_task_sends_about_its_throughput() {
        let mut tasks = configs(1).await;
        tasks[0].insert("throughput".into(), "200".into());
        let mut task = VerifiableSourceTask::default();
        task.start(context(&[]), tasks[0].clone())
            .await
            .expect("start");
        let start = Instant::now();
        let mut sent = 0;
        while start.elapsed() < Duration::from_secs(5) {
            let got = task.poll().await.expect("poll");
            assert!(got.len() <= 20, "batches of throughput/10");
            sent += got.len();
        }
        // 200 a second for 5 seconds, give or take a batch.
        assert!((980..=1040).contains(&sent), "sent {sent} in 5 s at 200/s");

        // Paused for a minute (not polled), it does not burst to catch up.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        let mut sent = 0;
        while start.elapsed() < Duration::from_secs(2) {
            sent += task.poll().await.expect("poll").len();
        }
        assert!(sent < 600, "sent {sent} in 2 s after a pause");

        // A slow rate waits at most a second in a poll.
        let mut slow = VerifiableSourceTask::default();
        let mut p = tasks[0].clone();
        p.insert("throughput".into(), "1".into());
        slow.start(context(&[]), p).await.expect("start");
        let start = Instant::now();
        let mut sent = 0;
        while start.elapsed() < Duration::from_secs(10) {
            let before = Instant::now();
            sent += slow.poll().await.expect("poll").len();
            assert!(before.elapsed() <= Duration::from_secs(1));
        }
        assert!((9..=11).contains(&sent), "sent {sent} in 10 s at 1/s");

        // Throughput 0 sends nothing.
        let mut none = VerifiableSourceTask::default();
        let mut p = tasks[0].clone();
        p.insert("throughput".into(), "0".into());
        none.start(context(&[]), p).await.expect("start");
        assert!(none.poll().await.expect("poll").is_empty());
    }

    #[test]
    fn validation_wants_a_topic_and_a_numeric_throughput() {
        let c = VerifiableSourceConnector::default();
        let errors = |p: Props| -> Vec<String> {
            c.validate(&p).into_iter().flat_map(|v| v.errors).collect()
        };
        assert_eq!(
            errors(props(&[("throughput", "10")])),
            ["Missing required configuration \"topic\" which has no default value."]
        );
        assert_eq!(
            errors(props(&[("topic", "t"), ("throughput", "fast")])),
            ["Invalid value fast for configuration throughput: Not a number of type LONG"]
        );
        assert!(
            errors(props(&[("topic", "t")])).is_empty(),
            "throughput defaults to -1"
        );
    }

    #[test]
    fn the_worker_knows_the_plugin_by_its_names() {
        let plugins = crate::worker::Plugins::default();
        for name in [
            "VerifiableSource",
            "VerifiableSourceConnector",
            "org.apache.kafka.connect.tools.VerifiableSourceConnector",
        ] {
            let p = plugins.find(name).expect("registered");
            assert_eq!(p.class, VERIFIABLE_SOURCE.class);
        }
    }
}
