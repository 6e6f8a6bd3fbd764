//! CreateTopics: validated as Kafka does (name, partitions, replication factor, configs),
//! recorded in the metadata log, then the partition logs are created. Needs CREATE on the
//! cluster or on the topic.

use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use strom_types::acl::{AclOperation, ResourceType};

use crate::authz::Access;
use crate::broker::{Broker, Refusal, TopicSpec};

pub(super) async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    // Checked here first (a bad manual assignment), then all the rest go to the controller
    // together: one commit for the whole request.
    let mut early: Vec<Option<Refusal>> = Vec::with_capacity(request.topics.len());
    let mut specs = Vec::new();
    let create_any = access.allows_cluster(AclOperation::Create);
    for t in &request.topics {
        if !create_any && !access.allows(AclOperation::Create, ResourceType::Topic, &t.name) {
            early.push(Some(Refusal::new(
                ResponseError::TopicAuthorizationFailed,
                "topic authorization failed",
            )));
            continue;
        }
        let configs: Vec<(String, Option<String>)> = t
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let placement = if t.assignments.is_empty() {
            Ok((t.num_partitions, t.replication_factor, None))
        } else {
            manual_placement(broker, t).map(|a| (a.len() as i32, -1, Some(a)))
        };
        match placement {
            Ok((num_partitions, replication_factor, assignment)) => {
                early.push(None);
                specs.push(TopicSpec {
                    name: t.name.0.to_string(),
                    num_partitions,
                    replication_factor,
                    configs,
                    assignment,
                });
            }
            Err(r) => early.push(Some(r)),
        }
    }
    let mut created = broker
        .create_topics(
            specs,
            request.validate_only,
            crate::broker::client_timeout(request.timeout_ms),
        )
        .await
        .into_iter();
    let mut topics = Vec::with_capacity(request.topics.len());
    for (t, refused) in request.topics.iter().zip(early) {
        let mut out = CreatableTopicResult::default().with_name(t.name.clone());
        let result = match refused {
            Some(r) => Err(r),
            None => created.next().unwrap_or_else(|| {
                Err(Refusal {
                    code: ResponseError::UnknownServerError.code(),
                    message: "no result".into(),
                })
            }),
        };
        match result {
            Ok(image) => {
                out.topic_id = image.topic_id;
                out.num_partitions = if image.partitions.is_empty() {
                    if t.num_partitions == -1 {
                        broker.config.num_partitions
                    } else {
                        t.num_partitions
                    }
                } else {
                    image.partitions.len() as i32
                };
                out.replication_factor = image.partitions.values().next().map_or(
                    if t.replication_factor == -1 {
                        broker.config.default_replication_factor
                    } else {
                        t.replication_factor
                    },
                    |p| p.replicas.len() as i16,
                );
                if version >= 5 {
                    out.configs = Some(Vec::new());
                }
            }
            Err(r) => {
                out.error_code = r.code;
                out.error_message = Some(StrBytes::from_string(r.message));
                out.num_partitions = -1;
                out.replication_factor = -1;
            }
        }
        topics.push(out);
    }
    CreateTopicsResponse::default().with_topics(topics)
}

/// The replicas of each partition a manual assignment gives, checked as
/// Kafka checks it: no count or factor beside it, partitions numbered 0, 1, 2…, and the
/// brokers valid (see [`Broker::check_replica_assignment`]).
fn manual_placement(broker: &Broker, t: &CreatableTopic) -> Result<Vec<Vec<i32>>, Refusal> {
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err(Refusal {
            code: ResponseError::InvalidRequest.code(),
            message: "numPartitions or replicationFactor cannot be set with a replica assignment"
                .into(),
        });
    }
    let mut by_partition: Vec<(i32, Vec<i32>)> = t
        .assignments
        .iter()
        .map(|a| {
            (
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect(),
            )
        })
        .collect();
    by_partition.sort_by_key(|(p, _)| *p);
    if by_partition
        .iter()
        .enumerate()
        .any(|(i, (p, _))| *p != i as i32)
    {
        return Err(Refusal {
            code: ResponseError::InvalidReplicaAssignment.code(),
            message: "partitions in the assignment must be numbered 0, 1, 2… without gaps".into(),
        });
    }
    let replicas: Vec<Vec<i32>> = by_partition.into_iter().map(|(_, r)| r).collect();
    broker.check_replica_assignment(&replicas)?;
    Ok(replicas)
}
