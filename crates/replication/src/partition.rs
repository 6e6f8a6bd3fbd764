//! One partition replica on this broker: its log, its role in the current leader epoch and
//! the high watermark.
//!
//! Two locks, always taken in this order: `leadership` (the assignment and role; read-held
//! across an append so a transition never interleaves with one) and `tracking` (the
//! leader's view of its followers and the ISR change in flight). The high watermark is a
//! watch: acks=all produces and consumer long-polls wait on it, and every transition sends
//! on it too so a waiter re-checks the leadership it waits under.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use strom_storage::{AbortedTxn, AppendInfo, AppendOrigin, Log, ReadInfo};
use strom_types::TopicPartition;
use tokio::sync::watch;

use crate::link::{EpochEnd, IsrProposal};
use crate::ReplicationError;

/// What the metadata image says of a partition (Kafka's PartitionRecord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The topic's id.
    pub topic_id: uuid::Uuid,
    /// Replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// The committed ISR.
    pub isr: Vec<i32>,
    /// The leader, -1 for none.
    pub leader: i32,
    /// Bumped on every leader change.
    pub leader_epoch: i32,
    /// Bumped on every change.
    pub partition_epoch: i32,
}

/// The replica's part in the current leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It takes produces and serves fetches.
    Leader,
    /// It copies its leader.
    Follower,
    /// No leader, or not yet told.
    Offline,
}

/// What [`Partition::apply`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Became leader (a new leader epoch).
    BecameLeader,
    /// Follows `leader` from now on (a new leader epoch).
    BecameFollower {
        /// Who.
        leader: i32,
    },
    /// Has no leader to follow.
    WentOffline,
    /// Same role and epoch; ISR or replicas may have changed.
    Unchanged,
}

#[derive(Debug, Clone, Copy)]
struct FollowerState {
    /// Its log end offset (the offset it last fetched from); -1 until heard in this epoch.
    leo: i64,
    /// The broker epoch its fetches carried (-1: not told, before Fetch v15): an ISR
    /// expansion names it, so the controller refuses one earned by an older incarnation
    /// (KIP-903).
    broker_epoch: i64,
    /// When it was last caught up with this leader's log end.
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// This leader's log end at its last fetch.
    last_fetch_leader_leo: i64,
}

impl FollowerState {
    fn unknown(caught_up_ms: i64) -> Self {
        FollowerState {
            leo: -1,
            broker_epoch: -1,
            last_caught_up_ms: caught_up_ms,
            last_fetch_ms: 0,
            last_fetch_leader_leo: -1,
        }
    }
}

struct Leadership {
    assignment: Assignment,
    role: Role,
    /// The log end when this leader epoch began: a follower joins the ISR only past it.
    epoch_start_offset: i64,
    min_insync_replicas: i32,
}

struct PendingIsr {
    isr: Vec<i32>,
    /// The partition epoch the proposal was made at.
    based_on: i32,
}

struct Tracking {
    followers: BTreeMap<i32, FollowerState>,
    pending: Option<PendingIsr>,
}

/// What a leader tells clients its log's visible end is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOffsets {
    /// Consumers reading uncommitted see up to here.
    pub high_watermark: i64,
    /// Consumers reading committed see up to here.
    pub last_stable_offset: i64,
}

/// A leader append and the epoch it was made in (an acks=all wait holds to that epoch).
#[derive(Debug, Clone, Copy)]
pub struct LeaderAppend {
    /// What the log did.
    pub info: AppendInfo,
    /// The leader epoch.
    pub leader_epoch: i32,
}

/// One partition of a follower's fetch, as its leader receives it.
#[derive(Debug, Clone, Copy)]
pub struct FollowerFetch {
    /// The follower's broker id.
    pub replica: i32,
    /// Its broker epoch (Fetch v15+ `ReplicaState`), -1 when not given.
    pub replica_epoch: i64,
    /// Where it fetches from: its log end offset.
    pub fetch_offset: i64,
    /// The epoch of its last batch (-1: none), for the divergence check.
    pub last_fetched_epoch: i32,
    /// The leader epoch it believes current (-1: not given).
    pub current_leader_epoch: i32,
    /// The most bytes to return.
    pub max_bytes: u64,
    /// Return the first batch even if larger than `max_bytes`.
    pub min_one_batch: bool,
}

/// A leader's answer to a replica fetch.
#[derive(Debug)]
pub struct ReplicaRead {
    /// The batches from the fetch offset, unless the follower diverges.
    pub read: Option<ReadInfo>,
    /// Where the follower's log diverges: it truncates, then fetches again.
    pub diverging: Option<EpochEnd>,
    /// The leader's high watermark (after this fetch's update).
    pub high_watermark: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// An ISR expansion this fetch made due, to send to the controller.
    pub proposal: Option<IsrProposal>,
}

/// One partition of a consumer's fetch.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerFetch {
    /// Where it reads from.
    pub fetch_offset: i64,
    /// The leader epoch it believes current (-1: not given).
    pub current_leader_epoch: i32,
    /// The most bytes to return.
    pub max_bytes: u64,
    /// Return the first batch even if larger than `max_bytes`.
    pub min_one_batch: bool,
    /// It may read from a follower (KIP-392, Fetch v11+).
    pub allow_follower: bool,
    /// isolation.level=read_committed: read to the last stable offset, and learn which
    /// transactions in range were aborted.
    pub read_committed: bool,
}

/// A consumer's read: batches below the high watermark (the last stable offset for
/// read_committed).
#[derive(Debug)]
pub struct ConsumerRead {
    /// The batches (an empty region when none are visible).
    pub read: ReadInfo,
    /// The high watermark.
    pub high_watermark: i64,
    /// The last stable offset: below it no transaction is open.
    pub last_stable_offset: i64,
    /// For read_committed, the aborted transactions the returned range overlaps.
    pub aborted: Vec<AbortedTxn>,
}

/// One partition replica. See the module docs for its locks.
pub struct Partition {
    tp: TopicPartition,
    me: i32,
    log: Arc<Log>,
    leadership: RwLock<Leadership>,
    tracking: Mutex<Tracking>,
    hwm: watch::Sender<i64>,
    /// Which replication throttles apply to this replica ([`THROTTLE_LEADER`],
    /// [`THROTTLE_FOLLOWER`]), from its topic's `*.replication.throttled.replicas`.
    throttled: AtomicU8,
}

/// [`Partition::set_throttled`]: serving followers out of the ISR is throttled.
pub const THROTTLE_LEADER: u8 = 1;
/// [`Partition::set_throttled`]: fetching while out of the ISR is throttled.
pub const THROTTLE_FOLLOWER: u8 = 2;

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("tp", &self.tp)
            .field("role", &self.role())
            .field("hwm", &self.high_watermark())
            .finish()
    }
}

impl Partition {
    /// A replica of `tp` on broker `me` over `log`, offline until [`Partition::apply`];
    /// `hwm` is the checkpointed high watermark (bounded by the log end).
    pub fn new(tp: TopicPartition, me: i32, log: Arc<Log>, hwm: i64) -> Self {
        let hwm = hwm.clamp(log.log_start_offset(), log.log_end_offset());
        Partition {
            tp,
            me,
            leadership: RwLock::new(Leadership {
                assignment: Assignment {
                    topic_id: uuid::Uuid::nil(),
                    replicas: Vec::new(),
                    isr: Vec::new(),
                    leader: -1,
                    leader_epoch: -1,
                    partition_epoch: -1,
                },
                role: Role::Offline,
                epoch_start_offset: 0,
                min_insync_replicas: 1,
            }),
            tracking: Mutex::new(Tracking {
                followers: BTreeMap::new(),
                pending: None,
            }),
            log,
            hwm: watch::channel(hwm).0,
            throttled: AtomicU8::new(0),
        }
    }

    /// Sets which replication throttles apply (a mask of [`THROTTLE_LEADER`] and
    /// [`THROTTLE_FOLLOWER`]).
    pub fn set_throttled(&self, mask: u8) {
        self.throttled.store(mask, Ordering::Release);
    }

    /// Whether throttle `which` applies to this replica.
    pub fn is_throttled(&self, which: u8) -> bool {
        self.throttled.load(Ordering::Acquire) & which != 0
    }

    /// Whether `replica` is in the committed ISR.
    pub fn in_isr(&self, replica: i32) -> bool {
        self.leadership.read().assignment.isr.contains(&replica)
    }

    /// The partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// Its log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Its role now.
    pub fn role(&self) -> Role {
        self.leadership.read().role
    }

    /// The assignment it acts on.
    pub fn assignment(&self) -> Assignment {
        self.leadership.read().assignment.clone()
    }

    /// The topic's `min.insync.replicas`, as this replica last applied it.
    pub fn min_insync_replicas(&self) -> i32 {
        self.leadership.read().min_insync_replicas
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.leadership.read().assignment.leader_epoch
    }

    /// The high watermark: consumers never read at or past it.
    pub fn high_watermark(&self) -> i64 {
        *self.hwm.borrow()
    }

    /// A watch of the high watermark; it also fires on every transition.
    pub fn subscribe_hwm(&self) -> watch::Receiver<i64> {
        self.hwm.subscribe()
    }

    /// Brings the replica in line with `a`, the image's assignment, and the topic's
    /// `min.insync.replicas`. A new leader epoch with this broker as leader starts the
    /// leader's follower tracking afresh; the same epoch takes the committed ISR.
    pub(crate) fn apply(&self, a: Assignment, min_isr: i32, now_ms: i64) -> Transition {
        let mut l = self.leadership.write();
        let mut t = self.tracking.lock();
        l.min_insync_replicas = min_isr;
        let new_epoch =
            a.leader_epoch != l.assignment.leader_epoch || a.leader != l.assignment.leader;
        let transition = if a.leader == self.me {
            if l.role != Role::Leader || new_epoch {
                l.role = Role::Leader;
                l.epoch_start_offset = self.log.log_end_offset();
                // Members of the committed ISR get a full lag window to be heard from.
                t.followers = a
                    .replicas
                    .iter()
                    .filter(|r| **r != self.me)
                    .map(|r| {
                        let caught_up = if a.isr.contains(r) { now_ms } else { 0 };
                        (*r, FollowerState::unknown(caught_up))
                    })
                    .collect();
                t.pending = None;
                Transition::BecameLeader
            } else {
                // A reassignment adds or drops replicas within the epoch.
                t.followers
                    .retain(|r, _| a.replicas.contains(r) && *r != self.me);
                for r in &a.replicas {
                    if *r != self.me {
                        t.followers
                            .entry(*r)
                            .or_insert_with(|| FollowerState::unknown(0));
                    }
                }
                if t.pending
                    .as_ref()
                    .is_some_and(|p| a.partition_epoch > p.based_on)
                {
                    t.pending = None;
                }
                Transition::Unchanged
            }
        } else if a.leader >= 0 {
            let t2 = if l.role != Role::Follower || new_epoch {
                Transition::BecameFollower { leader: a.leader }
            } else {
                Transition::Unchanged
            };
            l.role = Role::Follower;
            t.followers.clear();
            t.pending = None;
            t2
        } else {
            let t2 = if l.role != Role::Offline {
                Transition::WentOffline
            } else {
                Transition::Unchanged
            };
            l.role = Role::Offline;
            t.followers.clear();
            t.pending = None;
            t2
        };
        l.assignment = a;
        self.maybe_advance_hwm(&l, &t);
        // Waiters re-check the leadership they wait under.
        self.hwm.send_modify(|_| {});
        transition
    }

    fn check_leader(&self, l: &Leadership) -> Result<(), ReplicationError> {
        if l.role == Role::Leader {
            Ok(())
        } else {
            Err(ReplicationError::NotLeader {
                tp: self.tp.clone(),
                me: self.me,
                leader: l.assignment.leader,
            })
        }
    }

    /// A request's `current_leader_epoch` (-1: not given) against the one here.
    fn check_epoch(&self, l: &Leadership, requested: i32) -> Result<(), ReplicationError> {
        let current = l.assignment.leader_epoch;
        if requested < 0 || requested == current {
            Ok(())
        } else if requested < current {
            Err(ReplicationError::FencedLeaderEpoch {
                tp: self.tp.clone(),
                requested,
                current,
            })
        } else {
            Err(ReplicationError::UnknownLeaderEpoch {
                tp: self.tp.clone(),
                requested,
                current,
            })
        }
    }

    /// The committed ISR plus any member an expansion in flight adds: what the high
    /// watermark must wait for (KIP-497's maximal ISR).
    fn maximal_isr(l: &Leadership, t: &Tracking) -> Vec<i32> {
        let mut isr = l.assignment.isr.clone();
        if let Some(p) = &t.pending {
            for r in &p.isr {
                if !isr.contains(r) {
                    isr.push(*r);
                }
            }
        }
        isr
    }

    /// Moves the leader's high watermark to the smallest log end offset of the maximal
    /// ISR; a member not heard from in this epoch holds it where it is.
    fn maybe_advance_hwm(&self, l: &Leadership, t: &Tracking) -> bool {
        if l.role != Role::Leader {
            return false;
        }
        let mut new = self.log.log_end_offset();
        for r in Self::maximal_isr(l, t) {
            if r == self.me {
                continue;
            }
            match t.followers.get(&r) {
                Some(f) if f.leo >= 0 => new = new.min(f.leo),
                _ => return false,
            }
        }
        self.hwm.send_if_modified(|h| {
            if new > *h {
                *h = new;
                true
            } else {
                false
            }
        })
    }

    /// Recomputes the leader's high watermark, for appends made to the log directly (the
    /// group coordinator's writes to its partition).
    pub fn refresh_high_watermark(&self) {
        let l = self.leadership.read();
        let t = self.tracking.lock();
        self.maybe_advance_hwm(&l, &t);
    }

    /// Appends a producer's (or a coordinator's) batches as leader. acks=all is refused
    /// with NOT_ENOUGH_REPLICAS before the append when the ISR is below
    /// `min.insync.replicas`.
    pub fn append_as_leader(
        &self,
        records: &mut [u8],
        acks: i16,
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<LeaderAppend, ReplicationError> {
        let l = self.leadership.read();
        self.check_leader(&l)?;
        if acks == -1 && (l.assignment.isr.len() as i32) < l.min_insync_replicas {
            return Err(ReplicationError::NotEnoughReplicas {
                tp: self.tp.clone(),
                in_sync: l.assignment.isr.len(),
                min: l.min_insync_replicas,
            });
        }
        let leader_epoch = l.assignment.leader_epoch;
        let info = self
            .log
            .append_as_leader(records, leader_epoch, origin, now_ms)?;
        let t = self.tracking.lock();
        self.maybe_advance_hwm(&l, &t);
        Ok(LeaderAppend { info, leader_epoch })
    }

    /// Waits until the high watermark reaches `required` (the offset after a batch), in the
    /// leader epoch it was appended in: Kafka's delayed produce, woken by follower fetches
    /// moving the high watermark, never by polling.
    pub async fn wait_replicated(
        &self,
        required: i64,
        leader_epoch: i32,
        timeout: Duration,
    ) -> Result<(), ReplicationError> {
        let mut rx = self.hwm.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let hwm = *rx.borrow_and_update();
                let l = self.leadership.read();
                if l.role != Role::Leader || l.assignment.leader_epoch != leader_epoch {
                    return Err(ReplicationError::NotLeader {
                        tp: self.tp.clone(),
                        me: self.me,
                        leader: l.assignment.leader,
                    });
                }
                if hwm >= required {
                    let in_sync = l.assignment.isr.len();
                    if (in_sync as i32) < l.min_insync_replicas {
                        return Err(ReplicationError::NotEnoughReplicasAfterAppend {
                            tp: self.tp.clone(),
                            in_sync,
                            min: l.min_insync_replicas,
                        });
                    }
                    return Ok(());
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Err(_) => return Err(ReplicationError::Timeout(self.tp.clone())),
                Ok(Err(_)) => return Err(ReplicationError::Timeout(self.tp.clone())),
                Ok(Ok(())) => {}
            }
        }
    }

    /// A follower's fetch, on the leader: the divergence check against the leader's epochs,
    /// the read (to the log end: followers read past the high watermark), then the
    /// follower's new state, the high watermark it allows, and an ISR expansion if due.
    pub fn read_for_replica(
        &self,
        fetch: FollowerFetch,
        now_ms: i64,
    ) -> Result<ReplicaRead, ReplicationError> {
        let FollowerFetch {
            replica,
            replica_epoch,
            fetch_offset,
            last_fetched_epoch,
            current_leader_epoch,
            max_bytes,
            min_one_batch,
        } = fetch;
        let l = self.leadership.read();
        self.check_leader(&l)?;
        self.check_epoch(&l, current_leader_epoch)?;
        if !l.assignment.replicas.contains(&replica) || replica == self.me {
            return Err(ReplicationError::NotReplica {
                tp: self.tp.clone(),
                replica,
            });
        }
        if last_fetched_epoch >= 0 {
            let end = self.epoch_end(last_fetched_epoch);
            if end.epoch != last_fetched_epoch || end.end_offset < fetch_offset {
                return Ok(ReplicaRead {
                    read: None,
                    diverging: Some(end),
                    high_watermark: self.high_watermark(),
                    log_start_offset: self.log.log_start_offset(),
                    proposal: None,
                });
            }
        }
        let leo = self.log.log_end_offset();
        let read = self
            .log
            .read(fetch_offset, max_bytes, None, min_one_batch)?;
        let mut t = self.tracking.lock();
        let proposal = {
            let f = t
                .followers
                .entry(replica)
                .or_insert_with(|| FollowerState::unknown(0));
            if fetch_offset >= leo {
                f.last_caught_up_ms = now_ms;
            } else if fetch_offset >= f.last_fetch_leader_leo {
                f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
            }
            f.leo = fetch_offset;
            f.broker_epoch = replica_epoch;
            f.last_fetch_ms = now_ms;
            f.last_fetch_leader_leo = leo;
            self.maybe_expand(&l, &mut t, replica)
        };
        self.maybe_advance_hwm(&l, &t);
        Ok(ReplicaRead {
            read: Some(read),
            diverging: None,
            high_watermark: self.high_watermark(),
            log_start_offset: self.log.log_start_offset(),
            proposal,
        })
    }

    /// An out-of-sync follower that reached the high watermark and this epoch's start
    /// joins the ISR, once the controller commits it.
    fn maybe_expand(&self, l: &Leadership, t: &mut Tracking, replica: i32) -> Option<IsrProposal> {
        if t.pending.is_some() || l.assignment.isr.contains(&replica) {
            return None;
        }
        let f = t.followers.get(&replica)?;
        if f.leo < self.high_watermark() || f.leo < l.epoch_start_offset {
            return None;
        }
        let mut isr = l.assignment.isr.clone();
        isr.push(replica);
        Some(self.propose(l, t, isr))
    }

    fn propose(&self, l: &Leadership, t: &mut Tracking, isr: Vec<i32>) -> IsrProposal {
        t.pending = Some(PendingIsr {
            isr: isr.clone(),
            based_on: l.assignment.partition_epoch,
        });
        let member_epochs = isr
            .iter()
            .filter_map(|r| t.followers.get(r).map(|f| (*r, f.broker_epoch)))
            .filter(|(_, e)| *e >= 0)
            .collect();
        IsrProposal {
            tp: self.tp.clone(),
            topic_id: l.assignment.topic_id,
            leader_epoch: l.assignment.leader_epoch,
            partition_epoch: l.assignment.partition_epoch,
            new_isr: isr,
            member_epochs,
        }
    }

    /// ISR members not caught up within `lag` leave the ISR, once the controller commits
    /// it (`replica.lag.time.max.ms`).
    pub(crate) fn maybe_shrink_isr(&self, now_ms: i64, lag: Duration) -> Option<IsrProposal> {
        let l = self.leadership.read();
        if l.role != Role::Leader {
            return None;
        }
        let mut t = self.tracking.lock();
        if t.pending.is_some() {
            return None;
        }
        let lag_ms = lag.as_millis() as i64;
        let out: Vec<i32> = l
            .assignment
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.me)
            .filter(|r| {
                t.followers
                    .get(r)
                    .is_none_or(|f| now_ms - f.last_caught_up_ms > lag_ms)
            })
            .collect();
        if out.is_empty() {
            return None;
        }
        tracing::info!(partition = %self.tp, lagging = ?out, "shrinking the ISR");
        let isr = l
            .assignment
            .isr
            .iter()
            .copied()
            .filter(|r| !out.contains(r))
            .collect();
        Some(self.propose(&l, &mut t, isr))
    }

    /// Forgets an ISR proposal made at `based_on` (it failed, or was answered): the next
    /// check may propose again.
    pub(crate) fn clear_pending(&self, based_on: i32) {
        let mut t = self.tracking.lock();
        if t.pending.as_ref().is_some_and(|p| p.based_on == based_on) {
            t.pending = None;
        }
    }

    /// A consumer's read, bounded by the high watermark: on the leader, or on a follower
    /// when the client may read from one (KIP-392).
    pub fn read_for_consumer(&self, f: ConsumerFetch) -> Result<ConsumerRead, ReplicationError> {
        let l = self.leadership.read();
        if !(l.role == Role::Leader || (f.allow_follower && l.role == Role::Follower)) {
            self.check_leader(&l)?;
        }
        self.check_epoch(&l, f.current_leader_epoch)?;
        let hwm = self.high_watermark();
        let lso = self.last_stable_offset();
        let bound = if f.read_committed { lso } else { hwm };
        let leo = self.log.log_end_offset();
        if f.fetch_offset > bound && (f.fetch_offset <= leo || l.role == Role::Follower) {
            // Written but not yet replicated (or not yet copied here, or not yet stable):
            // nothing to see yet.
            return Ok(ConsumerRead {
                read: ReadInfo {
                    region: None,
                    log_start_offset: self.log.log_start_offset(),
                    log_end_offset: leo,
                },
                high_watermark: hwm,
                last_stable_offset: lso,
                aborted: Vec::new(),
            });
        }
        let read = self
            .log
            .read(f.fetch_offset, f.max_bytes, Some(bound), f.min_one_batch)?;
        let aborted = if f.read_committed && read.region.is_some() {
            self.log.aborted_transactions(f.fetch_offset, bound)
        } else {
            Vec::new()
        };
        Ok(ConsumerRead {
            read,
            high_watermark: hwm,
            last_stable_offset: lso,
            aborted,
        })
    }

    /// The leader's bounds for a client's ListOffsets: the high watermark and last stable
    /// offset, after `current_leader_epoch` (-1: not given) is checked. While a new leader's
    /// high watermark is still below the log end it was elected at, the old leader may
    /// already have acknowledged more than this one can vouch for, so a lookup that needs the
    /// visible end (`end_needed`) gets OFFSET_NOT_AVAILABLE until the followers' next
    /// fetches move it up, as Kafka answers (clients retry).
    pub fn offsets_for_client(
        &self,
        current_leader_epoch: i32,
        end_needed: bool,
    ) -> Result<ClientOffsets, ReplicationError> {
        let l = self.leadership.read();
        self.check_leader(&l)?;
        self.check_epoch(&l, current_leader_epoch)?;
        let high_watermark = self.high_watermark();
        if end_needed && high_watermark < l.epoch_start_offset {
            return Err(ReplicationError::OffsetNotAvailable {
                tp: self.tp.clone(),
                high_watermark,
                epoch_start: l.epoch_start_offset,
            });
        }
        Ok(ClientOffsets {
            high_watermark,
            last_stable_offset: self.last_stable_offset(),
        })
    }

    /// The last stable offset: the high watermark, or the first offset of the oldest
    /// transaction still open here when that is lower.
    pub fn last_stable_offset(&self) -> i64 {
        let hwm = self.high_watermark();
        self.log
            .first_unstable_offset()
            .map_or(hwm, |first| first.min(hwm))
    }

    /// OffsetsForLeaderEpoch on the leader: where `epoch` ends in its log.
    pub fn end_offset_for_epoch(
        &self,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<EpochEnd, ReplicationError> {
        let l = self.leadership.read();
        self.check_leader(&l)?;
        self.check_epoch(&l, current_leader_epoch)?;
        Ok(if epoch < 0 {
            EpochEnd {
                epoch: -1,
                end_offset: -1,
            }
        } else {
            self.epoch_end(epoch)
        })
    }

    /// Where `epoch` ends in this log, as Kafka's leader-epoch cache answers: the largest
    /// epoch at or below it with the start of the next (the log end for the latest); for an
    /// epoch older than every epoch here, that epoch itself ending where this log's first
    /// epoch starts (the log end when no epoch is recorded), so a follower with records of
    /// it truncates them.
    fn epoch_end(&self, epoch: i32) -> EpochEnd {
        match self.log.end_offset_for_epoch(epoch) {
            Some((epoch, end_offset)) => EpochEnd { epoch, end_offset },
            None => EpochEnd {
                epoch,
                end_offset: self
                    .log
                    .leader_epochs()
                    .first()
                    .map_or(self.log.log_end_offset(), |e| e.1),
            },
        }
    }

    /// The leadership, read-held, if this replica follows in leader epoch `epoch`: answers
    /// to fetches made in another epoch are dropped.
    fn following_in(&self, epoch: i32) -> Option<parking_lot::RwLockReadGuard<'_, Leadership>> {
        let l = self.leadership.read();
        (l.role == Role::Follower && l.assignment.leader_epoch == epoch).then_some(l)
    }

    /// What a follower asks its leader for next, if it follows in `epoch`: its log end
    /// offset and the epoch of its last batch.
    pub(crate) fn fetch_position(&self, epoch: i32) -> Option<(i64, i32, i64)> {
        let _l = self.following_in(epoch)?;
        let last_epoch = self.log.leader_epochs().last().map(|e| e.0).unwrap_or(-1);
        Some((
            self.log.log_end_offset(),
            last_epoch,
            self.log.log_start_offset(),
        ))
    }

    /// A follower's append of its leader's batches (offsets and epochs as they are), and
    /// the high watermark and log start offset the leader reported. Nothing happens if the
    /// replica no longer follows in `epoch`.
    pub(crate) fn append_from_leader(
        &self,
        epoch: i32,
        records: &[u8],
        leader_hwm: i64,
        leader_log_start: i64,
        now_ms: i64,
    ) -> Result<(), ReplicationError> {
        let Some(_l) = self.following_in(epoch) else {
            return Ok(());
        };
        if !records.is_empty() {
            self.log.append_as_follower(records, now_ms)?;
        }
        let leo = self.log.log_end_offset();
        let new = leader_hwm.min(leo);
        self.hwm.send_if_modified(|h| {
            if new > *h {
                *h = new;
                true
            } else {
                false
            }
        });
        if leader_log_start > self.log.log_start_offset() {
            self.log
                .advance_log_start_offset(leader_log_start.min(self.high_watermark()))?;
        }
        Ok(())
    }

    /// A follower's log diverges from its leader's at `diverging` (Fetch v12's
    /// DivergingEpoch): it truncates to where the two agree, as Kafka's fetcher computes it
    /// from its own epochs, and fetches again from there.
    pub(crate) fn truncate_diverging(
        &self,
        epoch: i32,
        diverging: EpochEnd,
    ) -> Result<(), ReplicationError> {
        let Some(_l) = self.following_in(epoch) else {
            return Ok(());
        };
        let leo = self.log.log_end_offset();
        let target = if diverging.end_offset < 0 {
            self.high_watermark()
        } else {
            match self.log.end_offset_for_epoch(diverging.epoch) {
                Some((own, end)) if own == diverging.epoch => end.min(diverging.end_offset),
                Some((_, end)) => end,
                None => diverging.end_offset.min(leo),
            }
        };
        tracing::info!(partition = %self.tp, leo, target, leader_epoch = diverging.epoch, "truncating a divergent tail");
        self.truncate_to(target)
    }

    /// A follower whose fetch offset is outside its leader's log: below the leader's log
    /// start it restarts empty there; above, it drops what the leader does not have.
    pub(crate) fn reset_out_of_range(
        &self,
        epoch: i32,
        leader_log_start: i64,
        leader_hwm: i64,
    ) -> Result<(), ReplicationError> {
        let Some(_l) = self.following_in(epoch) else {
            return Ok(());
        };
        let leo = self.log.log_end_offset();
        if leo < leader_log_start {
            tracing::info!(partition = %self.tp, leo, leader_log_start, "follower behind the leader's log start: restarting there");
            self.log.truncate_fully_and_start_at(leader_log_start)?;
            self.hwm.send_replace(leader_log_start);
            Ok(())
        } else {
            self.truncate_to(leader_hwm.max(0))
        }
    }

    fn truncate_to(&self, offset: i64) -> Result<(), ReplicationError> {
        let new_end = self.log.truncate_to(offset)?;
        self.hwm.send_if_modified(|h| {
            if *h > new_end {
                *h = new_end;
                true
            } else {
                false
            }
        });
        Ok(())
    }
}
