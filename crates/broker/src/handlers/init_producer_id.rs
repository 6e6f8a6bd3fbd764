//! InitProducerId: for an idempotent producer (no transactional id), a fresh producer id at
//! epoch 0, as Kafka gives (a request carrying its old id and epoch, KIP-360, also gets a
//! fresh id). With a transactional id, the transaction coordinator answers: the id's
//! producer id with its epoch bumped, fencing the previous producer (PRODUCER_FENCED from
//! v4 on, INVALID_PRODUCER_EPOCH before).
//!
//! A transactional producer needs WRITE on its transactional id; an idempotent one
//! IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use strom_types::acl::{AclOperation, ResourceType};

use crate::authz::Access;
use crate::broker::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let refused = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(id) = request
        .transactional_id
        .as_ref()
        .filter(|t| !t.0.is_empty())
    {
        if !access.allows(AclOperation::Write, ResourceType::TransactionalId, id) {
            return refused(ResponseError::TransactionalIdAuthorizationFailed.code());
        }
        let expected = (version >= 3 && request.producer_id.0 >= 0)
            .then_some((request.producer_id.0, request.producer_epoch));
        return match broker
            .transactions
            .init_producer_id(id.as_str(), request.transaction_timeout_ms, expected)
            .await
        {
            Ok((pid, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(code) if code == ResponseError::ProducerFenced.code() && version < 4 => {
                refused(ResponseError::InvalidProducerEpoch.code())
            }
            Err(code) => refused(code),
        };
    }
    if !access.allows_idempotent_write() {
        return refused(ResponseError::ClusterAuthorizationFailed.code());
    }
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(error = %e.message, "could not allocate a producer id");
            refused(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}
