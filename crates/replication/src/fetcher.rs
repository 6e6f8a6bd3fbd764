//! Replica fetchers: `num.replica.fetchers` tasks per source broker, each following a share
//! of the partitions that broker leads (Kafka's hash of the partition picks the share).
//!
//! A fetcher sends one replica fetch at a time for all its partitions, which the leader
//! holds until it has data or `replica.fetch.wait.max.ms` passes, so an idle cluster sends
//! a couple of fetches a second per fetcher and nothing spins. Each answer is acted on per
//! partition, in the leader epoch the fetch was made in: append, truncate a divergent tail,
//! restart out of range, or back off (`replica.fetch.backoff.ms`) until the metadata moves
//! the partition. A fetcher with nothing to fetch sleeps until it is given a partition.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use strom_storage::now_ms;
use strom_types::TopicPartition;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::link::{FetchPartition, FetchedPartition, LinkError, ReplicaFetch, ReplicaLinks};
use crate::manager::ReplicationConfig;
use crate::partition::{Partition, THROTTLE_FOLLOWER};
use crate::throttle::Throttle;
use crate::{blocking, ReplicationError};

/// The shortest wait of a partition held back by the follower throttle.
const THROTTLE_RECHECK: std::time::Duration = std::time::Duration::from_millis(10);

struct Follow {
    partition: Arc<Partition>,
    /// The leader epoch it follows in: answers to fetches of another epoch are dropped.
    epoch: i32,
    delayed_until: Option<Instant>,
}

/// One fetcher task's share.
struct FetcherThread {
    leader: i32,
    partitions: Mutex<BTreeMap<TopicPartition, Follow>>,
    wake: Notify,
    stopped: AtomicBool,
}

/// Every fetcher of a broker.
pub(crate) struct Fetchers {
    me: i32,
    config: ReplicationConfig,
    links: Arc<dyn ReplicaLinks>,
    broker_epoch: Arc<AtomicI64>,
    throttle: Arc<Throttle>,
    threads: Mutex<HashMap<(i32, usize), Arc<FetcherThread>>>,
    /// Which thread follows each partition.
    assigned: Mutex<HashMap<TopicPartition, (i32, usize)>>,
}

impl Fetchers {
    pub(crate) fn new(
        me: i32,
        config: ReplicationConfig,
        links: Arc<dyn ReplicaLinks>,
        broker_epoch: Arc<AtomicI64>,
        throttle: Arc<Throttle>,
    ) -> Self {
        Fetchers {
            me,
            config,
            links,
            broker_epoch,
            throttle,
            threads: Mutex::new(HashMap::new()),
            assigned: Mutex::new(HashMap::new()),
        }
    }

    /// Follows `partition` from `leader` in leader epoch `epoch`, moving it off any other
    /// fetcher.
    pub(crate) fn add(&self, leader: i32, partition: Arc<Partition>, epoch: i32) {
        let tp = partition.topic_partition().clone();
        self.remove(&tp);
        let key = (leader, fetcher_id(&tp, self.config.num_replica_fetchers));
        let thread = {
            let mut threads = self.threads.lock();
            threads
                .entry(key)
                .or_insert_with(|| {
                    let thread = Arc::new(FetcherThread {
                        leader,
                        partitions: Mutex::new(BTreeMap::new()),
                        wake: Notify::new(),
                        stopped: AtomicBool::new(false),
                    });
                    tokio::spawn(run(
                        thread.clone(),
                        self.me,
                        self.config.clone(),
                        self.links.clone(),
                        self.broker_epoch.clone(),
                        self.throttle.clone(),
                    ));
                    thread
                })
                .clone()
        };
        thread.partitions.lock().insert(
            tp.clone(),
            Follow {
                partition,
                epoch,
                delayed_until: None,
            },
        );
        self.assigned.lock().insert(tp, key);
        thread.wake.notify_one();
    }

    /// Stops following `tp`.
    pub(crate) fn remove(&self, tp: &TopicPartition) {
        let Some(key) = self.assigned.lock().remove(tp) else {
            return;
        };
        if let Some(thread) = self.threads.lock().get(&key) {
            thread.partitions.lock().remove(tp);
        }
    }

    /// Stops every fetcher.
    pub(crate) fn shutdown(&self) {
        for thread in self.threads.lock().drain().map(|(_, t)| t) {
            thread.stopped.store(true, Ordering::Release);
            thread.wake.notify_one();
        }
        self.assigned.lock().clear();
    }
}

/// Which of `n` fetchers follows `tp`.
fn fetcher_id(tp: &TopicPartition, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tp.hash(&mut h);
    (h.finish() % n.max(1) as u64) as usize
}

async fn run(
    thread: Arc<FetcherThread>,
    me: i32,
    config: ReplicationConfig,
    links: Arc<dyn ReplicaLinks>,
    broker_epoch: Arc<AtomicI64>,
    throttle: Arc<Throttle>,
) {
    let leader = thread.leader;
    loop {
        if thread.stopped.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let mut epochs = HashMap::new();
        let mut next_delay: Option<Instant> = None;
        let mut partitions = Vec::new();
        for (tp, f) in thread.partitions.lock().iter_mut() {
            if let Some(until) = f.delayed_until {
                if until > now {
                    next_delay = Some(next_delay.map_or(until, |d| d.min(until)));
                    continue;
                }
                f.delayed_until = None;
            }
            // Kafka's follower-side throttle: a throttled replica out of the ISR waits
            // while the rate is spent.
            let throttled = f.partition.is_throttled(THROTTLE_FOLLOWER) && !f.partition.in_isr(me);
            if throttled && throttle.exceeded() {
                let until = now + throttle.wait_hint().max(THROTTLE_RECHECK);
                next_delay = Some(next_delay.map_or(until, |d| d.min(until)));
                continue;
            }
            let Some((fetch_offset, last_fetched_epoch, log_start_offset)) =
                f.partition.fetch_position(f.epoch)
            else {
                continue;
            };
            epochs.insert(tp.clone(), (f.partition.clone(), f.epoch));
            partitions.push(FetchPartition {
                tp: tp.clone(),
                topic_id: f.partition.assignment().topic_id,
                fetch_offset,
                last_fetched_epoch,
                current_leader_epoch: f.epoch,
                log_start_offset,
                max_bytes: config.fetch_max_bytes,
            });
        }
        if partitions.is_empty() {
            match next_delay {
                Some(until) => {
                    tokio::select! {
                        _ = thread.wake.notified() => {}
                        _ = tokio::time::sleep_until(until) => {}
                    }
                }
                None => thread.wake.notified().await,
            }
            continue;
        }
        let request = ReplicaFetch {
            replica_id: me,
            broker_epoch: broker_epoch.load(Ordering::Acquire),
            max_wait_ms: config.fetch_wait_max_ms,
            min_bytes: config.fetch_min_bytes,
            max_bytes: config.fetch_response_max_bytes,
            partitions,
        };
        tracing::trace!(leader, partitions = ?request.partitions.iter().map(|p| (p.tp.to_string(), p.fetch_offset, p.last_fetched_epoch, p.current_leader_epoch)).collect::<Vec<_>>(), "replica fetch");
        let answers = match links.fetch(leader, request).await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                tokio::select! {
                    _ = thread.wake.notified() => {}
                    _ = tokio::time::sleep(config.fetch_backoff) => {}
                }
                continue;
            }
        };
        for answer in answers {
            let Some((partition, epoch)) = epochs.remove(&answer.tp) else {
                continue;
            };
            let tp = answer.tp.clone();
            if partition.is_throttled(THROTTLE_FOLLOWER) && !partition.in_isr(me) {
                throttle.record(answer.records.len());
            }
            if let Err(e) = handle(&partition, epoch, answer) {
                tracing::debug!(partition = %tp, leader, error = %e, "replica fetch of a partition failed; backing off");
                if let Some(f) = thread.partitions.lock().get_mut(&tp) {
                    if f.epoch == epoch {
                        f.delayed_until = Some(Instant::now() + config.fetch_backoff);
                    }
                }
            }
        }
    }
}

/// What a failed partition answer means to the fetcher: back off and try again later.
#[derive(Debug, thiserror::Error)]
enum FetchFailure {
    #[error("the leader refused: {0}")]
    Leader(LinkError),
    #[error(transparent)]
    Local(#[from] ReplicationError),
}

fn handle(partition: &Partition, epoch: i32, answer: FetchedPartition) -> Result<(), FetchFailure> {
    tracing::trace!(
        partition = %answer.tp,
        epoch,
        error = ?answer.error,
        hwm = answer.high_watermark,
        diverging = ?answer.diverging_epoch,
        bytes = answer.records.len(),
        "replica fetch answer"
    );
    match answer.error {
        None => {
            if let Some(diverging) = answer.diverging_epoch {
                blocking(|| partition.truncate_diverging(epoch, diverging))?;
            } else {
                blocking(|| {
                    partition.append_from_leader(
                        epoch,
                        &answer.records,
                        answer.high_watermark,
                        answer.log_start_offset,
                        now_ms(),
                    )
                })?;
            }
            Ok(())
        }
        Some(LinkError::OffsetOutOfRange) => {
            blocking(|| {
                partition.reset_out_of_range(epoch, answer.log_start_offset, answer.high_watermark)
            })?;
            Ok(())
        }
        Some(e) => Err(FetchFailure::Leader(e)),
    }
}
