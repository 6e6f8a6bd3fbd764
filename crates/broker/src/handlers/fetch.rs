//! Fetch: whole batches from each partition replica, up to the partition and request
//! limits, with at least one batch even if larger (KIP-74). Consumers read below the high
//! watermark, from the leader or, from v11 on, from a follower (KIP-392, with the leader
//! pointing a client with a `rack_id` at a replica in its rack when `replica.selector.class`
//! is rack-aware); followers (a replica id) read to the log end, which moves their state on
//! the leader (ISR, high watermark) and tells them where their log diverges (v12+).
//! Topics are named from v13 on by id. A read_committed consumer (isolation level 1) reads
//! to the last stable offset and is told which transactions in that range were aborted.
//!
//! If fewer than `min_bytes` are ready the request waits, without polling, on what would
//! make more visible: the high watermark for a consumer, the log end for a follower, until
//! `max_wait_ms` passes. Fetch sessions (KIP-227) are declined with session id 0, which
//! clients accept by sending full fetches.
//!
//! The records stay file regions: [`crate::fetch_codec`] frames the response around them and
//! the connection `sendfile`s them from the segment file to the socket (zero-copy).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_metadata::MetadataImage;
use strom_replication::{ConsumerFetch, FollowerFetch};
use strom_storage::FileRegion;
use strom_types::acl::{AclOperation, ResourceType};
use strom_types::TopicPartition;

use crate::authz::Access;
use crate::broker::Broker;
use crate::errors::replication_error_code;

/// The request's topics, resolved against the image (name by id from v13 on) and checked:
/// a follower needs CLUSTER_ACTION on the cluster, a consumer READ on each topic. `Err` is
/// the error code each of the topic's partitions gets.
fn topic_names(
    image: &MetadataImage,
    access: &Access,
    request: &FetchRequest,
    replica: i32,
    version: i16,
) -> Vec<Result<String, i16>> {
    let follower_denied = replica >= 0 && !access.allows_cluster(AclOperation::ClusterAction);
    request
        .topics
        .iter()
        .map(|t| {
            let name = if version >= 13 {
                image
                    .topic_by_id(&t.topic_id)
                    .map(|t| t.name.clone())
                    .ok_or(ResponseError::UnknownTopicId.code())?
            } else {
                t.topic.0.to_string()
            };
            let denied = follower_denied
                || (replica < 0 && !access.allows(AclOperation::Read, ResourceType::Topic, &name));
            if denied {
                return Err(ResponseError::TopicAuthorizationFailed.code());
            }
            Ok(name)
        })
        .collect()
}

/// The follower's broker epoch (v15+), -1 when not given.
fn replica_epoch(request: &FetchRequest, version: i16) -> i64 {
    if version >= 15 {
        request.replica_state.replica_epoch
    } else {
        -1
    }
}

/// The fetching replica's id, -1 for a consumer.
pub(super) fn replica_id(request: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    }
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    request: FetchRequest,
    version: i16,
) -> (FetchResponse, Vec<Option<FileRegion>>) {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let replica = replica_id(&request, version);
    let names = topic_names(&broker.image(), access, &request, replica, version);
    // Subscribe before the first read, so a change between read and wait is not missed.
    let mut watches: Vec<_> = request
        .topics
        .iter()
        .zip(&names)
        .filter_map(|(t, name)| Some((t, name.as_ref().ok()?)))
        .flat_map(|(t, name)| {
            t.partitions.iter().filter_map(move |p| {
                let part = broker
                    .replicas
                    .get(&TopicPartition::new(name.as_str(), p.partition))?;
                Some(if replica >= 0 {
                    part.log().subscribe()
                } else {
                    part.subscribe_hwm()
                })
            })
        })
        .collect();
    loop {
        let (response, regions, bytes, errors) =
            read_once(broker, &request, &names, replica, version);
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
            let (response, regions, _, _) = read_once(broker, &request, &names, replica, version);
            return (response, regions);
        }
    }
}

/// KIP-392: the replica a consumer in `rack` should fetch from instead of this leader, if
/// the rack-aware selector is configured and an in-sync replica in that rack exists
/// (the leader itself when it is in the rack).
fn preferred_replica(
    broker: &Broker,
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    rack: &str,
) -> Option<i32> {
    if !broker.config.rack_aware_replica_selector || rack.is_empty() {
        return None;
    }
    let p = image.topics.get(topic)?.partitions.get(&partition)?;
    // Only the leader points elsewhere; a follower serves who comes to it.
    if p.leader != broker.config.node_id {
        return None;
    }
    let in_rack = |id: &i32| {
        image
            .brokers
            .get(id)
            .is_some_and(|b| b.is_active() && b.rack.as_deref() == Some(rack))
    };
    if in_rack(&p.leader) {
        return None;
    }
    p.isr.iter().copied().find(in_rack)
}

fn read_once(
    broker: &Broker,
    request: &FetchRequest,
    names: &[Result<String, i16>],
    replica: i32,
    version: i16,
) -> (FetchResponse, Vec<Option<FileRegion>>, usize, bool) {
    let mut remaining = request.max_bytes.max(0) as u64;
    let mut total = 0usize;
    let mut errors = false;
    let mut responses = Vec::with_capacity(request.topics.len());
    let mut regions = Vec::new();
    let replica_epoch = replica_epoch(request, version);
    // isolation_level 1 (v4+): read to the last stable offset, with the aborted ranges.
    let read_committed = version >= 4 && request.isolation_level == 1;
    let image = broker.image();
    for (t, name) in request.topics.iter().zip(names) {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut partition_region = None;
            let mut out = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions(Some(Vec::new()))
                .with_preferred_read_replica(BrokerId(-1));
            let max = (p.partition_max_bytes.max(0) as u64).min(remaining);
            let first = total == 0;
            let result = match name {
                Err(code) => Err(*code),
                Ok(name) => {
                    let tp = TopicPartition::new(name.as_str(), p.partition);
                    if broker.replicas.get(&tp).is_none() {
                        let exists = image
                            .topics
                            .get(name)
                            .is_some_and(|t| t.partitions.contains_key(&p.partition));
                        Err(if exists {
                            ResponseError::NotLeaderOrFollower.code()
                        } else {
                            ResponseError::UnknownTopicOrPartition.code()
                        })
                    } else if replica >= 0 {
                        broker
                            .replicas
                            .read_for_replica(
                                &tp,
                                FollowerFetch {
                                    replica,
                                    replica_epoch,
                                    fetch_offset: p.fetch_offset,
                                    last_fetched_epoch: p.last_fetched_epoch,
                                    current_leader_epoch: p.current_leader_epoch,
                                    max_bytes: max,
                                    min_one_batch: first,
                                },
                            )
                            .map(|r| {
                                out.high_watermark = r.high_watermark;
                                out.last_stable_offset = r.high_watermark;
                                out.log_start_offset = r.log_start_offset;
                                if let Some(d) = r.diverging {
                                    out.diverging_epoch = EpochEndOffset::default()
                                        .with_epoch(d.epoch)
                                        .with_end_offset(d.end_offset);
                                }
                                r.read.and_then(|r| r.region)
                            })
                            .map_err(|e| replication_error_code(&e))
                    } else if let Some(to) = (version >= 11)
                        .then(|| {
                            preferred_replica(broker, &image, name, p.partition, &request.rack_id)
                        })
                        .flatten()
                    {
                        // No records: the client moves to the preferred replica.
                        out.preferred_read_replica = BrokerId(to);
                        if let Some(part) = broker.replicas.get(&tp) {
                            out.high_watermark = part.high_watermark();
                            out.last_stable_offset = part.last_stable_offset();
                            out.log_start_offset = part.log().log_start_offset();
                        }
                        Ok(None)
                    } else {
                        broker
                            .replicas
                            .read_for_consumer(
                                &tp,
                                ConsumerFetch {
                                    fetch_offset: p.fetch_offset,
                                    current_leader_epoch: p.current_leader_epoch,
                                    max_bytes: max,
                                    min_one_batch: first,
                                    allow_follower: version >= 11,
                                    read_committed,
                                },
                            )
                            .map(|r| {
                                out.high_watermark = r.high_watermark;
                                out.last_stable_offset = r.last_stable_offset;
                                out.log_start_offset = r.read.log_start_offset;
                                if read_committed {
                                    out.aborted_transactions = Some(
                                        r.aborted
                                            .iter()
                                            .map(|t| {
                                                AbortedTransaction::default()
                                                    .with_producer_id(ProducerId(t.producer_id))
                                                    .with_first_offset(t.first_offset)
                                            })
                                            .collect(),
                                    );
                                }
                                r.read.region
                            })
                            .map_err(|e| replication_error_code(&e))
                    }
                }
            };
            match result {
                Ok(Some(region)) => {
                    total += region.len() as usize;
                    remaining = remaining.saturating_sub(region.len());
                    partition_region = Some(region);
                }
                Ok(None) => {}
                Err(code) => {
                    out.error_code = code;
                    errors = true;
                    if let Some(part) = name.as_ref().ok().and_then(|n| {
                        broker
                            .replicas
                            .get(&TopicPartition::new(n.as_str(), p.partition))
                    }) {
                        out.high_watermark = part.high_watermark();
                        out.log_start_offset = part.log().log_start_offset();
                    }
                    // KIP-951: tell the client who leads now, so it need not ask.
                    let moved = code == ResponseError::NotLeaderOrFollower.code()
                        || code == ResponseError::FencedLeaderEpoch.code();
                    let leader = name
                        .as_ref()
                        .ok()
                        .filter(|_| moved)
                        .and_then(|n| image.topics.get(n))
                        .and_then(|t| t.partitions.get(&p.partition));
                    if let Some(l) = leader {
                        out.current_leader = LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(l.leader))
                            .with_leader_epoch(l.leader_epoch);
                    }
                }
            }
            if partition_region.is_none() {
                out.records = Some(bytes::Bytes::new());
            }
            regions.push(partition_region);
            partitions.push(out);
        }
        let topic_name = name.clone().unwrap_or_default();
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(topic_name)))
                .with_topic_id(t.topic_id)
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
