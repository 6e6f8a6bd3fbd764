//! The admin side of transactions, as Kafka's Admin client and `kafka-transactions.sh` have
//! it: list transactional ids (ListTransactions on every broker), describe them
//! (DescribeTransactions at each id's coordinator), list a partition's producers
//! (DescribeProducers at its leader), and abort a hanging transaction by writing its ABORT
//! marker at the partition's leader (WriteTxnMarkers).

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};

use crate::admin::{check, s, Admin};
use crate::error::{ClientError, Result};
use crate::group::find_coordinator_of;

/// One transactional id as ListTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// The id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its state (Empty, Ongoing, PrepareCommit, CompleteCommit...).
    pub state: String,
}

/// One transactional id as DescribeTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The id.
    pub transactional_id: String,
    /// The coordinator's broker id.
    pub coordinator: i32,
    /// Its state.
    pub state: String,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// transaction.timeout.ms.
    pub timeout_ms: i32,
    /// When the open transaction began (-1: none).
    pub start_ms: i64,
    /// Partitions of the open transaction.
    pub partitions: Vec<(String, i32)>,
}

/// One producer of a partition as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerDescription {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i32,
    /// Last sequence written.
    pub last_sequence: i32,
    /// Timestamp of its last batch.
    pub last_timestamp: i64,
    /// Epoch of the coordinator that wrote its last marker (-1: none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction here (-1: none).
    pub current_txn_start_offset: i64,
}

impl Admin {
    /// Every transactional id of the cluster, optionally only those in `states` and those
    /// wholly matching the regular expression `pattern` (ListTransactions v2, KIP-1152).
    pub async fn list_transactions(
        &self,
        states: &[String],
        pattern: Option<&str>,
    ) -> Result<Vec<TransactionListing>> {
        let mut out = Vec::new();
        self.cluster.refresh(&[]).await?;
        for addr in self.cluster.broker_addresses() {
            let conn = self.cluster.connection(&addr).await?;
            let request = ListTransactionsRequest::default()
                .with_state_filters(states.iter().map(|st| s(st)).collect())
                .with_duration_filter(-1)
                .with_transactional_id_pattern(pattern.map(s));
            let version = if pattern.is_some() {
                conn.version_up_to::<ListTransactionsRequest>(2)?
            } else {
                conn.version_up_to::<ListTransactionsRequest>(1)?
            };
            if pattern.is_some() && version < 2 {
                return Err(ClientError::UnsupportedVersion {
                    api_key: <ListTransactionsRequest as kafka_protocol::protocol::Request>::KEY,
                });
            }
            let r = conn.send_at(&request, version).await?;
            check(r.error_code)?;
            out.extend(
                r.transaction_states
                    .into_iter()
                    .map(|t| TransactionListing {
                        transactional_id: t.transactional_id.to_string(),
                        producer_id: t.producer_id.0,
                        state: t.transaction_state.to_string(),
                    }),
            );
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out.dedup();
        Ok(out)
    }

    /// Describes `transactional_id` at its coordinator.
    pub async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription> {
        let conn = find_coordinator_of(&self.cluster, 1, transactional_id).await?;
        let request = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(transactional_id))]);
        let r = conn.send(&request).await?;
        let t =
            r.transaction_states.into_iter().next().ok_or_else(|| {
                ClientError::Protocol("empty DescribeTransactions response".into())
            })?;
        check(t.error_code)?;
        if self.cluster.broker_id_of(conn.addr()).is_none() {
            self.cluster.refresh(&[]).await?;
        }
        let coordinator = self.cluster.broker_id_of(conn.addr()).unwrap_or(-1);
        Ok(TransactionDescription {
            transactional_id: transactional_id.to_string(),
            coordinator,
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_ms: t.transaction_start_time_ms,
            partitions: t
                .topics
                .into_iter()
                .flat_map(|tp| {
                    let topic = tp.topic.to_string();
                    tp.partitions.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect(),
        })
    }

    /// The producers the leader of `topic`-`partition` knows.
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerDescription>> {
        let conn = self.cluster.leader(topic, partition).await?;
        let request = DescribeProducersRequest::default()
            .with_topics(vec![TopicRequest::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![partition])]);
        let r = conn.send(&request).await?;
        let p = r
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| ClientError::Protocol("empty DescribeProducers response".into()))?;
        check(p.error_code)?;
        Ok(p.active_producers
            .into_iter()
            .map(|pr| ProducerDescription {
                producer_id: pr.producer_id.0,
                producer_epoch: pr.producer_epoch,
                last_sequence: pr.last_sequence,
                last_timestamp: pr.last_timestamp,
                coordinator_epoch: pr.coordinator_epoch,
                current_txn_start_offset: pr.current_txn_start_offset,
            })
            .collect())
    }

    /// Aborts the transaction that began at `start_offset` in `topic`-`partition` and was
    /// left open (its producer and coordinator gone): finds its producer there and writes
    /// the ABORT marker at the leader, as `kafka-transactions.sh abort` does. Returns the
    /// producer id.
    pub async fn abort_transaction(
        &self,
        topic: &str,
        partition: i32,
        start_offset: i64,
    ) -> Result<i64> {
        let producers = self.describe_producers(topic, partition).await?;
        let p = producers
            .into_iter()
            .find(|p| p.current_txn_start_offset == start_offset)
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "no open transaction starts at offset {start_offset} of {topic}-{partition}"
                ))
            })?;
        let conn = self.cluster.leader(topic, partition).await?;
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(p.producer_id))
            .with_producer_epoch(p.producer_epoch.clamp(0, i32::from(i16::MAX)) as i16)
            .with_transaction_result(false)
            .with_coordinator_epoch(p.coordinator_epoch.max(0))
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![partition])]);
        let r = conn
            .send(&WriteTxnMarkersRequest::default().with_markers(vec![marker]))
            .await?;
        for m in r.markers {
            for t in m.topics {
                for p in t.partitions {
                    check(p.error_code)?;
                }
            }
        }
        Ok(p.producer_id)
    }
}
