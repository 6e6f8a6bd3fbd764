//! Who runs what: the group leader's incremental cooperative assignor (KIP-415, Kafka
//! Connect's since 2.3), and the worker metadata and assignments it reads and writes.
//!
//! - A connector or task moves in two rebalances: the first revokes it from its owner
//!   (who stops it and rejoins at once), the second gives it, unowned now, to another
//!   worker. It never runs on two workers of one generation.
//! - Work whose worker left the group is *lost*. It stays unassigned for
//!   `scheduled.rebalance.max.delay.ms`, so a worker that restarts gets its own work back
//!   without everything moving twice; then it goes to the least loaded workers.
//! - Connectors and tasks are balanced separately: no worker runs more than the ceiling of
//!   its share of either; the excess of an overloaded worker is revoked only when another
//!   worker runs less than its floor.
//!
//! Metadata and assignments are JSON. Kafka's workers encode theirs with Kafka's Connect
//! protocol schemas; a Strom worker and a Java worker cannot share a group (the group has
//! no protocol in common and the coordinator refuses the second one).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value as Json};

use crate::ConnectError;

/// The protocol name workers join with.
pub const PROTOCOL: &str = "strom-cooperative-v1";

/// A connector or one of its tasks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Work {
    /// The connector instance (it makes the task configurations).
    Connector(String),
    /// Task `n` of the connector.
    Task(String, i32),
}

impl Work {
    /// The connector it belongs to.
    pub fn connector(&self) -> &str {
        match self {
            Work::Connector(c) | Work::Task(c, _) => c,
        }
    }

    fn is_task(&self) -> bool {
        matches!(self, Work::Task(..))
    }
}

fn work_json(set: &BTreeSet<Work>) -> Json {
    let connectors: Vec<&str> = set
        .iter()
        .filter_map(|w| match w {
            Work::Connector(c) => Some(c.as_str()),
            Work::Task(..) => None,
        })
        .collect();
    let tasks: Vec<Json> = set
        .iter()
        .filter_map(|w| match w {
            Work::Task(c, t) => Some(json!([c, t])),
            Work::Connector(_) => None,
        })
        .collect();
    json!({"connectors": connectors, "tasks": tasks})
}

fn work_of(j: Option<&Json>) -> BTreeSet<Work> {
    let mut out = BTreeSet::new();
    let Some(j) = j else { return out };
    for c in j["connectors"].as_array().into_iter().flatten() {
        if let Some(c) = c.as_str() {
            out.insert(Work::Connector(c.to_string()));
        }
    }
    for t in j["tasks"].as_array().into_iter().flatten() {
        if let (Some(c), Some(n)) = (t[0].as_str(), t[1].as_i64()) {
            out.insert(Work::Task(c.to_string(), n as i32));
        }
    }
    out
}

fn bad(what: &str, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Connect(format!("a worker sent a {what} that is not Strom's: {e}"))
}

/// What a worker tells the group when it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Its REST API's URL (where the leader is reached for forwarded requests).
    pub url: String,
    /// How far it has read the config topic.
    pub config_offset: i64,
    /// What it runs now.
    pub owned: BTreeSet<Work>,
}

impl Metadata {
    /// Its bytes.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            json!({"url": self.url, "config_offset": self.config_offset, "owned": work_json(&self.owned)})
                .to_string(),
        )
    }

    /// Read from bytes.
    pub fn decode(bytes: &[u8]) -> Result<Metadata, ConnectError> {
        let j: Json = serde_json::from_slice(bytes).map_err(|e| bad("metadata", e))?;
        Ok(Metadata {
            url: j["url"].as_str().unwrap_or_default().to_string(),
            config_offset: j["config_offset"].as_i64().unwrap_or(-1),
            owned: work_of(j.get("owned")),
        })
    }
}

/// What the leader gives one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The leader's member id and REST URL.
    pub leader: String,
    /// The leader's REST URL.
    pub leader_url: String,
    /// The config topic offset the assignment was made at: read at least this far first.
    pub config_offset: i64,
    /// Everything this worker runs from now on.
    pub assigned: BTreeSet<Work>,
    /// What it must stop (then rejoin).
    pub revoked: BTreeSet<Work>,
    /// Rejoin after this long (lost work is being held), or zero.
    pub delay: Duration,
    /// Every worker's assignment by REST URL, so whoever leads next knows the history.
    pub everyone: BTreeMap<String, BTreeSet<Work>>,
}

impl Assignment {
    /// Its bytes.
    pub fn encode(&self) -> Bytes {
        let everyone: serde_json::Map<String, Json> = self
            .everyone
            .iter()
            .map(|(url, w)| (url.clone(), work_json(w)))
            .collect();
        Bytes::from(
            json!({
                "leader": self.leader,
                "leader_url": self.leader_url,
                "config_offset": self.config_offset,
                "assigned": work_json(&self.assigned),
                "revoked": work_json(&self.revoked),
                "delay_ms": self.delay.as_millis() as u64,
                "everyone": everyone,
            })
            .to_string(),
        )
    }

    /// Read from bytes.
    pub fn decode(bytes: &[u8]) -> Result<Assignment, ConnectError> {
        let j: Json = serde_json::from_slice(bytes).map_err(|e| bad("assignment", e))?;
        Ok(Assignment {
            leader: j["leader"].as_str().unwrap_or_default().to_string(),
            leader_url: j["leader_url"].as_str().unwrap_or_default().to_string(),
            config_offset: j["config_offset"].as_i64().unwrap_or(-1),
            assigned: work_of(j.get("assigned")),
            revoked: work_of(j.get("revoked")),
            delay: Duration::from_millis(j["delay_ms"].as_u64().unwrap_or(0)),
            everyone: j["everyone"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(url, w)| (url.clone(), work_of(Some(w))))
                .collect(),
        })
    }
}

/// One worker's share of a round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Share {
    /// What it runs after the round.
    pub assigned: BTreeSet<Work>,
    /// What it stops now.
    pub revoked: BTreeSet<Work>,
}

/// The leader's assignor, with what it remembers between rounds.
#[derive(Debug)]
pub struct Cooperative {
    max_delay: Duration,
    /// Who ran what after the last round, by worker URL.
    previous: BTreeMap<Work, String>,
    /// Lost work held back, and until when.
    held: Option<Instant>,
}

impl Cooperative {
    /// An assignor holding lost work for `scheduled.rebalance.max.delay.ms`.
    pub fn new(max_delay: Duration) -> Cooperative {
        Cooperative {
            max_delay,
            previous: BTreeMap::new(),
            held: None,
        }
    }

    /// Seeds the history from the last assignment this worker got (a new leader).
    pub fn remember(&mut self, everyone: &BTreeMap<String, BTreeSet<Work>>) {
        if self.previous.is_empty() {
            for (url, work) in everyone {
                for w in work {
                    self.previous.insert(w.clone(), url.clone());
                }
            }
        }
    }

    /// One round: `members` are the workers (by URL) with what each runs now, `all` is
    /// every connector and task the configs hold. Returns each worker's share and how long
    /// until the next round must happen (lost work held back), if at all.
    pub fn assign(
        &mut self,
        now: Instant,
        members: &BTreeMap<String, BTreeSet<Work>>,
        all: &BTreeSet<Work>,
    ) -> (BTreeMap<String, Share>, Duration) {
        let mut shares: BTreeMap<String, Share> = BTreeMap::new();
        let mut owner: BTreeMap<Work, String> = BTreeMap::new();
        for (url, owned) in members {
            let share = shares.entry(url.clone()).or_default();
            for w in owned {
                // Gone from the configs, or (after a split brain) owned twice: revoked.
                if !all.contains(w) || owner.contains_key(w) {
                    share.revoked.insert(w.clone());
                } else {
                    owner.insert(w.clone(), url.clone());
                    share.assigned.insert(w.clone());
                }
            }
        }
        let unowned: Vec<&Work> = all.iter().filter(|w| !owner.contains_key(*w)).collect();
        let lost: BTreeSet<&Work> = unowned
            .iter()
            .copied()
            .filter(|w| {
                self.previous
                    .get(*w)
                    .is_some_and(|was| !members.contains_key(was))
            })
            .collect();
        let mut delay = Duration::ZERO;
        let hold = if lost.is_empty() || self.max_delay.is_zero() {
            self.held = None;
            false
        } else {
            let until = *self.held.get_or_insert(now + self.max_delay);
            if now >= until {
                self.held = None;
                false
            } else {
                delay = until - now;
                true
            }
        };
        let free: Vec<Work> = unowned
            .into_iter()
            .filter(|w| !(hold && lost.contains(w)))
            .cloned()
            .collect();

        if !members.is_empty() {
            for tasks in [false, true] {
                balance(&mut shares, all, &free, tasks, &hold.then_some(&lost));
            }
        }

        // Remember who runs what; held work keeps its lost owner, so it stays lost.
        let mut previous: BTreeMap<Work, String> = BTreeMap::new();
        for (url, share) in &shares {
            for w in &share.assigned {
                previous.insert(w.clone(), url.clone());
            }
        }
        if hold {
            for w in &lost {
                if let Some(was) = self.previous.get(*w) {
                    previous.insert((*w).clone(), was.clone());
                }
            }
        }
        self.previous = previous;
        (shares, delay)
    }
}

/// Gives `free` work of one kind (tasks or connectors) to the least loaded workers, and
/// revokes the excess of the overloaded ones when another is under its floor.
fn balance(
    shares: &mut BTreeMap<String, Share>,
    all: &BTreeSet<Work>,
    free: &[Work],
    tasks: bool,
    held: &Option<&BTreeSet<&Work>>,
) {
    let n = shares.len();
    let total = all
        .iter()
        .filter(|w| w.is_task() == tasks)
        .filter(|w| !held.is_some_and(|h| h.contains(w)))
        .count();
    let ceil = total.div_ceil(n);
    let floor = total / n;
    let count = |s: &Share| s.assigned.iter().filter(|w| w.is_task() == tasks).count();
    for w in free.iter().filter(|w| w.is_task() == tasks) {
        if let Some(share) = shares.values_mut().min_by_key(|s| count(s)) {
            share.assigned.insert(w.clone());
        }
    }
    // Over the ceiling: revoke the excess. Then, while some worker is under its floor,
    // one more from each worker at the ceiling, until the shortfall is covered.
    let mut short: usize = shares
        .values()
        .map(|s| floor.saturating_sub(count(s)))
        .sum();
    let mut revoke: BTreeMap<String, usize> = BTreeMap::new();
    for (url, share) in shares.iter() {
        let over = count(share).saturating_sub(ceil);
        if over > 0 {
            revoke.insert(url.clone(), over);
            short = short.saturating_sub(over);
        }
    }
    for (url, share) in shares.iter() {
        if short == 0 {
            break;
        }
        if count(share) == ceil && ceil > floor && !revoke.contains_key(url) {
            revoke.insert(url.clone(), 1);
            short -= 1;
        }
    }
    for (url, n) in revoke {
        let Some(share) = shares.get_mut(&url) else {
            continue;
        };
        let victims: Vec<Work> = share
            .assigned
            .iter()
            .rev()
            .filter(|w| w.is_task() == tasks)
            .take(n)
            .cloned()
            .collect();
        for w in victims {
            share.assigned.remove(&w);
            share.revoked.insert(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(connector: &str, n: i32) -> BTreeSet<Work> {
        let mut s: BTreeSet<Work> = (0..n).map(|i| Work::Task(connector.into(), i)).collect();
        s.insert(Work::Connector(connector.into()));
        s
    }

    fn members(list: &[(&str, &BTreeSet<Work>)]) -> BTreeMap<String, BTreeSet<Work>> {
        list.iter()
            .map(|(u, w)| (u.to_string(), (*w).clone()))
            .collect()
    }

    fn count_tasks(s: &BTreeSet<Work>) -> usize {
        s.iter().filter(|w| w.is_task()).count()
    }

    /// Runs rounds as workers would (each then owns its share) until nothing is revoked.
    fn settle(
        a: &mut Cooperative,
        now: Instant,
        mut owned: BTreeMap<String, BTreeSet<Work>>,
        all: &BTreeSet<Work>,
    ) -> BTreeMap<String, BTreeSet<Work>> {
        for _ in 0..5 {
            let (shares, _) = a.assign(now, &owned, all);
            let revoked = shares.values().any(|s| !s.revoked.is_empty());
            // Nothing is ever given to one worker while another still owns it.
            let mut seen = BTreeSet::new();
            for s in shares.values() {
                for w in &s.assigned {
                    assert!(seen.insert(w.clone()), "{w:?} assigned twice");
                }
            }
            owned = shares.into_iter().map(|(u, s)| (u, s.assigned)).collect();
            if !revoked {
                return owned;
            }
        }
        panic!("did not settle");
    }

    #[test]
    fn six_tasks_spread_evenly_over_three_workers() {
        let all = tasks("c", 6);
        let empty = BTreeSet::new();
        let mut a = Cooperative::new(Duration::from_secs(300));
        let owned = settle(
            &mut a,
            Instant::now(),
            members(&[("a", &empty), ("b", &empty), ("c", &empty)]),
            &all,
        );
        for w in owned.values() {
            assert_eq!(count_tasks(w), 2, "{owned:?}");
        }
        assert_eq!(owned.values().map(|w| w.len()).sum::<usize>(), 7);
    }

    #[test]
    fn a_new_worker_takes_a_share_in_two_rounds_without_double_running() {
        let all = tasks("c", 6);
        let empty = BTreeSet::new();
        let mut a = Cooperative::new(Duration::from_secs(300));
        let now = Instant::now();
        let two = settle(&mut a, now, members(&[("a", &empty), ("b", &empty)]), &all);
        assert!(two.values().all(|w| count_tasks(w) == 3));
        let mut three = two.clone();
        three.insert("c".into(), BTreeSet::new());
        // First round: only revocations; the newcomer gets nothing yet.
        let (shares, delay) = a.assign(now, &three, &all);
        assert_eq!(delay, Duration::ZERO);
        assert!(shares["c"].assigned.is_empty());
        assert_eq!(
            shares.values().map(|s| s.revoked.len()).sum::<usize>(),
            2,
            "{shares:?}"
        );
        let owned = settle(&mut a, now, three, &all);
        assert!(owned.values().all(|w| count_tasks(w) == 2), "{owned:?}");
    }

    #[test]
    fn lost_work_is_held_for_the_delay_then_given_to_the_survivors() {
        let all = tasks("c", 6);
        let empty = BTreeSet::new();
        let mut a = Cooperative::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let mut owned = settle(
            &mut a,
            t0,
            members(&[("a", &empty), ("b", &empty), ("c", &empty)]),
            &all,
        );
        let gone = owned.remove("c").unwrap_or_default();
        assert!(!gone.is_empty());
        let (shares, delay) = a.assign(t0 + Duration::from_secs(1), &owned, &all);
        assert_eq!(delay, Duration::from_secs(10));
        for w in &gone {
            assert!(
                shares.values().all(|s| !s.assigned.contains(w)),
                "{w:?} held"
            );
        }
        // Still held a little later; the delay counts from when it was first lost.
        let (_, delay) = a.assign(t0 + Duration::from_secs(6), &owned, &all);
        assert_eq!(delay, Duration::from_secs(5));
        // After the delay, everything runs on the two left.
        let (shares, delay) = a.assign(t0 + Duration::from_secs(12), &owned, &all);
        assert_eq!(delay, Duration::ZERO);
        let running: BTreeSet<Work> = shares.values().flat_map(|s| s.assigned.clone()).collect();
        assert_eq!(running, all);
        assert!(shares.values().all(|s| count_tasks(&s.assigned) == 3));
    }

    #[test]
    fn a_worker_back_within_the_delay_gets_its_work_again() {
        let all = tasks("c", 6);
        let empty = BTreeSet::new();
        let mut a = Cooperative::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let mut owned = settle(
            &mut a,
            t0,
            members(&[("a", &empty), ("b", &empty), ("c", &empty)]),
            &all,
        );
        let gone = owned.remove("c").unwrap_or_default();
        a.assign(t0, &owned, &all);
        owned.insert("c".into(), BTreeSet::new());
        let (shares, delay) = a.assign(t0 + Duration::from_secs(2), &owned, &all);
        assert_eq!(delay, Duration::ZERO);
        assert_eq!(shares["c"].assigned, gone);
    }

    #[test]
    fn deleted_work_is_revoked() {
        let all = tasks("c", 2);
        let mut a = Cooperative::new(Duration::from_secs(10));
        let owned = members(&[("a", &tasks("c", 4))]);
        let (shares, _) = a.assign(Instant::now(), &owned, &all);
        assert_eq!(
            shares["a"].revoked,
            BTreeSet::from([Work::Task("c".into(), 2), Work::Task("c".into(), 3)])
        );
    }

    #[test]
    fn metadata_and_assignments_round_trip() {
        let m = Metadata {
            url: "http://127.0.0.1:8083".into(),
            config_offset: 7,
            owned: tasks("x", 2),
        };
        assert_eq!(Metadata::decode(&m.encode()).unwrap(), m);
        let a = Assignment {
            leader: "m-1".into(),
            leader_url: "http://127.0.0.1:8083".into(),
            config_offset: 9,
            assigned: tasks("x", 1),
            revoked: tasks("y", 1),
            delay: Duration::from_millis(1500),
            everyone: BTreeMap::from([("http://a".to_string(), tasks("x", 3))]),
        };
        assert_eq!(Assignment::decode(&a.encode()).unwrap(), a);
        assert!(Metadata::decode(b"not json").is_err());
    }
}
