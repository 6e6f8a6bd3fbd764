//! The transaction APIs: AddPartitionsToTxn (v0-3 from clients, v4-5 batched from leaders:
//! `verify_only` for KIP-890 part 1, an add for part 2), AddOffsetsToTxn, EndTxn (v5: an
//! epoch bump per transaction), TxnOffsetCommit (v5: adds its partition itself),
//! WriteTxnMarkers (from a coordinator, or an admin aborting a hanging transaction),
//! DescribeTransactions, ListTransactions and DescribeProducers. The coordinator's errors
//! are mapped to what each version knows: PRODUCER_FENCED arrived with KIP-588, and older
//! versions get INVALID_PRODUCER_EPOCH instead.
//!
//! Kafka's checks: WRITE on the transactional id for a client's adds, ends and offset
//! commits, with WRITE on the topics added, READ on the group and its topics for offsets;
//! CLUSTER_ACTION for what only brokers send (batched adds, markers); DESCRIBE on the id to
//! describe or list a transaction; READ on a topic to describe its producers.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_coordinator::txn::{TxnStatus, TRANSACTION_VERSION_1, TRANSACTION_VERSION_2};
use strom_coordinator::{CommitEntry, TxnCommitter, OFFSETS_TOPIC};
use strom_types::TopicPartition;

use strom_types::acl::{AclOperation, ResourceType};

use crate::authz::Access;
use crate::broker::{Broker, GroupWrite};
use crate::txn::{check_in_transaction, coordinator_busy, write_marker_here};

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn may_write_txn(access: &Access, transactional_id: &str) -> bool {
    access.allows(
        AclOperation::Write,
        ResourceType::TransactionalId,
        transactional_id,
    )
}

/// PRODUCER_FENCED as versions before `fenced_from` know it.
fn for_version(code: i16, version: i16, fenced_from: i16) -> i16 {
    if code == ResponseError::ProducerFenced.code() && version < fenced_from {
        ResponseError::InvalidProducerEpoch.code()
    } else {
        code
    }
}

/// The transaction's partitions as the coordinator keeps them, with a code for each one
/// the image does not know (UNKNOWN_TOPIC_OR_PARTITION).
fn known_partitions(
    broker: &Broker,
    topics: &[add_partitions_to_txn_request::AddPartitionsToTxnTopic],
) -> (Vec<(String, i32)>, bool) {
    let image = broker.image();
    let mut out = Vec::new();
    let mut all_known = true;
    for t in topics {
        for p in &t.partitions {
            let known = image
                .topics
                .get(t.name.as_str())
                .is_some_and(|topic| topic.partitions.contains_key(p));
            all_known &= known;
            out.push((t.name.to_string(), *p));
        }
    }
    (out, all_known)
}

/// One transaction's per-partition results, every partition with `code` except unknown
/// ones (UNKNOWN_TOPIC_OR_PARTITION) when some are unknown (the rest then get
/// OPERATION_NOT_ATTEMPTED, as Kafka answers).
fn topic_results(
    broker: &Broker,
    topics: &[add_partitions_to_txn_request::AddPartitionsToTxnTopic],
    code: impl Fn(usize) -> i16,
    all_known: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let image = broker.image();
    let mut i = 0;
    topics
        .iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|p| {
                    let known = image
                        .topics
                        .get(t.name.as_str())
                        .is_some_and(|topic| topic.partitions.contains_key(p));
                    let c = match (all_known, known) {
                        (true, _) => code(i),
                        (false, false) => ResponseError::UnknownTopicOrPartition.code(),
                        (false, true) => ResponseError::OperationNotAttempted.code(),
                    };
                    i += 1;
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(c)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(results)
        })
        .collect()
}

pub(super) async fn add_partitions(
    broker: &Arc<Broker>,
    access: &Access,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let coordinator = &broker.transactions;
    if version <= 3 {
        let topics = &request.v3_and_below_topics;
        let txn_denied = !may_write_txn(access, &request.v3_and_below_transactional_id);
        let denied_topics: Vec<bool> = topics
            .iter()
            .map(|t| !access.allows(AclOperation::Write, ResourceType::Topic, &t.name))
            .collect();
        if txn_denied || denied_topics.contains(&true) {
            // Denied topics get TOPIC_AUTHORIZATION_FAILED and the rest
            // OPERATION_NOT_ATTEMPTED; a denied transactional id fails them all.
            let codes: Vec<i16> = topics
                .iter()
                .zip(&denied_topics)
                .flat_map(|(t, denied)| {
                    let code = if txn_denied {
                        ResponseError::TransactionalIdAuthorizationFailed
                    } else if *denied {
                        ResponseError::TopicAuthorizationFailed
                    } else {
                        ResponseError::OperationNotAttempted
                    };
                    t.partitions.iter().map(move |_| code.code())
                })
                .collect();
            let results = topic_results(broker, topics, |i| codes[i], true);
            return AddPartitionsToTxnResponse::default()
                .with_results_by_topic_v3_and_below(results);
        }
        let (parts, all_known) = known_partitions(broker, &request.v3_and_below_topics);
        let code = if all_known {
            match coordinator
                .add_partitions(
                    request.v3_and_below_transactional_id.as_str(),
                    request.v3_and_below_producer_id.0,
                    request.v3_and_below_producer_epoch,
                    &parts,
                    TRANSACTION_VERSION_1,
                )
                .await
            {
                Ok(()) => 0,
                Err(code) => for_version(code, version, 2),
            }
        } else {
            0
        };
        let results = topic_results(broker, &request.v3_and_below_topics, |_| code, all_known);
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    if !access.allows_cluster(AclOperation::ClusterAction) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let mut out = Vec::with_capacity(request.transactions.len());
    for txn in &request.transactions {
        let (parts, all_known) = known_partitions(broker, &txn.topics);
        let id = txn.transactional_id.as_str();
        let (pid, epoch) = (txn.producer_id.0, txn.producer_epoch);
        let codes: Result<Vec<i16>, i16> = if !all_known {
            Ok(Vec::new())
        } else if txn.verify_only {
            coordinator.verify_partitions(id, pid, epoch, &parts).await
        } else {
            // A leader adding its partition for a Produce v12+ (KIP-890 part 2).
            coordinator
                .add_partitions(id, pid, epoch, &parts, TRANSACTION_VERSION_2)
                .await
                .map(|()| vec![0; parts.len()])
        };
        let codes = codes.unwrap_or_else(|code| vec![code; parts.len()]);
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(topic_results(
                    broker,
                    &txn.topics,
                    |i| codes.get(i).copied().unwrap_or(0),
                    all_known,
                )),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

pub(super) async fn add_offsets(
    broker: &Arc<Broker>,
    access: &Access,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let group = request.group_id.as_str();
    let denied = if !may_write_txn(access, &request.transactional_id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !access.allows(AclOperation::Read, ResourceType::Group, group) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    if let Some(e) = denied {
        return AddOffsetsToTxnResponse::default().with_error_code(e.code());
    }
    if let Err(r) = broker.ensure_offsets_topic().await {
        tracing::debug!(reason = %r.message, "AddOffsetsToTxn before __consumer_offsets exists");
        return AddOffsetsToTxnResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code());
    }
    let partition = (
        OFFSETS_TOPIC.to_string(),
        broker.coordinator.partition_for(group),
    );
    let code = match broker
        .transactions
        .add_partitions(
            request.transactional_id.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            &[partition],
            TRANSACTION_VERSION_1,
        )
        .await
    {
        Ok(()) => 0,
        Err(code) => for_version(code, version, 2),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

/// EndTxn; from v5 at transaction version 2, whose answer carries the producer id and
/// the bumped epoch the producer goes on with.
pub(super) async fn end_txn(
    broker: &Arc<Broker>,
    access: &Access,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    if !may_write_txn(access, &request.transactional_id) {
        return EndTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let client_version = if version >= 5 {
        TRANSACTION_VERSION_2
    } else {
        TRANSACTION_VERSION_1
    };
    let outcome = broker
        .transactions
        .end_txn(
            request.transactional_id.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
            client_version,
        )
        .await;
    let (code, (pid, epoch)) = match outcome {
        Ok(producer) => (0, producer),
        Err(code) => (for_version(code, version, 2), (-1, -1)),
    };
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
}

/// WriteTxnMarkers: each marker to each partition this broker leads (acks=all).
pub(super) async fn write_txn_markers(
    broker: &Arc<Broker>,
    access: &Access,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed = access.allows_cluster(AclOperation::ClusterAction);
    let image = broker.image();
    let me = broker.config.node_id;
    let mut markers = Vec::with_capacity(request.markers.len());
    for m in &request.markers {
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in &m.topics {
            let writes = t.partition_indexes.iter().map(|p| {
                let name = t.name.as_str();
                let placement = image
                    .topics
                    .get(name)
                    .and_then(|topic| topic.partitions.get(p));
                let tp = TopicPartition::new(name, *p);
                async move {
                    let code = match placement {
                        _ if !allowed => ResponseError::ClusterAuthorizationFailed.code(),
                        None => ResponseError::UnknownTopicOrPartition.code(),
                        Some(pl) if pl.leader != me => ResponseError::NotLeaderOrFollower.code(),
                        Some(_) => {
                            write_marker_here(
                                broker,
                                &tp,
                                m.producer_id.0,
                                m.producer_epoch,
                                m.transaction_result,
                                m.coordinator_epoch,
                            )
                            .await
                        }
                    };
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(tp.partition)
                        .with_error_code(code)
                }
            });
            let partitions = futures_util::future::join_all(writes).await;
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// KIP-890 for TxnOffsetCommit: before the producer's first offsets of a transaction in
/// the group's `__consumer_offsets` partition, its coordinator verifies that the partition
/// is in the transaction (AddOffsetsToTxn put it there), or, from v5 (transaction version
/// 2), adds it. NONE, or the code the commit answers.
async fn in_transaction(
    broker: &Arc<Broker>,
    request: &TxnOffsetCommitRequest,
    version: i16,
) -> i16 {
    let group = request.group_id.as_str();
    if !broker.coordinator.is_coordinator_for(group) {
        // The commit answers NOT_COORDINATOR (or loading) itself.
        return 0;
    }
    let tp = TopicPartition::new(OFFSETS_TOPIC, broker.coordinator.partition_for(group));
    let producer = (request.producer_id.0, request.producer_epoch);
    let open = broker
        .logs
        .get(&tp)
        .is_some_and(|log| log.in_transaction(producer.0, producer.1));
    if open {
        return 0;
    }
    let id = request.transactional_id.as_str();
    let code = check_in_transaction(broker, id, producer, &tp, version >= 5).await;
    if coordinator_busy(code) {
        // Retried by every client, which a moving transaction coordinator is not.
        ResponseError::CoordinatorLoadInProgress.code()
    } else if code == ResponseError::ProducerFenced.code()
        || code == ResponseError::InvalidProducerIdMapping.code()
    {
        ResponseError::InvalidProducerEpoch.code()
    } else {
        code
    }
}

pub(super) async fn txn_offset_commit(
    broker: &Arc<Broker>,
    access: &Access,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group = request.group_id.to_string();
    // Refused as a whole (transactional id, group) or per topic.
    let whole = if !may_write_txn(access, &request.transactional_id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else if !access.allows(AclOperation::Read, ResourceType::Group, &group) {
        Some(ResponseError::GroupAuthorizationFailed.code())
    } else {
        None
    };
    let topic_code = |topic: &str| {
        whole.or_else(|| {
            (!access.allows(AclOperation::Read, ResourceType::Topic, topic))
                .then(|| ResponseError::TopicAuthorizationFailed.code())
        })
    };
    let entries: Vec<CommitEntry> = request
        .topics
        .iter()
        .filter(|t| topic_code(&t.name).is_none())
        .flat_map(|t| {
            t.partitions.iter().map(|p| CommitEntry {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let by = TxnCommitter {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        member_id: if version >= 3 {
            request.member_id.to_string()
        } else {
            String::new()
        },
        instance_id: if version >= 3 {
            request.group_instance_id.as_ref().map(|i| i.to_string())
        } else {
            None
        },
        generation: if version >= 3 {
            request.generation_id
        } else {
            -1
        },
    };
    let every_topic_refused = whole.is_some()
        || (!request.topics.is_empty()
            && request.topics.iter().all(|t| topic_code(&t.name).is_some()));
    let result = if every_topic_refused {
        Ok(Vec::new())
    } else {
        match in_transaction(broker, &request, version).await {
            0 => broker.coordinator.txn_commit_offsets(&group, &by, &entries),
            code => Err(code),
        }
    };
    let result = match result {
        Ok(codes) => match broker
            .wait_group_replicated(&group, GroupWrite::Other)
            .await
        {
            Ok(()) => Ok(codes),
            Err(code) => Err(code),
        },
        Err(code) => Err(code),
    };
    let mut i = 0;
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let refused = topic_code(&t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = match (&result, refused) {
                        (_, Some(code)) => code,
                        (Ok(codes), None) => codes.get(i).copied().unwrap_or(0),
                        (Err(code), None) => *code,
                    };
                    if refused.is_none() {
                        i += 1;
                    }
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub(super) async fn describe_transactions(
    broker: &Arc<Broker>,
    access: &Access,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in &request.transactional_ids {
        let mut out = TransactionState::default()
            .with_transactional_id(id.clone())
            .with_transaction_state(s(""))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        if !access.allows(AclOperation::Describe, ResourceType::TransactionalId, id) {
            out.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            states.push(out);
            continue;
        }
        match broker.transactions.describe(id.as_str()).await {
            Ok(d) => {
                out.transaction_state = s(d.state);
                out.transaction_timeout_ms = d.timeout_ms;
                out.transaction_start_time_ms = d.start_ms;
                out.producer_id = ProducerId(d.producer_id);
                out.producer_epoch = d.producer_epoch;
                let mut topics: Vec<TopicData> = Vec::new();
                for (t, p) in d.partitions {
                    match topics.last_mut() {
                        Some(last) if last.topic.as_str() == t => last.partitions.push(p),
                        _ => topics.push(
                            TopicData::default()
                                .with_topic(TopicName(s(t)))
                                .with_partitions(vec![p]),
                        ),
                    }
                }
                out.topics = topics;
            }
            Err(code) => out.error_code = code,
        }
        states.push(out);
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

const STATE_NAMES: [TxnStatus; 8] = [
    TxnStatus::Empty,
    TxnStatus::Ongoing,
    TxnStatus::PrepareCommit,
    TxnStatus::PrepareAbort,
    TxnStatus::CompleteCommit,
    TxnStatus::CompleteAbort,
    TxnStatus::Dead,
    TxnStatus::PrepareEpochFence,
];

pub(super) async fn list_transactions(
    broker: &Arc<Broker>,
    access: &Access,
    request: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let (known, unknown): (Vec<String>, Vec<String>) = request
        .state_filters
        .iter()
        .map(|f| f.to_string())
        .partition(|f| STATE_NAMES.iter().any(|st| st.name() == f));
    let pids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    // v2 (KIP-1152): a regular expression the whole id must match.
    let pattern = match request
        .transactional_id_pattern
        .as_ref()
        .filter(|p| version >= 2 && !p.is_empty())
        .map(|p| regex::Regex::new(&format!("^(?:{p})$")))
        .transpose()
    {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "ListTransactions with an invalid pattern");
            return ListTransactionsResponse::default()
                .with_error_code(ResponseError::InvalidRegularExpression.code());
        }
    };
    let states = if !unknown.is_empty() && known.is_empty() {
        Vec::new()
    } else {
        broker
            .transactions
            .list(&known, &pids, duration)
            .await
            .into_iter()
            .filter(|l| {
                pattern
                    .as_ref()
                    .is_none_or(|p| p.is_match(&l.transactional_id))
                    && access.allows(
                        AclOperation::Describe,
                        ResourceType::TransactionalId,
                        &l.transactional_id,
                    )
            })
            .map(|l| {
                ListedState::default()
                    .with_transactional_id(TransactionalId(s(l.transactional_id)))
                    .with_producer_id(ProducerId(l.producer_id))
                    .with_transaction_state(s(l.state))
            })
            .collect()
    };
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown.into_iter().map(s).collect())
        .with_transaction_states(states)
}

pub(super) fn describe_producers(
    broker: &Arc<Broker>,
    access: &Access,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = broker.image();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| {
                    let mut out = PartitionResponse::default().with_partition_index(*p);
                    if !access.allows(AclOperation::Read, ResourceType::Topic, &t.name) {
                        out.error_code = ResponseError::TopicAuthorizationFailed.code();
                        return out;
                    }
                    match broker.leader_partition(&image, t.name.as_str(), *p) {
                        Ok(part) => {
                            out.active_producers = part
                                .log()
                                .producers()
                                .into_iter()
                                .map(|pr| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(pr.producer_id))
                                        .with_producer_epoch(i32::from(pr.epoch))
                                        .with_last_sequence(pr.last_sequence)
                                        .with_last_timestamp(pr.last_timestamp)
                                        .with_coordinator_epoch(pr.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            pr.txn_first_offset.unwrap_or(-1),
                                        )
                                })
                                .collect();
                        }
                        Err((code, message)) => {
                            out.error_code = code;
                            out.error_message = Some(s(message));
                        }
                    }
                    out
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
