//! [`ReplicaManager`]: every partition replica on this broker, the transitions the metadata
//! image causes, produce and fetch on replicas, the ISR-shrink check and the high-watermark
//! checkpoint.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use strom_storage::{checkpoint, now_ms, AppendInfo, AppendOrigin, LogConfig, LogManager};
use strom_types::TopicPartition;

use crate::fetcher::Fetchers;
use crate::link::{IsrProposal, IsrProposer, ReplicaLinks};
use crate::partition::{
    Assignment, ConsumerFetch, ConsumerRead, FollowerFetch, Partition, ReplicaRead, Transition,
    THROTTLE_LEADER,
};
use crate::throttle::Throttle;
use crate::{blocking, EpochEnd, ReplicationError};

/// The per-log-dir file of high watermarks (Kafka's name and format).
pub const HWM_CHECKPOINT: &str = "replication-offset-checkpoint";

/// How long a refused ISR proposal keeps a partition from proposing again.
const PROPOSAL_BACKOFF: Duration = Duration::from_millis(200);

/// Replication settings, under Kafka's broker config names.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// `num.replica.fetchers` (1): fetchers per source broker.
    pub num_replica_fetchers: usize,
    /// `replica.fetch.wait.max.ms` (500): how long a follower's fetch long-polls.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes` (1).
    pub fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes` (1 MiB): per partition.
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes` (10 MiB): per fetch.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms` (1000): after a failed fetch.
    pub fetch_backoff: Duration,
    /// `replica.lag.time.max.ms` (30000): an ISR member not caught up this long leaves.
    pub lag_time_max: Duration,
    /// `replica.high.watermark.checkpoint.interval.ms` (5000).
    pub hwm_checkpoint_interval: Duration,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            num_replica_fetchers: 1,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 1024 * 1024,
            fetch_response_max_bytes: 10 * 1024 * 1024,
            fetch_backoff: Duration::from_millis(1000),
            lag_time_max: Duration::from_millis(30_000),
            hwm_checkpoint_interval: Duration::from_millis(5000),
        }
    }
}

/// Every partition replica on one broker.
pub struct ReplicaManager {
    me: i32,
    config: ReplicationConfig,
    logs: Arc<LogManager>,
    partitions: RwLock<BTreeMap<TopicPartition, Arc<Partition>>>,
    /// High watermarks read at start, taken by each partition as it is created.
    checkpointed: Mutex<BTreeMap<TopicPartition, i64>>,
    fetchers: Fetchers,
    proposer: Arc<dyn IsrProposer>,
    broker_epoch: Arc<AtomicI64>,
    /// `leader.replication.throttled.rate`: what this leader sends throttled followers.
    leader_throttle: Arc<Throttle>,
    /// `follower.replication.throttled.rate`: what this broker's throttled replicas fetch.
    follower_throttle: Arc<Throttle>,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("me", &self.me)
            .field("partitions", &self.partitions.read().len())
            .finish()
    }
}

impl ReplicaManager {
    /// The replica manager of broker `me` over `logs`, reading the high-watermark
    /// checkpoints of its log dirs. Background work starts with [`ReplicaManager::start`].
    pub fn new(
        me: i32,
        config: ReplicationConfig,
        logs: Arc<LogManager>,
        links: Arc<dyn ReplicaLinks>,
        proposer: Arc<dyn IsrProposer>,
    ) -> Arc<ReplicaManager> {
        let mut checkpointed = BTreeMap::new();
        for dir in logs.log_dirs() {
            match checkpoint::read_offsets(&dir.join(HWM_CHECKPOINT)) {
                Ok(offsets) => checkpointed.extend(offsets),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "unreadable high-watermark checkpoint")
                }
            }
        }
        let broker_epoch = Arc::new(AtomicI64::new(-1));
        let follower_throttle = Arc::new(Throttle::default());
        Arc::new(ReplicaManager {
            me,
            fetchers: Fetchers::new(
                me,
                config.clone(),
                links,
                broker_epoch.clone(),
                follower_throttle.clone(),
            ),
            leader_throttle: Arc::new(Throttle::default()),
            follower_throttle,
            config,
            logs,
            partitions: RwLock::new(BTreeMap::new()),
            checkpointed: Mutex::new(checkpointed),
            proposer,
            broker_epoch,
        })
    }

    /// Starts the ISR-shrink check and the high-watermark checkpoint; both stop when the
    /// manager is dropped.
    pub fn start(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = (self.config.lag_time_max / 2).max(Duration::from_millis(10));
        tokio::spawn(shrink_loop(weak.clone(), every));
        tokio::spawn(checkpoint_loop(weak, self.config.hwm_checkpoint_interval));
    }

    /// This broker's id.
    pub fn broker_id(&self) -> i32 {
        self.me
    }

    /// The settings.
    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    /// Sets the broker epoch replica fetches carry (from the broker's registration).
    pub fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::Release);
    }

    /// Sets `leader.replication.throttled.rate` and `follower.replication.throttled.rate`
    /// (bytes per second; `None`: unlimited).
    pub fn set_throttle_rates(&self, leader: Option<u64>, follower: Option<u64>) {
        self.leader_throttle.set_rate(leader);
        self.follower_throttle.set_rate(follower);
    }

    /// The replica of `tp`, if this broker has one.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    /// Every replica here.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// The log manager under the replicas.
    pub fn logs(&self) -> &Arc<LogManager> {
        &self.logs
    }

    /// Brings the replica of `tp` in line with the image's assignment: creates its log if
    /// missing, then becomes leader, follower (starting to fetch from the leader) or
    /// offline as the assignment says.
    pub fn apply(
        &self,
        tp: &TopicPartition,
        assignment: Assignment,
        config: LogConfig,
        min_insync_replicas: i32,
    ) -> Result<(), ReplicationError> {
        let partition = match self.get(tp) {
            Some(p) => p,
            None => {
                let log = self.logs.get_or_create(tp, config)?;
                let hwm = self.checkpointed.lock().remove(tp).unwrap_or(0);
                let p = Arc::new(Partition::new(tp.clone(), self.me, log, hwm));
                self.partitions
                    .write()
                    .entry(tp.clone())
                    .or_insert(p)
                    .clone()
            }
        };
        let epoch = assignment.leader_epoch;
        match partition.apply(assignment, min_insync_replicas, now_ms()) {
            Transition::BecameLeader => {
                self.fetchers.remove(tp);
                tracing::info!(partition = %tp, epoch, "became leader");
            }
            Transition::BecameFollower { leader } => {
                self.fetchers.add(leader, partition.clone(), epoch);
                tracing::info!(partition = %tp, epoch, leader, "became follower");
            }
            Transition::WentOffline => {
                self.fetchers.remove(tp);
                tracing::info!(partition = %tp, epoch, "no leader: offline");
            }
            Transition::Unchanged => {}
        }
        Ok(())
    }

    /// Drops the replica of `tp` and deletes its log (topic deleted, replica moved away).
    pub fn remove(&self, tp: &TopicPartition) -> Result<bool, ReplicationError> {
        self.fetchers.remove(tp);
        self.partitions.write().remove(tp);
        Ok(self.logs.delete(tp)?)
    }

    /// Appends `records` to the partition as its leader and answers per `acks`: at once
    /// for 0 and 1; for all (-1) once the ISR holds them, or REQUEST_TIMED_OUT after
    /// `timeout`.
    pub async fn append(
        &self,
        tp: &TopicPartition,
        records: &mut [u8],
        acks: i16,
        timeout: Duration,
        origin: AppendOrigin,
    ) -> Result<AppendInfo, ReplicationError> {
        let partition = self
            .get(tp)
            .ok_or_else(|| ReplicationError::UnknownPartition(tp.clone()))?;
        let appended = blocking(|| partition.append_as_leader(records, acks, origin, now_ms()))?;
        if acks == -1 {
            partition
                .wait_replicated(
                    appended.info.last_offset + 1,
                    appended.leader_epoch,
                    timeout,
                )
                .await?;
        }
        Ok(appended.info)
    }

    /// A follower's fetch of `tp`, answered by this leader; sends any ISR expansion it
    /// makes due to the controller.
    pub fn read_for_replica(
        &self,
        tp: &TopicPartition,
        fetch: FollowerFetch,
    ) -> Result<ReplicaRead, ReplicationError> {
        let partition = self
            .get(tp)
            .ok_or_else(|| ReplicationError::UnknownPartition(tp.clone()))?;
        // Kafka's leader-side throttle: a throttled replica out of the ISR gets nothing
        // while the rate is spent (its fetch still counts as heard).
        let throttled = partition.is_throttled(THROTTLE_LEADER) && !partition.in_isr(fetch.replica);
        let fetch = if throttled && self.leader_throttle.exceeded() {
            FollowerFetch {
                max_bytes: 0,
                min_one_batch: false,
                ..fetch
            }
        } else {
            fetch
        };
        let mut read = partition.read_for_replica(fetch, now_ms())?;
        if throttled {
            let sent = read.read.as_ref().and_then(|r| r.region.as_ref());
            self.leader_throttle
                .record(sent.map_or(0, |r| r.len() as usize));
        }
        if let Some(proposal) = read.proposal.take() {
            tracing::info!(partition = %tp, replica = fetch.replica, isr = ?proposal.new_isr, "follower caught up: expanding the ISR");
            self.propose(partition, proposal);
        }
        Ok(read)
    }

    /// A consumer's fetch of `tp`, bounded by the high watermark (or the last stable
    /// offset).
    pub fn read_for_consumer(
        &self,
        tp: &TopicPartition,
        fetch: ConsumerFetch,
    ) -> Result<ConsumerRead, ReplicationError> {
        self.get(tp)
            .ok_or_else(|| ReplicationError::UnknownPartition(tp.clone()))?
            .read_for_consumer(fetch)
    }

    /// OffsetsForLeaderEpoch: where `epoch` ends in the leader's log of `tp`.
    pub fn end_offset_for_epoch(
        &self,
        tp: &TopicPartition,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<EpochEnd, ReplicationError> {
        self.get(tp)
            .ok_or_else(|| ReplicationError::UnknownPartition(tp.clone()))?
            .end_offset_for_epoch(current_leader_epoch, epoch)
    }

    fn propose(&self, partition: Arc<Partition>, proposal: IsrProposal) {
        let sent = self.proposer.alter_partition(proposal.clone());
        tokio::spawn(async move {
            if let Err(e) = sent.await {
                tracing::warn!(partition = %proposal.tp, isr = ?proposal.new_isr, error = %e, "ISR change refused");
                // Not again at once: a follower that catches up before the controller has
                // unfenced it would otherwise be proposed on every fetch.
                tokio::time::sleep(PROPOSAL_BACKOFF).await;
            }
            partition.clear_pending(proposal.partition_epoch);
        });
    }

    /// One pass of the ISR-shrink check over the partitions this broker leads.
    pub fn check_isr(&self) {
        let now = now_ms();
        for p in self.partitions() {
            if let Some(proposal) = p.maybe_shrink_isr(now, self.config.lag_time_max) {
                self.propose(p, proposal);
            }
        }
    }

    /// Writes every log dir's `replication-offset-checkpoint`.
    pub fn checkpoint_high_watermarks(&self) -> Result<(), ReplicationError> {
        let mut by_dir: BTreeMap<PathBuf, BTreeMap<TopicPartition, i64>> = self
            .logs
            .log_dirs()
            .iter()
            .map(|d| (d.clone(), BTreeMap::new()))
            .collect();
        for p in self.partitions() {
            let dir = p.log().dir();
            let Some(parent) = dir.parent() else { continue };
            by_dir
                .entry(parent.to_path_buf())
                .or_default()
                .insert(p.topic_partition().clone(), p.high_watermark());
        }
        for (dir, offsets) in by_dir {
            if dir.exists() {
                checkpoint::write_offsets(&dir.join(HWM_CHECKPOINT), &offsets)?;
            }
        }
        Ok(())
    }

    /// Stops every fetcher and writes the high-watermark checkpoint.
    pub fn shutdown(&self) -> Result<(), ReplicationError> {
        self.fetchers.shutdown();
        self.checkpoint_high_watermarks()
    }
}

impl Drop for ReplicaManager {
    fn drop(&mut self) {
        self.fetchers.shutdown();
    }
}

async fn shrink_loop(manager: Weak<ReplicaManager>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(m) = manager.upgrade() else { return };
        m.check_isr();
    }
}

async fn checkpoint_loop(manager: Weak<ReplicaManager>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(m) = manager.upgrade() else { return };
        if let Err(e) = blocking(|| m.checkpoint_high_watermarks()) {
            tracing::warn!(error = %e, "could not checkpoint high watermarks");
        }
    }
}
