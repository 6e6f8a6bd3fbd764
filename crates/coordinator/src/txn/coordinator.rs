//! [`TransactionCoordinator`]: every transactional id whose `__transaction_state` partition
//! this node leads, as Kafka's TransactionCoordinator keeps them.
//!
//! A request changes an id's state in two steps: the new state is written to the partition
//! (and replicated, by the [`TxnHost`]), then applied in memory; a request that finds a
//! write or a marker phase in progress gets CONCURRENT_TRANSACTIONS and retries, as Kafka's
//! clients do. Each id has an async lock held across its write, so requests for one id are
//! serialized and requests for different ids never wait on each other.
//!
//! Ending a transaction: EndTxn logs PrepareCommit (or PrepareAbort) and answers; a task
//! then has the host write the markers to every partition of the transaction, retrying
//! until they are all written, and logs CompleteCommit (CompleteAbort). A coordinator that
//! takes a partition over finds the prepared transactions in its replay and finishes them,
//! so a transaction is never left hanging by a coordinator's failure.
//!
//! Timers: transactions open longer than their timeout are aborted with the producer's
//! epoch bumped (fencing it), every
//! `transaction.abort.timed.out.transaction.cleanup.interval.ms`; ids idle longer than
//! `transactional.id.expiration.ms` are removed (a tombstone is written).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use strom_storage::{now_ms, Log};

use super::records::{decode_key, encode_key, TxnStatus, TxnValue};
use crate::codes;
use crate::coordinator::partition_for;
use crate::replay::{self, Item};

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Kafka's `transaction.version` of the classic protocol (KIP-98, with KIP-890 part 1's
/// verification): the client adds every partition itself and keeps its epoch.
pub const TRANSACTION_VERSION_1: i16 = 1;

/// `transaction.version` 2 (KIP-890 part 2): a produce (v12+) or TxnOffsetCommit (v5+)
/// adds its own partition, and every EndTxn (v5+) bumps the producer epoch, so a late
/// write of a finished transaction is fenced by the epoch alone.
pub const TRANSACTION_VERSION_2: i16 = 2;

/// The coordinator's settings, from Kafka's broker properties.
#[derive(Debug, Clone)]
pub struct TxnCoordinatorConfig {
    /// transaction.state.log.num.partitions (50).
    pub partitions: i32,
    /// transaction.max.timeout.ms (15 minutes): the longest timeout a producer may ask for.
    pub max_timeout_ms: i32,
    /// transactional.id.expiration.ms (7 days).
    pub id_expiration_ms: i64,
    /// transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s).
    pub abort_check_interval_ms: u64,
    /// transaction.remove.expired.transaction.cleanup.interval.ms (1 hour).
    pub expiration_check_interval_ms: u64,
}

impl Default for TxnCoordinatorConfig {
    fn default() -> Self {
        TxnCoordinatorConfig {
            partitions: 50,
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 3600 * 1000,
            abort_check_interval_ms: 10_000,
            expiration_check_interval_ms: 3_600_000,
        }
    }
}

/// The markers ending one transaction, for the host to write to each partition's leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMarkers {
    /// The transactional id (for logs).
    pub transactional_id: String,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch the markers carry.
    pub producer_epoch: i16,
    /// COMMIT (true) or ABORT.
    pub commit: bool,
    /// The coordinator's epoch (the leader epoch of its `__transaction_state` partition).
    pub coordinator_epoch: i32,
    /// Every partition of the transaction.
    pub partitions: Vec<(String, i32)>,
}

/// What the coordinator needs from the broker around it.
pub trait TxnHost: Send + Sync {
    /// Appends a record to partition `partition` of `__transaction_state`, as its leader in
    /// `coordinator_epoch`, and waits until it is replicated. Errors are the codes the
    /// client gets (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE...).
    fn append(
        &self,
        partition: i32,
        coordinator_epoch: i32,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> BoxFuture<'static, Result<(), i16>>;
    /// Writes the markers to every partition (acks=all) and answers once all are written;
    /// an error means some were not, and the whole request is tried again.
    fn write_markers(&self, markers: TxnMarkers) -> BoxFuture<'static, Result<(), i16>>;
    /// A producer id no other producer has.
    fn allocate_producer_id(&self) -> BoxFuture<'static, Result<i64, i16>>;
}

/// One transactional id as ListTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    /// The id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its state's name.
    pub state: &'static str,
}

/// One transactional id as DescribeTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    /// State name.
    pub state: &'static str,
    /// transaction.timeout.ms.
    pub timeout_ms: i32,
    /// When the transaction began (-1: none open).
    pub start_ms: i64,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Partitions of the transaction.
    pub partitions: Vec<(String, i32)>,
}

#[derive(Debug, Clone)]
struct TxnMetadata {
    id: String,
    partition: i32,
    producer_id: i64,
    previous_producer_id: i64,
    next_producer_id: i64,
    epoch: i16,
    /// The epoch before the last bump, so a retried InitProducerId is recognised (KIP-360).
    last_epoch: i16,
    timeout_ms: i32,
    status: TxnStatus,
    partitions: BTreeSet<(String, i32)>,
    start_ms: i64,
    last_update_ms: i64,
    client_version: i16,
}

impl TxnMetadata {
    fn new(id: &str, partition: i32) -> Self {
        TxnMetadata {
            id: id.to_string(),
            partition,
            producer_id: -1,
            previous_producer_id: -1,
            next_producer_id: -1,
            epoch: -1,
            last_epoch: -1,
            timeout_ms: 0,
            status: TxnStatus::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms(),
            client_version: 0,
        }
    }

    fn from_value(id: &str, partition: i32, v: &TxnValue) -> Self {
        TxnMetadata {
            id: id.to_string(),
            partition,
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            next_producer_id: v.next_producer_id,
            epoch: v.producer_epoch,
            // A TV2 end bumped the epoch by one: remember the one before, so a retried
            // EndTxn is still recognised by the coordinator that loads it.
            last_epoch: if v.client_version >= TRANSACTION_VERSION_2
                && v.producer_epoch > 0
                && v.status != TxnStatus::Empty
                && v.status != TxnStatus::Ongoing
            {
                v.producer_epoch - 1
            } else {
                -1
            },
            timeout_ms: v.timeout_ms,
            status: v.status,
            partitions: v
                .partitions
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect(),
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            client_version: v.client_version,
        }
    }

    fn value(&self) -> TxnValue {
        let mut partitions: Vec<(String, Vec<i32>)> = Vec::new();
        for (t, p) in &self.partitions {
            match partitions.last_mut() {
                Some((last, ps)) if last == t => ps.push(*p),
                _ => partitions.push((t.clone(), vec![*p])),
            }
        }
        TxnValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.epoch,
            timeout_ms: self.timeout_ms,
            status: self.status,
            partitions,
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
            client_version: self.client_version,
        }
    }

    fn partitions(&self) -> Vec<(String, i32)> {
        self.partitions.iter().cloned().collect()
    }

    /// The same id with the epoch bumped past `self.epoch` (fencing its current producer).
    fn fenced(&self, now: i64) -> Self {
        let mut next = self.clone();
        next.last_epoch = self.epoch;
        next.epoch = self.epoch.saturating_add(1);
        next.last_update_ms = now;
        next
    }
}

type Entry = Arc<tokio::sync::Mutex<TxnMetadata>>;

/// How long an add waits for the previous transaction's markers before it answers
/// CONCURRENT_TRANSACTIONS: at transaction version 2 the producer's next transaction starts
/// as soon as EndTxn answers, usually while the markers are still being written (Kafka's
/// leader retries such an add for up to `add.partitions.to.txn.retry.backoff.max.ms`; here
/// it is woken by the completion instead of polling).
const PREPARED_WAIT: Duration = Duration::from_secs(1);

/// The transaction coordinator of one node.
pub struct TransactionCoordinator {
    config: TxnCoordinatorConfig,
    host: OnceLock<Arc<dyn TxnHost>>,
    /// Loaded partitions with their coordinator epoch.
    partitions: RwLock<HashMap<i32, i32>>,
    /// Partitions being loaded.
    loads: crate::loads::Loads,
    txns: Mutex<HashMap<String, Entry>>,
    /// Woken whenever a transaction completes or a partition is unloaded.
    ended: tokio::sync::Notify,
}

impl std::fmt::Debug for TransactionCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionCoordinator")
            .field("partitions", &self.partitions.read().len())
            .field("transactional_ids", &self.txns.lock().len())
            .finish()
    }
}

impl TransactionCoordinator {
    /// A coordinator owning no partitions yet; it serves nothing until
    /// [`TransactionCoordinator::set_host`].
    pub fn new(config: TxnCoordinatorConfig) -> Arc<Self> {
        Arc::new(TransactionCoordinator {
            config,
            host: OnceLock::new(),
            partitions: RwLock::new(HashMap::new()),
            loads: Default::default(),
            txns: Mutex::new(HashMap::new()),
            ended: tokio::sync::Notify::new(),
        })
    }

    /// Connects the coordinator to the broker that writes its records and markers.
    pub fn set_host(&self, host: Arc<dyn TxnHost>) {
        let _ = self.host.set(host);
    }

    /// Its settings.
    pub fn config(&self) -> &TxnCoordinatorConfig {
        &self.config
    }

    /// The partition of `__transaction_state` for `transactional_id` (Kafka's hash).
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.config.partitions)
    }

    /// True when partition `partition` is loaded here.
    pub fn is_partition_loaded(&self, partition: i32) -> bool {
        self.partitions.read().contains_key(&partition)
    }

    /// The coordinator epoch partition `partition` is loaded in, if it is.
    pub fn loaded_epoch(&self, partition: i32) -> Option<i32> {
        self.partitions.read().get(&partition).copied()
    }

    /// True while partition `partition` is being loaded.
    pub fn is_partition_loading(&self, partition: i32) -> bool {
        self.loads.is_loading(partition)
    }

    fn host(&self) -> Result<Arc<dyn TxnHost>, i16> {
        self.host
            .get()
            .cloned()
            .ok_or(codes::COORDINATOR_NOT_AVAILABLE)
    }

    /// The coordinator epoch of `partition`, or why it cannot be served here.
    fn epoch_of(&self, partition: i32) -> Result<i32, i16> {
        if let Some(e) = self.partitions.read().get(&partition) {
            return Ok(*e);
        }
        if self.loads.is_loading(partition) {
            Err(codes::COORDINATOR_LOAD_IN_PROGRESS)
        } else {
            Err(codes::NOT_COORDINATOR)
        }
    }

    fn existing(&self, transactional_id: &str) -> Result<Option<Entry>, i16> {
        self.epoch_of(self.partition_for(transactional_id))?;
        Ok(self.txns.lock().get(transactional_id).cloned())
    }

    /// Writes `m`'s state (or a tombstone) to its partition.
    async fn write(&self, m: &TxnMetadata, tombstone: bool) -> Result<(), i16> {
        let epoch = self.epoch_of(m.partition)?;
        let value = (!tombstone).then(|| m.value().encode());
        self.host()?
            .append(m.partition, epoch, encode_key(&m.id), value)
            .await
    }

    /// Marks partition `partition` as loading and returns the token
    /// [`TransactionCoordinator::finish_loading`] takes.
    pub fn begin_loading(&self, partition: i32) -> u64 {
        self.loads.begin(partition)
    }

    /// Replays partition `partition` into transactional ids and starts serving them in
    /// `coordinator_epoch`, unless it was unloaded since `token` was given (then false).
    /// Transactions found prepared are finished: their markers written, then completed.
    pub fn finish_loading(
        self: &Arc<Self>,
        partition: i32,
        log: Arc<Log>,
        coordinator_epoch: i32,
        token: u64,
    ) -> Result<bool, String> {
        let mut latest: HashMap<String, Option<TxnValue>> = HashMap::new();
        let records = replay::for_each(&log, |_, item| {
            let Item::Record(Some(key), value) = item else {
                return;
            };
            let id = match decode_key(key) {
                Ok(Some(id)) => id,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a transaction log key that does not decode");
                    return;
                }
            };
            match value.map(TxnValue::decode) {
                None => {
                    latest.insert(id, None);
                }
                Some(Ok(v)) => {
                    latest.insert(id, Some(v));
                }
                Some(Err(e)) => {
                    tracing::warn!(transactional_id = %id, error = %e, "skipping a transaction log value that does not decode");
                }
            }
        });
        let Some(installing) = self.loads.finish(partition, token) else {
            return Ok(false);
        };
        let records = records?;
        let mut prepared = Vec::new();
        let count = {
            let mut txns = self.txns.lock();
            let mut count = 0;
            for (id, value) in latest {
                let Some(v) = value else { continue };
                let m = TxnMetadata::from_value(&id, partition, &v);
                let entry = Arc::new(tokio::sync::Mutex::new(m.clone()));
                if matches!(m.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort) {
                    prepared.push((entry.clone(), m.epoch, m.status));
                }
                txns.insert(id, entry);
                count += 1;
            }
            count
        };
        self.partitions.write().insert(partition, coordinator_epoch);
        drop(installing);
        tracing::info!(
            partition,
            transactional_ids = count,
            records,
            prepared = prepared.len(),
            "loaded transaction coordinator partition"
        );
        for (entry, epoch, status) in prepared {
            self.spawn_completion(entry, epoch, status);
        }
        Ok(true)
    }

    /// Gives up partition `partition`: its ids are dropped (the new coordinator replays
    /// them); marker phases in progress stop at their next step.
    pub fn unload_partition(&self, partition: i32) {
        let _unloading = self.loads.cancel(partition);
        self.partitions.write().remove(&partition);
        let p = self.config.partitions;
        self.txns
            .lock()
            .retain(|id, _| partition_for(id, p) != partition);
        self.ended.notify_waiters();
    }

    /// InitProducerId with a transactional id: the producer id and a new epoch. An open
    /// transaction of the previous producer is aborted first (CONCURRENT_TRANSACTIONS is
    /// answered meanwhile, and the client retries). `expected` is the id and epoch the
    /// producer already has (KIP-360), or `None`.
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), i16> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(codes::INVALID_TRANSACTION_TIMEOUT);
        }
        let partition = self.partition_for(transactional_id);
        self.epoch_of(partition)?;
        let entry = self
            .txns
            .lock()
            .entry(transactional_id.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(TxnMetadata::new(
                    transactional_id,
                    partition,
                )))
            })
            .clone();
        let mut m = entry.lock().await;
        self.epoch_of(partition)?;
        if let Some((pid, epoch)) = expected.filter(|(pid, _)| *pid >= 0) {
            let retried_bump = m.producer_id == pid && m.last_epoch == epoch && m.epoch != epoch;
            if retried_bump && m.status != TxnStatus::Ongoing {
                return Ok((m.producer_id, m.epoch));
            }
            if m.producer_id != pid || m.epoch != epoch {
                return Err(codes::PRODUCER_FENCED);
            }
        }
        let now = now_ms();
        match m.status {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => {
                Err(codes::CONCURRENT_TRANSACTIONS)
            }
            TxnStatus::Ongoing => {
                // Fence the previous producer and abort what it left open.
                let mut next = m.fenced(now);
                next.status = TxnStatus::PrepareAbort;
                self.write(&next, false).await?;
                let (epoch, status) = (next.epoch, next.status);
                *m = next;
                drop(m);
                tracing::info!(
                    transactional_id,
                    "fencing the previous producer: aborting its open transaction"
                );
                self.spawn_completion(entry, epoch, status);
                Err(codes::CONCURRENT_TRANSACTIONS)
            }
            TxnStatus::Empty
            | TxnStatus::CompleteCommit
            | TxnStatus::CompleteAbort
            | TxnStatus::Dead => {
                let mut next = m.fenced(now);
                if m.producer_id < 0 || m.epoch >= i16::MAX - 1 {
                    // A new id, or the epoch ran out: a fresh producer id at epoch 0.
                    next.previous_producer_id = m.producer_id;
                    next.producer_id = self.host()?.allocate_producer_id().await?;
                    next.epoch = 0;
                    next.last_epoch = -1;
                }
                next.timeout_ms = timeout_ms;
                next.status = TxnStatus::Empty;
                next.partitions.clear();
                next.start_ms = -1;
                self.write(&next, false).await?;
                let out = (next.producer_id, next.epoch);
                *m = next;
                Ok(out)
            }
        }
    }

    /// Checks the producer of a request against the id's state.
    fn check_producer(m: &TxnMetadata, producer_id: i64, epoch: i16) -> Result<(), i16> {
        if m.producer_id != producer_id {
            return Err(codes::INVALID_PRODUCER_ID_MAPPING);
        }
        if m.epoch != epoch {
            return Err(codes::PRODUCER_FENCED);
        }
        Ok(())
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition; and, at
    /// [`TRANSACTION_VERSION_2`], a leader's or group coordinator's implicit add): the
    /// partitions join the transaction, which begins with the first of them.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        client_version: i16,
    ) -> Result<(), i16> {
        let deadline = tokio::time::Instant::now() + PREPARED_WAIT;
        let mut m = loop {
            let entry = self
                .existing(transactional_id)?
                .ok_or(codes::INVALID_PRODUCER_ID_MAPPING)?;
            let m = entry.lock_owned().await;
            Self::check_producer(&m, producer_id, epoch)?;
            if !matches!(
                m.status,
                TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence
            ) {
                break m;
            }
            // The previous transaction's markers are being written: wait for its end.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            drop(m);
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return Err(codes::CONCURRENT_TRANSACTIONS);
            }
        };
        match m.status {
            TxnStatus::Dead => return Err(codes::INVALID_PRODUCER_ID_MAPPING),
            TxnStatus::Ongoing if partitions.iter().all(|p| m.partitions.contains(p)) => {
                return Ok(())
            }
            _ => {}
        }
        let now = now_ms();
        let mut next = m.clone();
        if m.status != TxnStatus::Ongoing {
            next.partitions.clear();
            next.start_ms = now;
            next.client_version = client_version;
        }
        next.status = TxnStatus::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        self.write(&next, false).await?;
        *m = next;
        Ok(())
    }

    /// KIP-890 part 1: whether each partition is in the open transaction of this producer
    /// (a leader asks before it appends a producer's first transactional batch). NONE or
    /// INVALID_TXN_STATE per partition; a top-level error when the producer is unknown or
    /// fenced.
    pub async fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let entry = self
            .existing(transactional_id)?
            .ok_or(codes::INVALID_PRODUCER_ID_MAPPING)?;
        let m = entry.lock().await;
        Self::check_producer(&m, producer_id, epoch)?;
        Ok(partitions
            .iter()
            .map(|p| {
                if m.status == TxnStatus::Ongoing && m.partitions.contains(p) {
                    codes::NONE
                } else {
                    codes::INVALID_TXN_STATE
                }
            })
            .collect())
    }

    /// EndTxn: commit or abort the open transaction. Answers once the decision is logged
    /// (the markers follow) with the producer id and epoch the producer goes on with: the
    /// same ones at [`TRANSACTION_VERSION_1`]; at [`TRANSACTION_VERSION_2`] the epoch is
    /// bumped (the markers carry the new one), or on exhaustion a new producer id at epoch
    /// 0 is handed out. A retry of an end already reached answers NONE (with what the first
    /// answer said).
    pub async fn end_txn(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        client_version: i16,
    ) -> Result<(i64, i16), i16> {
        let entry = self
            .existing(transactional_id)?
            .ok_or(codes::INVALID_PRODUCER_ID_MAPPING)?;
        let mut m = entry.lock().await;
        let tv2 = client_version >= TRANSACTION_VERSION_2;
        let done = if commit {
            TxnStatus::CompleteCommit
        } else {
            TxnStatus::CompleteAbort
        };
        let prepared = if commit {
            TxnStatus::PrepareCommit
        } else {
            TxnStatus::PrepareAbort
        };
        if tv2 {
            // The answer to this request was lost and the epoch already bumped (or, on
            // exhaustion, the producer id already replaced).
            let retry_of_bump = m.producer_id == producer_id
                && m.last_epoch == epoch
                && m.epoch == epoch.saturating_add(1);
            let retry_of_overflow = m.previous_producer_id == producer_id
                && m.producer_id != producer_id
                && m.epoch == 0
                && epoch >= i16::MAX - 1;
            if retry_of_bump || retry_of_overflow {
                return if m.status == done {
                    Ok((m.producer_id, m.epoch))
                } else if m.status == prepared {
                    Err(codes::CONCURRENT_TRANSACTIONS)
                } else {
                    Err(codes::PRODUCER_FENCED)
                };
            }
        }
        if m.producer_id != producer_id {
            return Err(codes::INVALID_PRODUCER_ID_MAPPING);
        }
        if epoch < m.epoch {
            return Err(codes::PRODUCER_FENCED);
        }
        if epoch > m.epoch {
            return Err(codes::INVALID_PRODUCER_EPOCH);
        }
        match (m.status, commit) {
            (TxnStatus::Ongoing, _) => {}
            // At TV2 a transaction that added nothing may still be aborted: the epoch is
            // bumped all the same (no partition needs a marker).
            (TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort, false)
                if tv2 => {}
            (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => {
                return Err(codes::CONCURRENT_TRANSACTIONS)
            }
            (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => {
                return Ok((m.producer_id, m.epoch))
            }
            (TxnStatus::PrepareEpochFence, _) => return Err(codes::INVALID_PRODUCER_EPOCH),
            _ => return Err(codes::INVALID_TXN_STATE),
        }
        let now = now_ms();
        let mut next = if tv2 { m.fenced(now) } else { m.clone() };
        if tv2 {
            next.client_version = client_version;
            if m.status != TxnStatus::Ongoing {
                next.partitions.clear();
            }
            if m.epoch >= i16::MAX - 1 {
                // The epoch runs out with this bump: the producer goes on with a new id,
                // which the completion installs.
                next.next_producer_id = self.host()?.allocate_producer_id().await?;
            }
        }
        next.status = prepared;
        next.last_update_ms = now;
        self.write(&next, false).await?;
        let answer = if next.next_producer_id >= 0 {
            (next.next_producer_id, 0)
        } else {
            (next.producer_id, next.epoch)
        };
        let marker_epoch = next.epoch;
        *m = next;
        drop(m);
        self.spawn_completion(entry, marker_epoch, prepared);
        Ok(answer)
    }

    /// Writes the markers of a prepared transaction, then logs its completion; stops if the
    /// id moved on or this node stopped coordinating it.
    fn spawn_completion(self: &Arc<Self>, entry: Entry, epoch: i16, prepared: TxnStatus) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move { this.complete(entry, epoch, prepared).await });
    }

    async fn complete(&self, entry: Entry, epoch: i16, prepared: TxnStatus) {
        let commit = prepared == TxnStatus::PrepareCommit;
        let (markers, partition) = {
            let m = entry.lock().await;
            if m.status != prepared || m.epoch != epoch {
                return;
            }
            let Ok(coordinator_epoch) = self.epoch_of(m.partition) else {
                return;
            };
            (
                TxnMarkers {
                    transactional_id: m.id.clone(),
                    producer_id: m.producer_id,
                    producer_epoch: m.epoch,
                    commit,
                    coordinator_epoch,
                    partitions: m.partitions(),
                },
                m.partition,
            )
        };
        let still_ours =
            |c: &Self| c.partitions.read().get(&partition) == Some(&markers.coordinator_epoch);
        let mut backoff = Duration::from_millis(20);
        loop {
            if !still_ours(self) {
                return;
            }
            let Ok(host) = self.host() else { return };
            match host.write_markers(markers.clone()).await {
                Ok(()) => break,
                Err(code) => {
                    tracing::debug!(transactional_id = %markers.transactional_id, code, "markers not all written yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        let done = if commit {
            TxnStatus::CompleteCommit
        } else {
            TxnStatus::CompleteAbort
        };
        loop {
            let mut m = entry.lock().await;
            if m.status != prepared || m.epoch != epoch || !still_ours(self) {
                return;
            }
            let mut next = m.clone();
            next.status = done;
            next.partitions.clear();
            next.last_update_ms = now_ms();
            if next.next_producer_id >= 0 {
                // A TV2 end that exhausted the epoch: the new producer id takes over.
                next.previous_producer_id = next.producer_id;
                next.producer_id = next.next_producer_id;
                next.next_producer_id = -1;
                next.epoch = 0;
                next.last_epoch = -1;
            }
            match self.write(&next, false).await {
                Ok(()) => {
                    *m = next;
                    tracing::debug!(transactional_id = %m.id, state = done.name(), "transaction completed");
                    drop(m);
                    self.ended.notify_waiters();
                    return;
                }
                Err(code) => {
                    drop(m);
                    tracing::debug!(transactional_id = %markers.transactional_id, code, "could not log the completion; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Aborts, with the epoch bumped, every transaction open longer than its timeout.
    /// Returns how many it started aborting.
    pub async fn abort_timed_out(self: &Arc<Self>, now: i64) -> usize {
        let entries: Vec<Entry> = self.txns.lock().values().cloned().collect();
        let mut aborted = 0;
        for entry in entries {
            let mut m = entry.lock().await;
            let expired = m.status == TxnStatus::Ongoing
                && m.start_ms >= 0
                && now.saturating_sub(m.start_ms) > i64::from(m.timeout_ms);
            if !expired || self.epoch_of(m.partition).is_err() {
                continue;
            }
            let mut next = m.fenced(now);
            next.status = TxnStatus::PrepareAbort;
            if let Err(code) = self.write(&next, false).await {
                tracing::warn!(transactional_id = %m.id, code, "could not abort a timed-out transaction");
                continue;
            }
            tracing::info!(transactional_id = %m.id, timeout_ms = m.timeout_ms, "aborting a transaction that timed out");
            let epoch = next.epoch;
            *m = next;
            drop(m);
            self.spawn_completion(entry, epoch, TxnStatus::PrepareAbort);
            aborted += 1;
        }
        aborted
    }

    /// Removes ids with no open transaction idle longer than transactional.id.expiration.ms.
    pub async fn expire_ids(&self, now: i64) -> usize {
        let entries: Vec<(String, Entry)> = self
            .txns
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut removed = 0;
        for (id, entry) in entries {
            let m = entry.lock().await;
            let idle = matches!(
                m.status,
                TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
            ) && now.saturating_sub(m.last_update_ms) > self.config.id_expiration_ms;
            if !idle || self.epoch_of(m.partition).is_err() {
                continue;
            }
            if m.producer_id >= 0 && self.write(&m, true).await.is_err() {
                continue;
            }
            drop(m);
            self.txns.lock().remove(&id);
            removed += 1;
        }
        removed
    }

    /// Runs the timeout and expiration timers until the coordinator is dropped.
    pub fn start_timers(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let abort_every = Duration::from_millis(self.config.abort_check_interval_ms.max(1));
        let expire_every = self.config.expiration_check_interval_ms.max(1);
        runtime.spawn(async move {
            let mut since_expiry = 0u64;
            loop {
                tokio::time::sleep(abort_every).await;
                let Some(c) = weak.upgrade() else { return };
                let now = now_ms();
                c.abort_timed_out(now).await;
                since_expiry += abort_every.as_millis() as u64;
                if since_expiry >= expire_every {
                    since_expiry = 0;
                    c.expire_ids(now).await;
                }
            }
        });
    }

    /// ListTransactions: ids here, filtered by state names and producer ids (empty = all),
    /// and by a transaction open at least `min_duration_ms` (-1 = any).
    pub async fn list(
        &self,
        states: &[String],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Vec<TxnListing> {
        let now = now_ms();
        let entries: Vec<Entry> = self.txns.lock().values().cloned().collect();
        let mut states_now = Vec::with_capacity(entries.len());
        for e in &entries {
            states_now.push(e.lock().await.clone());
        }
        let mut out: Vec<TxnListing> = states_now
            .into_iter()
            .filter(|m| m.producer_id >= 0)
            .filter(|m| states.is_empty() || states.iter().any(|s| s == m.status.name()))
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| {
                min_duration_ms < 0
                    || (m.status == TxnStatus::Ongoing
                        && m.start_ms >= 0
                        && now - m.start_ms >= min_duration_ms)
            })
            .map(|m| TxnListing {
                transactional_id: m.id.clone(),
                producer_id: m.producer_id,
                state: m.status.name(),
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// DescribeTransactions for one id.
    pub async fn describe(&self, transactional_id: &str) -> Result<TxnDescription, i16> {
        let entry = self
            .existing(transactional_id)?
            .ok_or(codes::TRANSACTIONAL_ID_NOT_FOUND)?;
        let m = entry.lock().await;
        if m.producer_id < 0 {
            return Err(codes::TRANSACTIONAL_ID_NOT_FOUND);
        }
        Ok(TxnDescription {
            state: m.status.name(),
            timeout_ms: m.timeout_ms,
            start_ms: m.start_ms,
            producer_id: m.producer_id,
            producer_epoch: m.epoch,
            partitions: m.partitions(),
        })
    }
}
