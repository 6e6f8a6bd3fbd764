//! [`GroupCoordinator`]: every classic group whose `__consumer_offsets` partition this node
//! leads. Ownership follows that partition: [`GroupCoordinator::load_partition`] replays it
//! into groups and offsets, [`GroupCoordinator::unload_partition`] drops them, so the cluster
//! work can move coordinators with partition leadership.
//!
//! Each group has a lock and a timer task that sleeps until the group's next deadline
//! (session expiry, end of a join or sync phase) or until a request changes it; nothing
//! polls.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use strom_storage::{now_ms, AppendOrigin, Log};
use strom_types::compression::Compression;
use strom_types::control::ControlType;
use strom_types::record::BatchBuilder;
use tokio::sync::Notify;

use crate::codes;
use crate::consumer_group::{
    Assignment, ConsumerGroup, ConsumerMember, Heartbeat as ConsumerHeartbeat,
    HeartbeatResponse as ConsumerHeartbeatResponse, TopicsView,
};
use crate::group::{
    Group, GroupLimits, GroupState, JoinRequest, JoinResponse, Record, RecordSink, Reply,
    SyncResponse,
};
use crate::records::{GroupValue, OffsetValue, RecordKey};
use crate::replay::Item;

#[path = "txn_offsets.rs"]
mod txn_offsets;
pub use txn_offsets::TxnCommitter;

/// An offset a transaction committed, while its marker is not read yet: (group, partition,
/// value).
type PendingOffset = (String, (String, i32), OffsetValue);

/// A group's offsets held by open transactions, by producer id.
type TxnOffsets = HashMap<i64, BTreeMap<(String, i32), OffsetValue>>;

/// The internal topic holding groups and offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The coordinator's settings, from Kafka's broker properties.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// offsets.topic.num.partitions (50).
    pub offsets_topic_partitions: i32,
    /// offset.metadata.max.bytes (4096).
    pub offset_metadata_max_bytes: usize,
    /// Session and size limits and the initial rebalance delay.
    pub limits: GroupLimits,
    /// offsets.retention.minutes (7 days), in ms: how long an empty group's offsets stay.
    pub offsets_retention_ms: i64,
    /// offsets.retention.check.interval.ms (10 minutes).
    pub offsets_retention_check_interval_ms: u64,
    /// group.consumer.session.timeout.ms (45 s): KIP-848 members' session.
    pub consumer_session_timeout_ms: i32,
    /// group.consumer.heartbeat.interval.ms (5 s): how often KIP-848 members heartbeat.
    pub consumer_heartbeat_interval_ms: i32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            offsets_topic_partitions: 50,
            offset_metadata_max_bytes: 4096,
            limits: GroupLimits::default(),
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }
}

/// The partition of `__consumer_offsets` that owns `group`: Kafka's
/// `Utils.abs(groupId.hashCode()) % partitions`, with Java's String.hashCode over UTF-16.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A committed offset as OffsetCommit gives it.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Leader epoch or -1.
    pub leader_epoch: i32,
    /// Metadata.
    pub metadata: Option<String>,
}

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscription metadata for the chosen protocol.
    pub metadata: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group at a glance ([`GroupCoordinator::overview`]).
#[derive(Debug, Clone)]
pub struct GroupOverview {
    /// Its id.
    pub group_id: String,
    /// Its state's name (`Stable`, `Empty`, ...).
    pub state: &'static str,
    /// `classic` or `consumer` (KIP-848).
    pub kind: &'static str,
    /// Members now.
    pub members: usize,
    /// The generation (classic) or group epoch (consumer): it moves once per rebalance.
    pub epoch: i32,
    /// Committed offsets: (topic, partition, next offset to consume).
    pub offsets: Vec<(String, i32, i64)>,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// Error code (NONE, or codes::NOT_COORDINATOR).
    pub error: i16,
    /// State name; `Dead` for an unknown group.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// A KIP-848 group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    /// Empty, Assigning, Reconciling or Stable.
    pub state: &'static str,
    /// Group epoch.
    pub group_epoch: i32,
    /// Target assignment epoch.
    pub assignment_epoch: i32,
    /// Assignor in use.
    pub assignor: String,
    /// Members with their target assignments.
    pub members: Vec<(ConsumerMember, Assignment)>,
}

/// Appends a group's records to its partition.
struct PartitionSink {
    log: Arc<Log>,
    leader_epoch: i32,
}

impl PartitionSink {
    /// Appends `records` as one batch; with a producer `(id, epoch)`, as a transactional
    /// batch of that producer (TxnOffsetCommit), ended later by its marker.
    fn append_batch(&self, records: &[Record], producer: Option<(i64, i16)>) -> Result<(), String> {
        let now = now_ms();
        let mut b = BatchBuilder::new(Compression::None);
        if let Some((id, epoch)) = producer {
            b = b.producer(id, epoch, -1).transactional(true);
        }
        for (k, v) in records {
            b.append(now, Some(k), v.as_deref(), &[]);
        }
        let mut bytes = b.build(0).map_err(|e| e.to_string())?;
        self.log
            .append_as_leader(
                &mut bytes,
                self.leader_epoch,
                AppendOrigin::Coordinator,
                now,
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl RecordSink for PartitionSink {
    fn append(&self, records: &[Record]) -> Result<(), String> {
        self.append_batch(records, None)
    }
}

/// One group with its lock, its partition and its timer's wake-up.
struct GroupHandle {
    group: Mutex<Group>,
    sink: Arc<PartitionSink>,
    partition: i32,
    wake: Notify,
}

/// The group coordinator of one node.
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    partitions: RwLock<HashMap<i32, Arc<PartitionSink>>>,
    groups: Mutex<HashMap<String, Arc<GroupHandle>>>,
    /// Partitions being loaded, each with the token of its load: their groups are answered
    /// COORDINATOR_LOAD_IN_PROGRESS, and a load whose token is gone (unloaded meanwhile) is
    /// dropped when it ends.
    loads: crate::loads::Loads,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("partitions", &self.partitions.read().len())
            .field("groups", &self.groups.lock().len())
            .finish()
    }
}

impl GroupCoordinator {
    /// A coordinator owning no partitions yet.
    pub fn new(config: CoordinatorConfig) -> Arc<Self> {
        Arc::new(GroupCoordinator {
            config,
            partitions: RwLock::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            loads: Default::default(),
        })
    }

    /// Its settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The partition of `__consumer_offsets` for `group`.
    pub fn partition_for(&self, group: &str) -> i32 {
        partition_for(group, self.config.offsets_topic_partitions)
    }

    /// True when partition `partition` is loaded here.
    pub fn is_partition_loaded(&self, partition: i32) -> bool {
        self.partitions.read().contains_key(&partition)
    }

    /// True once this node leads the group's partition.
    pub fn is_coordinator_for(&self, group: &str) -> bool {
        self.partitions
            .read()
            .contains_key(&self.partition_for(group))
    }

    /// True while partition `partition` is being loaded.
    pub fn is_partition_loading(&self, partition: i32) -> bool {
        self.loads.is_loading(partition)
    }

    /// Takes over partition `partition`: replays its records into groups and offsets.
    pub fn load_partition(
        self: &Arc<Self>,
        partition: i32,
        log: Arc<Log>,
        leader_epoch: i32,
    ) -> Result<(), String> {
        let token = self.begin_loading(partition);
        self.finish_loading(partition, log, leader_epoch, token)
            .map(|_| ())
    }

    /// Marks partition `partition` as loading (its groups get COORDINATOR_LOAD_IN_PROGRESS)
    /// and returns the token [`GroupCoordinator::finish_loading`] takes.
    pub fn begin_loading(&self, partition: i32) -> u64 {
        self.loads.begin(partition)
    }

    /// Replays partition `partition` into groups and offsets and starts serving them,
    /// unless it was unloaded since [`GroupCoordinator::begin_loading`] gave `token`
    /// (then the result is dropped and this answers false).
    pub fn finish_loading(
        self: &Arc<Self>,
        partition: i32,
        log: Arc<Log>,
        leader_epoch: i32,
        token: u64,
    ) -> Result<bool, String> {
        let replayed = self.replay(log, leader_epoch);
        let Some(_installing) = self.loads.finish(partition, token) else {
            return Ok(false);
        };
        let (sink, loaded, records) = replayed?;
        let count = loaded.len();
        {
            let mut groups = self.groups.lock();
            for group in loaded {
                let name = group.id.clone();
                let handle = Arc::new(GroupHandle {
                    group: Mutex::new(group),
                    sink: sink.clone(),
                    partition,
                    wake: Notify::new(),
                });
                self.spawn_timer(&handle);
                groups.insert(name, handle);
            }
        }
        self.partitions.write().insert(partition, sink);
        tracing::info!(
            partition,
            groups = count,
            records,
            "loaded group coordinator partition"
        );
        Ok(true)
    }

    /// The groups a `__consumer_offsets` partition's log holds, with the sink that writes
    /// to it in `leader_epoch` and the count of records read.
    fn replay(
        &self,
        log: Arc<Log>,
        leader_epoch: i32,
    ) -> Result<(Arc<PartitionSink>, Vec<Group>, usize), String> {
        let sink = Arc::new(PartitionSink {
            log: log.clone(),
            leader_epoch,
        });
        let now = now_ms();
        let mut metadata: HashMap<String, Option<GroupValue>> = HashMap::new();
        let mut offsets: HashMap<String, HashMap<(String, i32), Option<OffsetValue>>> =
            HashMap::new();
        let mut modern: HashMap<String, HashMap<RecordKey, Vec<u8>>> = HashMap::new();
        // Offsets of transactions not yet ended (TxnOffsetCommit), by producer id.
        let mut pending: HashMap<i64, Vec<PendingOffset>> = HashMap::new();
        let records = crate::replay::for_each(&log, |h, item| {
            let (key, value) = match item {
                Item::Marker(m) => {
                    let Some(done) = pending.remove(&h.producer_id) else {
                        return;
                    };
                    if m.control == ControlType::Commit {
                        for (group, tp, v) in done {
                            offsets.entry(group).or_default().insert(tp, Some(v));
                        }
                    }
                    return;
                }
                Item::Record(Some(key), value) => (key, value),
                Item::Record(None, _) => return,
            };
            match RecordKey::decode(key) {
                Ok(Some(RecordKey::Offset {
                    group,
                    topic,
                    partition,
                })) => {
                    let value = match value {
                        Some(v) => match OffsetValue::decode(v) {
                            Ok(v) => Some(v),
                            Err(e) => {
                                tracing::warn!(group, error = %e, "skipping an offset record that does not decode");
                                return;
                            }
                        },
                        None => None,
                    };
                    match value {
                        Some(v) if h.is_transactional() => pending
                            .entry(h.producer_id)
                            .or_default()
                            .push((group, (topic, partition), v)),
                        value => {
                            offsets
                                .entry(group)
                                .or_default()
                                .insert((topic, partition), value);
                        }
                    }
                }
                Ok(Some(RecordKey::Group { group })) => {
                    let value = match value {
                        Some(v) => match GroupValue::decode(v) {
                            Ok(v) => Some(v),
                            Err(e) => {
                                tracing::warn!(group, error = %e, "skipping a group record that does not decode");
                                return;
                            }
                        },
                        None => None,
                    };
                    metadata.insert(group, value);
                }
                Ok(Some(k)) => {
                    let entry = modern.entry(k.group().to_string()).or_default();
                    match value {
                        Some(v) => entry.insert(k, v.to_vec()),
                        None => entry.remove(&k),
                    };
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping a record key that does not decode"),
            }
        })?;
        let mut open: HashMap<String, TxnOffsets> = HashMap::new();
        for (pid, entries) in pending {
            for (group, tp, v) in entries {
                open.entry(group)
                    .or_default()
                    .entry(pid)
                    .or_default()
                    .insert(tp, v);
            }
        }
        let mut names: Vec<String> = metadata.keys().cloned().collect();
        names.extend(offsets.keys().cloned());
        names.extend(open.keys().cloned());
        names.extend(modern.keys().cloned());
        names.sort();
        names.dedup();
        let mut loaded = Vec::new();
        for name in names {
            let mut group = Group::new(&name, self.config.limits.initial_rebalance_delay_ms, now);
            if let Some(Some(v)) = metadata.get(&name) {
                group.load(v, now);
            }
            for ((t, p), v) in offsets.remove(&name).unwrap_or_default() {
                if let Some(v) = v {
                    group.offsets.insert((t, p), v);
                }
            }
            if let Some(recs) = modern.remove(&name) {
                group.modern = ConsumerGroup::restore(
                    recs,
                    i64::from(self.config.consumer_session_timeout_ms),
                    now,
                );
            }
            group.pending_txn = open.remove(&name).unwrap_or_default();
            let deleted = matches!(metadata.get(&name), Some(None))
                && group.offsets.is_empty()
                && group.pending_txn.is_empty();
            if !group.has_modern_members()
                && (deleted
                    || (group.members.is_empty()
                        && group.offsets.is_empty()
                        && group.pending_txn.is_empty()))
            {
                continue;
            }
            loaded.push(group);
        }
        Ok((sink, loaded, records))
    }

    /// Gives up partition `partition`: its groups are dropped (members will find the new
    /// coordinator).
    pub fn unload_partition(&self, partition: i32) {
        let _unloading = self.loads.cancel(partition);
        self.partitions.write().remove(&partition);
        let now = now_ms();
        self.groups.lock().retain(|_, h| {
            if h.partition != partition {
                return true;
            }
            h.group.lock().kill(now);
            h.wake.notify_one();
            false
        });
    }

    fn sink_for(&self, group: &str) -> Result<Arc<PartitionSink>, i16> {
        self.partitions
            .read()
            .get(&self.partition_for(group))
            .cloned()
            .ok_or_else(|| {
                if self.is_partition_loading(self.partition_for(group)) {
                    codes::COORDINATOR_LOAD_IN_PROGRESS
                } else {
                    codes::NOT_COORDINATOR
                }
            })
    }

    fn existing(&self, group: &str) -> Option<Arc<GroupHandle>> {
        self.groups.lock().get(group).cloned()
    }

    fn get_or_create(&self, group: &str) -> Result<Arc<GroupHandle>, i16> {
        let sink = self.sink_for(group)?;
        let mut groups = self.groups.lock();
        if let Some(h) = groups.get(group) {
            return Ok(h.clone());
        }
        let handle = Arc::new(GroupHandle {
            group: Mutex::new(Group::new(
                group,
                self.config.limits.initial_rebalance_delay_ms,
                now_ms(),
            )),
            sink,
            partition: self.partition_for(group),
            wake: Notify::new(),
        });
        self.spawn_timer(&handle);
        groups.insert(group.to_string(), handle.clone());
        Ok(handle)
    }

    /// Runs the group's timer: sleeps until its next deadline or a change, then expires
    /// what is due. Ends when the group dies.
    fn spawn_timer(&self, handle: &Arc<GroupHandle>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(handle);
        runtime.spawn(async move {
            loop {
                let Some(h) = weak.upgrade() else { return };
                let notified = h.wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let next = {
                    let g = h.group.lock();
                    if g.state == GroupState::Dead {
                        return;
                    }
                    g.next_deadline()
                };
                let wait = next.map(|at| (at - now_ms()).max(0));
                match wait {
                    Some(0) => {}
                    Some(ms) => {
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_millis(ms as u64)) => {}
                            _ = &mut notified => {}
                        }
                    }
                    None => notified.await,
                }
                let Some(h) = weak.upgrade() else { return };
                let mut g = h.group.lock();
                g.on_timer(now_ms());
                store_if_dirty(&mut g, &h.sink);
            }
        });
    }

    /// JoinGroup: answers when the join phase completes (or at once for errors and
    /// KIP-394's MEMBER_ID_REQUIRED).
    pub async fn join_group(&self, group_id: &str, req: JoinRequest) -> JoinResponse {
        if group_id.is_empty() {
            return error_join(codes::INVALID_GROUP_ID, &req.member_id);
        }
        let handle = if req.member_id.is_empty() {
            self.get_or_create(group_id)
        } else {
            match (self.sink_for(group_id), self.existing(group_id)) {
                (Err(e), _) => Err(e),
                (Ok(_), Some(h)) => Ok(h),
                (Ok(_), None) => Err(codes::UNKNOWN_MEMBER_ID),
            }
        };
        let handle = match handle {
            Ok(h) => h,
            Err(e) => return error_join(e, &req.member_id),
        };
        let member_id = req.member_id.clone();
        let reply = {
            let mut g = handle.group.lock();
            let r = g.join(req, &self.config.limits, handle.sink.as_ref(), now_ms());
            store_if_dirty(&mut g, &handle.sink);
            r
        };
        handle.wake.notify_one();
        match reply {
            Reply::Now(r) => r,
            Reply::Later(rx) => rx
                .await
                .unwrap_or_else(|_| error_join(codes::UNKNOWN_MEMBER_ID, &member_id)),
        }
    }

    /// SyncGroup: the leader's assignment is stored, then every member gets its share.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync_group(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResponse {
        let handle = match self.handle_for_member(group_id) {
            Ok(h) => h,
            Err(error) => {
                return SyncResponse {
                    error,
                    ..Default::default()
                }
            }
        };
        let reply = {
            let mut g = handle.group.lock();
            let r = g.sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
                handle.sink.as_ref(),
                now_ms(),
            );
            store_if_dirty(&mut g, &handle.sink);
            r
        };
        handle.wake.notify_one();
        match reply {
            Reply::Now(r) => r,
            Reply::Later(rx) => rx.await.unwrap_or(SyncResponse {
                error: codes::REBALANCE_IN_PROGRESS,
                ..Default::default()
            }),
        }
    }

    fn handle_for_member(&self, group_id: &str) -> Result<Arc<GroupHandle>, i16> {
        self.sink_for(group_id)?;
        self.existing(group_id).ok_or(codes::UNKNOWN_MEMBER_ID)
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let handle = match self.handle_for_member(group_id) {
            Ok(h) => h,
            Err(e) => return e,
        };
        let code = handle
            .group
            .lock()
            .heartbeat(member_id, instance_id, generation, now_ms());
        if code != codes::NONE {
            tracing::debug!(
                group = group_id,
                member = member_id,
                code,
                "heartbeat refused"
            );
        }
        handle.wake.notify_one();
        code
    }

    /// LeaveGroup for members given as (member id, instance id): the top-level error and
    /// one code per member.
    pub fn leave_group(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> (i16, Vec<i16>) {
        let handle = match self.handle_for_member(group_id) {
            Ok(h) => h,
            Err(e) => return (e, vec![e; members.len()]),
        };
        let codes_out = {
            let mut g = handle.group.lock();
            let now = now_ms();
            let out: Vec<i16> = members
                .iter()
                .map(|(m, i)| g.leave(m, i.as_deref(), now))
                .collect();
            store_if_dirty(&mut g, &handle.sink);
            out
        };
        handle.wake.notify_one();
        (codes::NONE, codes_out)
    }

    /// OffsetCommit: a top-level error, or one code per entry.
    pub fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        entries: &[CommitEntry],
    ) -> Result<Vec<i16>, i16> {
        if group_id.is_empty() {
            return Err(codes::INVALID_GROUP_ID);
        }
        let handle = if generation < 0 {
            self.get_or_create(group_id)?
        } else {
            self.sink_for(group_id)?;
            // A group unknown here with a generation: Kafka's ILLEGAL_GENERATION.
            self.existing(group_id).ok_or(codes::ILLEGAL_GENERATION)?
        };
        let now = now_ms();
        let mut g = handle.group.lock();
        g.validate_commit(member_id, instance_id, generation, now)?;
        let (out, records, values) = self.offset_records(group_id, entries, now);
        if !records.is_empty() {
            if let Err(err) = handle.sink.append(&records) {
                tracing::warn!(group = group_id, error = %err, "could not store offsets");
                return Err(codes::COORDINATOR_NOT_AVAILABLE);
            }
            g.offsets.extend(values);
        }
        drop(g);
        handle.wake.notify_one();
        Ok(out)
    }

    /// The records of a commit of `entries` for `group_id`: one code per entry
    /// (OFFSET_METADATA_TOO_LARGE for metadata over offset.metadata.max.bytes), the records
    /// to write and the offsets they set.
    #[allow(clippy::type_complexity)]
    fn offset_records(
        &self,
        group_id: &str,
        entries: &[CommitEntry],
        now: i64,
    ) -> (Vec<i16>, Vec<Record>, Vec<((String, i32), OffsetValue)>) {
        let mut out = Vec::with_capacity(entries.len());
        let mut records = Vec::new();
        let mut values = Vec::new();
        for e in entries {
            let metadata = e.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                out.push(codes::OFFSET_METADATA_TOO_LARGE);
                continue;
            }
            out.push(codes::NONE);
            let value = OffsetValue {
                offset: e.offset,
                leader_epoch: e.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: -1,
            };
            let key = RecordKey::Offset {
                group: group_id.to_string(),
                topic: e.topic.clone(),
                partition: e.partition,
            };
            records.push((key.encode(), Some(value.encode())));
            values.push(((e.topic.clone(), e.partition), value));
        }
        (out, records, values)
    }

    /// OffsetFetch: the committed offsets of `topics` (every committed one when `None`).
    /// Unknown partitions come back at offset -1.
    #[allow(clippy::type_complexity)]
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, i32, Option<OffsetValue>)>, i16> {
        self.sink_for(group_id)?;
        let handle = self.existing(group_id);
        let guard = handle.as_ref().map(|h| h.group.lock());
        let offsets = guard.as_ref().map(|g| &g.offsets);
        Ok(match topics {
            None => offsets
                .map(|o| {
                    o.iter()
                        .map(|((t, p), v)| (t.clone(), *p, Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
            Some(topics) => topics
                .iter()
                .flat_map(|(t, ps)| {
                    ps.iter().map(move |p| {
                        let v = offsets.and_then(|o| o.get(&(t.clone(), *p)).cloned());
                        (t.clone(), *p, v)
                    })
                })
                .collect(),
        })
    }

    /// ListGroups: (group id, protocol type, state, group type) of every group here,
    /// filtered by state names (case-insensitive) when given.
    pub fn list_groups_typed(
        &self,
        states: &[String],
    ) -> Vec<(String, String, &'static str, &'static str)> {
        let handles: Vec<Arc<GroupHandle>> = self.groups.lock().values().cloned().collect();
        let mut out: Vec<_> = handles
            .iter()
            .filter_map(|h| {
                let g = h.group.lock();
                let (state, protocol_type, kind) = g.listing();
                if g.state == GroupState::Dead
                    || (!states.is_empty() && !states.iter().any(|s| s.eq_ignore_ascii_case(state)))
                {
                    return None;
                }
                Some((g.id.clone(), protocol_type, state, kind))
            })
            .collect();
        out.sort();
        out
    }

    /// Every live group this coordinator holds, with its members, rebalances and committed
    /// offsets: what the broker's metrics and console show.
    pub fn overview(&self) -> Vec<GroupOverview> {
        let handles: Vec<Arc<GroupHandle>> = self.groups.lock().values().cloned().collect();
        let mut out: Vec<GroupOverview> = handles
            .iter()
            .filter_map(|h| {
                let g = h.group.lock();
                if g.state == GroupState::Dead {
                    return None;
                }
                let (state, _, kind) = g.listing();
                let (members, epoch) = match (&g.modern, kind) {
                    (Some(m), "consumer") => (m.members.len(), m.group_epoch),
                    _ => (g.members.len(), g.generation),
                };
                Some(GroupOverview {
                    group_id: g.id.clone(),
                    state,
                    kind,
                    members,
                    epoch,
                    offsets: g
                        .offsets
                        .iter()
                        .map(|((t, p), v)| (t.clone(), *p, v.offset))
                        .collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// [`GroupCoordinator::list_groups_typed`] without the group type.
    pub fn list_groups(&self, states: &[String]) -> Vec<(String, String, &'static str)> {
        self.list_groups_typed(states)
            .into_iter()
            .map(|(a, b, c, _)| (a, b, c))
            .collect()
    }

    /// ConsumerGroupHeartbeat (KIP-848) with the broker's `group.consumer.session.timeout.ms`.
    /// `topics` is the cluster's topics now.
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: ConsumerHeartbeat,
        topics: &TopicsView,
    ) -> Result<ConsumerHeartbeatResponse, i16> {
        let session = self.config.consumer_session_timeout_ms;
        self.consumer_heartbeat_with_session(group_id, req, topics, session)
    }

    /// ConsumerGroupHeartbeat (KIP-848) for a group whose session timeout is
    /// `session_timeout_ms` (its group config `consumer.session.timeout.ms`).
    pub fn consumer_heartbeat_with_session(
        &self,
        group_id: &str,
        req: ConsumerHeartbeat,
        topics: &TopicsView,
        session_timeout_ms: i32,
    ) -> Result<ConsumerHeartbeatResponse, i16> {
        if group_id.is_empty() {
            return Err(codes::INVALID_GROUP_ID);
        }
        let handle = if req.member_epoch == 0 {
            self.get_or_create(group_id)?
        } else {
            self.sink_for(group_id)?;
            self.existing(group_id).ok_or(codes::UNKNOWN_MEMBER_ID)?
        };
        let mut g = handle.group.lock();
        if !g.members.is_empty() || g.state == GroupState::Dead {
            // A classic group with members is not a consumer group (Kafka's answer).
            return Err(codes::GROUP_ID_NOT_FOUND);
        }
        let max = self.config.limits.max_size;
        let session = i64::from(session_timeout_ms);
        let r = g.modern.get_or_insert_with(Default::default).heartbeat(
            req,
            topics,
            session,
            max,
            now_ms(),
        );
        store_if_dirty(&mut g, &handle.sink);
        drop(g);
        handle.wake.notify_one();
        r
    }

    /// ConsumerGroupDescribe for one group: `Err(GROUP_ID_NOT_FOUND)` unless it is a
    /// KIP-848 group (Kafka's answer for classic groups, which clients then describe with
    /// DescribeGroups).
    pub fn consumer_describe(&self, group_id: &str) -> Result<ConsumerGroupDescription, i16> {
        self.sink_for(group_id)?;
        let h = self.existing(group_id).ok_or(codes::GROUP_ID_NOT_FOUND)?;
        let g = h.group.lock();
        let Some(m) = g.modern.as_ref().filter(|_| g.members.is_empty()) else {
            return Err(codes::GROUP_ID_NOT_FOUND);
        };
        Ok(ConsumerGroupDescription {
            state: m.state_name(),
            group_epoch: m.group_epoch,
            assignment_epoch: m.assignment_epoch,
            assignor: m.assignor.clone(),
            members: m
                .members
                .values()
                .map(|mm| {
                    (
                        mm.clone(),
                        m.target.get(&mm.id).cloned().unwrap_or_default(),
                    )
                })
                .collect(),
        })
    }

    /// DescribeGroups for one group.
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        let mut d = GroupDescription {
            error: codes::NONE,
            state: GroupState::Dead.name(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        };
        if let Err(e) = self.sink_for(group_id) {
            d.error = e;
            return d;
        }
        let Some(h) = self.existing(group_id) else {
            return d;
        };
        let g = h.group.lock();
        d.state = g.state.name();
        d.protocol_type = g.protocol_type.clone().unwrap_or_default();
        d.protocol = g.protocol.clone().unwrap_or_default();
        d.members = g
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata(&d.protocol),
                assignment: if g.state == GroupState::Stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        d
    }

    /// DeleteGroups for one group: only an empty group can go; its offsets and metadata
    /// are tombstoned.
    pub fn delete_group(&self, group_id: &str) -> i16 {
        if let Err(e) = self.sink_for(group_id) {
            return e;
        }
        let Some(h) = self.existing(group_id) else {
            return codes::GROUP_ID_NOT_FOUND;
        };
        let mut g = h.group.lock();
        // Sessions that ended count as ended now, not when the group's timer next runs.
        g.on_timer(now_ms());
        store_if_dirty(&mut g, &h.sink);
        match g.state {
            GroupState::Dead => return codes::GROUP_ID_NOT_FOUND,
            GroupState::Empty if !g.has_modern_members() => {}
            _ => return codes::NON_EMPTY_GROUP,
        }
        let mut records: Vec<Record> = g
            .offsets
            .keys()
            .map(|(t, p)| offset_tombstone(group_id, t, *p))
            .collect();
        records.push(group_tombstone(group_id));
        if let Err(e) = h.sink.append(&records) {
            tracing::warn!(group = group_id, error = %e, "could not delete the group");
            return codes::COORDINATOR_NOT_AVAILABLE;
        }
        g.kill(now_ms());
        drop(g);
        h.wake.notify_one();
        self.groups.lock().remove(group_id);
        tracing::info!(group = group_id, "deleted group");
        codes::NONE
    }

    /// OffsetDelete: a top-level error, or one code per (topic, partition). A topic the
    /// group's members subscribe to is GROUP_SUBSCRIBED_TO_TOPIC.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        self.sink_for(group_id)?;
        let h = self.existing(group_id).ok_or(codes::GROUP_ID_NOT_FOUND)?;
        let mut g = h.group.lock();
        if g.state == GroupState::Dead {
            return Err(codes::GROUP_ID_NOT_FOUND);
        }
        let subscribed = g.subscribed_topics().unwrap_or_default();
        let mut out = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for (t, p) in partitions {
            if subscribed.contains(t) {
                out.push(codes::GROUP_SUBSCRIBED_TO_TOPIC);
                continue;
            }
            out.push(codes::NONE);
            if g.offsets.contains_key(&(t.clone(), *p)) {
                records.push(offset_tombstone(group_id, t, *p));
            }
        }
        if !records.is_empty() {
            h.sink.append(&records).map_err(|e| {
                tracing::warn!(group = group_id, error = %e, "could not delete offsets");
                codes::COORDINATOR_NOT_AVAILABLE
            })?;
            for ((t, p), code) in partitions.iter().zip(&out) {
                if *code == codes::NONE {
                    g.offsets.remove(&(t.clone(), *p));
                }
            }
        }
        Ok(out)
    }
}

impl GroupCoordinator {
    /// Expires the offsets of empty groups older than offsets.retention.minutes, counted
    /// from when the group became empty (or from the commit, for groups that never had
    /// members), as Kafka does since KIP-211. A group left with no members and no offsets
    /// is deleted. Returns the offsets removed.
    pub fn expire_offsets(&self, now: i64) -> usize {
        let handles: Vec<(String, Arc<GroupHandle>)> = self
            .groups
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let retention = self.config.offsets_retention_ms;
        let mut removed = 0;
        for (name, h) in handles {
            let mut g = h.group.lock();
            if g.state != GroupState::Empty || g.has_modern_members() {
                continue;
            }
            let had_members = g.protocol_type.is_some();
            let expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, v)| {
                    let base = if had_members {
                        g.state_since_ms.max(v.commit_timestamp)
                    } else {
                        v.commit_timestamp
                    };
                    now.saturating_sub(base) > retention
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut records: Vec<Record> = expired
                .iter()
                .map(|(t, p)| offset_tombstone(&name, t, *p))
                .collect();
            let delete_group = g.offsets.len() == expired.len();
            if delete_group {
                records.push(group_tombstone(&name));
            }
            if expired.is_empty() && !delete_group {
                continue;
            }
            if let Err(e) = h.sink.append(&records) {
                tracing::warn!(group = %name, error = %e, "could not expire offsets");
                continue;
            }
            for k in &expired {
                g.offsets.remove(k);
            }
            removed += expired.len();
            if delete_group {
                g.kill(now);
                drop(g);
                h.wake.notify_one();
                self.groups.lock().remove(&name);
                tracing::info!(group = %name, offsets = expired.len(), "expired an empty group and its offsets");
            }
        }
        removed
    }

    /// Runs [`GroupCoordinator::expire_offsets`] every offsets.retention.check.interval.ms
    /// on the current tokio runtime, for as long as the coordinator lives.
    pub fn start_expiry(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let every = std::time::Duration::from_millis(
            self.config.offsets_retention_check_interval_ms.max(1),
        );
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(c) = weak.upgrade() else { return };
                c.expire_offsets(now_ms());
            }
        });
    }
}

fn error_join(error: i16, member_id: &str) -> JoinResponse {
    JoinResponse {
        error,
        generation: -1,
        member_id: member_id.to_string(),
        ..Default::default()
    }
}

/// The tombstone of a committed offset.
fn offset_tombstone(group: &str, topic: &str, partition: i32) -> Record {
    let key = RecordKey::Offset {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
    };
    (key.encode(), None)
}

/// The tombstone of a classic group's metadata.
fn group_tombstone(group: &str) -> Record {
    let key = RecordKey::Group {
        group: group.to_string(),
    };
    (key.encode(), None)
}

fn store_if_dirty(g: &mut Group, sink: &PartitionSink) {
    let id = g.id.clone();
    if let Some(m) = g.modern.as_mut() {
        let records = m.take_records(&id);
        if !records.is_empty() {
            if let Err(e) = sink.append(&records) {
                tracing::warn!(group = %id, error = %e, "could not store consumer group state");
            }
        }
    }
    if g.take_dirty() {
        if let Err(e) = g.persist(sink) {
            tracing::warn!(group = %g.id, error = %e, "could not store group metadata");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_java_string_hash_code() {
        // Values of Java's String.hashCode: "hello" is 99162322, "Hello" 69609650, and
        // "polygenelubricants" hashes to Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert_eq!(partition_for("Hello", 50), 69_609_650 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 7), 97 % 7);
    }
}
