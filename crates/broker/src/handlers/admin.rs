//! The topic administration APIs: DeleteTopics, CreatePartitions, DeleteRecords,
//! DescribeCluster and DescribeLogDirs. Each works through the [`Broker`], which records
//! changes in the metadata log before touching the partition logs. Kafka's checks: DELETE
//! on the topic to delete it or its records, ALTER to add partitions, DESCRIBE on the
//! cluster for its log dirs.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_types::TopicPartition;

use strom_types::acl::{AclOperation, ResourceType, CLUSTER_NAME};

use crate::authz::Access;
use crate::broker::Broker;
use crate::errors::storage_error_code;

fn topic_denied() -> crate::broker::Refusal {
    crate::broker::Refusal::new(
        ResponseError::TopicAuthorizationFailed,
        "topic authorization failed",
    )
}

pub(super) async fn delete_topics(
    broker: &Arc<Broker>,
    access: &Access,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let image = broker.image();
    let mut names: Vec<(Option<String>, uuid::Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    for t in &request.topics {
        let name = t
            .name
            .as_ref()
            .map(|n| n.0.to_string())
            .or_else(|| image.topic_by_id(&t.topic_id).map(|t| t.name.clone()));
        names.push((name, t.topic_id));
    }
    let timeout = crate::broker::client_timeout(request.timeout_ms);
    let mut responses = Vec::with_capacity(names.len());
    for (name, id) in names {
        {
            let mut out = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))));
            let result = match &name {
                Some(n) if !access.allows(AclOperation::Delete, ResourceType::Topic, n) => {
                    if version >= 6 && request.topic_names.is_empty() {
                        // Asked by id: the name is not revealed.
                        out.name = None;
                    }
                    Err(topic_denied())
                }
                Some(n) => broker.delete_topic(n, timeout).await,
                None => Err(crate::broker::Refusal {
                    code: ResponseError::UnknownTopicId.code(),
                    message: format!("no topic with id {id}"),
                }),
            };
            match result {
                Ok(topic_id) => {
                    if version >= 6 {
                        out.topic_id = topic_id;
                    }
                }
                Err(r) => {
                    out.error_code = r.code;
                    if version >= 5 {
                        out.error_message = Some(StrBytes::from_string(r.message));
                    }
                    if version >= 6 {
                        out.topic_id = id;
                    }
                }
            }
            responses.push(out);
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub(super) async fn create_partitions(
    broker: &Arc<Broker>,
    access: &Access,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        {
            let mut out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            // Null and empty both mean "place them for me": clients built on kafka-protocol
            // send an empty array by default.
            let assignment: Option<Vec<Vec<i32>>> =
                t.assignments.as_ref().filter(|a| !a.is_empty()).map(|a| {
                    a.iter()
                        .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                });
            if !access.allows(AclOperation::Alter, ResourceType::Topic, &t.name) {
                let r = topic_denied();
                out.error_code = r.code;
                out.error_message = Some(StrBytes::from_string(r.message));
            } else if let Err(r) = broker
                .create_partitions(
                    &t.name.0,
                    t.count,
                    assignment.as_deref(),
                    request.validate_only,
                    crate::broker::client_timeout(request.timeout_ms),
                )
                .await
            {
                out.error_code = r.code;
                out.error_message = Some(StrBytes::from_string(r.message));
            }
            results.push(out);
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}

pub(super) fn delete_records(
    broker: &Arc<Broker>,
    access: &Access,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let allowed = access.allows(AclOperation::Delete, ResourceType::Topic, &name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if !allowed {
                        out.error_code = ResponseError::TopicAuthorizationFailed.code();
                        return out;
                    }
                    match broker
                        .logs
                        .get(&TopicPartition::new(name.clone(), p.partition_index))
                    {
                        None => out.error_code = ResponseError::UnknownTopicOrPartition.code(),
                        Some(log) => {
                            // -1 means "up to the high watermark" (the log end on one node).
                            let offset = if p.offset == -1 {
                                log.log_end_offset()
                            } else {
                                p.offset
                            };
                            match log.advance_log_start_offset(offset) {
                                Ok(low) => out.low_watermark = low,
                                Err(e) => out.error_code = storage_error_code(&e),
                            }
                        }
                    }
                    out
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

pub(super) fn describe_cluster(
    broker: &Arc<Broker>,
    access: &Access,
    request: DescribeClusterRequest,
    listener: &str,
) -> DescribeClusterResponse {
    let image = broker.image();
    // v2 (KIP-1073) may ask for fenced brokers too, marked as such.
    let listed: Vec<_> = if request.include_fenced_brokers {
        image.brokers.values().cloned().collect()
    } else {
        broker.live_brokers(&image)
    };
    let brokers = listed
        .iter()
        .filter_map(|b| {
            let (host, port) = broker.endpoint_of(&image, b.id, listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(i32::from(port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    let mut out = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(StrBytes::from_string(image.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller_for_clients(&image)))
        .with_brokers(brokers);
    if request.endpoint_type > 1 {
        out.error_code = ResponseError::UnsupportedEndpointType.code();
    }
    out.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        access.operations(ResourceType::Cluster, CLUSTER_NAME)
    } else {
        crate::authz::NOT_REQUESTED
    };
    out
}

pub(super) fn describe_log_dirs(
    broker: &Arc<Broker>,
    access: &Access,
    request: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    if !access.allows_cluster(AclOperation::Describe) {
        // v3+ carries the error; before that Kafka answers with no log dirs.
        return DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let logs = broker.logs.logs();
    let results = broker
        .logs
        .log_dirs()
        .iter()
        .map(|dir| {
            let mut by_topic: std::collections::BTreeMap<String, Vec<DescribeLogDirsPartition>> =
                Default::default();
            for log in logs
                .iter()
                .filter(|l| l.dir().parent() == Some(dir.as_path()))
            {
                let tp = log.topic_partition();
                let included = match &wanted {
                    None => true,
                    Some(w) => w
                        .iter()
                        .any(|(t, ps)| t == &tp.topic && ps.contains(&tp.partition)),
                };
                if included {
                    by_topic.entry(tp.topic.clone()).or_default().push(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(tp.partition)
                            .with_partition_size(log.size() as i64),
                    );
                }
            }
            let mut result = DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(dir.display().to_string()))
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| {
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            if version >= 4 {
                let (total, usable) = disk_space(dir);
                result.total_bytes = total;
                result.usable_bytes = usable;
            }
            result
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

/// Total and available bytes of the filesystem holding `dir` (-1 if unknown).
fn disk_space(dir: &std::path::Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => (
            (s.f_blocks.saturating_mul(s.f_frsize)) as i64,
            (s.f_bavail.saturating_mul(s.f_frsize)) as i64,
        ),
        Err(_) => (-1, -1),
    }
}
