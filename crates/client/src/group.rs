//! Consumer group membership, for [`crate::Consumer`]: finding the group coordinator, the
//! classic protocol (JoinGroup, SyncGroup with the leader running a client-side
//! [`Assignor`], Heartbeat, LeaveGroup), the KIP-848 protocol (ConsumerGroupHeartbeat, the
//! assignment computed by the coordinator), and committed offsets (OffsetCommit,
//! OffsetFetch).
//!
//! A background task per membership sends the heartbeats (it only sleeps between them, or
//! until woken) and records what the coordinator said: a rebalance to join, a lost
//! membership, a new KIP-848 target assignment. The consumer's `poll` acts on those, so
//! partitions are revoked, committed and assigned on the caller's task, where the rebalance
//! listener runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition as AssignedTopic,
};
use kafka_protocol::messages::consumer_protocol_subscription::{
    ConsumerProtocolSubscription, TopicPartition as OwnedTopic,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, Request, StrBytes};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::admin::s;
use crate::assignor::{hold_back_transfers, Assignor, MemberSubscription};
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// A topic partition.
pub type TopicPartition = (String, i32);

// Kafka error codes the membership reacts to.
pub(crate) const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub(crate) const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub(crate) const NOT_COORDINATOR: i16 = 16;
pub(crate) const ILLEGAL_GENERATION: i16 = 22;
pub(crate) const UNKNOWN_MEMBER_ID: i16 = 25;
pub(crate) const REBALANCE_IN_PROGRESS: i16 = 27;
pub(crate) const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNRELEASED_INSTANCE_ID: i16 = 111;
const STALE_MEMBER_EPOCH: i16 = 113;

pub(crate) fn coordinator_moved(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

/// Partitions grouped by topic, in order (the shape every request and the consumer
/// protocol's metadata use).
pub(crate) fn by_topic<'a>(
    parts: impl IntoIterator<Item = &'a TopicPartition>,
) -> BTreeMap<&'a str, Vec<i32>> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        out.entry(t).or_default().push(*p);
    }
    out
}

/// The topics of an OffsetCommit for `offsets` (the next offset to read per partition).
pub(crate) fn offset_commit_topics(
    offsets: &[(TopicPartition, i64)],
) -> Vec<OffsetCommitRequestTopic> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        topics.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_metadata(Some(StrBytes::default())),
        );
    }
    topics
        .into_iter()
        .map(|(t, ps)| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(t)))
                .with_partitions(ps)
        })
        .collect()
}

/// Which group protocol the consumer speaks (group.protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// `classic`: JoinGroup/SyncGroup, the leader assigns.
    Classic,
    /// `consumer`: KIP-848, the coordinator assigns.
    Consumer,
}

/// What a group consumer subscribes to.
#[derive(Debug, Clone)]
pub enum Subscription {
    /// These topics.
    Topics(Vec<String>),
    /// Every topic whose whole name matches (internal topics excluded).
    Pattern(regex::Regex),
}

/// The group settings of a consumer.
#[derive(Debug, Clone)]
pub(crate) struct GroupSettings {
    pub group_id: String,
    pub instance_id: Option<String>,
    pub protocol: GroupProtocol,
    pub assignors: Vec<Assignor>,
    pub remote_assignor: Option<String>,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub rebalance_timeout: Duration,
}

/// What the heartbeat task and the consumer share.
#[derive(Debug)]
struct Shared {
    member_id: String,
    /// Classic: the generation; KIP-848: the member epoch.
    epoch: i32,
    coordinator: Option<Arc<Connection>>,
    /// Classic: joined and synced, so heartbeats flow.
    stable: bool,
    /// Classic: the coordinator started a rebalance.
    rejoin: bool,
    /// The membership is gone (fenced, unknown, evicted): what it owned is lost.
    lost: bool,
    /// A fatal error for the consumer (e.g. FENCED_INSTANCE_ID, INVALID_REGULAR_EXPRESSION).
    fatal: Option<i16>,
    /// KIP-848: the latest assignment the coordinator sent, not yet taken by the consumer.
    target: Option<BTreeSet<TopicPartition>>,
    /// KIP-848: what the consumer owns, reported on each heartbeat.
    owned: BTreeSet<TopicPartition>,
    /// KIP-848: the topics to send (resolved names, or the regex).
    subscribed: Subscribed,
    /// KIP-848: the interval the coordinator asks for.
    interval: Duration,
    /// When the consumer last polled (max.poll.interval.ms).
    last_poll: Instant,
    leaving: bool,
    /// Left after max.poll.interval.ms without a poll; no heartbeats until the next poll.
    stalled: bool,
}

impl Shared {
    /// A membership that has not joined yet.
    fn new(member_id: String, epoch: i32, subscribed: Subscribed, interval: Duration) -> Shared {
        Shared {
            member_id,
            epoch,
            coordinator: None,
            stable: false,
            rejoin: false,
            lost: false,
            fatal: None,
            target: None,
            owned: BTreeSet::new(),
            subscribed,
            interval,
            last_poll: Instant::now(),
            leaving: false,
            stalled: false,
        }
    }
}

#[derive(Debug, Clone)]
enum Subscribed {
    Names(Vec<String>),
    Regex(String),
}

/// One consumer's membership of its group.
#[derive(Debug)]
pub(crate) struct Membership {
    settings: GroupSettings,
    cluster: Arc<Cluster>,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
    subscription: Subscription,
    /// Classic: the subscribed topics and their partition counts at the last join.
    joined: BTreeMap<String, i32>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Commits and reads committed offsets for a group (cheap to clone, for async commits).
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    group_id: String,
    instance_id: Option<String>,
    protocol: GroupProtocol,
    cluster: Arc<Cluster>,
    shared: Arc<Mutex<Shared>>,
}

/// What a transactional producer commits offsets as (Kafka's ConsumerGroupMetadata): the
/// group, and the member's generation and id so the coordinator can fence a zombie
/// (KIP-447).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    /// group.id.
    pub group_id: String,
    /// The generation (classic) or member epoch (KIP-848); -1 when not in the group.
    pub generation: i32,
    /// The member id; empty when not in the group.
    pub member_id: String,
    /// group.instance.id.
    pub instance_id: Option<String>,
}

impl Membership {
    /// The membership as a transactional producer passes it with its offsets.
    pub(crate) fn metadata(&self) -> GroupMetadata {
        let sh = self.shared.lock();
        GroupMetadata {
            group_id: self.settings.group_id.clone(),
            generation: sh.epoch,
            member_id: sh.member_id.clone(),
            instance_id: self.settings.instance_id.clone(),
        }
    }

    /// Starts a membership (the first join happens on the consumer's next poll; KIP-848
    /// members send their first heartbeat at once).
    pub(crate) fn start(
        settings: GroupSettings,
        cluster: Arc<Cluster>,
        subscription: Subscription,
    ) -> Membership {
        let member_id = if settings.protocol == GroupProtocol::Consumer {
            // KIP-1082: the member picks its own id (ConsumerGroupHeartbeat v1).
            random_member_id()
        } else {
            String::new()
        };
        let subscribed = match &subscription {
            Subscription::Topics(t) => Subscribed::Names(t.clone()),
            Subscription::Pattern(r) => Subscribed::Regex(strip_anchors(r.as_str())),
        };
        let mut state = Shared::new(member_id, 0, subscribed, settings.heartbeat_interval);
        state.rejoin = true;
        let shared = Arc::new(Mutex::new(state));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(heartbeats(
            settings.clone(),
            cluster.clone(),
            shared.clone(),
            wake.clone(),
        ));
        Membership {
            settings,
            cluster,
            shared,
            wake,
            task,
            subscription,
            joined: BTreeMap::new(),
        }
    }

    /// The protocol in use.
    pub(crate) fn protocol(&self) -> GroupProtocol {
        self.settings.protocol
    }

    /// A handle for commits.
    pub(crate) fn committer(&self) -> Committer {
        Committer {
            group_id: self.settings.group_id.clone(),
            instance_id: self.settings.instance_id.clone(),
            protocol: self.settings.protocol,
            cluster: self.cluster.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Replaces the subscription (the next poll rejoins).
    pub(crate) fn resubscribe(&mut self, subscription: Subscription) {
        {
            let mut sh = self.shared.lock();
            sh.subscribed = match &subscription {
                Subscription::Topics(t) => Subscribed::Names(t.clone()),
                Subscription::Pattern(r) => Subscribed::Regex(strip_anchors(r.as_str())),
            };
            sh.rejoin = true;
        }
        self.subscription = subscription;
        self.wake.notify_one();
    }

    /// Records that the consumer polled (max.poll.interval.ms) and reports a fatal error.
    pub(crate) fn polled(&self) -> Result<()> {
        let mut sh = self.shared.lock();
        sh.last_poll = Instant::now();
        if std::mem::take(&mut sh.stalled) {
            self.wake.notify_one();
        }
        match sh.fatal {
            Some(code) => Err(ClientError::kafka(code)),
            None => Ok(()),
        }
    }

    /// True (once) when the membership was lost: owned partitions must be dropped
    /// without committing.
    pub(crate) fn take_lost(&self) -> bool {
        std::mem::take(&mut self.shared.lock().lost)
    }

    /// Classic: true when a (re)join is due.
    pub(crate) fn needs_join(&self) -> bool {
        let sh = self.shared.lock();
        !sh.stable || sh.rejoin
    }

    /// Classic: rejoins when the subscribed topics or their partition counts changed since
    /// the last join (metadata is fetched again when older than metadata.max.age.ms).
    pub(crate) async fn check_topics(&self) -> Result<()> {
        if self.settings.protocol != GroupProtocol::Classic || self.needs_join() {
            return Ok(());
        }
        let now = self.subscribed_topics(false).await?;
        if now != self.joined {
            self.shared.lock().rejoin = true;
        }
        Ok(())
    }

    /// The subscribed topics that exist, with their partition counts.
    async fn subscribed_topics(&self, fresh: bool) -> Result<BTreeMap<String, i32>> {
        let all = self.cluster.all_topics(fresh).await?;
        let pick = |name: &String| match &self.subscription {
            Subscription::Topics(t) => t.contains(name),
            Subscription::Pattern(r) => r.is_match(name),
        };
        Ok(all
            .iter()
            .filter(|(n, t)| {
                pick(n) && !(t.internal && matches!(self.subscription, Subscription::Pattern(_)))
            })
            .map(|(n, t)| (n.clone(), t.partitions.len() as i32))
            .collect())
    }

    /// Classic: joins the group (JoinGroup, then SyncGroup) and returns the assignment.
    /// `owned` is what this member keeps through the rebalance (cooperative), reported to
    /// the leader.
    pub(crate) async fn join(
        &mut self,
        owned: &BTreeSet<TopicPartition>,
    ) -> Result<BTreeSet<TopicPartition>> {
        self.shared.lock().stable = false;
        let committer = self.committer();
        let mut backoff = Duration::from_millis(50);
        for _ in 0..100 {
            if let Some(code) = self.shared.lock().fatal {
                return Err(ClientError::kafka(code));
            }
            let conn = match committer.coordinator().await {
                Ok(c) => c,
                Err(e) if e.is_retriable() => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let topics = self.subscribed_topics(true).await?;
            match self.join_once(&conn, &topics, owned).await? {
                Some(assignment) => {
                    self.joined = topics;
                    return Ok(assignment);
                }
                None => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        Err(ClientError::Protocol("could not join the group".into()))
    }

    /// One JoinGroup + SyncGroup round: the assignment, or `None` to try again.
    async fn join_once(
        &self,
        conn: &Connection,
        topics: &BTreeMap<String, i32>,
        owned: &BTreeSet<TopicPartition>,
    ) -> Result<Option<BTreeSet<TopicPartition>>> {
        let st = &self.settings;
        let member_id = self.shared.lock().member_id.clone();
        let subscription = encode_subscription(topics.keys(), owned);
        let version = conn.version::<JoinGroupRequest>()?;
        let mut request = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&st.group_id)))
            .with_session_timeout_ms(st.session_timeout.as_millis() as i32)
            .with_member_id(s(&member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(
                st.assignors
                    .iter()
                    .map(|a| {
                        JoinGroupRequestProtocol::default()
                            .with_name(s(a.name()))
                            .with_metadata(subscription.clone())
                    })
                    .collect(),
            );
        if version >= 1 {
            request.rebalance_timeout_ms = st.rebalance_timeout.as_millis() as i32;
        }
        if version >= 5 {
            request.group_instance_id = st.instance_id.as_deref().map(s);
        }
        // The broker holds a JoinGroup until the rebalance completes.
        let wait = st.rebalance_timeout + Duration::from_secs(5);
        let r = conn.send_within(&request, version, wait).await?;
        match r.error_code {
            0 => {}
            MEMBER_ID_REQUIRED => {
                self.shared.lock().member_id = r.member_id.to_string();
                return Ok(None);
            }
            UNKNOWN_MEMBER_ID => {
                self.shared.lock().member_id.clear();
                return Ok(None);
            }
            REBALANCE_IN_PROGRESS => return Ok(None),
            code if coordinator_moved(code) => {
                self.shared.lock().coordinator = None;
                return Ok(None);
            }
            code => return Err(ClientError::kafka(code)),
        }
        let member_id = r.member_id.to_string();
        let generation = r.generation_id;
        let protocol = r
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let assignor = Assignor::from_name(&protocol).ok_or_else(|| {
            ClientError::Protocol(format!("the group chose an unknown assignor '{protocol}'"))
        })?;
        {
            let mut sh = self.shared.lock();
            sh.member_id = member_id.clone();
            sh.epoch = generation;
        }
        let mut assignments = Vec::new();
        if r.leader.as_str() == member_id && !r.skip_assignment {
            let members: Vec<MemberSubscription> = r
                .members
                .iter()
                .map(|m| {
                    decode_subscription(&m.member_id, m.group_instance_id.as_ref(), &m.metadata)
                })
                .collect::<Result<_>>()?;
            let mut counts = HashMap::new();
            let wanted: BTreeSet<&String> = members.iter().flat_map(|m| m.topics.iter()).collect();
            let all = self.cluster.all_topics(false).await?;
            for t in wanted {
                if let Some(info) = all.get(t) {
                    counts.insert(t.clone(), info.partitions.len() as i32);
                }
            }
            let mut plan = assignor.assign(&members, &counts);
            if assignor.is_cooperative() && hold_back_transfers(&members, &mut plan) {
                tracing::debug!(group = %st.group_id, "partitions held back until revoked");
            }
            for (member, parts) in plan {
                assignments.push(
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(&member))
                        .with_assignment(encode_assignment(&parts)),
                );
            }
        }
        let version = conn.version::<SyncGroupRequest>()?;
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&st.group_id)))
            .with_generation_id(generation)
            .with_member_id(s(&member_id))
            .with_assignments(assignments);
        if version >= 3 {
            sync.group_instance_id = st.instance_id.as_deref().map(s);
        }
        if version >= 5 {
            sync.protocol_type = Some(s("consumer"));
            sync.protocol_name = Some(s(&protocol));
        }
        let r = conn.send_within(&sync, version, wait).await?;
        match r.error_code {
            0 => {}
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => return Ok(None),
            UNKNOWN_MEMBER_ID => {
                self.shared.lock().member_id.clear();
                return Ok(None);
            }
            code if coordinator_moved(code) => {
                self.shared.lock().coordinator = None;
                return Ok(None);
            }
            code => return Err(ClientError::kafka(code)),
        }
        let assignment = decode_assignment(&r.assignment)?;
        {
            let mut sh = self.shared.lock();
            sh.stable = true;
            sh.rejoin = false;
            sh.lost = false;
        }
        self.wake.notify_one();
        tracing::debug!(group = %st.group_id, generation, member = %member_id, assignor = %protocol, partitions = assignment.len(), "joined");
        Ok(Some(assignment.into_iter().collect()))
    }

    /// Classic, cooperative: asks for another rebalance (after revoking partitions).
    pub(crate) fn request_rejoin(&self) {
        self.shared.lock().rejoin = true;
    }

    /// KIP-848: the new target assignment, if the coordinator sent one since the last call.
    pub(crate) fn take_target(&self) -> Option<BTreeSet<TopicPartition>> {
        self.shared.lock().target.take()
    }

    /// KIP-848: what the consumer now owns (reported on the next heartbeat, sent at once).
    pub(crate) fn set_owned(&self, owned: BTreeSet<TopicPartition>) {
        self.shared.lock().owned = owned;
        self.wake.notify_one();
    }

    /// Leaves the group: LeaveGroup (classic; static members stay, as Kafka's do), or a
    /// heartbeat with epoch -1 (-2 for a static member) under KIP-848.
    pub(crate) async fn leave(&mut self) -> Result<()> {
        let (member_id, known) = {
            let mut sh = self.shared.lock();
            sh.leaving = true;
            (sh.member_id.clone(), sh.stable || sh.epoch > 0)
        };
        self.task.abort();
        if member_id.is_empty() || !known {
            return Ok(());
        }
        send_leave(
            &self.settings,
            &self.committer(),
            &member_id,
            "the consumer is closing",
        )
        .await
    }
}

/// Leaves the group: LeaveGroup under the classic protocol (not for a static member, which
/// Kafka keeps until its session times out), a heartbeat with epoch -1 (-2 for a static
/// member) under KIP-848.
async fn send_leave(
    st: &GroupSettings,
    c: &Committer,
    member_id: &str,
    reason: &str,
) -> Result<()> {
    let conn = c.coordinator().await?;
    match st.protocol {
        GroupProtocol::Classic => {
            if st.instance_id.is_some() {
                return Ok(());
            }
            let version = conn.version::<LeaveGroupRequest>()?;
            let mut request = LeaveGroupRequest::default().with_group_id(GroupId(s(&st.group_id)));
            if version >= 3 {
                let mut m = MemberIdentity::default().with_member_id(s(member_id));
                if version >= 5 {
                    m.reason = Some(s(reason));
                }
                request.members = vec![m];
            } else {
                request.member_id = s(member_id);
            }
            let r = conn.send_at(&request, version).await?;
            let code = r
                .members
                .iter()
                .map(|m| m.error_code)
                .find(|c| *c != 0)
                .unwrap_or(r.error_code);
            if code != 0 && code != UNKNOWN_MEMBER_ID {
                return Err(ClientError::kafka(code));
            }
        }
        GroupProtocol::Consumer => {
            let version = conn.version::<ConsumerGroupHeartbeatRequest>()?;
            let request = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s(&st.group_id)))
                .with_member_id(s(member_id))
                .with_instance_id(st.instance_id.as_deref().map(s))
                .with_member_epoch(if st.instance_id.is_some() { -2 } else { -1 });
            let r = conn.send_at(&request, version).await?;
            if r.error_code != 0 && r.error_code != UNKNOWN_MEMBER_ID {
                return Err(ClientError::kafka(r.error_code));
            }
        }
    }
    Ok(())
}

/// The heartbeat task: sleeps for the heartbeat interval (or until woken), then heartbeats
/// and records what the coordinator said.
async fn heartbeats(
    st: GroupSettings,
    cluster: Arc<Cluster>,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
) {
    let committer = Committer {
        group_id: st.group_id.clone(),
        instance_id: st.instance_id.clone(),
        protocol: st.protocol,
        cluster: cluster.clone(),
        shared: shared.clone(),
    };
    let mut first = true;
    loop {
        let interval = shared.lock().interval;
        if !first {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = wake.notified() => {}
            }
        }
        first = false;
        {
            let sh = shared.lock();
            if sh.leaving || sh.fatal.is_some() {
                return;
            }
            if sh.stalled {
                continue; // out of the group until the consumer polls again
            }
        }
        let stalled = {
            let sh = shared.lock();
            sh.last_poll.elapsed() > st.rebalance_timeout && (sh.stable || sh.epoch > 0)
        };
        if stalled {
            // max.poll.interval.ms passed without a poll: leave, as Kafka's consumer does,
            // so the group can give the partitions to members that are making progress; the
            // next poll drops them here (lost) and joins again.
            tracing::warn!(group = %st.group_id, "max.poll.interval.ms exceeded; leaving the group");
            let member_id = shared.lock().member_id.clone();
            if let Err(e) =
                send_leave(&st, &committer, &member_id, "max.poll.interval.ms exceeded").await
            {
                tracing::debug!(error = %e, "leaving the group");
            }
            let mut sh = shared.lock();
            sh.stable = false;
            sh.lost = true;
            sh.rejoin = true;
            sh.epoch = 0;
            sh.stalled = true;
            if st.protocol == GroupProtocol::Classic {
                sh.member_id.clear();
            }
            continue;
        }
        let outcome = match st.protocol {
            GroupProtocol::Classic => classic_heartbeat(&st, &committer).await,
            GroupProtocol::Consumer => consumer_heartbeat(&st, &committer).await,
        };
        if let Err(e) = outcome {
            tracing::debug!(group = %st.group_id, error = %e, "heartbeat failed");
            shared.lock().coordinator = None;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn classic_heartbeat(st: &GroupSettings, c: &Committer) -> Result<()> {
    let (member_id, generation) = {
        let sh = c.shared.lock();
        if !sh.stable {
            return Ok(());
        }
        (sh.member_id.clone(), sh.epoch)
    };
    let conn = c.coordinator().await?;
    let version = conn.version::<HeartbeatRequest>()?;
    let mut request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(&st.group_id)))
        .with_generation_id(generation)
        .with_member_id(s(&member_id));
    if version >= 3 {
        request.group_instance_id = st.instance_id.as_deref().map(s);
    }
    let r = conn.send_at(&request, version).await?;
    let mut sh = c.shared.lock();
    if sh.epoch != generation {
        return Ok(()); // a join happened meanwhile
    }
    match r.error_code {
        0 => {}
        REBALANCE_IN_PROGRESS => sh.rejoin = true,
        ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => {
            if r.error_code == UNKNOWN_MEMBER_ID {
                sh.member_id.clear();
            }
            sh.stable = false;
            sh.lost = true;
            sh.rejoin = true;
        }
        code if coordinator_moved(code) => sh.coordinator = None,
        code => sh.fatal = Some(code),
    }
    Ok(())
}

async fn consumer_heartbeat(st: &GroupSettings, c: &Committer) -> Result<()> {
    let (member_id, epoch, owned, subscribed) = {
        let sh = c.shared.lock();
        (
            sh.member_id.clone(),
            sh.epoch,
            sh.owned.clone(),
            sh.subscribed.clone(),
        )
    };
    let conn = c.coordinator().await?;
    let version = conn.version::<ConsumerGroupHeartbeatRequest>()?;
    let mut owned_ids = Vec::new();
    for (t, ps) in by_topic(&owned) {
        let id = c.cluster.topic(t).await?.id;
        owned_ids.push(
            TopicPartitions::default()
                .with_topic_id(uuid::Uuid::from_bytes(id))
                .with_partitions(ps),
        );
    }
    let mut request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(&st.group_id)))
        .with_member_id(s(&member_id))
        .with_member_epoch(epoch)
        .with_instance_id(st.instance_id.as_deref().map(s))
        .with_rebalance_timeout_ms(st.rebalance_timeout.as_millis() as i32)
        .with_topic_partitions(Some(owned_ids));
    match subscribed {
        Subscribed::Names(names) => {
            request.subscribed_topic_names = Some(names.iter().map(|n| TopicName(s(n))).collect())
        }
        Subscribed::Regex(r) if version >= 1 => request.subscribed_topic_regex = Some(s(&r)),
        Subscribed::Regex(_) => {
            return Err(ClientError::UnsupportedVersion {
                api_key: ConsumerGroupHeartbeatRequest::KEY,
            })
        }
    }
    if epoch == 0 {
        request.server_assignor = st.remote_assignor.as_deref().map(s);
    }
    let r = conn.send_at(&request, version).await?;
    match r.error_code {
        0 => {}
        FENCED_MEMBER_EPOCH | UNKNOWN_MEMBER_ID => {
            let mut sh = c.shared.lock();
            sh.epoch = 0;
            sh.lost = true;
            sh.target = Some(BTreeSet::new());
            return Ok(());
        }
        code if coordinator_moved(code) => {
            c.shared.lock().coordinator = None;
            return Ok(());
        }
        UNRELEASED_INSTANCE_ID => return Ok(()), // the previous instance is still leaving
        code => {
            c.shared.lock().fatal = Some(code);
            return Ok(());
        }
    }
    let mut target = None;
    if let Some(a) = &r.assignment {
        let mut set = BTreeSet::new();
        for tp in &a.topic_partitions {
            match c.cluster.topic_name(*tp.topic_id.as_bytes()).await? {
                Some(name) => set.extend(tp.partitions.iter().map(|p| (name.clone(), *p))),
                None => {
                    tracing::warn!(topic_id = %tp.topic_id, "assigned a topic id no broker knows")
                }
            }
        }
        target = Some(set);
    }
    let mut sh = c.shared.lock();
    if let Some(id) = &r.member_id {
        sh.member_id = id.to_string();
    }
    sh.epoch = r.member_epoch;
    if r.heartbeat_interval_ms > 0 {
        sh.interval = Duration::from_millis(r.heartbeat_interval_ms as u64);
    }
    if target.is_some() {
        sh.target = target;
    }
    Ok(())
}

impl Committer {
    /// Commits for a consumer with manually assigned partitions: no membership, so
    /// generation -1 and no member id (as Kafka's consumer commits then).
    pub(crate) fn standalone(group_id: String, cluster: Arc<Cluster>) -> Committer {
        Committer {
            group_id,
            instance_id: None,
            protocol: GroupProtocol::Classic,
            cluster,
            shared: Arc::new(Mutex::new(Shared::new(
                String::new(),
                -1,
                Subscribed::Names(Vec::new()),
                Duration::from_secs(3),
            ))),
        }
    }

    /// The coordinator of the group, found with FindCoordinator when not known.
    pub(crate) async fn coordinator(&self) -> Result<Arc<Connection>> {
        if let Some(c) = &self.shared.lock().coordinator {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let conn = find_coordinator(&self.cluster, &self.group_id).await?;
        self.shared.lock().coordinator = Some(conn.clone());
        Ok(conn)
    }

    /// Commits `offsets` (the next offset to read per partition) for this member.
    pub(crate) async fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let topics = offset_commit_topics(offsets);
        for attempt in 0..5 {
            let (member_id, epoch) = {
                let sh = self.shared.lock();
                (sh.member_id.clone(), sh.epoch)
            };
            let conn = self.coordinator().await?;
            let version = conn.version::<OffsetCommitRequest>()?;
            let mut request = OffsetCommitRequest::default()
                .with_group_id(GroupId(s(&self.group_id)))
                .with_generation_id_or_member_epoch(epoch)
                .with_member_id(s(&member_id))
                .with_topics(topics.clone());
            if version >= 7 {
                request.group_instance_id = self.instance_id.as_deref().map(s);
            }
            let r = conn.send_at(&request, version).await?;
            let code = r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.error_code)
                .find(|c| *c != 0)
                .unwrap_or(0);
            match code {
                0 => return Ok(()),
                c if coordinator_moved(c) && attempt < 4 => {
                    self.shared.lock().coordinator = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                STALE_MEMBER_EPOCH if self.protocol == GroupProtocol::Consumer && attempt < 4 => {
                    // The epoch moved on while the commit was in flight: retry with it.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                c => return Err(ClientError::kafka(c)),
            }
        }
        Err(ClientError::kafka(NOT_COORDINATOR))
    }

    /// The committed offsets of `partitions` (absent: nothing committed).
    pub(crate) async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let by_topic = by_topic(partitions);
        let mut out = HashMap::new();
        if by_topic.is_empty() {
            return Ok(out);
        }
        for attempt in 0..5 {
            let conn = self.coordinator().await?;
            let version = conn.version::<OffsetFetchRequest>()?;
            let mut request = OffsetFetchRequest::default();
            if version >= 8 {
                let topics = by_topic
                    .iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopics::default()
                            .with_name(TopicName(s(t)))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect();
                request.groups = vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(&self.group_id)))
                    .with_topics(Some(topics))];
            } else {
                request.group_id = GroupId(s(&self.group_id));
                request.topics = Some(
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(TopicName(s(t)))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect(),
                );
            }
            let r = conn.send_at(&request, version).await?;
            let mut code = r.error_code;
            let mut rows = Vec::new();
            if version >= 8 {
                for g in &r.groups {
                    code = g.error_code;
                    for t in &g.topics {
                        for p in &t.partitions {
                            rows.push((
                                t.name.0.to_string(),
                                p.partition_index,
                                p.committed_offset,
                                p.error_code,
                            ));
                        }
                    }
                }
            } else {
                for t in &r.topics {
                    for p in &t.partitions {
                        rows.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.error_code,
                        ));
                    }
                }
            }
            if code == 0 {
                code = rows.iter().map(|r| r.3).find(|c| *c != 0).unwrap_or(0);
            }
            match code {
                0 => {
                    for (t, p, o, _) in rows {
                        if o >= 0 {
                            out.insert((t, p), o);
                        }
                    }
                    return Ok(out);
                }
                c if coordinator_moved(c) && attempt < 4 => {
                    self.shared.lock().coordinator = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                c => return Err(ClientError::kafka(c)),
            }
        }
        Err(ClientError::kafka(NOT_COORDINATOR))
    }
}

/// The connection to `group`'s coordinator (FindCoordinator, key type 0).
pub(crate) async fn find_coordinator(cluster: &Cluster, group: &str) -> Result<Arc<Connection>> {
    find_coordinator_of(cluster, 0, group).await
}

/// The coordinator of `key`: a group (key type 0) or a transactional id (1).
pub(crate) async fn find_coordinator_of(
    cluster: &Cluster,
    key_type: i8,
    key: &str,
) -> Result<Arc<Connection>> {
    let mut backoff = Duration::from_millis(50);
    let mut last = None;
    for _ in 0..10 {
        let conn = cluster.any_connection().await?;
        let version = conn.version::<FindCoordinatorRequest>()?;
        let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
        if version >= 4 {
            request.coordinator_keys = vec![s(key)];
        } else {
            request.key = s(key);
        }
        let r = conn.send_at(&request, version).await?;
        let (code, host, port) = if version >= 4 {
            match r.coordinators.first() {
                Some(c) => (c.error_code, c.host.to_string(), c.port),
                None => {
                    return Err(ClientError::Protocol(
                        "empty FindCoordinator response".into(),
                    ))
                }
            }
        } else {
            (r.error_code, r.host.to_string(), r.port)
        };
        if code == 0 {
            return cluster
                .connection_for(&format!("{host}:{port}"), "coordinator")
                .await;
        }
        let e = ClientError::kafka(code);
        if !e.is_retriable() {
            return Err(e);
        }
        last = Some(e);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    Err(last.unwrap_or(ClientError::kafka(COORDINATOR_NOT_AVAILABLE)))
}

/// A ConsumerProtocolSubscription (version 1: topics, user data, owned partitions) with its
/// version prefix.
fn encode_subscription<'a>(
    topics: impl Iterator<Item = &'a String>,
    owned: &BTreeSet<TopicPartition>,
) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(topics.map(|t| s(t)).collect())
        .with_owned_partitions(
            by_topic(owned)
                .into_iter()
                .map(|(t, ps)| {
                    OwnedTopic::default()
                        .with_topic(TopicName(s(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    encode_versioned(&sub, 1)
}

fn encode_versioned<M: Encodable>(m: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    // Encoding a struct built above at a version that has all its fields cannot fail.
    if let Err(e) = m.encode(&mut buf, version) {
        tracing::error!(error = %e, "encoding consumer protocol metadata");
    }
    buf.freeze()
}

/// A member's subscription as JoinGroup gives it to the leader (any version 0-3; newer
/// versions are read as the newest known, whose fields they extend).
fn decode_subscription(
    member_id: &StrBytes,
    instance_id: Option<&StrBytes>,
    metadata: &Bytes,
) -> Result<MemberSubscription> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return Err(ClientError::Protocol(format!(
            "member {member_id}: empty subscription"
        )));
    }
    let version = buf
        .get_i16()
        .clamp(0, ConsumerProtocolSubscription::VERSIONS.max);
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version)
        .map_err(|e| ClientError::Protocol(format!("member {member_id}: subscription: {e}")))?;
    Ok(MemberSubscription {
        member_id: member_id.to_string(),
        instance_id: instance_id.map(|i| i.to_string()),
        topics: sub.topics.iter().map(|t| t.to_string()).collect(),
        owned: sub
            .owned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), *p))
            })
            .collect(),
        generation: if version >= 2 { sub.generation_id } else { -1 },
    })
}

fn encode_assignment(parts: &[TopicPartition]) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic(parts)
            .into_iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(s(t)))
                    .with_partitions(ps)
            })
            .collect(),
    );
    encode_versioned(&a, 0)
}

/// The partitions of a ConsumerProtocolAssignment (empty bytes: nothing assigned).
pub(crate) fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Ok(Vec::new());
    }
    let version = buf
        .get_i16()
        .clamp(0, ConsumerProtocolAssignment::VERSIONS.max);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version)
        .map_err(|e| ClientError::Protocol(format!("assignment: {e}")))?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic.0.to_string(), *p))
        })
        .collect())
}

/// A KIP-1082 member id: 22 random URL-safe characters, as Kafka's base64 UUIDs look.
fn random_member_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..22)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The regex as the user wrote it (the consumer anchors it as `^(?:...)$` to match whole
/// names; the coordinator anchors it itself).
fn strip_anchors(anchored: &str) -> String {
    anchored
        .strip_prefix("^(?:")
        .and_then(|r| r.strip_suffix(")$"))
        .unwrap_or(anchored)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let owned: BTreeSet<TopicPartition> = [("t".to_string(), 1), ("t".to_string(), 3)].into();
        let topics = ["t".to_string(), "u".to_string()];
        let bytes = encode_subscription(topics.iter(), &owned);
        let m = decode_subscription(&s("m1"), None, &bytes).unwrap();
        assert_eq!(m.topics, vec!["t", "u"]);
        assert_eq!(m.owned, vec![("t".to_string(), 1), ("t".to_string(), 3)]);
        let parts = vec![("t".to_string(), 0), ("u".to_string(), 2)];
        assert_eq!(
            decode_assignment(&encode_assignment(&parts)).unwrap(),
            parts
        );
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
        assert!(decode_subscription(&s("m"), None, &Bytes::from_static(&[0, 0, 255])).is_err());
    }

    #[test]
    fn member_ids_are_random_and_url_safe() {
        let (a, b) = (random_member_id(), random_member_id());
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert_eq!(strip_anchors("^(?:orders-.*)$"), "orders-.*");
    }
}
