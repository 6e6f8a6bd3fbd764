//! The broker around the transaction coordinator: how its records reach
//! `__transaction_state` (acks=all on the partition it leads), how markers reach every
//! partition of a transaction (appended here when this broker leads the partition, else
//! sent to the leader as WriteTxnMarkers), and how a leader asks a transaction's coordinator
//! whether a partition is in the transaction before taking the producer's first batch
//! (KIP-890 part 1: AddPartitionsToTxn v4 with `verify_only`, or a local call), or has
//! the coordinator add it (KIP-890 part 2: the same request without `verify_only`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strom_client::connection::Connection;
use strom_coordinator::txn::{TxnHost, TxnMarkers, TRANSACTION_STATE_TOPIC, TRANSACTION_VERSION_2};
use strom_coordinator::OFFSETS_TOPIC;
use strom_replication::ReplicationError;
use strom_storage::{now_ms, AppendOrigin};
use strom_types::compression::Compression;
use strom_types::control::{marker_batch, ControlType};
use strom_types::record::BatchBuilder;
use strom_types::TopicPartition;

use crate::broker::Broker;
use crate::errors::replication_error_code;

/// How long a coordinator write or a marker append waits for the ISR (Kafka uses the
/// broker's request timeout, 30 s).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Cached connections to other brokers, one per broker id.
#[derive(Default)]
pub(crate) struct BrokerConnections(Mutex<HashMap<i32, Arc<Connection>>>);

impl BrokerConnections {
    async fn get(&self, broker: &Broker, id: i32) -> Result<Arc<Connection>, i16> {
        let cached = self.0.lock().get(&id).cloned();
        if let Some(c) = cached.filter(|c| !c.is_closed()) {
            return Ok(c);
        }
        let (host, port) = broker
            .inter_broker_endpoint_of(&broker.image(), id)
            .ok_or(ResponseError::NotLeaderOrFollower.code())?;
        let client_id = format!("strom-txn-{}", broker.config.node_id);
        let c = Connection::connect_with(
            &format!("{host}:{port}"),
            &client_id,
            WRITE_TIMEOUT,
            &broker.inter_broker,
        )
        .await
        .map_err(|e| {
            tracing::debug!(broker = id, error = %e, "could not reach a broker");
            ResponseError::NotLeaderOrFollower.code()
        })?;
        let c = Arc::new(c);
        self.0.lock().insert(id, c.clone());
        Ok(c)
    }

    fn drop_connection(&self, id: i32) {
        self.0.lock().remove(&id);
    }
}

/// The transaction coordinator's way out, through this broker.
pub(crate) struct BrokerTxnHost(pub(crate) Weak<Broker>);

/// Kafka's TransactionStateManager mapping of a failed log append.
fn coordinator_write_error(e: &ReplicationError) -> i16 {
    use ReplicationError as E;
    match e {
        E::UnknownPartition(_)
        | E::NotEnoughReplicas { .. }
        | E::NotEnoughReplicasAfterAppend { .. }
        | E::Timeout(_)
        | E::OffsetNotAvailable { .. } => ResponseError::CoordinatorNotAvailable.code(),
        E::NotLeader { .. }
        | E::NotReplica { .. }
        | E::FencedLeaderEpoch { .. }
        | E::UnknownLeaderEpoch { .. }
        | E::Storage(_) => ResponseError::NotCoordinator.code(),
    }
}

impl TxnHost for BrokerTxnHost {
    fn append(
        &self,
        partition: i32,
        coordinator_epoch: i32,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> BoxFuture<'static, Result<(), i16>> {
        let broker = self.0.clone();
        Box::pin(async move {
            let b = broker
                .upgrade()
                .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
            let tp = TopicPartition::new(TRANSACTION_STATE_TOPIC, partition);
            let part = b
                .replicas
                .get(&tp)
                .ok_or(ResponseError::NotCoordinator.code())?;
            if part.leader_epoch() != coordinator_epoch {
                return Err(ResponseError::NotCoordinator.code());
            }
            let mut batch = BatchBuilder::new(Compression::None);
            batch.append(now_ms(), Some(&key), value.as_deref(), &[]);
            let mut bytes = batch
                .build(0)
                .map_err(|_| ResponseError::UnknownServerError.code())?;
            b.replicas
                .append(
                    &tp,
                    &mut bytes,
                    -1,
                    WRITE_TIMEOUT,
                    AppendOrigin::Coordinator,
                )
                .await
                .map(|_| ())
                .map_err(|e| {
                    tracing::debug!(partition = %tp, error = %e, "transaction log append failed");
                    coordinator_write_error(&e)
                })
        })
    }

    fn write_markers(&self, markers: TxnMarkers) -> BoxFuture<'static, Result<(), i16>> {
        let broker = self.0.clone();
        Box::pin(async move {
            let b = broker
                .upgrade()
                .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
            write_markers(&b, &markers).await
        })
    }

    fn allocate_producer_id(&self) -> BoxFuture<'static, Result<i64, i16>> {
        let broker = self.0.clone();
        Box::pin(async move {
            let b = broker
                .upgrade()
                .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
            b.allocate_producer_id().await.map_err(|e| {
                tracing::warn!(error = %e.message, "could not allocate a producer id");
                ResponseError::CoordinatorNotAvailable.code()
            })
        })
    }
}

/// Writes one marker to partition `tp`, which this broker must lead, and waits until the
/// ISR holds it; a marker reaching `__consumer_offsets` also ends the producer's pending
/// transactional offsets there. Returns the partition's error code.
pub(crate) async fn write_marker_here(
    broker: &Broker,
    tp: &TopicPartition,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> i16 {
    let control = if commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let mut bytes = marker_batch(
        producer_id,
        producer_epoch,
        control,
        coordinator_epoch,
        now_ms(),
    );
    match broker
        .replicas
        .append(tp, &mut bytes, -1, WRITE_TIMEOUT, AppendOrigin::Coordinator)
        .await
    {
        Ok(_) => {
            if tp.topic.as_str() == OFFSETS_TOPIC {
                broker
                    .coordinator
                    .complete_txn(tp.partition, producer_id, commit);
            }
            0
        }
        Err(e) => {
            tracing::debug!(partition = %tp, producer_id, error = %e, "could not write a transaction marker");
            replication_error_code(&e)
        }
    }
}

/// Writes the markers of one transaction to every partition's leader: here for the
/// partitions this broker leads, by WriteTxnMarkers for the others, all at once. A partition
/// whose topic is gone needs no marker. Ok once every partition has its marker.
async fn write_markers(broker: &Arc<Broker>, m: &TxnMarkers) -> Result<(), i16> {
    let image = broker.image();
    let me = broker.config.node_id;
    let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
    for (topic, p) in &m.partitions {
        let Some(placement) = image.topics.get(topic).and_then(|t| t.partitions.get(p)) else {
            tracing::info!(
                topic,
                partition = p,
                "no marker for a partition that no longer exists"
            );
            continue;
        };
        if placement.leader < 0 {
            return Err(ResponseError::NotLeaderOrFollower.code());
        }
        by_leader
            .entry(placement.leader)
            .or_default()
            .push(TopicPartition::new(topic.as_str(), *p));
    }
    let sends = by_leader.into_iter().map(|(leader, tps)| async move {
        if leader == me {
            let codes = futures_util::future::join_all(tps.iter().map(|tp| {
                write_marker_here(
                    broker,
                    tp,
                    m.producer_id,
                    m.producer_epoch,
                    m.commit,
                    m.coordinator_epoch,
                )
            }))
            .await;
            codes.into_iter().find(|c| *c != 0).map_or(Ok(()), Err)
        } else {
            send_markers(broker, leader, m, &tps).await
        }
    });
    let results = futures_util::future::join_all(sends).await;
    results.into_iter().find(|r| r.is_err()).unwrap_or(Ok(()))
}

/// WriteTxnMarkers to broker `leader` for `tps`.
async fn send_markers(
    broker: &Broker,
    leader: i32,
    m: &TxnMarkers,
    tps: &[TopicPartition],
) -> Result<(), i16> {
    let conn = broker.txn_links.get(broker, leader).await?;
    let version = conn
        .version_up_to::<WriteTxnMarkersRequest>(1)
        .map_err(|_| ResponseError::UnsupportedVersion.code())?;
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        topics
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition);
    }
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(m.producer_id))
        .with_producer_epoch(m.producer_epoch)
        .with_transaction_result(m.commit)
        .with_coordinator_epoch(m.coordinator_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partition_indexes(ps)
                })
                .collect(),
        );
    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let response = match conn.send_within(&request, version, WRITE_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            broker.txn_links.drop_connection(leader);
            tracing::debug!(broker = leader, error = %e, "WriteTxnMarkers failed");
            return Err(ResponseError::NotLeaderOrFollower.code());
        }
    };
    for marker in response.markers {
        for t in marker.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(p.error_code);
                }
            }
        }
    }
    Ok(())
}

/// Asks the coordinator of `transactional_id` about partition `tp` of the open transaction
/// of `(producer_id, epoch)`: whether it is in (KIP-890 part 1, `add` false), or to add it
/// (KIP-890 part 2, `add` true: a Produce v12+ or TxnOffsetCommit v5+ joins its partition
/// to the transaction itself). Locally when this broker is the coordinator, else by
/// AddPartitionsToTxn v4+ to it. NONE, or the coordinator's code (a broker that cannot be
/// reached answers NOT_COORDINATOR).
pub(crate) async fn check_in_transaction(
    broker: &Arc<Broker>,
    transactional_id: &str,
    (producer_id, epoch): (i64, i16),
    tp: &TopicPartition,
    add: bool,
) -> i16 {
    let partitions = [(tp.topic.to_string(), tp.partition)];
    let coordinator = broker.transactions.partition_for(transactional_id);
    let leader = broker
        .image()
        .topics
        .get(TRANSACTION_STATE_TOPIC)
        .and_then(|t| t.partitions.get(&coordinator))
        .map_or(-1, |p| p.leader);
    if leader == broker.config.node_id || leader < 0 {
        let txns = &broker.transactions;
        let outcome = if add {
            txns.add_partitions(
                transactional_id,
                producer_id,
                epoch,
                &partitions,
                TRANSACTION_VERSION_2,
            )
            .await
            .map(|()| vec![0])
        } else {
            txns.verify_partitions(transactional_id, producer_id, epoch, &partitions)
                .await
        };
        return match outcome {
            Ok(codes) => codes.first().copied().unwrap_or(0),
            Err(code) => code,
        };
    }
    let Ok(conn) = broker.txn_links.get(broker, leader).await else {
        return ResponseError::NotCoordinator.code();
    };
    let Ok(version) = conn.version_up_to::<AddPartitionsToTxnRequest>(5) else {
        return ResponseError::UnsupportedVersion.code();
    };
    if version < 4 {
        return ResponseError::UnsupportedVersion.code();
    }
    let txn = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            transactional_id.to_string(),
        )))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_verify_only(!add)
        .with_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_string(tp.topic.to_string())))
            .with_partitions(vec![tp.partition])]);
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
    match conn.send_within(&request, version, WRITE_TIMEOUT).await {
        Ok(r) if r.error_code != 0 => r.error_code,
        Ok(r) => r
            .results_by_transaction
            .first()
            .map(|t| {
                t.topic_results
                    .iter()
                    .flat_map(|t| t.results_by_partition.iter())
                    .map(|p| p.partition_error_code)
                    .find(|c| *c != 0)
                    .unwrap_or(0)
            })
            .unwrap_or(ResponseError::InvalidTxnState.code()),
        Err(e) => {
            broker.txn_links.drop_connection(leader);
            tracing::debug!(error = %e, "transaction check failed");
            ResponseError::NotCoordinator.code()
        }
    }
}

/// True for a coordinator's answer that means "not now" (it is moving, loading, or ending
/// the previous transaction): the request that asked is retried by its client.
pub(crate) fn coordinator_busy(code: i16) -> bool {
    code == ResponseError::NotCoordinator.code()
        || code == ResponseError::CoordinatorLoadInProgress.code()
        || code == ResponseError::CoordinatorNotAvailable.code()
        || code == ResponseError::ConcurrentTransactions.code()
}

/// A leader's check before a producer's first transactional batch: verified at
/// transaction version 1, added at 2 (Produce v12+). NONE, or what the produce answers:
/// a busy coordinator is retriable (NOT_ENOUGH_REPLICAS, as Kafka answers), an unknown
/// producer is INVALID_TXN_STATE, a stale epoch INVALID_PRODUCER_EPOCH.
pub(crate) async fn verify_in_transaction(
    broker: &Arc<Broker>,
    transactional_id: &str,
    producer: (i64, i16),
    tp: &TopicPartition,
    add: bool,
) -> i16 {
    let code = check_in_transaction(broker, transactional_id, producer, tp, add).await;
    if coordinator_busy(code) {
        ResponseError::NotEnoughReplicas.code()
    } else if code == ResponseError::InvalidProducerIdMapping.code() {
        ResponseError::InvalidTxnState.code()
    } else if code == ResponseError::ProducerFenced.code() {
        // Produce speaks of a stale epoch as INVALID_PRODUCER_EPOCH, as Kafka's leader does.
        ResponseError::InvalidProducerEpoch.code()
    } else {
        code
    }
}

impl Broker {
    /// Brings the transaction coordinator in line with who leads `__transaction_state`:
    /// partitions led here (in a new leader epoch) are loaded in the background, others
    /// unloaded.
    pub(crate) fn reconcile_transactions(&self, new: &strom_metadata::MetadataImage) {
        let me = self.config.node_id;
        let Some(topic) = new.topics.get(TRANSACTION_STATE_TOPIC) else {
            return;
        };
        for (p, placement) in &topic.partitions {
            let loaded = self.transactions.loaded_epoch(*p);
            let loading = self.transactions.is_partition_loading(*p);
            if placement.leader == me {
                if loaded == Some(placement.leader_epoch) || loading {
                    continue;
                }
                let Some(log) = self
                    .logs
                    .get(&TopicPartition::new(TRANSACTION_STATE_TOPIC, *p))
                else {
                    continue;
                };
                if loaded.is_some() {
                    self.transactions.unload_partition(*p);
                }
                let token = self.transactions.begin_loading(*p);
                let coordinator = self.transactions.clone();
                let (partition, epoch) = (*p, placement.leader_epoch);
                let load = move || {
                    if let Err(e) = coordinator.finish_loading(partition, log, epoch, token) {
                        tracing::error!(partition, error = %e, "could not load a __transaction_state partition");
                        coordinator.unload_partition(partition);
                    }
                };
                // The replay reads files: off the async threads, as the groups' loads.
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => drop(rt.spawn_blocking(load)),
                    Err(_) => load(),
                }
            } else if loaded.is_some() || loading {
                self.transactions.unload_partition(*p);
            }
        }
    }
}
