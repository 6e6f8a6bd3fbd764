//! What the client knows of the cluster: brokers, topics and partition leaders (from
//! Metadata), and one [`Connection`] per broker, opened on first use. Metadata is refreshed
//! on demand (after NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, a lost connection)
//! and when it is older than metadata.max.age.ms.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use parking_lot::{Mutex, RwLock};

use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::security::{Connector, SecurityConfig};

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader node id (-1 when leaderless).
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
}

/// One topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic id (16 bytes, as Kafka encodes it).
    pub id: [u8; 16],
    /// Partitions by index.
    pub partitions: Vec<PartitionInfo>,
    /// True for the broker's internal topics (`__consumer_offsets`).
    pub internal: bool,
}

/// A Metadata request for `topics` (every topic when empty).
pub(crate) fn metadata_request(topics: &[String], auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_allow_auto_topic_creation(auto_create)
        .with_topics((!topics.is_empty()).then(|| {
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect()
        }))
}

#[derive(Debug, Default)]
struct Snapshot {
    brokers: HashMap<i32, String>,
    topics: HashMap<String, TopicInfo>,
    fetched: Option<Instant>,
    /// When every topic was last listed.
    all_fetched: Option<Instant>,
    /// Topics whose metadata an error made doubtful: fetched again before the next use, and
    /// still readable meanwhile (a concurrent sender must not find the topic gone).
    stale: HashSet<String>,
}

/// Brokers, topics and connections.
#[derive(Debug)]
pub struct Cluster {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    max_age: Duration,
    snapshot: RwLock<Snapshot>,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    refreshing: tokio::sync::Mutex<()>,
    /// How connections are secured, or why the settings are unusable (every connection
    /// then fails with that error).
    connector: std::result::Result<Arc<Connector>, String>,
}

impl Cluster {
    /// A cluster reached through `bootstrap` (host:port, as bootstrap.servers lists them).
    pub fn new(bootstrap: Vec<String>, client_id: &str, timeout: Duration) -> Arc<Cluster> {
        Cluster::with_max_age(bootstrap, client_id, timeout, Duration::from_secs(300))
    }

    /// As [`Cluster::new`], with metadata.max.age.ms: metadata older than this is fetched
    /// again on its next use.
    pub fn with_max_age(
        bootstrap: Vec<String>,
        client_id: &str,
        timeout: Duration,
        max_age: Duration,
    ) -> Arc<Cluster> {
        Cluster::secured(
            bootstrap,
            client_id,
            timeout,
            max_age,
            &SecurityConfig::default(),
        )
    }

    /// As [`Cluster::with_max_age`], with connections secured as `security` says.
    pub fn secured(
        bootstrap: Vec<String>,
        client_id: &str,
        timeout: Duration,
        max_age: Duration,
        security: &SecurityConfig,
    ) -> Arc<Cluster> {
        Arc::new(Cluster {
            connector: security.connector().map_err(|e| e.to_string()),
            bootstrap,
            client_id: client_id.to_string(),
            timeout,
            max_age,
            snapshot: RwLock::new(Snapshot::default()),
            connections: Mutex::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// The connection to `addr`, opened if needed.
    pub async fn connection(&self, addr: &str) -> Result<Arc<Connection>> {
        self.connection_for(addr, "").await
    }

    /// A connection to `addr` of its own for `purpose` (the group coordinator's, as Kafka's
    /// consumer keeps one): a broker serves a connection's requests in order, so heartbeats
    /// must not queue behind long-poll fetches.
    pub async fn connection_for(&self, addr: &str, purpose: &str) -> Result<Arc<Connection>> {
        let key = if purpose.is_empty() {
            addr.to_string()
        } else {
            format!("{purpose}@{addr}")
        };
        if let Some(c) = self.connections.lock().get(&key) {
            if !c.is_retired() {
                return Ok(c.clone());
            }
        }
        let connector = self
            .connector
            .as_ref()
            .map_err(|e| ClientError::Config(e.clone()))?;
        let c = Arc::new(
            Connection::connect_with(addr, &self.client_id, self.timeout, connector).await?,
        );
        self.connections.lock().insert(key, c.clone());
        Ok(c)
    }

    /// Any broker: a known one, else a bootstrap server.
    pub async fn any_connection(&self) -> Result<Arc<Connection>> {
        let known: Vec<String> = self.snapshot.read().brokers.values().cloned().collect();
        let mut last = None;
        for addr in known.iter().chain(self.bootstrap.iter()) {
            match self.connection(addr).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::Protocol("no bootstrap servers".into())))
    }

    /// Fetches metadata for `topics` (all topics when empty), creating them if the broker
    /// auto-creates.
    /// A lost connection or an unreachable broker is retried with backoff, on any known
    /// broker, for up to the request timeout (Kafka's producer likewise blocks up to
    /// max.block.ms for metadata).
    pub async fn refresh(&self, topics: &[String]) -> Result<()> {
        let _one = self.refreshing.lock().await;
        let request = metadata_request(topics, true);
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(50);
        let r = loop {
            let outcome = match self.any_connection().await {
                Ok(conn) => conn.send(&request).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(r) => break r,
                Err(e) if e.is_retriable() && Instant::now() + backoff < deadline => {
                    tracing::debug!(error = %e, "metadata request failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        };
        let mut snap = self.snapshot.write();
        if topics.is_empty() {
            // Every topic was listed: forget the ones that are gone.
            snap.topics.clear();
            snap.stale.clear();
            snap.all_fetched = Some(Instant::now());
        }
        for t in topics {
            snap.stale.remove(t);
        }
        for b in &r.brokers {
            snap.brokers
                .insert(b.node_id.0, format!("{}:{}", b.host, b.port));
        }
        for t in &r.topics {
            let Some(name) = &t.name else { continue };
            if t.error_code != 0 {
                snap.topics.remove(name.0.as_str());
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            snap.topics.insert(
                name.0.to_string(),
                TopicInfo {
                    id: *t.topic_id.as_bytes(),
                    partitions,
                    internal: t.is_internal,
                },
            );
        }
        snap.fetched = Some(Instant::now());
        Ok(())
    }

    /// Refreshes when `topic` is unknown or the metadata is older than its max age.
    async fn ensure(&self, topic: &str) -> Result<()> {
        let fresh = {
            let snap = self.snapshot.read();
            snap.fetched.is_some_and(|f| f.elapsed() <= self.max_age)
                && snap.topics.contains_key(topic)
                && !snap.stale.contains(topic)
        };
        if !fresh {
            self.refresh(&[topic.to_string()]).await?;
        }
        Ok(())
    }

    /// The topic's metadata, fetched if unknown or stale.
    pub async fn topic(&self, topic: &str) -> Result<TopicInfo> {
        self.ensure(topic).await?;
        self.snapshot
            .read()
            .topics
            .get(topic)
            .cloned()
            .ok_or_else(|| ClientError::kafka(3))
    }

    /// How many partitions `topic` has (per record on the producer's path: no copy).
    pub async fn partition_count(&self, topic: &str) -> Result<i32> {
        self.ensure(topic).await?;
        self.snapshot
            .read()
            .topics
            .get(topic)
            .map(|t| t.partitions.len() as i32)
            .ok_or_else(|| ClientError::kafka(3))
    }

    /// The connection to the leader of `topic`/`partition`.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<Arc<Connection>> {
        let info = self.topic(topic).await?;
        let leader = info
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.leader)
            .ok_or_else(|| ClientError::kafka(3))?;
        let addr = self
            .snapshot
            .read()
            .brokers
            .get(&leader)
            .cloned()
            .ok_or_else(|| ClientError::kafka(5))?; // LEADER_NOT_AVAILABLE
        self.connection(&addr).await
    }

    /// Every topic of the cluster (listed again when the last listing is older than
    /// metadata.max.age.ms, or when `fresh` asks for it).
    pub async fn all_topics(&self, fresh: bool) -> Result<HashMap<String, TopicInfo>> {
        let stale = self
            .snapshot
            .read()
            .all_fetched
            .is_none_or(|f| f.elapsed() > self.max_age);
        if fresh || stale {
            self.refresh(&[]).await?;
        }
        Ok(self.snapshot.read().topics.clone())
    }

    /// The addresses of the brokers the last Metadata named (the bootstrap servers before
    /// any).
    pub fn broker_addresses(&self) -> Vec<String> {
        let known: Vec<String> = self.snapshot.read().brokers.values().cloned().collect();
        if known.is_empty() {
            self.bootstrap.clone()
        } else {
            known
        }
    }

    /// The id of the broker at `addr`, if the last Metadata named it.
    pub fn broker_id_of(&self, addr: &str) -> Option<i32> {
        self.snapshot
            .read()
            .brokers
            .iter()
            .find(|(_, a)| a.as_str() == addr)
            .map(|(id, _)| *id)
    }

    /// The name of the topic with id `id` (KIP-516), listing every topic once if it is not
    /// known yet; `None` if no such topic exists.
    pub async fn topic_name(&self, id: [u8; 16]) -> Result<Option<String>> {
        let find = |snap: &Snapshot| {
            snap.topics
                .iter()
                .find(|(_, t)| t.id == id)
                .map(|(n, _)| n.clone())
        };
        if let Some(name) = find(&self.snapshot.read()) {
            return Ok(Some(name));
        }
        self.refresh(&[]).await?;
        Ok(find(&self.snapshot.read()))
    }

    /// Marks what is known of `topic` as doubtful, so the next use asks again (until then
    /// it stays readable).
    pub fn invalidate(&self, topic: &str) {
        self.snapshot.write().stale.insert(topic.to_string());
    }
}
