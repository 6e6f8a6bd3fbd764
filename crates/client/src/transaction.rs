//! The transactional producer (KIP-98), as Kafka's clients drive it: `init_transactions`
//! finds the transaction coordinator and gets the id's producer id and epoch (fencing any
//! older producer with the id); `begin_transaction` opens a transaction locally; each send
//! to a partition new in the transaction first adds it (AddPartitionsToTxn);
//! `send_offsets_to_transaction` adds the group (AddOffsetsToTxn) and commits the offsets
//! through the group coordinator (TxnOffsetCommit); `commit_transaction` flushes, then
//! EndTxn(commit); `abort_transaction` flushes, then EndTxn(abort).
//!
//! Against a broker that finalized `transaction.version` 2 (KIP-890 part 2) the producer
//! speaks that version: no AddPartitionsToTxn or AddOffsetsToTxn (Produce v12 and
//! TxnOffsetCommit v5 have the partition added by the broker), and every EndTxn (v5)
//! answers with a bumped epoch, which the next transaction uses with its sequences from 0,
//! so a late write of a finished transaction is fenced.
//!
//! A send that fails inside a transaction makes it abortable: commit answers
//! [`ClientError::Abortable`] and the application aborts. Being fenced (PRODUCER_FENCED,
//! INVALID_PRODUCER_EPOCH from the coordinator) is fatal: every later call answers
//! [`ClientError::Fatal`].

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProduceRequest, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::{Inner, Producer, Tp};
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::group::{find_coordinator, find_coordinator_of, GroupMetadata, TopicPartition};

/// Where the producer is in its transactions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Phase {
    /// `init_transactions` not called yet.
    #[default]
    Uninitialized,
    /// Between transactions.
    Ready,
    /// A transaction is open.
    InTransaction,
    /// Fenced or broken: nothing more can be done.
    Fatal(String),
}

/// The transactional state of a producer.
#[derive(Debug, Default)]
pub(super) struct TxnState {
    pub(super) phase: Phase,
    /// Partitions added to the open transaction.
    partitions: HashSet<Tp>,
    /// Set once AddOffsetsToTxn added a group's offsets partition.
    groups: HashSet<String>,
    /// The first failure of a send in the open transaction.
    pub(super) abortable: Option<String>,
    coordinator: Option<Arc<Connection>>,
    /// Speaking transaction version 2 (decided by `init_transactions`).
    tv2: bool,
}

/// How long a transactional call keeps retrying a busy or moving coordinator (Kafka's
/// max.block.ms default).
const MAX_BLOCK: Duration = Duration::from_secs(60);

const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const PRODUCER_FENCED: i16 = 90;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// The feature a broker finalizes at 2 when it speaks KIP-890 part 2.
const TRANSACTION_VERSION: &str = "transaction.version";

type Attempt<T> = Pin<Box<dyn Future<Output = Result<std::result::Result<T, i16>>> + Send>>;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl Inner {
    fn transactional_id(&self) -> Result<&str> {
        self.config
            .transactional_id
            .as_deref()
            .ok_or_else(|| ClientError::TxnState("the producer has no transactional.id".into()))
    }

    /// Errors out unless in `want` (a fatal state always errors).
    fn check_phase(&self, want: &[Phase]) -> Result<()> {
        let t = self.txn.lock();
        match &t.phase {
            Phase::Fatal(why) => Err(ClientError::Fatal(why.clone())),
            p if want.contains(p) => Ok(()),
            p => Err(ClientError::TxnState(format!("not allowed in state {p:?}"))),
        }
    }

    fn fail(&self, why: String) -> ClientError {
        self.txn.lock().phase = Phase::Fatal(why.clone());
        ClientError::Fatal(why)
    }

    async fn txn_coordinator(&self) -> Result<Arc<Connection>> {
        let cached = self.txn.lock().coordinator.clone();
        if let Some(c) = cached.filter(|c| !c.is_closed()) {
            return Ok(c);
        }
        let c = find_coordinator_of(&self.cluster, 1, self.transactional_id()?).await?;
        self.txn.lock().coordinator = Some(c.clone());
        Ok(c)
    }

    /// Runs `attempt` against the transaction coordinator until it answers something final:
    /// a coordinator that moved is found again, a busy one is retried with backoff, a
    /// fencing error makes the producer fatal.
    async fn with_coordinator<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut(Arc<Connection>) -> Attempt<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + MAX_BLOCK;
        let mut backoff = Duration::from_millis(20);
        loop {
            let outcome = match self.txn_coordinator().await {
                Ok(conn) => attempt(conn).await,
                Err(e) => Err(e),
            };
            let retry = match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(code)) if code == PRODUCER_FENCED || code == INVALID_PRODUCER_EPOCH => {
                    return Err(self.fail(format!(
                        "{what}: {}: a newer producer with transactional.id {} fenced this one",
                        ClientError::kafka(code),
                        self.transactional_id().unwrap_or_default()
                    )));
                }
                Ok(Err(code)) if code == NOT_COORDINATOR || code == COORDINATOR_NOT_AVAILABLE => {
                    self.txn.lock().coordinator = None;
                    ClientError::kafka(code)
                }
                Ok(Err(code))
                    if code == CONCURRENT_TRANSACTIONS || code == COORDINATOR_LOAD_IN_PROGRESS =>
                {
                    ClientError::kafka(code)
                }
                Ok(Err(code)) => return Err(ClientError::kafka(code)),
                Err(e) if e.is_retriable() => {
                    self.txn.lock().coordinator = None;
                    e
                }
                Err(e) => return Err(e),
            };
            if Instant::now() + backoff > deadline {
                return Err(retry);
            }
            tracing::debug!(what, error = %retry, "transaction coordinator busy or moved; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    fn producer(&self) -> Result<(i64, i16)> {
        self.producer_id
            .lock()
            .ok_or_else(|| ClientError::TxnState("init_transactions has not completed".into()))
    }

    /// The Produce version to send: a transactional producer at transaction version 1
    /// stays below v12, from which a produce has its partition added by the broker.
    pub(super) fn produce_version(&self, conn: &Connection) -> Result<i16> {
        if self.config.transactional_id.is_some() && !self.txn.lock().tv2 {
            conn.version_up_to::<ProduceRequest>(11)
        } else {
            conn.version::<ProduceRequest>()
        }
    }

    /// Adds `tp` to the open transaction unless it is in already (at transaction version
    /// 2 the first produce to it does that).
    pub(super) async fn add_to_transaction(&self, tp: &Tp) -> Result<()> {
        self.check_phase(&[Phase::InTransaction])?;
        let _one_at_a_time = self.txn_calls.lock().await;
        {
            let mut t = self.txn.lock();
            if t.partitions.contains(tp) {
                return Ok(());
            }
            if t.tv2 {
                t.partitions.insert(tp.clone());
                return Ok(());
            }
        }
        let id = self.transactional_id()?.to_string();
        let (pid, epoch) = self.producer()?;
        let topic = tp.0.clone();
        let partition = tp.1;
        self.with_coordinator("AddPartitionsToTxn", |conn| {
            let (id, topic) = (id.clone(), topic.clone());
            Box::pin(async move {
                let version = conn.version_up_to::<AddPartitionsToTxnRequest>(3)?;
                let request = AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(s(&id)))
                    .with_v3_and_below_producer_id(ProducerId(pid))
                    .with_v3_and_below_producer_epoch(epoch)
                    .with_v3_and_below_topics(vec![
                        kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(s(&topic)))
                            .with_partitions(vec![partition]),
                    ]);
                let r = conn.send_at(&request, version).await?;
                let code = r
                    .results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| t.results_by_partition.iter())
                    .map(|p| p.partition_error_code)
                    .find(|c| *c != 0)
                    .unwrap_or(r.error_code);
                Ok(if code == 0 { Ok(()) } else { Err(code) })
            })
        })
        .await
        .inspect_err(|e| {
            if matches!(e, ClientError::Kafka { code, .. } if *code == UNKNOWN_TOPIC_OR_PARTITION) {
                return;
            }
            self.txn.lock().abortable.get_or_insert_with(|| e.to_string());
        })?;
        self.txn.lock().partitions.insert(tp.clone());
        Ok(())
    }

    async fn end_transaction(&self, commit: bool) -> Result<()> {
        let id = self.transactional_id()?.to_string();
        let (pid, epoch) = self.producer()?;
        let tv2 = self.txn.lock().tv2;
        let what = if commit { "commit" } else { "abort" };
        let next = self
            .with_coordinator(what, |conn| {
                let id = id.clone();
                Box::pin(async move {
                    let version = conn.version_up_to::<EndTxnRequest>(if tv2 { 5 } else { 4 })?;
                    let request = EndTxnRequest::default()
                        .with_transactional_id(TransactionalId(s(&id)))
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch)
                        .with_committed(commit);
                    let r = conn.send_at(&request, version).await?;
                    Ok(match r.error_code {
                        0 if version >= 5 => Ok(Some((r.producer_id.0, r.producer_epoch))),
                        0 => Ok(None),
                        code => Err(code),
                    })
                })
            })
            .await?;
        if let Some((pid, epoch)) = next.filter(|(pid, epoch)| *pid >= 0 && *epoch >= 0) {
            // KIP-890 part 2: the next transaction runs at the bumped epoch (or a new
            // producer id), its sequences from 0.
            *self.producer_id.lock() = Some((pid, epoch));
            for q in self.state.lock().queues.values_mut() {
                q.restart_sequences();
            }
        }
        Ok(())
    }
}

impl Producer {
    /// Gets the producer id and epoch of `transactional.id` from its coordinator, fencing
    /// any older producer with the id and aborting what it left open. Call once, first.
    pub async fn init_transactions(&self) -> Result<()> {
        let inner = &self.inner;
        inner.check_phase(&[Phase::Uninitialized])?;
        let id = inner.transactional_id()?.to_string();
        let timeout = inner
            .config
            .transaction_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let pid = inner
            .with_coordinator("InitProducerId", |conn| {
                let id = id.clone();
                Box::pin(async move {
                    let request = InitProducerIdRequest::default()
                        .with_transactional_id(Some(TransactionalId(s(&id))))
                        .with_transaction_timeout_ms(timeout)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1);
                    let r = conn.send(&request).await?;
                    Ok(if r.error_code == 0 {
                        Ok((r.producer_id.0, r.producer_epoch))
                    } else {
                        Err(r.error_code)
                    })
                })
            })
            .await?;
        let tv2 = inner.txn_coordinator().await.is_ok_and(|c| {
            c.feature_level(TRANSACTION_VERSION).unwrap_or(0) >= 2
                && c.version::<EndTxnRequest>().is_ok_and(|v| v >= 5)
        });
        inner.txn.lock().tv2 = tv2;
        tracing::debug!(producer_id = pid.0, epoch = pid.1, transactional_id = %id, tv2, "transactional producer");
        *inner.producer_id.lock() = Some(pid);
        for q in inner.state.lock().queues.values_mut() {
            q.restart_sequences();
        }
        inner.txn.lock().phase = Phase::Ready;
        inner.wake.notify_one();
        Ok(())
    }

    /// Opens a transaction: what is sent until commit or abort belongs to it.
    pub fn begin_transaction(&self) -> Result<()> {
        self.inner.check_phase(&[Phase::Ready])?;
        let mut t = self.inner.txn.lock();
        t.phase = Phase::InTransaction;
        t.partitions.clear();
        t.groups.clear();
        t.abortable = None;
        Ok(())
    }

    /// Commits `offsets` (the next offset to read, per partition) of the consumer `group` in
    /// the open transaction: they take effect only if it commits.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        group: &GroupMetadata,
    ) -> Result<()> {
        let inner = &self.inner;
        inner.check_phase(&[Phase::InTransaction])?;
        let id = inner.transactional_id()?.to_string();
        let (pid, epoch) = inner.producer()?;
        let (added, tv2) = {
            let t = inner.txn.lock();
            (t.groups.contains(&group.group_id), t.tv2)
        };
        if tv2 {
            // TxnOffsetCommit v5 has the group coordinator add the offsets partition.
            inner.txn.lock().groups.insert(group.group_id.clone());
        } else if !added {
            let group_id = group.group_id.clone();
            let id2 = id.clone();
            inner
                .with_coordinator("AddOffsetsToTxn", |conn| {
                    let (id, group_id) = (id2.clone(), group_id.clone());
                    Box::pin(async move {
                        let version = conn.version_up_to::<AddOffsetsToTxnRequest>(3)?;
                        let request = AddOffsetsToTxnRequest::default()
                            .with_transactional_id(TransactionalId(s(&id)))
                            .with_producer_id(ProducerId(pid))
                            .with_producer_epoch(epoch)
                            .with_group_id(GroupId(s(&group_id)));
                        let r = conn.send_at(&request, version).await?;
                        Ok(if r.error_code == 0 {
                            Ok(())
                        } else {
                            Err(r.error_code)
                        })
                    })
                })
                .await?;
            inner.txn.lock().groups.insert(group.group_id.clone());
        }
        let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
        for (tp, offset) in offsets {
            let p = TxnOffsetCommitRequestPartition::default()
                .with_partition_index(tp.1)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s("")));
            match topics.iter_mut().find(|t| t.name.as_str() == tp.0) {
                Some(t) => t.partitions.push(p),
                None => topics.push(
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(&tp.0)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        let mut backoff = Duration::from_millis(20);
        let deadline = Instant::now() + MAX_BLOCK;
        loop {
            let conn = find_coordinator(&inner.cluster, &group.group_id).await?;
            let version = conn.version_up_to::<TxnOffsetCommitRequest>(if tv2 { 5 } else { 4 })?;
            let mut request = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s(&id)))
                .with_group_id(GroupId(s(&group.group_id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_topics(topics.clone());
            if version >= 3 {
                request.generation_id = group.generation;
                request.member_id = s(&group.member_id);
                request.group_instance_id = group.instance_id.as_deref().map(s);
            }
            let r = conn.send_at(&request, version).await?;
            let code = r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.error_code)
                .find(|c| *c != 0)
                .unwrap_or(0);
            let e = match code {
                0 => return Ok(()),
                c if c == NOT_COORDINATOR
                    || c == COORDINATOR_NOT_AVAILABLE
                    || c == COORDINATOR_LOAD_IN_PROGRESS
                    || c == CONCURRENT_TRANSACTIONS =>
                {
                    ClientError::kafka(c)
                }
                c => {
                    let e = ClientError::kafka(c);
                    inner
                        .txn
                        .lock()
                        .abortable
                        .get_or_insert_with(|| e.to_string());
                    return Err(e);
                }
            };
            if Instant::now() + backoff > deadline {
                return Err(e);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Sends what is queued, then commits the transaction. If any send in it failed, the
    /// transaction cannot commit: [`ClientError::Abortable`], and it must be aborted.
    pub async fn commit_transaction(&self) -> Result<()> {
        let inner = &self.inner;
        inner.check_phase(&[Phase::InTransaction])?;
        self.flush().await;
        if let Some(why) = inner.txn.lock().abortable.clone() {
            return Err(ClientError::Abortable(why));
        }
        let anything = {
            let t = inner.txn.lock();
            !t.partitions.is_empty() || !t.groups.is_empty()
        };
        if anything {
            inner.end_transaction(true).await?;
        }
        inner.txn.lock().phase = Phase::Ready;
        Ok(())
    }

    /// Sends what is queued (its outcome no longer matters), then aborts the transaction:
    /// read_committed consumers never see its records.
    pub async fn abort_transaction(&self) -> Result<()> {
        let inner = &self.inner;
        inner.check_phase(&[Phase::InTransaction])?;
        self.flush().await;
        let anything = {
            let t = inner.txn.lock();
            !t.partitions.is_empty() || !t.groups.is_empty()
        };
        if anything {
            inner.end_transaction(false).await?;
        }
        inner.txn.lock().phase = Phase::Ready;
        Ok(())
    }
}
