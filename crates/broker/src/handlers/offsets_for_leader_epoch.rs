//! OffsetsForLeaderEpoch (KIP-101, KIP-320): where a leader epoch ends in the leader's log,
//! so a consumer after a leader change can tell whether its position was truncated away.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;
use strom_types::acl::{AclOperation, ResourceType};
use strom_types::TopicPartition;

use crate::authz::Access;
use crate::broker::Broker;
use crate::errors::replication_error_code;

pub(super) fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = broker.image();
    // A follower asks with CLUSTER_ACTION; a consumer needs DESCRIBE on the topic.
    let follower = request.replica_id.0 >= 0;
    let cluster_action = follower && access.allows_cluster(AclOperation::ClusterAction);
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let allowed = if follower {
                cluster_action
            } else {
                access.allows(AclOperation::Describe, ResourceType::Topic, &name)
            };
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !allowed {
                        out.error_code = ResponseError::TopicAuthorizationFailed.code();
                        return out;
                    }
                    if let Err((code, _)) = broker.leader_partition(&image, &name, p.partition) {
                        out.error_code = code;
                        return out;
                    }
                    let tp = TopicPartition::new(name.as_str(), p.partition);
                    match broker.replicas.end_offset_for_epoch(
                        &tp,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    ) {
                        Ok(end) => {
                            out.leader_epoch = end.epoch;
                            out.end_offset = end.end_offset;
                        }
                        Err(e) => out.error_code = replication_error_code(&e),
                    }
                    out
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
