//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455): moving replicas
//! between brokers. The controller decides (`strom_metadata::controller::reassign`); the
//! replica managers carry it out as the image changes.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_metadata::controller::reassign::{self, Reassignment};
use strom_metadata::{ControllerReply, ControllerRequest};

use crate::broker::{client_timeout, Broker};
use crate::errors::controller_refusal;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().map(|id| BrokerId(*id)).collect()
}

pub(super) async fn alter(
    broker: &Arc<Broker>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut changes = Vec::new();
    for t in &request.topics {
        for p in &t.partitions {
            changes.push(Reassignment {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                target: p
                    .replicas
                    .as_ref()
                    .map(|r| r.iter().map(|id| id.0).collect()),
            });
        }
    }
    let reply = broker
        .submit_within(
            ControllerRequest::AlterReassignments {
                changes: changes.clone(),
                allow_replication_factor_change: request.allow_replication_factor_change,
            },
            client_timeout(request.timeout_ms),
        )
        .await;
    let outcomes = match reply {
        Ok(ControllerReply::Outcomes { outcomes, .. }) => outcomes,
        Ok(_) => {
            return AlterPartitionReassignmentsResponse::default()
                .with_error_code(ResponseError::UnknownServerError.code())
        }
        Err(refusal) => {
            return AlterPartitionReassignmentsResponse::default()
                .with_error_code(refusal.code)
                .with_error_message(Some(StrBytes::from_string(refusal.message)))
        }
    };
    let mut responses: Vec<ReassignableTopicResponse> = Vec::new();
    for (change, outcome) in changes.into_iter().zip(outcomes) {
        let mut result = ReassignablePartitionResponse::default()
            .with_partition_index(change.partition)
            .with_error_message(None);
        if let Err(e) = outcome {
            let refusal = controller_refusal(&e);
            result.error_code = refusal.code;
            result.error_message = Some(StrBytes::from_string(refusal.message));
        }
        match responses
            .iter_mut()
            .find(|r| r.name.0.as_str() == change.topic)
        {
            Some(r) => r.partitions.push(result),
            None => responses.push(
                ReassignableTopicResponse::default()
                    .with_name(TopicName(StrBytes::from_string(change.topic)))
                    .with_partitions(vec![result]),
            ),
        }
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change)
        .with_responses(responses)
}

pub(super) fn list(
    broker: &Arc<Broker>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let image = broker.image();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for (topic, index, p) in reassign::list_reassignments(&image, wanted.as_deref()) {
        let ongoing = OngoingPartitionReassignment::default()
            .with_partition_index(index)
            .with_replicas(ids(&p.replicas))
            .with_adding_replicas(ids(&p.adding_replicas))
            .with_removing_replicas(ids(&p.removing_replicas));
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(ongoing),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![ongoing]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
