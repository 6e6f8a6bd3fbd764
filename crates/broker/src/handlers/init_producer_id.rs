//! InitProducerId for idempotent producers: a fresh producer id at epoch 0, as Kafka gives a
//! producer without a transactional id (a request carrying its old id and epoch, KIP-360,
//! also gets a fresh id). Transactional ids need the transaction coordinator, which Strom
//! does not have yet: they are refused with UNSUPPORTED_VERSION, which clients report as fatal
//! rather than retry.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::broker::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let refused = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        tracing::info!(transactional_id = ?request.transactional_id, "transactions are not supported yet");
        return refused(ResponseError::UnsupportedVersion);
    }
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(error = %e.message, "could not allocate a producer id");
            refused(ResponseError::CoordinatorNotAvailable)
        }
    }
}
