//! Metadata: the live brokers, the controller, the cluster id, and topics with their
//! partitions' leaders, replicas and ISR. Unknown topics are created when the client allows
//! it and `auto.create.topics.enable` is on, as in Kafka.
//!
//! With an authorizer, a principal sees only the topics it may DESCRIBE: the rest are left
//! out of a listing, and a topic asked for by name or id gets TOPIC_AUTHORIZATION_FAILED
//! (whether it exists or not, so names do not leak). Auto-creation needs CREATE on the
//! cluster or on the topic.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_metadata::TopicImage;

use strom_types::acl::{AclOperation, ResourceType, CLUSTER_NAME};

use crate::authz::{Access, NOT_REQUESTED};
use crate::broker::{Broker, RESERVED_TOPICS};

pub(super) async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    request: MetadataRequest,
    version: i16,
    listener: &str,
) -> MetadataResponse {
    let node = broker.config.node_id;
    let mut image = broker.image();
    // v0 asks for all topics with an empty list; later versions with null. From v10 a topic
    // may be asked for by id alone (KIP-516), as KIP-848 consumers do for their assignments.
    let mut by_id = Vec::new();
    let wanted: Option<Vec<String>> = match request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.iter()
                .filter_map(|t| match &t.name {
                    Some(n) => Some(n.0.to_string()),
                    None => {
                        by_id.push(t.topic_id);
                        None
                    }
                })
                .collect(),
        ),
    };
    let topic_ops = version >= 8 && request.include_topic_authorized_operations;
    let describable = |name: &str| access.allows(AclOperation::Describe, ResourceType::Topic, name);
    let denied = |name: String| {
        MetadataResponseTopic::default()
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_name(Some(TopicName(StrBytes::from_string(name))))
    };
    let allow_create = broker.config.auto_create_topics_enable
        && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match wanted {
        None => topics.extend(
            image
                .topics
                .values()
                .filter(|t| describable(&t.name))
                .map(|t| topic_entry(t, node)),
        ),
        Some(names) => {
            for name in names {
                if !describable(&name) {
                    topics.push(denied(name));
                    continue;
                }
                if !image.topics.contains_key(&name)
                    && allow_create
                    && !RESERVED_TOPICS.contains(&name.as_str())
                {
                    if !access.allows_cluster(AclOperation::Create)
                        && !access.allows(AclOperation::Create, ResourceType::Topic, &name)
                    {
                        topics.push(denied(name));
                        continue;
                    }
                    match broker.auto_create(&name, false).await {
                        Ok(()) => image = broker.image(),
                        Err(r) if r.code == ResponseError::LeaderNotAvailable.code() => {
                            topics.push(
                                MetadataResponseTopic::default()
                                    .with_error_code(r.code)
                                    .with_name(Some(TopicName(StrBytes::from_string(name)))),
                            );
                            continue;
                        }
                        Err(_) => {}
                    }
                }
                match image.topics.get(&name) {
                    Some(t) => topics.push(topic_entry(t, node)),
                    None => {
                        let code = if crate::broker::validate_topic_name(&name).is_err() {
                            ResponseError::InvalidTopicException.code()
                        } else {
                            ResponseError::UnknownTopicOrPartition.code()
                        };
                        topics.push(
                            MetadataResponseTopic::default()
                                .with_error_code(code)
                                .with_name(Some(TopicName(StrBytes::from_string(name)))),
                        );
                    }
                }
            }
        }
    }
    for id in by_id {
        match image.topic_by_id(&id) {
            Some(t) if describable(&t.name) => topics.push(topic_entry(t, node)),
            Some(_) => topics.push(
                MetadataResponseTopic::default()
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_topic_id(id),
            ),
            None => topics.push(
                MetadataResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicId.code())
                    .with_topic_id(id),
            ),
        }
    }
    let brokers = broker
        .live_brokers(&image)
        .iter()
        .filter_map(|b| {
            let (host, port) = broker.endpoint_of(&image, b.id, listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(i32::from(port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(image.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_for_clients(&image)))
        .with_cluster_authorized_operations(
            if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
                access.operations(ResourceType::Cluster, CLUSTER_NAME)
            } else {
                NOT_REQUESTED
            },
        )
        .with_topics(
            topics
                .into_iter()
                .map(|t| {
                    let ops = match &t.name {
                        Some(name) if topic_ops && t.error_code == 0 => {
                            access.operations(ResourceType::Topic, name)
                        }
                        _ => NOT_REQUESTED,
                    };
                    t.with_topic_authorized_operations(ops)
                })
                .collect(),
        )
}

fn topic_entry(t: &TopicImage, _node: i32) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|(index, p)| {
            MetadataResponsePartition::default()
                .with_partition_index(*index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.topic_id)
        .with_is_internal(t.name.starts_with("__"))
        .with_partitions(partitions)
}
