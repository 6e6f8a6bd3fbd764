//! Produce: each partition's batches are validated and appended by its log, which assigns
//! the offsets in place. acks=0 gets no response; acks=1 and acks=all are answered after the
//! append (on one node the in-sync set is this node, checked against min.insync.replicas).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_storage::{now_ms, AppendOrigin};
use strom_types::batch;

use crate::broker::Broker;
use crate::errors;

pub(super) fn handle(broker: &Arc<Broker>, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let image = broker.image();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let mut out = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let mut record_errors = Vec::new();
            let code = (|| -> Result<(), (i16, String)> {
                if !matches!(acks, -1..=1) {
                    return Err((
                        ResponseError::InvalidRequiredAcks.code(),
                        format!("acks={acks} is not 0, 1 or -1"),
                    ));
                }
                let topic_image = image.topics.get(&name);
                let partition = topic_image.and_then(|t| t.partitions.get(&p.index));
                let (Some(t), Some(partition)) = (topic_image, partition) else {
                    return Err((
                        ResponseError::UnknownTopicOrPartition.code(),
                        format!("{name}-{} does not exist", p.index),
                    ));
                };
                let log = broker.leader_log(&image, &name, p.index)?;
                if acks == -1 {
                    let min_isr = broker.min_insync_replicas(&image, &t.name);
                    if (partition.isr.len() as i32) < min_isr {
                        return Err((
                            ResponseError::NotEnoughReplicas.code(),
                            format!(
                                "{} in-sync replicas, min.insync.replicas is {min_isr}",
                                partition.isr.len()
                            ),
                        ));
                    }
                }
                let records = p.records.unwrap_or_default();
                if records.len() as u64 > log.config().segment_bytes {
                    return Err((
                        ResponseError::RecordListTooLarge.code(),
                        "larger than segment.bytes".into(),
                    ));
                }
                check_one_batch(&records)?;
                let mut bytes = into_mut(records);
                let now = now_ms();
                let info = tokio::task::block_in_place(|| {
                    log.append_as_leader(&mut bytes, partition.leader_epoch, AppendOrigin::Client, now)
                })
                .map_err(|e| {
                    tracing::debug!(partition = %log.topic_partition(), error = %e, "produce refused");
                    record_errors = errors::record_errors(&e);
                    (errors::storage_error_code(&e), e.to_string())
                })?;
                out.base_offset = info.first_offset;
                out.log_append_time_ms = info.log_append_time;
                out.log_start_offset = info.log_start_offset;
                Ok(())
            })();
            if let Err((code, message)) = code {
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
            partitions.push(out);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// Kafka's rules for a partition's records in Produce v3+: exactly one batch (whose own
/// validation comes with the append), and no transactional batch while Strom has no
/// transaction coordinator to pair it with a commit or abort marker.
fn check_one_batch(records: &[u8]) -> Result<(), (i16, String)> {
    let mut batches = batch::batches(records);
    let first = match batches.next() {
        Some(Ok(b)) => b,
        // Damage is reported by the append, with the code Kafka gives each fault.
        Some(Err(_)) => return Ok(()),
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
    if first.header().is_transactional() {
        return Err((
            ResponseError::InvalidTxnState.code(),
            "transactions are not supported yet".into(),
        ));
    }
    Ok(())
}

/// The request's record bytes as a mutable buffer, without copying when the frame is ours.
fn into_mut(records: Bytes) -> BytesMut {
    match records.try_into_mut() {
        Ok(b) => b,
        Err(shared) => BytesMut::from(&shared[..]),
    }
}
