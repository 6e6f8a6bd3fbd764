//! ElectLeaders (KIP-460): move leadership back to preferred replicas, or give leaderless
//! partitions any live replica (unclean), through the controller.

use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_metadata::controller::partitions::{ElectionOutcome, ElectionType};
use strom_metadata::{ControllerReply, ControllerRequest};

use crate::broker::{client_timeout, Broker};

pub(super) async fn handle(
    broker: &Arc<Broker>,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let kind = match request.election_type {
        0 => ElectionType::Preferred,
        1 => ElectionType::Unclean,
        _ => {
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
        }
    };
    let partitions = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let reply = broker
        .submit_within(
            ControllerRequest::ElectLeaders { kind, partitions },
            client_timeout(request.timeout_ms),
        )
        .await;
    let outcomes = match reply {
        Ok(ControllerReply::Elections { outcomes, .. }) => outcomes,
        Ok(_) => {
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::UnknownServerError.code())
        }
        Err(refusal) => return ElectLeadersResponse::default().with_error_code(refusal.code),
    };
    let mut by_topic: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), outcome) in outcomes {
        let (code, message) = match outcome {
            ElectionOutcome::Elected => (0, None),
            ElectionOutcome::NotNeeded => (
                ResponseError::ElectionNotNeeded.code(),
                Some("the partition already has the leader asked for"),
            ),
            ElectionOutcome::PreferredNotAvailable => (
                ResponseError::PreferredLeaderNotAvailable.code(),
                Some("the preferred replica is not live or not in sync"),
            ),
            ElectionOutcome::NoneEligible => (
                ResponseError::EligibleLeadersNotAvailable.code(),
                Some("no live replica can lead the partition"),
            ),
            ElectionOutcome::Unknown => (
                ResponseError::UnknownTopicOrPartition.code(),
                Some("no such partition"),
            ),
        };
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_static_str));
        match by_topic.iter_mut().find(|r| r.topic.0.as_str() == topic) {
            Some(r) => r.partition_result.push(result),
            None => by_topic.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(by_topic)
}
