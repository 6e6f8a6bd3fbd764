//! DescribeQuorum (KIP-595, KIP-836): the metadata quorum's leader, epoch, high watermark,
//! and each voter's and observer's log end offset and last contact, as the leader sees them
//! (a broker that is not the leader asks it).

use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_metadata::raft::ReplicaStatus;

use crate::broker::Broker;

/// The metadata log's topic name, the only one DescribeQuorum knows.
const METADATA_TOPIC: &str = "__cluster_metadata";

pub(super) async fn handle(
    broker: &Arc<Broker>,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let status = broker.metadata.quorum_status().await;
    let replica = |r: &ReplicaStatus| {
        ReplicaState::default()
            .with_replica_id(BrokerId(r.replica_id))
            .with_log_end_offset(r.log_end_offset)
            .with_last_fetch_timestamp(r.last_fetch_timestamp)
            .with_last_caught_up_timestamp(r.last_caught_up_timestamp)
    };
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let known = t.topic_name.0.as_str() == METADATA_TOPIC;
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = PartitionData::default().with_partition_index(p.partition_index);
                    if !known || p.partition_index != 0 {
                        return out
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_leader_id(BrokerId(-1));
                    }
                    out.with_leader_id(BrokerId(status.leader_id))
                        .with_leader_epoch(status.leader_epoch)
                        .with_high_watermark(status.high_watermark)
                        .with_current_voters(status.voters.iter().map(replica).collect())
                        .with_observers(status.observers.iter().map(replica).collect())
                })
                .collect();
            TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_string(t.topic_name.0.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    let mut response = DescribeQuorumResponse::default().with_topics(topics);
    if version >= 2 {
        response.nodes = broker
            .metadata
            .quorum()
            .config()
            .voters
            .iter()
            .filter_map(|(id, addr)| {
                let (host, port) = addr.rsplit_once(':')?;
                Some(Node::default().with_node_id(BrokerId(*id)).with_listeners(
                    vec![Listener::default()
                            .with_name(StrBytes::from_static_str("CONTROLLER"))
                            .with_host(StrBytes::from_string(host.to_string()))
                            .with_port(port.parse().ok()?)],
                ))
            })
            .collect();
    }
    response
}
