//! The admin client: topics (create, delete, list, describe, add partitions), topic configs
//! (describe, incremental alter), records (delete before an offset) and the cluster
//! (describe). Each call sends the request at the best version both sides speak and turns
//! Kafka error codes into typed errors that name them.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeQuorumRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::{metadata_request, Cluster};
use crate::error::{ClientError, Result};

/// A protocol string of `v`.
pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Ok for error code 0, else the typed Kafka error.
pub(crate) fn check(code: i16) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::kafka(code))
    }
}

/// [`check`], keeping the broker's error message.
fn check_said(code: i16, message: &Option<StrBytes>) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::kafka_said(code, message.as_deref()))
    }
}

/// One partition of a described topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Partition index.
    pub partition: i32,
    /// Leader node.
    pub leader: i32,
    /// Replica nodes.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader epoch (-1 from brokers before Metadata v7).
    pub leader_epoch: i32,
}

impl PartitionDescription {
    /// Fewer replicas in sync than assigned.
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

/// One partition's outcome of [`Admin::elect_leaders`] or
/// [`Admin::alter_partition_reassignments`]: `(topic, partition, error code, message)`,
/// code 0 on success.
pub type ElectionResult = (String, i32, i16, Option<String>);

/// A partition being reassigned (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Its replicas now: the target, then those being removed.
    pub replicas: Vec<i32>,
    /// Replicas being added (catching up).
    pub adding: Vec<i32>,
    /// Replicas removed once the added ones are in sync.
    pub removing: Vec<i32>,
}

/// A described topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// True for the broker's internal topics.
    pub internal: bool,
    /// Partitions, by index.
    pub partitions: Vec<PartitionDescription>,
}

/// One config of a topic, as DescribeConfigs gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Name.
    pub name: String,
    /// Value.
    pub value: Option<String>,
    /// Kafka's ConfigSource (1 topic override, 4 static broker config, 5 default, ...).
    pub source: i8,
    /// True when it cannot be changed.
    pub read_only: bool,
}

/// The cluster as DescribeCluster gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// Cluster id.
    pub cluster_id: String,
    /// Controller node.
    pub controller: i32,
    /// Brokers: (node id, host:port), live ones only.
    pub brokers: Vec<(i32, String)>,
    /// Every registered broker, fenced ones included (from brokers that report them).
    pub all_brokers: Vec<BrokerDescription>,
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerDescription {
    /// Node id.
    pub id: i32,
    /// host:port.
    pub address: String,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Fenced: registered but not heartbeating (or shut down); leads nothing.
    pub fenced: bool,
}

/// The metadata quorum, as its leader reports it (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The leader (the active controller), -1 when there is none.
    pub leader_id: i32,
    /// The leader's epoch (Raft term).
    pub leader_epoch: i32,
    /// Entries below it are committed.
    pub high_watermark: i64,
    /// The voters.
    pub voters: Vec<QuorumReplica>,
    /// The observers (broker-only nodes).
    pub observers: Vec<QuorumReplica>,
}

/// One replica of the metadata log in a [`QuorumDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    /// Node id.
    pub id: i32,
    /// Its log end offset as the leader knows it (-1: unknown).
    pub log_end_offset: i64,
    /// Last contact with the leader, ms since the epoch (-1: never).
    pub last_fetch_timestamp: i64,
    /// Last time it had every committed entry, ms since the epoch (-1: never).
    pub last_caught_up_timestamp: i64,
}

/// An admin client.
#[derive(Debug)]
pub struct Admin {
    pub(crate) cluster: Arc<Cluster>,
    timeout: Duration,
}

impl Admin {
    /// An admin client for the cluster behind `bootstrap`.
    pub fn new(bootstrap: Vec<String>, client_id: &str, timeout: Duration) -> Admin {
        Admin::secured(bootstrap, client_id, timeout, &Default::default())
    }

    /// An admin client whose connections are secured as `security` says.
    pub fn secured(
        bootstrap: Vec<String>,
        client_id: &str,
        timeout: Duration,
        security: &crate::security::SecurityConfig,
    ) -> Admin {
        Admin {
            cluster: Cluster::secured(
                bootstrap,
                client_id,
                timeout,
                Duration::from_secs(300),
                security,
            ),
            timeout,
        }
    }

    fn timeout_ms(&self) -> i32 {
        self.timeout.as_millis().min(i32::MAX as u128) as i32
    }

    /// Creates a topic (`partitions`/`replication_factor` of -1 take the broker's defaults).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, String)],
    ) -> Result<()> {
        let conn = self.cluster.any_connection().await?;
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                        })
                        .collect(),
                )]);
        let r = conn.send(&request).await?;
        let t = r
            .topics
            .first()
            .ok_or_else(|| ClientError::Protocol("empty CreateTopics response".into()))?;
        check_said(t.error_code, &t.error_message)
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let conn = self.cluster.any_connection().await?;
        let version = conn.version::<DeleteTopicsRequest>()?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        if version >= 6 {
            request.topics = vec![DeleteTopicState::default().with_name(Some(TopicName(s(name))))];
        } else {
            request.topic_names = vec![TopicName(s(name))];
        }
        let r = conn.send_at(&request, version).await?;
        let t = r
            .responses
            .first()
            .ok_or_else(|| ClientError::Protocol("empty DeleteTopics response".into()))?;
        self.cluster.invalidate(name);
        check_said(t.error_code, &t.error_message)
    }

    /// Every topic with its partitions (`names` empty), or the named ones.
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicDescription>> {
        let conn = self.cluster.any_connection().await?;
        let request = metadata_request(names, false);
        let r = conn.send(&request).await?;
        let mut out = Vec::new();
        for t in r.topics {
            check(t.error_code)?;
            let mut partitions: Vec<PartitionDescription> = t
                .partitions
                .iter()
                .map(|p| PartitionDescription {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    leader_epoch: p.leader_epoch,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            out.push(TopicDescription {
                name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                internal: t.is_internal,
                partitions,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// ElectLeaders: preferred (back to each partition's first replica) or, with `unclean`,
    /// any live replica for leaderless partitions; for the partitions named, or all.
    pub async fn elect_leaders(
        &self,
        unclean: bool,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<ElectionResult>> {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        use kafka_protocol::messages::ElectLeadersRequest;
        let conn = self.cluster.any_connection().await?;
        let topics = partitions.map(|list| {
            let mut by_topic: Vec<TopicPartitions> = Vec::new();
            for (t, p) in list {
                match by_topic.iter_mut().find(|x| x.topic.0.as_str() == t) {
                    Some(x) => x.partitions.push(*p),
                    None => by_topic.push(
                        TopicPartitions::default()
                            .with_topic(TopicName(s(t)))
                            .with_partitions(vec![*p]),
                    ),
                }
            }
            by_topic
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(i8::from(unclean))
            .with_topic_partitions(topics)
            .with_timeout_ms(self.timeout_ms());
        let r = conn.send(&request).await?;
        check(r.error_code)?;
        Ok(r.replica_election_results
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partition_result.into_iter().map(move |p| {
                    (
                        topic.clone(),
                        p.partition_id,
                        p.error_code,
                        p.error_message.map(|m| m.to_string()),
                    )
                })
            })
            .collect())
    }

    /// AlterPartitionReassignments: moves each (topic, partition) to its target replicas,
    /// or with `None` cancels the reassignment in progress. Per partition: its error code
    /// and message.
    pub async fn alter_partition_reassignments(
        &self,
        changes: &[(String, i32, Option<Vec<i32>>)],
    ) -> Result<Vec<ElectionResult>> {
        use kafka_protocol::messages::alter_partition_reassignments_request::{
            ReassignablePartition, ReassignableTopic,
        };
        use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId};
        let conn = self.cluster.any_connection().await?;
        let mut topics: Vec<ReassignableTopic> = Vec::new();
        for (t, p, target) in changes {
            let partition = ReassignablePartition::default()
                .with_partition_index(*p)
                .with_replicas(
                    target
                        .as_ref()
                        .map(|r| r.iter().map(|id| BrokerId(*id)).collect()),
                );
            match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
                Some(x) => x.partitions.push(partition),
                None => topics.push(
                    ReassignableTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(topics);
        let r = conn.send(&request).await?;
        check(r.error_code)?;
        Ok(r.responses
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| {
                    (
                        topic.clone(),
                        p.partition_index,
                        p.error_code,
                        p.error_message.map(|m| m.to_string()),
                    )
                })
            })
            .collect())
    }

    /// ListPartitionReassignments: every partition being reassigned, with its replicas and
    /// those being added and removed.
    pub async fn list_partition_reassignments(&self) -> Result<Vec<OngoingReassignment>> {
        use kafka_protocol::messages::ListPartitionReassignmentsRequest;
        let conn = self.cluster.any_connection().await?;
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(None);
        let r = conn.send(&request).await?;
        check(r.error_code)?;
        let ids = |v: Vec<kafka_protocol::messages::BrokerId>| v.into_iter().map(|b| b.0).collect();
        Ok(r.topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| OngoingReassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding: ids(p.adding_replicas),
                    removing: ids(p.removing_replicas),
                })
            })
            .collect())
    }

    /// DescribeLogDirs of the broker at `address`: every replica it holds, as (topic,
    /// partition, bytes on disk).
    pub async fn replica_sizes(&self, address: &str) -> Result<Vec<(String, i32, i64)>> {
        use kafka_protocol::messages::DescribeLogDirsRequest;
        let conn = self.cluster.connection(address).await?;
        let r = conn
            .send(&DescribeLogDirsRequest::default().with_topics(None))
            .await?;
        check(r.error_code)?;
        Ok(r.results
            .into_iter()
            .flat_map(|dir| dir.topics)
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions
                    .into_iter()
                    .map(move |p| (topic.clone(), p.partition_index, p.partition_size))
            })
            .collect())
    }

    /// Grows a topic to `total` partitions.
    pub async fn add_partitions(&self, name: &str, total: i32) -> Result<()> {
        let conn = self.cluster.any_connection().await?;
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(s(name)))
                .with_count(total)
                // Null: the brokers place the new partitions.
                .with_assignments(None)]);
        let r = conn.send(&request).await?;
        self.cluster.invalidate(name);
        let t = r
            .results
            .first()
            .ok_or_else(|| ClientError::Protocol("empty CreatePartitions response".into()))?;
        check_said(t.error_code, &t.error_message)
    }

    /// Every config of a topic with its value and source.
    pub async fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let conn = self.cluster.any_connection().await?;
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(name))
                .with_configuration_keys(None),
        ]);
        let r = conn.send(&request).await?;
        let res = r
            .results
            .first()
            .ok_or_else(|| ClientError::Protocol("empty DescribeConfigs response".into()))?;
        check(res.error_code)?;
        Ok(res
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                source: c.config_source,
                read_only: c.read_only,
            })
            .collect())
    }

    /// One config of many topics, in one request: (topic, its value) for each topic the
    /// broker describes.
    pub async fn topic_config_values(
        &self,
        topics: &[String],
        key: &str,
    ) -> Result<Vec<(String, Option<String>)>> {
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.cluster.any_connection().await?;
        let request = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|t| {
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(t))
                        .with_configuration_keys(Some(vec![s(key)]))
                })
                .collect(),
        );
        let r = conn.send(&request).await?;
        Ok(r.results
            .iter()
            .filter(|res| res.error_code == 0)
            .map(|res| {
                let value = res
                    .configs
                    .iter()
                    .find(|c| c.name.as_str() == key)
                    .and_then(|c| c.value.as_ref().map(|v| v.to_string()));
                (res.resource_name.to_string(), value)
            })
            .collect())
    }

    /// Sets (`Some`) or removes (`None`) topic configs, leaving the others as they are.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        self.alter_configs(2, name, changes).await
    }

    /// Sets or removes dynamic broker configs of broker `broker`, or with `None` the
    /// cluster-wide defaults.
    pub async fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        let name = broker.map(|b| b.to_string()).unwrap_or_default();
        self.alter_configs(4, &name, changes).await
    }

    /// IncrementalAlterConfigs of one resource (2: topic, 4: broker).
    async fn alter_configs(
        &self,
        resource_type: i8,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        // A single broker's configs are changed through that broker, as Kafka's admin
        // client routes them.
        let conn = match name.parse::<i32>() {
            Ok(id) if resource_type == 4 => {
                let cluster = self.describe_cluster().await?;
                let addr = cluster
                    .brokers
                    .iter()
                    .find(|b| b.0 == id)
                    .map(|b| b.1.clone())
                    .ok_or_else(|| {
                        ClientError::Protocol(format!("broker {id} is not in the cluster"))
                    })?;
                self.cluster.connection(&addr).await?
            }
            _ => self.cluster.any_connection().await?,
        };
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(
                    changes
                        .iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(s(k))
                                .with_config_operation(if v.is_some() { 0 } else { 1 })
                                .with_value(v.as_deref().map(s))
                        })
                        .collect(),
                ),
        ]);
        let r = conn.send(&request).await?;
        let res = r.responses.first().ok_or_else(|| {
            ClientError::Protocol("empty IncrementalAlterConfigs response".into())
        })?;
        check_said(res.error_code, &res.error_message)
    }

    /// Deletes the records of a partition below `offset` (-1: all); returns the new low
    /// watermark.
    pub async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        let conn = self.cluster.leader(topic, partition).await?;
        let request = DeleteRecordsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])]);
        let r = conn.send(&request).await?;
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("empty DeleteRecords response".into()))?;
        check(p.error_code)?;
        Ok(p.low_watermark)
    }

    /// The cluster id, controller and brokers.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let conn = self.cluster.any_connection().await?;
        let r = conn
            .send(&DescribeClusterRequest::default().with_include_fenced_brokers(true))
            .await?;
        check(r.error_code)?;
        let all_brokers: Vec<BrokerDescription> = r
            .brokers
            .iter()
            .map(|b| BrokerDescription {
                id: b.broker_id.0,
                address: format!("{}:{}", b.host, b.port),
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: b.is_fenced,
            })
            .collect();
        Ok(ClusterDescription {
            cluster_id: r.cluster_id.to_string(),
            controller: r.controller_id.0,
            brokers: all_brokers
                .iter()
                .filter(|b| !b.fenced)
                .map(|b| (b.id, b.address.clone()))
                .collect(),
            all_brokers,
        })
    }

    /// The metadata quorum's health: leader, epoch, and how far each voter and observer
    /// has replicated the metadata log.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription> {
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        let conn = self.cluster.any_connection().await?;
        let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let r = conn.send(&request).await?;
        check(r.error_code)?;
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("DescribeQuorum answered no partition".into()))?;
        check(p.error_code)?;
        let replicas =
            |list: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
                list.iter()
                    .map(|v| QuorumReplica {
                        id: v.replica_id.0,
                        log_end_offset: v.log_end_offset,
                        last_fetch_timestamp: v.last_fetch_timestamp,
                        last_caught_up_timestamp: v.last_caught_up_timestamp,
                    })
                    .collect()
            };
        Ok(QuorumDescription {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: replicas(&p.current_voters),
            observers: replicas(&p.observers),
        })
    }
}
