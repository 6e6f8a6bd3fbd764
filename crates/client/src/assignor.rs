//! The classic protocol's client-side partition assignors, which the group leader runs on
//! the members' subscriptions: `range` and `roundrobin` (eager: everyone gives up
//! everything before a rebalance) and `cooperative-sticky` (incremental: members keep what
//! they own, and a partition changes hands only after its owner has revoked it, KIP-429).
//! Their outcomes follow Kafka's Java assignors of the same names, so a group may mix Strom
//! and Java members.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A topic partition.
pub type TopicPartition = (String, i32);

/// One member's subscription as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id.
    pub member_id: String,
    /// The static instance id, if any (orders members the way the Java assignors do).
    pub instance_id: Option<String>,
    /// Topics subscribed to.
    pub topics: Vec<String>,
    /// Partitions the member owns now (subscription v1+; cooperative rebalancing).
    pub owned: Vec<TopicPartition>,
    /// The generation in which it owned them (subscription v2+; -1 when unknown).
    pub generation: i32,
}

/// The assignment strategies this client implements, by Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Assignor {
    /// `range`: each topic's partitions split into contiguous ranges.
    Range,
    /// `roundrobin`: all partitions dealt out in turn.
    RoundRobin,
    /// `cooperative-sticky`: balanced, moving as little as possible, incremental.
    CooperativeSticky,
}

impl Assignor {
    /// Kafka's name of the strategy (the JoinGroup protocol name).
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The strategy of a name, as partition.assignment.strategy lists them (Java class
    /// names accepted too).
    pub fn from_name(name: &str) -> Option<Assignor> {
        let short = name.rsplit('.').next().unwrap_or(name);
        match short {
            "range" | "RangeAssignor" => Some(Assignor::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(Assignor::RoundRobin),
            "cooperative-sticky" | "CooperativeStickyAssignor" => Some(Assignor::CooperativeSticky),
            _ => None,
        }
    }

    /// True for the incremental (cooperative) rebalance protocol.
    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }

    /// Assigns the partitions of `partition_counts` (topic → count) to `members`. Every
    /// member appears in the result, possibly with nothing.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partition_counts: &HashMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut out: BTreeMap<String, Vec<TopicPartition>> = members
            .iter()
            .map(|m| (m.member_id.clone(), Vec::new()))
            .collect();
        match self {
            Assignor::Range => range(members, partition_counts, &mut out),
            Assignor::RoundRobin => round_robin(members, partition_counts, &mut out),
            Assignor::CooperativeSticky => sticky(members, partition_counts, &mut out),
        }
        for parts in out.values_mut() {
            parts.sort();
        }
        out
    }
}

/// Members in the order the Java assignors use: static members by instance id first, then
/// dynamic ones by member id.
fn ordered(members: &[MemberSubscription]) -> Vec<&MemberSubscription> {
    let mut v: Vec<&MemberSubscription> = members.iter().collect();
    v.sort_by(|a, b| match (&a.instance_id, &b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    });
    v
}

fn range(
    members: &[MemberSubscription],
    counts: &HashMap<String, i32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let members = ordered(members);
    let topics: BTreeSet<&String> = members.iter().flat_map(|m| m.topics.iter()).collect();
    for topic in topics {
        let Some(&count) = counts.get(topic) else {
            continue;
        };
        let subscribed: Vec<&&MemberSubscription> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        let n = subscribed.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in subscribed.iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            let parts = out.entry(m.member_id.clone()).or_default();
            parts.extend((next..next + take).map(|p| (topic.clone(), p)));
            next += take;
        }
    }
}

fn round_robin(
    members: &[MemberSubscription],
    counts: &HashMap<String, i32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let members = ordered(members);
    let topics: BTreeSet<&String> = members.iter().flat_map(|m| m.topics.iter()).collect();
    let mut turn = 0usize;
    for topic in topics {
        let Some(&count) = counts.get(topic) else {
            continue;
        };
        for p in 0..count {
            // The next member in the circle that subscribes to the topic.
            for _ in 0..members.len() {
                let m = members[turn % members.len()];
                turn += 1;
                if m.topics.contains(topic) {
                    out.entry(m.member_id.clone())
                        .or_default()
                        .push((topic.clone(), p));
                    break;
                }
            }
        }
    }
}

/// Balanced and sticky: members keep what they validly own (still subscribed, still there,
/// claimed by no member of a newer generation), unowned partitions go to the least loaded
/// subscriber, and then partitions move one at a time from the most loaded member to a less
/// loaded subscriber until no move would narrow the gap. Deterministic for equal input.
fn sticky(
    members: &[MemberSubscription],
    counts: &HashMap<String, i32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let members = ordered(members);
    let exists = |(t, p): &TopicPartition| counts.get(t).is_some_and(|c| *p >= 0 && p < c);
    // Who validly owns each partition: the claimant of the highest generation.
    let mut owner: BTreeMap<TopicPartition, (i32, &str)> = BTreeMap::new();
    for m in &members {
        for tp in &m.owned {
            if !exists(tp) || !m.topics.contains(&tp.0) {
                continue;
            }
            let better = owner.get(tp).is_none_or(|(g, _)| m.generation > *g);
            if better {
                owner.insert(tp.clone(), (m.generation, &m.member_id));
            }
        }
    }
    let mut load: BTreeMap<&str, BTreeSet<TopicPartition>> = members
        .iter()
        .map(|m| (m.member_id.as_str(), BTreeSet::new()))
        .collect();
    for (tp, (_, m)) in &owner {
        load.entry(m).or_default().insert(tp.clone());
    }
    let subscribers = |topic: &str| -> Vec<&str> {
        members
            .iter()
            .filter(|m| m.topics.iter().any(|t| t == topic))
            .map(|m| m.member_id.as_str())
            .collect()
    };
    let topics: BTreeSet<&String> = members.iter().flat_map(|m| m.topics.iter()).collect();
    for topic in topics {
        let Some(&count) = counts.get(topic) else {
            continue;
        };
        let subs = subscribers(topic);
        for p in 0..count {
            let tp = (topic.clone(), p);
            if owner.contains_key(&tp) {
                continue;
            }
            if let Some(m) = subs.iter().min_by_key(|m| load[**m].len()) {
                if let Some(set) = load.get_mut(m) {
                    set.insert(tp);
                }
            }
        }
    }
    // Rebalance: move from the most loaded member to the least loaded subscriber of one of
    // its partitions while that narrows the gap by at least two.
    loop {
        let mut best: Option<(&str, &str, TopicPartition)> = None;
        let mut by_load: Vec<&str> = load.keys().copied().collect();
        by_load.sort_by_key(|m| std::cmp::Reverse(load[m].len()));
        'search: for from in &by_load {
            let from_len = load[from].len();
            for tp in load[from].iter().rev() {
                let target = subscribers(&tp.0)
                    .into_iter()
                    .filter(|m| load[m].len() + 1 < from_len)
                    .min_by_key(|m| load[m].len());
                if let Some(to) = target {
                    best = Some((from, to, tp.clone()));
                    break 'search;
                }
            }
        }
        let Some((from, to, tp)) = best else { break };
        if let Some(set) = load.get_mut(from) {
            set.remove(&tp);
        }
        if let Some(set) = load.get_mut(to) {
            set.insert(tp);
        }
    }
    for (m, parts) in load {
        out.insert(m.to_string(), parts.into_iter().collect());
    }
}

/// For the cooperative protocol: removes from `assignment` every partition that some other
/// member still owns, so it is revoked by its owner first and handed over in the follow-up
/// rebalance (KIP-429). Returns true when something was held back.
pub fn hold_back_transfers(
    members: &[MemberSubscription],
    assignment: &mut BTreeMap<String, Vec<TopicPartition>>,
) -> bool {
    let owned: HashMap<&TopicPartition, &str> = members
        .iter()
        .flat_map(|m| m.owned.iter().map(move |tp| (tp, m.member_id.as_str())))
        .collect();
    let mut held = false;
    for (member, parts) in assignment.iter_mut() {
        parts.retain(|tp| {
            let keep = owned.get(tp).is_none_or(|o| *o == member);
            held |= !keep;
            keep
        });
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str], owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            generation: 1,
        }
    }

    fn counts(c: &[(&str, i32)]) -> HashMap<String, i32> {
        c.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn tps(v: &[(&str, i32)]) -> Vec<TopicPartition> {
        v.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn range_splits_each_topic_with_the_extra_to_the_first_members() {
        let m = [member("a", &["t", "u"], &[]), member("b", &["t", "u"], &[])];
        let out = Assignor::Range.assign(&m, &counts(&[("t", 3), ("u", 3)]));
        // Kafka's documented example: C0 gets t0,t1,u0,u1 and C1 gets t2,u2.
        assert_eq!(out["a"], tps(&[("t", 0), ("t", 1), ("u", 0), ("u", 1)]));
        assert_eq!(out["b"], tps(&[("t", 2), ("u", 2)]));
    }

    #[test]
    fn roundrobin_deals_in_turn_skipping_non_subscribers() {
        let m = [
            member("a", &["t"], &[]),
            member("b", &["t", "u"], &[]),
            member("c", &["t", "u", "v"], &[]),
        ];
        let out = Assignor::RoundRobin.assign(&m, &counts(&[("t", 1), ("u", 2), ("v", 3)]));
        // Kafka's RoundRobinAssignor documentation example.
        assert_eq!(out["a"], tps(&[("t", 0)]));
        assert_eq!(out["b"], tps(&[("u", 0)]));
        assert_eq!(out["c"], tps(&[("u", 1), ("v", 0), ("v", 1), ("v", 2)]));
    }

    #[test]
    fn sticky_keeps_ownership_and_balances() {
        // a owned everything; b joins: a keeps 3 of its 6, b gets the other 3.
        let all: Vec<(&str, i32)> = (0..6).map(|p| ("t", p)).collect();
        let m = [member("a", &["t"], &all), member("b", &["t"], &[])];
        let out = Assignor::CooperativeSticky.assign(&m, &counts(&[("t", 6)]));
        assert_eq!(out["a"].len(), 3);
        assert_eq!(out["b"].len(), 3);
        assert!(out["a"]
            .iter()
            .all(|tp| all.iter().any(|(t, p)| tp.0 == *t && tp.1 == *p)));
        // With transfers held back, b gets nothing this round; a loses the three.
        let mut held = out.clone();
        assert!(hold_back_transfers(&m, &mut held));
        assert!(held["b"].is_empty());
        assert_eq!(held["a"], out["a"]);
        // Next round a owns 3, b owns none: b now gets the rest, a keeps its 3.
        let m2 = [
            member(
                "a",
                &["t"],
                &out["a"]
                    .iter()
                    .map(|(t, p)| (t.as_str(), *p))
                    .collect::<Vec<_>>(),
            ),
            member("b", &["t"], &[]),
        ];
        let out2 = Assignor::CooperativeSticky.assign(&m2, &counts(&[("t", 6)]));
        assert_eq!(out2["a"], out["a"]);
        assert_eq!(out2["b"], out["b"]);
        let mut held2 = out2.clone();
        assert!(!hold_back_transfers(&m2, &mut held2));
    }

    #[test]
    fn sticky_drops_invalid_claims_and_respects_subscriptions() {
        // Both claim t-0; the newer generation wins. c only subscribes to u.
        let mut a = member("a", &["t"], &[("t", 0), ("t", 9)]);
        a.generation = 3;
        let mut b = member("b", &["t"], &[("t", 0)]);
        b.generation = 2;
        let c = member("c", &["u"], &[]);
        let out = Assignor::CooperativeSticky.assign(&[a, b, c], &counts(&[("t", 4), ("u", 1)]));
        assert!(out["a"].contains(&("t".to_string(), 0)));
        assert_eq!(out["a"].len(), 2);
        assert_eq!(out["b"].len(), 2);
        assert_eq!(out["c"], tps(&[("u", 0)]));
    }

    #[test]
    fn every_partition_assigned_exactly_once() {
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let m: Vec<MemberSubscription> = (0..5)
                .map(|i| member(&format!("m{i}"), &["x", "y"], &[]))
                .collect();
            let out = assignor.assign(&m, &counts(&[("x", 7), ("y", 11)]));
            let mut all: Vec<TopicPartition> = out.values().flatten().cloned().collect();
            all.sort();
            let mut want = Vec::new();
            want.extend((0..7).map(|p| ("x".to_string(), p)));
            want.extend((0..11).map(|p| ("y".to_string(), p)));
            assert_eq!(all, want, "{assignor:?}");
            let sizes: Vec<usize> = out.values().map(|v| v.len()).collect();
            if assignor != Assignor::Range {
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
        assert_eq!(
            Assignor::from_name("org.apache.kafka.clients.consumer.RangeAssignor"),
            Some(Assignor::Range)
        );
    }
}
