//! KIP-848 consumer groups (`group.protocol=consumer`): the coordinator computes the target
//! assignment itself (uniform or range assignor) and moves each member to it through
//! ConsumerGroupHeartbeat, one step at a time: a member first gives up the partitions it
//! must revoke (keeping its epoch), and only then gets the next epoch and the partitions that
//! no other member still holds.
//!
//! Members and their epochs live in memory only: after a coordinator restart a member's next
//! heartbeat is UNKNOWN_MEMBER_ID and it rejoins with epoch 0 (committed offsets are kept in
//! `__consumer_offsets` like any group's).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::codes;
use crate::group::Record;
use crate::records::{
    decode_epoch, decode_target, encode_epoch, encode_target, ConsumerMemberValue,
    CurrentAssignmentValue, RecordKey,
};

/// Partitions by topic id.
pub type Assignment = BTreeMap<uuid::Uuid, BTreeSet<i32>>;

/// Topics the coordinator can assign: name to (id, partition count).
pub type TopicsView = HashMap<String, (uuid::Uuid, i32)>;

/// The assignors the coordinator runs (group.consumer.assignors; the first is the default).
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// A ConsumerGroupHeartbeat, in the coordinator's terms.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Member id (empty on a v0 join: the coordinator picks one).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member's temporary leave, else its epoch.
    pub member_epoch: i32,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names (`None` = unchanged).
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscribed topic regular expression, RE2 syntax (`None` = unchanged, empty = none).
    pub subscribed_topic_regex: Option<String>,
    /// Preferred server assignor (`None` = unchanged).
    pub server_assignor: Option<String>,
    /// Partitions the member owns now (`None` = unchanged).
    pub owned: Option<Assignment>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// Member id.
    pub member_id: String,
    /// The member's epoch now.
    pub member_epoch: i32,
    /// The member's assignment, when it changed (or on join).
    pub assignment: Option<Assignment>,
}

/// One member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Member id.
    pub id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Current epoch.
    pub epoch: i32,
    previous_epoch: i32,
    /// Subscribed topics.
    pub subscribed: Vec<String>,
    /// Subscribed regular expression.
    pub regex: Option<String>,
    /// `regex`, compiled to match whole topic names.
    compiled: Option<regex::Regex>,
    /// Topics it subscribes to now: the names plus the topics the regex matches.
    pub effective: Vec<String>,
    /// When partitions it was told to revoke must be given up by (its rebalance timeout).
    revoke_deadline: Option<i64>,
    /// Preferred assignor.
    pub assignor: Option<String>,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// What the member was told it owns.
    pub assigned: Assignment,
    /// What it was told to give up and has not confirmed yet.
    revoking: Assignment,
    /// The last assignment sent, to send only changes.
    last_sent: Option<Assignment>,
    /// Session expiry (ms).
    deadline: i64,
}

/// A KIP-848 group's membership and assignment.
#[derive(Debug, Default)]
pub struct ConsumerGroup {
    /// Bumped by every change of members, subscriptions or topic sizes.
    pub group_epoch: i32,
    /// The epoch the target assignment was computed for.
    pub assignment_epoch: i32,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment per member.
    pub target: HashMap<String, Assignment>,
    /// Partition counts of the subscribed topics the target was computed from.
    topic_sizes: BTreeMap<String, i32>,
    /// The assignor in use.
    pub assignor: String,
    /// The records last written for this group, by key: only changes are written again.
    persisted: HashMap<RecordKey, Vec<u8>>,
    /// Rebuilt from records, whose target already reflects the topics: the first look at
    /// topic sizes after a restore is not a change.
    restored: bool,
}

/// A subscription regex, matching whole topic names (Kafka matches the full name).
fn compile(pattern: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?:{pattern})$")).ok()
}

fn contains(a: &Assignment, t: &uuid::Uuid, p: i32) -> bool {
    a.get(t).is_some_and(|s| s.contains(&p))
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        for p in ps {
            if !contains(b, t, *p) {
                out.entry(*t).or_default().insert(*p);
            }
        }
    }
    out
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

impl ConsumerGroup {
    /// The records that bring `__consumer_offsets` up to date with this group (Kafka's
    /// KIP-848 record types 3, 5, 6, 7 and 8), with tombstones for members that left; all
    /// of them are tombstoned once the group has no members.
    pub fn take_records(&mut self, group: &str) -> Vec<Record> {
        let mut desired: HashMap<RecordKey, Vec<u8>> = HashMap::new();
        if !self.members.is_empty() {
            let g = || group.to_string();
            desired.insert(
                RecordKey::ConsumerGroup { group: g() },
                encode_epoch(self.group_epoch),
            );
            desired.insert(
                RecordKey::TargetMetadata { group: g() },
                encode_epoch(self.assignment_epoch),
            );
            for m in self.members.values() {
                let value = ConsumerMemberValue {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed.clone(),
                    subscribed_topic_regex: m.regex.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    server_assignor: m.assignor.clone(),
                };
                desired.insert(
                    RecordKey::ConsumerMember {
                        group: g(),
                        member: m.id.clone(),
                    },
                    value.encode(),
                );
                desired.insert(
                    RecordKey::TargetMember {
                        group: g(),
                        member: m.id.clone(),
                    },
                    encode_target(&self.target.get(&m.id).cloned().unwrap_or_default()),
                );
                let state = if !m.revoking.is_empty() {
                    1
                } else if m.epoch != self.assignment_epoch {
                    2
                } else {
                    0
                };
                let current = CurrentAssignmentValue {
                    member_epoch: m.epoch,
                    previous_member_epoch: m.previous_epoch,
                    state,
                    assigned: m.assigned.clone(),
                    pending_revocation: m.revoking.clone(),
                };
                desired.insert(
                    RecordKey::CurrentAssignment {
                        group: g(),
                        member: m.id.clone(),
                    },
                    current.encode(),
                );
            }
        }
        let mut out: Vec<Record> = desired
            .iter()
            .filter(|(k, v)| self.persisted.get(*k) != Some(*v))
            .map(|(k, v)| (k.encode(), Some(v.clone())))
            .collect();
        out.extend(
            self.persisted
                .keys()
                .filter(|k| !desired.contains_key(*k))
                .map(|k| (k.encode(), None)),
        );
        self.persisted = desired;
        out
    }

    /// Rebuilds a group from its replayed records (the latest value of each key), with
    /// fresh sessions. `None` when no member is left in them.
    pub fn restore(
        records: HashMap<RecordKey, Vec<u8>>,
        session_timeout_ms: i64,
        now: i64,
    ) -> Option<ConsumerGroup> {
        let mut g = ConsumerGroup::default();
        let mut current: HashMap<String, CurrentAssignmentValue> = HashMap::new();
        for (k, v) in &records {
            match k {
                RecordKey::ConsumerGroup { .. } => g.group_epoch = decode_epoch(v).ok()?,
                RecordKey::TargetMetadata { .. } => g.assignment_epoch = decode_epoch(v).ok()?,
                RecordKey::TargetMember { member, .. } => {
                    g.target.insert(member.clone(), decode_target(v).ok()?);
                }
                RecordKey::CurrentAssignment { member, .. } => {
                    current.insert(member.clone(), CurrentAssignmentValue::decode(v).ok()?);
                }
                RecordKey::ConsumerMember { member, .. } => {
                    let m = ConsumerMemberValue::decode(v).ok()?;
                    g.members.insert(
                        member.clone(),
                        ConsumerMember {
                            id: member.clone(),
                            instance_id: m.instance_id,
                            rack_id: m.rack_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            epoch: 0,
                            previous_epoch: -1,
                            subscribed: m.subscribed_topic_names,
                            compiled: m.subscribed_topic_regex.as_deref().and_then(compile),
                            regex: m.subscribed_topic_regex,
                            effective: Vec::new(),
                            revoke_deadline: None,
                            assignor: m.server_assignor,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            assigned: Assignment::new(),
                            revoking: Assignment::new(),
                            last_sent: None,
                            deadline: now + session_timeout_ms,
                        },
                    );
                }
                _ => {}
            }
        }
        for (id, m) in g.members.iter_mut() {
            if let Some(c) = current.remove(id) {
                m.epoch = c.member_epoch;
                m.previous_epoch = c.previous_member_epoch;
                m.assigned = c.assigned;
                m.revoking = c.pending_revocation;
                m.last_sent = Some(m.assigned.clone());
            }
        }
        g.target.retain(|id, _| g.members.contains_key(id));
        g.assignor = g
            .members
            .values()
            .filter_map(|m| m.assignor.clone())
            .next()
            .unwrap_or_else(|| ASSIGNORS[0].to_string());
        g.persisted = records;
        g.restored = true;
        (!g.members.is_empty()).then_some(g)
    }

    /// Kafka's state names: Empty, Assigning, Reconciling, Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The earliest session expiry.
    pub fn next_deadline(&self) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| std::iter::once(m.deadline).chain(m.revoke_deadline))
            .min()
    }

    /// Removes members whose session expired; true if any went.
    pub fn on_timer(&mut self, now: i64) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(member = %id, "consumer group member timed out (session, or revoking beyond its rebalance timeout)");
            self.remove(id);
        }
        !expired.is_empty()
    }

    fn remove(&mut self, id: &str) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.group_epoch += 1;
        }
    }

    /// Validates an OffsetCommit's member and epoch.
    pub fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), i16> {
        let m = self
            .members
            .get(member_id)
            .ok_or(codes::UNKNOWN_MEMBER_ID)?;
        if epoch != m.epoch {
            return Err(codes::STALE_MEMBER_EPOCH);
        }
        Ok(())
    }

    /// ConsumerGroupHeartbeat.
    pub fn heartbeat(
        &mut self,
        req: Heartbeat,
        topics: &TopicsView,
        session_timeout_ms: i64,
        max_size: usize,
        now: i64,
    ) -> Result<HeartbeatResponse, i16> {
        if let Some(a) = &req.server_assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return Err(codes::UNSUPPORTED_ASSIGNOR);
            }
        }
        let id = match req.member_epoch {
            0 => {
                if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                    return Err(codes::INVALID_REQUEST);
                }
                let id = if req.member_id.is_empty() {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    req.member_id.clone()
                };
                // A static member coming back replaces its old incarnation.
                if let Some(instance) = &req.instance_id {
                    let old: Vec<String> = self
                        .members
                        .values()
                        .filter(|m| m.instance_id.as_ref() == Some(instance) && m.id != id)
                        .map(|m| m.id.clone())
                        .collect();
                    for o in old {
                        self.remove(&o);
                    }
                }
                if self.members.contains_key(&id) {
                    // Rejoining after being fenced: start over.
                    self.remove(&id);
                }
                if self.members.len() >= max_size {
                    return Err(codes::GROUP_MAX_SIZE_REACHED);
                }
                self.members.insert(
                    id.clone(),
                    ConsumerMember {
                        id: id.clone(),
                        instance_id: req.instance_id.clone(),
                        rack_id: req.rack_id.clone(),
                        client_id: req.client_id.clone(),
                        client_host: req.client_host.clone(),
                        epoch: 0,
                        previous_epoch: -1,
                        subscribed: Vec::new(),
                        regex: None,
                        compiled: None,
                        effective: Vec::new(),
                        revoke_deadline: None,
                        assignor: None,
                        rebalance_timeout_ms: req.rebalance_timeout_ms,
                        assigned: Assignment::new(),
                        revoking: Assignment::new(),
                        last_sent: None,
                        deadline: now + session_timeout_ms,
                    },
                );
                self.group_epoch += 1;
                id
            }
            -1 | -2 => {
                if !self.members.contains_key(&req.member_id) {
                    return Err(codes::UNKNOWN_MEMBER_ID);
                }
                self.remove(&req.member_id);
                return Ok(HeartbeatResponse {
                    member_id: req.member_id,
                    member_epoch: req.member_epoch,
                    assignment: None,
                });
            }
            epoch => {
                let m = self
                    .members
                    .get(&req.member_id)
                    .ok_or(codes::UNKNOWN_MEMBER_ID)?;
                if epoch != m.epoch && epoch != m.previous_epoch {
                    return Err(codes::FENCED_MEMBER_EPOCH);
                }
                req.member_id.clone()
            }
        };
        let Some(m) = self.members.get_mut(&id) else {
            return Err(codes::UNKNOWN_MEMBER_ID);
        };
        m.deadline = now + session_timeout_ms;
        let mut changed = false;
        if let Some(mut names) = req.subscribed_topic_names.clone() {
            names.sort();
            names.dedup();
            if names != m.subscribed {
                m.subscribed = names;
                changed = true;
            }
        }
        if let Some(re) = &req.subscribed_topic_regex {
            let re = (!re.is_empty()).then(|| re.clone());
            if re != m.regex {
                m.compiled = match &re {
                    Some(p) => Some(compile(p).ok_or(codes::INVALID_REGULAR_EXPRESSION)?),
                    None => None,
                };
                m.regex = re;
                changed = true;
            }
        }
        if let Some(a) = &req.server_assignor {
            m.assignor = Some(a.clone());
        }
        if let Some(owned) = &req.owned {
            // Partitions the member no longer reports are released.
            let still = m.revoking.clone();
            m.revoking = Assignment::new();
            for (t, ps) in still {
                for p in ps {
                    if contains(owned, &t, p) {
                        m.revoking.entry(t).or_default().insert(p);
                    }
                }
            }
        }
        if changed {
            self.group_epoch += 1;
        }
        self.refresh_target(topics);
        self.reconcile(&id, now);
        let Some(m) = self.members.get_mut(&id) else {
            return Err(codes::UNKNOWN_MEMBER_ID);
        };
        let assignment = if m.last_sent.as_ref() != Some(&m.assigned) || req.member_epoch == 0 {
            m.last_sent = Some(m.assigned.clone());
            Some(m.assigned.clone())
        } else {
            None
        };
        Ok(HeartbeatResponse {
            member_id: id,
            member_epoch: m.epoch,
            assignment,
        })
    }

    /// Recomputes the target assignment when the group epoch moved or a subscribed topic
    /// changed size.
    fn refresh_target(&mut self, topics: &TopicsView) {
        // Regular expressions are matched against the topics as they are now: a new topic
        // that matches changes the subscription, as in Kafka.
        let mut moved = false;
        for m in self.members.values_mut() {
            let mut e = m.subscribed.clone();
            if let Some(r) = &m.compiled {
                e.extend(
                    topics
                        .keys()
                        .filter(|t| !t.starts_with("__") && r.is_match(t))
                        .cloned(),
                );
            }
            e.sort();
            e.dedup();
            if e != m.effective {
                m.effective = e;
                moved = true;
            }
        }
        if moved && !self.restored {
            self.group_epoch += 1;
        }
        let subscribed: BTreeSet<&String> =
            self.members.values().flat_map(|m| &m.effective).collect();
        let sizes: BTreeMap<String, i32> = subscribed
            .iter()
            .filter_map(|t| topics.get(*t).map(|(_, n)| ((*t).clone(), *n)))
            .collect();
        if sizes != self.topic_sizes {
            self.topic_sizes = sizes;
            if !self.restored {
                self.group_epoch += 1;
            }
        }
        self.restored = false;
        if self.assignment_epoch == self.group_epoch {
            return;
        }
        self.assignor = self
            .members
            .values()
            .filter_map(|m| m.assignor.clone())
            .next()
            .unwrap_or_else(|| ASSIGNORS[0].to_string());
        self.target = match self.assignor.as_str() {
            "range" => self.range(topics),
            _ => self.uniform(topics),
        };
        self.assignment_epoch = self.group_epoch;
        tracing::info!(epoch = self.group_epoch, members = self.members.len(), assignor = %self.assignor, "consumer group target assignment");
    }

    /// Balanced and sticky: every member's share is the floor or the ceiling of partitions
    /// over members (exactly `partitions % members` get the ceiling). Members keep what they
    /// own within their share; the rest goes to the least loaded subscribed member.
    fn uniform(&self, topics: &TopicsView) -> HashMap<String, Assignment> {
        let mut out: HashMap<String, Assignment> = self
            .members
            .keys()
            .map(|id| (id.clone(), Assignment::new()))
            .collect();
        let mut all: Vec<(String, uuid::Uuid, i32)> = Vec::new();
        for (name, n) in &self.topic_sizes {
            let Some((tid, _)) = topics.get(name) else {
                continue;
            };
            all.extend((0..*n).map(|p| (name.clone(), *tid, p)));
        }
        let members = self.members.len().max(1);
        let base = all.len() / members;
        let mut extra = all.len() % members;
        let mut load: HashMap<&String, usize> = self.members.keys().map(|k| (k, 0)).collect();
        let owner = |name: &String, tid: &uuid::Uuid, p: i32| {
            self.members
                .values()
                .find(|m| contains(&m.assigned, tid, p) && m.effective.contains(name))
        };
        let mut placed = vec![false; all.len()];
        let give = |out: &mut HashMap<String, Assignment>, id: &String, tid: uuid::Uuid, p| {
            out.entry(id.clone())
                .or_default()
                .entry(tid)
                .or_default()
                .insert(p);
        };
        // Keep current partitions up to the floor share, then one more while ceilings last.
        for ceiling in [false, true] {
            for (i, (name, tid, p)) in all.iter().enumerate() {
                if placed[i] {
                    continue;
                }
                let Some(m) = owner(name, tid, *p) else {
                    continue;
                };
                let l = load.get(&m.id).copied().unwrap_or(0);
                let keep = if ceiling {
                    l == base && extra > 0
                } else {
                    l < base
                };
                if keep {
                    if ceiling {
                        extra -= 1;
                    }
                    give(&mut out, &m.id, *tid, *p);
                    *load.entry(&m.id).or_default() += 1;
                    placed[i] = true;
                }
            }
        }
        for (i, (name, tid, p)) in all.iter().enumerate() {
            if placed[i] {
                continue;
            }
            let eligible = || self.members.values().filter(|m| m.effective.contains(name));
            let with_room = eligible()
                .filter(|m| {
                    let l = load.get(&m.id).copied().unwrap_or(0);
                    l < base || (l == base && extra > 0)
                })
                .min_by_key(|m| (load.get(&m.id).copied().unwrap_or(0), m.id.clone()));
            let target = with_room.or_else(|| {
                eligible().min_by_key(|m| (load.get(&m.id).copied().unwrap_or(0), m.id.clone()))
            });
            if let Some(m) = target {
                if load.get(&m.id).copied().unwrap_or(0) >= base && extra > 0 {
                    extra -= 1;
                }
                give(&mut out, &m.id, *tid, *p);
                *load.entry(&m.id).or_default() += 1;
            }
        }
        out
    }

    /// Kafka's range assignor, per topic: members sorted by id get consecutive ranges.
    fn range(&self, topics: &TopicsView) -> HashMap<String, Assignment> {
        let mut out: HashMap<String, Assignment> = self
            .members
            .keys()
            .map(|id| (id.clone(), Assignment::new()))
            .collect();
        for (name, n) in &self.topic_sizes {
            let Some((tid, _)) = topics.get(name) else {
                continue;
            };
            let subs: Vec<&String> = self
                .members
                .values()
                .filter(|m| m.effective.contains(name))
                .map(|m| &m.id)
                .collect();
            if subs.is_empty() {
                continue;
            }
            let (per, extra) = (*n as usize / subs.len(), *n as usize % subs.len());
            let mut next = 0i32;
            for (i, id) in subs.iter().enumerate() {
                let take = per + usize::from(i < extra);
                let set = out
                    .entry((*id).clone())
                    .or_default()
                    .entry(*tid)
                    .or_default();
                for p in next..next + take as i32 {
                    set.insert(p);
                }
                next += take as i32;
            }
        }
        out
    }

    /// Moves one member towards its target: revoke first (same epoch), then the new epoch
    /// with every target partition no other member still holds.
    fn reconcile(&mut self, id: &str, now: i64) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let held_by_others: Assignment = {
            let mut h = Assignment::new();
            for m in self.members.values().filter(|m| m.id != id) {
                for a in [&m.assigned, &m.revoking] {
                    for (t, ps) in a {
                        h.entry(*t).or_default().extend(ps.iter().copied());
                    }
                }
            }
            h
        };
        let epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if m.revoking.is_empty() {
            m.revoke_deadline = None;
        }
        let to_revoke = minus(&m.assigned, &target);
        if count(&to_revoke) > 0 {
            m.assigned = minus(&m.assigned, &to_revoke);
            for (t, ps) in to_revoke {
                m.revoking.entry(t).or_default().extend(ps);
            }
            // A member that does not give them up within its rebalance timeout is removed.
            let timeout = if m.rebalance_timeout_ms > 0 {
                i64::from(m.rebalance_timeout_ms)
            } else {
                300_000
            };
            m.revoke_deadline.get_or_insert(now + timeout);
            return;
        }
        if !m.revoking.is_empty() {
            return;
        }
        if m.epoch != epoch {
            m.previous_epoch = m.epoch;
            m.epoch = epoch;
        }
        for (t, ps) in minus(&target, &m.assigned) {
            for p in ps {
                if !contains(&held_by_others, &t, p) {
                    m.assigned.entry(t).or_default().insert(p);
                }
            }
        }
    }
}
