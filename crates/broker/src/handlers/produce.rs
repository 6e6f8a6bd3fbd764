//! Produce: each partition's batches are validated and appended by its leader replica,
//! which assigns the offsets in place. acks=0 gets no response; acks=1 is answered after
//! the leader's append; acks=all once the ISR holds the batch (the high watermark passes
//! it) or `timeout_ms` passes, refused up front with NOT_ENOUGH_REPLICAS when the ISR is
//! below `min.insync.replicas`. The partitions of one request wait together.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_replication::ReplicationError;
use strom_storage::AppendOrigin;
use strom_types::acl::{AclOperation, ResourceType};
use strom_types::batch::{self, BatchHeader};
use strom_types::TopicPartition;

use crate::authz::Access;
use crate::broker::Broker;
use crate::errors;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    // Transaction version 2 (KIP-890 part 2): from v12 a produce adds its own partition.
    let adds = version >= 12;
    let acks = request.acks;
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let transactional_id: Option<Arc<str>> = request
        .transactional_id
        .as_ref()
        .filter(|t| !t.0.is_empty())
        .map(|t| t.0.to_string().into());
    // Kafka's checks: WRITE on the transactional id (for every partition), WRITE on each
    // topic.
    let txn_denied = transactional_id
        .as_deref()
        .filter(|t| !access.allows(AclOperation::Write, ResourceType::TransactionalId, t))
        .map(|_| ResponseError::TransactionalIdAuthorizationFailed);
    let mut topics: Vec<(TopicName, Vec<_>)> = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name: Arc<str> = topic.name.0.to_string().into();
        let denied = txn_denied.or_else(|| {
            (!access.allows(AclOperation::Write, ResourceType::Topic, &name))
                .then_some(ResponseError::TopicAuthorizationFailed)
        });
        let partitions = topic
            .partition_data
            .into_iter()
            .map(|p| {
                produce_partition(
                    broker,
                    name.clone(),
                    p.index,
                    p.records,
                    (acks, timeout),
                    (transactional_id.clone(), adds),
                    denied,
                )
            })
            .collect::<Vec<_>>();
        topics.push((topic.name, partitions));
    }
    let mut responses = Vec::with_capacity(topics.len());
    for (name, partitions) in topics {
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(futures_util::future::join_all(partitions).await),
        );
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

async fn produce_partition(
    broker: &Arc<Broker>,
    name: Arc<str>,
    index: i32,
    records: Option<Bytes>,
    (acks, timeout): (i16, Duration),
    (transactional_id, adds): (Option<Arc<str>>, bool),
    denied: Option<ResponseError>,
) -> PartitionProduceResponse {
    let mut out = PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    let mut record_errors = Vec::new();
    let result: Result<(), (i16, String)> = async {
        if let Some(e) = denied {
            return Err((e.code(), e.to_string()));
        }
        if !matches!(acks, -1..=1) {
            return Err((
                ResponseError::InvalidRequiredAcks.code(),
                format!("acks={acks} is not 0, 1 or -1"),
            ));
        }
        let partition = broker.leader_partition(&broker.image(), &name, index)?;
        let records = records.unwrap_or_default();
        if records.len() as u64 > partition.log().config().segment_bytes {
            return Err((
                ResponseError::RecordListTooLarge.code(),
                "larger than segment.bytes".into(),
            ));
        }
        let header = check_one_batch(&records)?;
        let tp = TopicPartition::new(&*name, index);
        // A control batch from a client is INVALID_RECORD whatever its transaction (the
        // append refuses it).
        if let Some(h) = header.filter(|h| h.is_transactional() && !h.is_control()) {
            verify_transaction(
                broker,
                &tp,
                &h,
                transactional_id.as_deref(),
                partition.log(),
                adds,
            )
            .await?;
        }
        let mut bytes = into_mut(records);
        let info = broker
            .replicas
            .append(&tp, &mut bytes, acks, timeout, AppendOrigin::Client)
            .await
            .map_err(|e| {
                tracing::debug!(partition = %tp, error = %e, "produce refused");
                if let ReplicationError::Storage(s) = &e {
                    record_errors = errors::record_errors(s);
                }
                (errors::replication_error_code(&e), e.to_string())
            })?;
        broker
            .metrics
            .topic(&name)
            .produced(info.bytes, info.records);
        out.base_offset = info.first_offset;
        out.log_append_time_ms = info.log_append_time;
        out.log_start_offset = info.log_start_offset;
        Ok(())
    }
    .await;
    if let Err((code, message)) = result {
        // Counted for topics that exist: names a client makes up get no series.
        if broker.image().topics.contains_key(&*name) {
            broker.metrics.topic(&name).produce_failed();
        }
        out.error_code = code;
        out.error_message = Some(StrBytes::from_string(message));
        out.record_errors = record_errors
            .into_iter()
            .map(|(batch_index, message)| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(batch_index)
                    .with_batch_index_error_message(Some(StrBytes::from_string(message)))
            })
            .collect();
    }
    out
}

/// KIP-890: a producer's first transactional batch to a partition in a transaction is
/// taken only once its coordinator confirms the partition was added to that transaction
/// (part 1), or has added it (part 2, `adds`: Produce v12+); later batches of the same
/// transaction (the same epoch) are covered by the open transaction the partition already
/// tracks. A transactional batch without a transactional id is refused as Kafka does.
async fn verify_transaction(
    broker: &Arc<Broker>,
    tp: &TopicPartition,
    h: &BatchHeader,
    transactional_id: Option<&str>,
    log: &strom_storage::Log,
    adds: bool,
) -> Result<(), (i16, String)> {
    let Some(id) = transactional_id else {
        return Err((
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            "transactional records need the producer's transactional id".into(),
        ));
    };
    if log.in_transaction(h.producer_id, h.producer_epoch) {
        return Ok(());
    }
    let producer = (h.producer_id, h.producer_epoch);
    match crate::txn::verify_in_transaction(broker, id, producer, tp, adds).await {
        0 => Ok(()),
        code => Err((
            code,
            format!(
                "{tp} is not in an open transaction of producer {}",
                h.producer_id
            ),
        )),
    }
}

/// Kafka's rule for a partition's records in Produce v3+: exactly one batch (whose own
/// validation comes with the append). Returns its header when it parses.
fn check_one_batch(records: &[u8]) -> Result<Option<BatchHeader>, (i16, String)> {
    let mut batches = batch::batches(records);
    let first = match batches.next() {
        Some(Ok(b)) => b,
        // Damage is reported by the append, with the code Kafka gives each fault.
        Some(Err(_)) => return Ok(None),
        None => {
            return Err((
                ResponseError::InvalidRecord.code(),
                "a partition's records must hold one record batch".into(),
            ))
        }
    };
    if first.size() != records.len() {
        return Err((
            ResponseError::InvalidRecord.code(),
            "Produce v3+ allows exactly one record batch per partition".into(),
        ));
    }
    Ok(Some(*first.header()))
}

/// The request's record bytes as a mutable buffer, without copying when the frame is ours.
fn into_mut(records: Bytes) -> BytesMut {
    match records.try_into_mut() {
        Ok(b) => b,
        Err(shared) => BytesMut::from(&shared[..]),
    }
}
