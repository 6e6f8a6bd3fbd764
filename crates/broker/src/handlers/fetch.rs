//! Fetch: whole batches from each partition's log, up to the partition and request limits,
//! with at least one batch even if larger (KIP-74). If fewer than `min_bytes` are ready, the
//! request waits on the logs' end-offset notifications (no polling) until data arrives or
//! `max_wait_ms` passes. Fetch sessions (KIP-227) are declined with session id 0, which
//! clients accept by sending full fetches.
//!
//! The records stay file regions: [`crate::fetch_codec`] frames the response around them and
//! the connection `sendfile`s them from the segment file to the socket (zero-copy).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use strom_storage::FileRegion;
use strom_types::TopicPartition;

use crate::broker::Broker;
use crate::errors::storage_error_code;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    request: FetchRequest,
) -> (FetchResponse, Vec<Option<FileRegion>>) {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    // Subscribe before the first read, so an append between read and wait is not missed.
    let mut watches: Vec<_> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().filter_map(|p| {
                broker
                    .logs
                    .get(&TopicPartition::new(t.topic.0.to_string(), p.partition))
                    .map(|l| l.subscribe())
            })
        })
        .collect();
    loop {
        let (response, regions, bytes, errors) = read_once(broker, &request);
        let now = Instant::now();
        if bytes >= request.min_bytes.max(0) as usize
            || errors
            || now >= deadline
            || watches.is_empty()
        {
            return (response, regions);
        }
        let changed =
            futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout(deadline - now, changed).await.is_err() {
            let (response, regions, _, _) = read_once(broker, &request);
            return (response, regions);
        }
    }
}

fn read_once(
    broker: &Broker,
    request: &FetchRequest,
) -> (FetchResponse, Vec<Option<FileRegion>>, usize, bool) {
    let mut remaining = request.max_bytes.max(0) as u64;
    let mut total = 0usize;
    let mut errors = false;
    let mut responses = Vec::with_capacity(request.topics.len());
    let mut regions = Vec::new();
    let image = broker.image();
    for t in &request.topics {
        let name = t.topic.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut partition_region = None;
            let mut out = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions(Some(Vec::new()))
                .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1));
            match broker.leader_log(&image, &name, p.partition) {
                Err((code, _)) => {
                    out.error_code = code;
                    errors = true;
                }
                Ok(log) => {
                    let max = (p.partition_max_bytes.max(0) as u64).min(remaining);
                    let first = total == 0;
                    match log.read(p.fetch_offset, max, None, first) {
                        Ok(info) => {
                            out.high_watermark = info.log_end_offset;
                            out.last_stable_offset = info.log_end_offset;
                            out.log_start_offset = info.log_start_offset;
                            if let Some(region) = info.region {
                                total += region.len() as usize;
                                remaining = remaining.saturating_sub(region.len());
                                partition_region = Some(region);
                            }
                        }
                        Err(e) => {
                            out.error_code = storage_error_code(&e);
                            out.high_watermark = log.log_end_offset();
                            out.log_start_offset = log.log_start_offset();
                            errors = true;
                        }
                    }
                }
            }
            if partition_region.is_none() {
                out.records = Some(bytes::Bytes::new());
            }
            regions.push(partition_region);
            partitions.push(out);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses),
        regions,
        total,
        errors,
    )
}
