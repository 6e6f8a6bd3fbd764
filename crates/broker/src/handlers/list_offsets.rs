//! ListOffsets: earliest (-2), latest (-1: the high watermark, as consumers see it, or the
//! last stable offset for isolation level read_committed), max
//! timestamp (-3), or by timestamp through the time index.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::errors::storage_error_code;

pub(super) fn handle(
    broker: &Arc<Broker>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let image = broker.image();
    let read_committed = version >= 2 && request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let partition = match broker.leader_partition(&image, &name, p.partition_index)
                    {
                        Ok(partition) => partition,
                        Err((code, _)) => {
                            out.error_code = code;
                            return out;
                        }
                    };
                    if let Some(part) = image
                        .topics
                        .get(&name)
                        .and_then(|t| t.partitions.get(&p.partition_index))
                    {
                        if version >= 4 {
                            out.leader_epoch = part.leader_epoch;
                        }
                    }
                    let log = partition.log();
                    let found = match p.timestamp {
                        -2 => Ok(Some((log.log_start_offset(), -1))),
                        // Consumers see up to the high watermark (read_uncommitted), or
                        // the last stable offset (read_committed, v2+).
                        -1 if read_committed => Ok(Some((partition.last_stable_offset(), -1))),
                        -1 => Ok(Some((partition.high_watermark(), -1))),
                        -3 => log.max_timestamp_offset(),
                        ts if ts >= 0 => log.offset_for_timestamp(ts),
                        _ => {
                            out.error_code = ResponseError::InvalidRequest.code();
                            return out;
                        }
                    };
                    match found {
                        Ok(Some((offset, ts))) => {
                            out.offset = offset;
                            out.timestamp = ts;
                        }
                        Ok(None) => {}
                        Err(e) => out.error_code = storage_error_code(&e),
                    }
                    out
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
