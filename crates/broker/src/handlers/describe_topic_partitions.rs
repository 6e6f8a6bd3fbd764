//! DescribeTopicPartitions (KIP-966): the topics' partitions in name order, at most
//! `response_partition_limit` of them per response (capped at Kafka's 2000), and a cursor
//! to go on from. Unlike Metadata it never creates topics. The eligible leader replicas of
//! KIP-966 are empty: Strom elects from the ISR only. Topics the principal may not DESCRIBE
//! are left out of a listing and refused with TOPIC_AUTHORIZATION_FAILED when named.

use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use strom_types::acl::{AclOperation, ResourceType};

use crate::authz::Access;
use crate::broker::Broker;

/// Kafka's `max.request.partition.size.limit`: the most partitions one response holds.
const MAX_PARTITIONS: i32 = 2000;

pub(super) fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = broker.image();
    let describable = |name: &str| access.allows(AclOperation::Describe, ResourceType::Topic, name);
    let mut names: Vec<String> = if request.topics.is_empty() {
        image
            .topics
            .keys()
            .filter(|n| describable(n))
            .cloned()
            .collect()
    } else {
        request.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (first_topic, first_partition) = match &request.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    if let Some(t) = &first_topic {
        if !names.contains(t) {
            // Kafka refuses a cursor outside the topics asked for.
            return DescribeTopicPartitionsResponse::default().with_topics(vec![
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_name(Some(TopicName(StrBytes::from_string(t.clone())))),
            ]);
        }
    }
    let mut budget = request.response_partition_limit.clamp(1, MAX_PARTITIONS);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let skip_before = first_topic.as_deref().unwrap_or("");
    for name in names.iter().filter(|n| n.as_str() >= skip_before) {
        if !describable(name) {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_name(Some(TopicName(StrBytes::from_string(name.clone())))),
            );
            continue;
        }
        let Some(t) = image.topics.get(name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_name(Some(TopicName(StrBytes::from_string(name.clone())))),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(cursor(name, 0));
            break;
        }
        let start = if first_topic.as_deref() == Some(name) {
            first_partition
        } else {
            0
        };
        let mut partitions = Vec::new();
        for (index, p) in t.partitions.range(start..) {
            if budget == 0 {
                next_cursor = Some(cursor(name, *index));
                break;
            }
            budget -= 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(*index)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                    .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new())),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                .with_topic_id(t.topic_id)
                .with_is_internal(name.starts_with("__"))
                .with_partitions(partitions)
                .with_topic_authorized_operations(access.operations(ResourceType::Topic, name)),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_index(partition)
}
