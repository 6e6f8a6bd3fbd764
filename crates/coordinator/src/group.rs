//! One classic consumer group: Kafka's group state machine (Empty, PreparingRebalance,
//! CompletingRebalance, Stable, Dead), its members and its committed offsets.
//!
//! The state machine is synchronous and takes the time as an argument; callers hold the
//! group's lock. Requests that must wait (JoinGroup until the rebalance completes, SyncGroup
//! until the leader's assignment arrives) leave a oneshot sender in their member and get the
//! receiver back. Durable changes go through a [`RecordSink`] before anyone is answered.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::codes;
use crate::consumer_group::ConsumerGroup;
use crate::records::{GroupValue, MemberValue, OffsetValue, RecordKey};

/// One `__consumer_offsets` record: encoded key, and value (`None` is a tombstone).
pub type Record = (Vec<u8>, Option<Vec<u8>>);

/// Where a group's durable records go (its `__consumer_offsets` partition).
pub trait RecordSink {
    /// Appends records atomically, durably per the log's settings.
    fn append(&self, records: &[Record]) -> Result<(), String>;
}

/// The group states, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Everyone has an assignment.
    Stable,
    /// Deleted or unloaded.
    Dead,
}

impl GroupState {
    /// Kafka's spelling (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup request, in the coordinator's terms.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Member id (empty on the first join).
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout (ms).
    pub session_timeout_ms: i32,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// Protocol type (`consumer`).
    pub protocol_type: String,
    /// Protocols (assignors) in preference order, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394: a new member must first get its id (JoinGroup v4+).
    pub require_known_member_id: bool,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinResponse {
    /// Error code.
    pub error: i16,
    /// Generation.
    pub generation: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen protocol.
    pub protocol_name: Option<String>,
    /// Leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// For the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResponse {
    fn error(error: i16, member_id: &str) -> Self {
        JoinResponse {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// A SyncGroup answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResponse {
    /// Error code.
    pub error: i16,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

/// A JoinGroup or SyncGroup outcome: now, or later through the receiver.
#[derive(Debug)]
pub enum Reply<T> {
    /// Answer now.
    Now(T),
    /// Answer when the group gets there.
    Later(oneshot::Receiver<T>),
}

/// One member of a classic group.
#[derive(Debug)]
pub struct Member {
    /// Member id.
    pub id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout (ms).
    pub session_timeout_ms: i32,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// Protocols in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// Current assignment.
    pub assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResponse>>,
    sync_waiter: Option<oneshot::Sender<SyncResponse>>,
    /// When the session expires without a heartbeat (ms).
    heartbeat_deadline: i64,
}

impl Member {
    /// The metadata this member gave for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, other: &[(String, Bytes)]) -> bool {
        self.protocols == other
    }
}

/// A group and its offsets.
#[derive(Debug)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// State.
    pub state: GroupState,
    /// When the state last changed (ms).
    pub state_since_ms: i64,
    /// Protocol type of the members (`consumer`).
    pub protocol_type: Option<String>,
    /// Chosen protocol.
    pub protocol: Option<String>,
    /// Generation.
    pub generation: i32,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, with their expiry (KIP-394).
    pending: HashMap<String, i64>,
    /// Static instance id to member id.
    static_members: HashMap<String, String>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Offsets committed inside transactions not yet ended (TxnOffsetCommit), by producer
    /// id: they become committed offsets when the COMMIT marker reaches the group's
    /// partition, and are dropped at an ABORT.
    pub pending_txn: HashMap<i64, BTreeMap<(String, i32), OffsetValue>>,
    /// End of the join phase (PreparingRebalance).
    rebalance_deadline: Option<i64>,
    /// The join phase of a new group waits group.initial.rebalance.delay.ms, extended by
    /// each join up to the rebalance timeout: (phase start, delay).
    initial_delay: Option<(i64, i64)>,
    /// End of the sync phase (CompletingRebalance).
    sync_deadline: Option<i64>,
    /// group.initial.rebalance.delay.ms.
    initial_delay_ms: i64,
    /// The metadata changed in a way that must be stored (see [`Group::take_dirty`]).
    dirty: bool,
    /// The KIP-848 side, once a member used ConsumerGroupHeartbeat.
    pub modern: Option<ConsumerGroup>,
}

/// Limits from the broker config.
#[derive(Debug, Clone)]
pub struct GroupLimits {
    /// group.min.session.timeout.ms.
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms.
    pub max_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms.
    pub initial_rebalance_delay_ms: i64,
    /// group.max.size.
    pub max_size: usize,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
        }
    }
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, initial_delay_ms: i64, now: i64) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: BTreeMap::new(),
            pending_txn: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            sync_deadline: None,
            initial_delay_ms,
            dirty: false,
            modern: None,
        }
    }

    /// True (once) when the group's metadata changed without being stored: the caller
    /// writes [`Group::value`].
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    fn transition(&mut self, to: GroupState, now: i64) {
        tracing::debug!(group = %self.id, from = self.state.name(), to = to.name(), generation = self.generation, "group state");
        self.state = to;
        self.state_since_ms = now;
    }

    /// The earliest time [`Group::on_timer`] has work to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let members = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.heartbeat_deadline);
        members
            .chain(self.modern.as_ref().and_then(ConsumerGroup::next_deadline))
            .chain(self.pending.values().copied())
            .chain(self.rebalance_deadline)
            .chain(self.sync_deadline)
            .min()
    }

    /// Rebuilds a group from its stored metadata: members come back Stable, with fresh
    /// session deadlines (as Kafka does when a coordinator loads a partition).
    pub fn load(&mut self, value: &GroupValue, now: i64) {
        self.protocol_type = Some(value.protocol_type.clone());
        self.generation = value.generation;
        self.protocol = value.protocol.clone();
        self.leader = value.leader.clone();
        self.members.clear();
        self.static_members.clear();
        for m in &value.members {
            let protocols = match &value.protocol {
                Some(p) => vec![(p.clone(), m.subscription.clone())],
                None => vec![],
            };
            if let Some(i) = &m.group_instance_id {
                self.static_members.insert(i.clone(), m.member_id.clone());
            }
            self.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols,
                    assignment: m.assignment.clone(),
                    join_waiter: None,
                    sync_waiter: None,
                    heartbeat_deadline: now + i64::from(m.session_timeout_ms),
                },
            );
        }
        let state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.transition(state, now);
    }

    /// The stored form of the group's metadata.
    pub fn value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Writes the group's metadata record.
    pub(crate) fn persist(&self, sink: &dyn RecordSink) -> Result<(), String> {
        let key = RecordKey::Group {
            group: self.id.clone(),
        };
        sink.append(&[(key.encode(), Some(self.value().encode()))])
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// JoinGroup.
    pub fn join(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        sink: &dyn RecordSink,
        now: i64,
    ) -> Reply<JoinResponse> {
        if req.session_timeout_ms < limits.min_session_timeout_ms
            || req.session_timeout_ms > limits.max_session_timeout_ms
        {
            return Reply::Now(JoinResponse::error(
                codes::INVALID_SESSION_TIMEOUT,
                &req.member_id,
            ));
        }
        if self.state == GroupState::Dead {
            return Reply::Now(JoinResponse::error(
                codes::COORDINATOR_NOT_AVAILABLE,
                &req.member_id,
            ));
        }
        if self.has_modern_members() {
            // A KIP-848 group with members: classic members cannot join it.
            return Reply::Now(JoinResponse::error(
                codes::INCONSISTENT_GROUP_PROTOCOL,
                &req.member_id,
            ));
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return Reply::Now(JoinResponse::error(
                codes::INCONSISTENT_GROUP_PROTOCOL,
                &req.member_id,
            ));
        }
        if req.member_id.is_empty() {
            return self.join_unknown(req, limits, sink, now);
        }
        if let Some(instance) = &req.group_instance_id {
            if let Some(current) = self.static_members.get(instance) {
                if current != &req.member_id {
                    return Reply::Now(JoinResponse::error(
                        codes::FENCED_INSTANCE_ID,
                        &req.member_id,
                    ));
                }
            }
        }
        if self.pending.remove(&req.member_id).is_some() {
            return self.add_member(req.member_id.clone(), req, limits, now);
        }
        let Some(member) = self.members.get(&req.member_id) else {
            return Reply::Now(JoinResponse::error(
                codes::UNKNOWN_MEMBER_ID,
                &req.member_id,
            ));
        };
        let unchanged = member.same_protocols(&req.protocols);
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                Reply::Now(self.join_response_for(&req.member_id))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Reply::Now(self.join_response_for(&req.member_id))
            }
            GroupState::Empty | GroupState::Dead => Reply::Now(JoinResponse::error(
                codes::UNKNOWN_MEMBER_ID,
                &req.member_id,
            )),
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.protocols = req.protocols;
                    m.session_timeout_ms = req.session_timeout_ms;
                    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
                    m.heartbeat_deadline = now + i64::from(req.session_timeout_ms);
                    if let Some(old) = m.join_waiter.replace(tx) {
                        let _ = old.send(JoinResponse::error(
                            codes::UNKNOWN_MEMBER_ID,
                            &req.member_id,
                        ));
                    }
                }
                self.rebalance_or_wait(now, "member rejoined with new metadata");
                Reply::Later(rx)
            }
        }
    }

    fn join_unknown(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        sink: &dyn RecordSink,
        now: i64,
    ) -> Reply<JoinResponse> {
        let new_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static(old_id, new_id, req, sink, now);
            }
            return self.add_member(new_id, req, limits, now);
        }
        if req.require_known_member_id {
            self.pending
                .insert(new_id.clone(), now + i64::from(req.session_timeout_ms));
            return Reply::Now(JoinResponse::error(codes::MEMBER_ID_REQUIRED, &new_id));
        }
        self.add_member(new_id, req, limits, now)
    }

    /// KIP-345: a static member came back under a new member id. Its old id is fenced; in a
    /// Stable group with the same subscription it keeps its assignment with no rebalance.
    fn replace_static(
        &mut self,
        old_id: String,
        new_id: String,
        req: JoinRequest,
        sink: &dyn RecordSink,
        now: i64,
    ) -> Reply<JoinResponse> {
        let Some(mut member) = self.members.remove(&old_id) else {
            self.static_members
                .remove(req.group_instance_id.as_deref().unwrap_or(""));
            return Reply::Now(JoinResponse::error(codes::UNKNOWN_MEMBER_ID, ""));
        };
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResponse::error(codes::FENCED_INSTANCE_ID, &old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResponse {
                error: codes::FENCED_INSTANCE_ID,
                ..Default::default()
            });
        }
        let unchanged = member.same_protocols(&req.protocols);
        member.id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.heartbeat_deadline = now + i64::from(req.session_timeout_ms);
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        if let Some(i) = &req.group_instance_id {
            self.static_members.insert(i.clone(), new_id.clone());
        }
        match self.state {
            GroupState::Stable if unchanged => {
                self.members.insert(new_id.clone(), member);
                if let Err(e) = self.persist(sink) {
                    tracing::warn!(group = %self.id, error = %e, "could not store a static member's new id");
                }
                // The member is told the current generation but not that it leads: it must
                // not reassign (Kafka's rule for a returning static leader).
                let mut r = self.join_response_for(&new_id);
                r.members.clear();
                if r.leader == new_id {
                    r.leader = String::new();
                }
                tracing::info!(group = %self.id, member = %new_id, "static member rejoined without a rebalance");
                Reply::Now(r)
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                member.protocols = req.protocols;
                member.join_waiter = Some(tx);
                self.members.insert(new_id, member);
                self.rebalance_or_wait(now, "static member rejoined");
                Reply::Later(rx)
            }
        }
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        limits: &GroupLimits,
        now: i64,
    ) -> Reply<JoinResponse> {
        if self.members.len() >= limits.max_size {
            return Reply::Now(JoinResponse::error(codes::GROUP_MAX_SIZE_REACHED, &id));
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let (tx, rx) = oneshot::channel();
        if let Some(i) = &req.group_instance_id {
            self.static_members.insert(i.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                heartbeat_deadline: now + i64::from(req.session_timeout_ms),
            },
        );
        match self.state {
            GroupState::PreparingRebalance => {
                if let Some((start, delay)) = self.initial_delay {
                    // A join during the initial delay pushes the end out again, up to the
                    // rebalance timeout.
                    let cap = start + self.max_rebalance_timeout();
                    self.rebalance_deadline = Some((now + delay).min(cap).max(now));
                }
                self.check_join_complete(now);
            }
            _ => self.prepare_rebalance(now, "member joined"),
        }
        Reply::Later(rx)
    }

    /// A member (re)joined: in the join phase, see whether everyone is in; otherwise start
    /// one.
    fn rebalance_or_wait(&mut self, now: i64, reason: &str) {
        if self.state == GroupState::PreparingRebalance {
            self.check_join_complete(now);
        } else {
            self.prepare_rebalance(now, reason);
        }
    }

    fn prepare_rebalance(&mut self, now: i64, reason: &str) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResponse {
                        error: codes::REBALANCE_IN_PROGRESS,
                        ..Default::default()
                    });
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        self.sync_deadline = None;
        self.transition(GroupState::PreparingRebalance, now);
        tracing::info!(group = %self.id, reason, generation = self.generation, "preparing to rebalance");
        if was_empty && self.initial_delay_ms > 0 {
            let delay = self.initial_delay_ms;
            self.initial_delay = Some((now, delay));
            self.rebalance_deadline = Some(now + delay.min(self.max_rebalance_timeout()));
        } else {
            self.initial_delay = None;
            self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
            self.check_join_complete(now);
        }
    }

    fn check_join_complete(&mut self, now: i64) {
        if self.state != GroupState::PreparingRebalance || self.initial_delay.is_some() {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        if all_joined && self.pending.is_empty() {
            self.complete_join(now);
        }
    }

    /// Ends the join phase: members that did not rejoin leave, the generation advances, the
    /// protocol is chosen and every waiting member gets its JoinGroup answer.
    fn complete_join(&mut self, now: i64) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time; removed");
            self.remove_member(&id);
        }
        self.rebalance_deadline = None;
        self.initial_delay = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty, now);
            self.dirty = true;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.transition(GroupState::CompletingRebalance, now);
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.join_response_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.heartbeat_deadline = now + i64::from(m.session_timeout_ms);
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(response);
                }
            }
        }
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), protocol = ?self.protocol, "rebalance: join phase complete");
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| &p == n))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((vote, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map(|(name, _)| name.clone())
    }

    fn join_response_for(&self, member_id: &str) -> JoinResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: codes::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn remove_member(&mut self, id: &str) -> Option<Member> {
        let mut m = self.members.remove(id)?;
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(id) {
                self.static_members.remove(i);
            }
        }
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResponse::error(codes::UNKNOWN_MEMBER_ID, id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResponse {
                error: codes::UNKNOWN_MEMBER_ID,
                ..Default::default()
            });
        }
        Some(m)
    }

    /// Checks a member's identity and generation (Heartbeat, SyncGroup, OffsetCommit).
    fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if let Some(i) = instance_id {
            match self.static_members.get(i) {
                Some(current) if current != member_id => return Err(codes::FENCED_INSTANCE_ID),
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(codes::UNKNOWN_MEMBER_ID);
        }
        if generation != self.generation {
            return Err(codes::ILLEGAL_GENERATION);
        }
        Ok(())
    }

    /// SyncGroup.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        sink: &dyn RecordSink,
        now: i64,
    ) -> Reply<SyncResponse> {
        let error = |error| {
            Reply::Now(SyncResponse {
                error,
                ..Default::default()
            })
        };
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            return error(codes::UNKNOWN_MEMBER_ID);
        }
        if let Err(e) = self.validate_member(member_id, instance_id, generation) {
            return error(e);
        }
        if protocol_type.is_some_and(|p| Some(p) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != self.protocol.as_deref())
        {
            return error(codes::INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            GroupState::PreparingRebalance => error(codes::REBALANCE_IN_PROGRESS),
            GroupState::Stable => Reply::Now(self.sync_response(member_id)),
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                    m.heartbeat_deadline = now + i64::from(m.session_timeout_ms);
                }
                if self.leader.as_deref() == Some(member_id) {
                    let given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.get(&m.id).cloned().unwrap_or_default();
                    }
                    if let Err(e) = self.persist(sink) {
                        tracing::warn!(group = %self.id, error = %e, "could not store the group's assignment");
                        for m in self.members.values_mut() {
                            m.assignment = Bytes::new();
                            if let Some(w) = m.sync_waiter.take() {
                                let _ = w.send(SyncResponse {
                                    error: codes::COORDINATOR_NOT_AVAILABLE,
                                    ..Default::default()
                                });
                            }
                        }
                        self.prepare_rebalance(now, "storing the assignment failed");
                        return Reply::Later(rx);
                    }
                    self.sync_deadline = None;
                    self.transition(GroupState::Stable, now);
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let response = self.sync_response(&id);
                        if let Some(m) = self.members.get_mut(&id) {
                            if let Some(w) = m.sync_waiter.take() {
                                let _ = w.send(response);
                            }
                        }
                    }
                    tracing::info!(group = %self.id, generation = self.generation, "group is stable");
                }
                Reply::Later(rx)
            }
        }
    }

    fn sync_response(&self, member_id: &str) -> SyncResponse {
        SyncResponse {
            error: codes::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> i16 {
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            return codes::UNKNOWN_MEMBER_ID;
        }
        if let Err(e) = self.validate_member(member_id, instance_id, generation) {
            // A member of the previous generation still keeps its session while it rejoins.
            if e == codes::ILLEGAL_GENERATION && self.state == GroupState::PreparingRebalance {
                self.touch(member_id, now);
                return codes::REBALANCE_IN_PROGRESS;
            }
            return e;
        }
        self.touch(member_id, now);
        match self.state {
            GroupState::PreparingRebalance => codes::REBALANCE_IN_PROGRESS,
            _ => codes::NONE,
        }
    }

    fn touch(&mut self, member_id: &str, now: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.heartbeat_deadline = now + i64::from(m.session_timeout_ms);
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id for a static member).
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, now: i64) -> i16 {
        let id = match instance_id {
            Some(i) => match self.static_members.get(i) {
                Some(current) if member_id.is_empty() || current == member_id => current.clone(),
                Some(_) => return codes::FENCED_INSTANCE_ID,
                None => return codes::UNKNOWN_MEMBER_ID,
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            return codes::NONE;
        }
        if self.remove_member(&id).is_none() {
            return codes::UNKNOWN_MEMBER_ID;
        }
        tracing::info!(group = %self.id, member = %id, "member left");
        self.after_removal(now, "member left");
        codes::NONE
    }

    fn after_removal(&mut self, now: i64, reason: &str) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, reason)
            }
            GroupState::PreparingRebalance => {
                if self.members.is_empty() {
                    self.initial_delay = None;
                }
                self.check_join_complete(now)
            }
            _ => {}
        }
    }

    /// Expires sessions and ends join and sync phases whose time is up.
    pub fn on_timer(&mut self, now: i64) {
        if let Some(m) = self.modern.as_mut() {
            m.on_timer(now);
        }
        let pending_before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        if self.pending.len() < pending_before {
            // A member id handed out by MEMBER_ID_REQUIRED that never came back no longer
            // holds the join phase open (as Kafka's pending-member expiry does).
            tracing::info!(group = %self.id, expired = pending_before - self.pending.len(), "pending member ids expired");
            self.check_join_complete(now);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none() && m.sync_waiter.is_none() && m.heartbeat_deadline <= now
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "session timed out; member removed");
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.after_removal(now, "session timeout");
        }
        if self.state == GroupState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| d <= now)
        {
            self.complete_join(now);
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| d <= now)
        {
            let lagging: Vec<String> = self
                .members
                .values()
                .filter(|m| m.sync_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            for id in &lagging {
                self.remove_member(id);
            }
            self.sync_deadline = None;
            self.prepare_rebalance(now, "members did not sync in time");
        }
    }

    /// Validates an OffsetCommit against the group (Kafka's rules for classic groups):
    /// a commit with no member and generation -1 is a manual-assignment commit, accepted
    /// while the group has no members.
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(codes::COORDINATOR_NOT_AVAILABLE);
        }
        if let Some(m) = self.modern.as_ref().filter(|m| !m.members.is_empty()) {
            return m.validate_commit(member_id, generation);
        }
        if generation < 0 && member_id.is_empty() && self.members.is_empty() {
            return Ok(());
        }
        self.validate_member(member_id, instance_id, generation)?;
        if self.state == GroupState::CompletingRebalance {
            return Err(codes::REBALANCE_IN_PROGRESS);
        }
        self.touch(member_id, now);
        Ok(())
    }

    /// TxnOffsetCommit's check (KIP-447): a producer that passes no member and generation
    /// (older clients) is not checked; one that does must be a current member of the
    /// current generation. A rebalance in progress does not refuse it.
    pub fn validate_txn_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(codes::COORDINATOR_NOT_AVAILABLE);
        }
        if generation < 0 && member_id.is_empty() {
            return Ok(());
        }
        if let Some(m) = self.modern.as_ref().filter(|m| !m.members.is_empty()) {
            return m.validate_commit(member_id, generation);
        }
        self.validate_member(member_id, instance_id, generation)
    }

    /// Topics the members subscribe to: KIP-848 members' topics (names and regex matches),
    /// and classic members' from their consumer-protocol subscriptions.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        let mut out: Vec<String> = self
            .modern
            .iter()
            .flat_map(|m| m.members.values())
            .flat_map(|m| m.effective.iter().cloned())
            .collect();
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return Some(out);
        }
        let protocol = self.protocol.clone()?;
        for m in self.members.values() {
            out.extend(subscription_topics(&m.metadata(&protocol))?);
        }
        Some(out)
    }

    /// True when KIP-848 members are in the group.
    pub fn has_modern_members(&self) -> bool {
        self.modern.as_ref().is_some_and(|m| !m.members.is_empty())
    }

    /// State name, protocol type and group type as ListGroups shows them.
    pub fn listing(&self) -> (&'static str, String, &'static str) {
        match &self.modern {
            Some(m)
                if !m.members.is_empty()
                    || self.members.is_empty() && self.protocol_type.is_none() =>
            {
                (m.state_name(), "consumer".into(), "consumer")
            }
            _ => (
                self.state.name(),
                self.protocol_type.clone().unwrap_or_default(),
                "classic",
            ),
        }
    }

    /// Marks the group deleted, answering anyone still waiting.
    pub fn kill(&mut self, now: i64) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            self.remove_member(&id);
        }
        self.pending.clear();
        self.transition(GroupState::Dead, now);
    }
}

/// Topics of a ConsumerProtocolSubscription (versions 0-3 share the leading topics array).
pub fn subscription_topics(mut buf: &[u8]) -> Option<Vec<String>> {
    use bytes::Buf;
    if buf.len() < 6 {
        return None;
    }
    let _version = buf.get_i16();
    let n = buf.get_i32();
    if n < 0 || n as usize > buf.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(n as usize);
    for _ in 0..n {
        if buf.len() < 2 {
            return None;
        }
        let len = buf.get_i16();
        if len < 0 || buf.len() < len as usize {
            return None;
        }
        topics.push(String::from_utf8_lossy(&buf[..len as usize]).into_owned());
        buf.advance(len as usize);
    }
    Some(topics)
}
