//! ListOffsets: earliest (-2), latest (-1: the high watermark, as consumers see it, or the
//! last stable offset for isolation level read_committed), max timestamp (-3), or by
//! timestamp through the time index, each bounded by what consumers may read. Only the
//! leader answers, for the leader epoch the client names. Needs DESCRIBE on the topic.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use strom_types::acl::{AclOperation, ResourceType};

use crate::authz::Access;
use crate::broker::Broker;
use crate::errors::{replication_error_code, storage_error_code};

pub(super) fn handle(
    broker: &Arc<Broker>,
    access: &Access,
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
            let allowed = access.allows(AclOperation::Describe, ResourceType::Topic, &name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    if !allowed {
                        out.error_code = ResponseError::TopicAuthorizationFailed.code();
                        return out;
                    }
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
                    // The earliest offset needs no settled end; every other lookup does,
                    // and one by timestamp finds only what consumers may read (Kafka's
                    // rules).
                    let bounds = match partition
                        .offsets_for_client(p.current_leader_epoch, p.timestamp != -2)
                    {
                        Ok(bounds) => bounds,
                        Err(e) => {
                            out.error_code = replication_error_code(&e);
                            return out;
                        }
                    };
                    // Consumers see up to the high watermark (read_uncommitted), or the
                    // last stable offset (read_committed, v2+).
                    let end = if read_committed {
                        bounds.last_stable_offset
                    } else {
                        bounds.high_watermark
                    };
                    let log = partition.log();
                    let visible = |found: Option<(i64, i64)>| found.filter(|(o, _)| *o < end);
                    let found = match p.timestamp {
                        -2 => Ok(Some((log.log_start_offset(), -1))),
                        -1 => Ok(Some((end, -1))),
                        -3 => log.max_timestamp_offset().map(visible),
                        ts if ts >= 0 => log.offset_for_timestamp(ts).map(visible),
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
