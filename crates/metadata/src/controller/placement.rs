//! Replica placement for new partitions (Kafka's round-robin assignment with a random
//! start), rack-aware when every broker has a `broker.rack`.

use std::collections::{BTreeMap, BTreeSet};

/// A broker that can take replicas: its id and rack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Node id.
    pub id: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
}

/// Why replicas could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replication factor {replication_factor} is larger than the {brokers} available brokers")]
pub struct TooFewBrokers {
    /// What was asked.
    pub replication_factor: i16,
    /// How many brokers can take replicas.
    pub brokers: usize,
}

/// Places `count` partitions, numbered from `first_partition`, with `replication_factor`
/// replicas each across `brokers`. The first replica is the preferred leader. `start` and
/// `shift` are the random offsets Kafka draws so that topics do not all lead on the same
/// broker.
///
/// Leaders go round-robin over the brokers; the other replicas follow at a shift that grows
/// by one each time the round-robin wraps, so replicas spread evenly too. With racks on every
/// broker, the brokers are interleaved by rack and no two replicas of a partition share a
/// rack while there are racks left.
pub fn place(
    count: i32,
    replication_factor: i16,
    first_partition: i32,
    brokers: &[Candidate],
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, TooFewBrokers> {
    let n = brokers.len();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf > n || n == 0 {
        return Err(TooFewBrokers {
            replication_factor,
            brokers: n,
        });
    }
    let rack_aware = brokers.iter().all(|b| b.rack.is_some());
    let order = if rack_aware {
        interleave_by_rack(brokers)
    } else {
        let mut sorted = brokers.to_vec();
        sorted.sort_by_key(|b| b.id);
        sorted
    };
    let racks: BTreeSet<&str> = order.iter().filter_map(|b| b.rack.as_deref()).collect();
    let start = start % n;
    let mut shift = shift % n;
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for p in 0..count.max(0) {
        let index = (first_partition + p) as usize;
        if index > 0 && index.is_multiple_of(n) {
            shift += 1;
        }
        let first = (index + start) % n;
        let mut replicas = vec![order[first].id];
        let mut used_racks: BTreeSet<&str> = order[first].rack.as_deref().into_iter().collect();
        let mut j = 0;
        while replicas.len() < rf {
            let candidate = &order[(first + 1 + (shift + j) % (n - 1).max(1)) % n];
            j += 1;
            if replicas.contains(&candidate.id) {
                if j > 4 * n {
                    // Every shift tried: take the lowest brokers not yet used.
                    if let Some(b) = order.iter().find(|b| !replicas.contains(&b.id)) {
                        replicas.push(b.id);
                    }
                }
                continue;
            }
            let rack = candidate.rack.as_deref();
            let rack_taken = rack.is_some_and(|r| used_racks.contains(r));
            if rack_aware && rack_taken && used_racks.len() < racks.len() && j <= 2 * n {
                continue;
            }
            used_racks.extend(rack);
            replicas.push(candidate.id);
        }
        out.push(replicas);
    }
    Ok(out)
}

/// Brokers ordered so consecutive ones are on different racks: the first of each rack, then
/// the second of each, and so on (Kafka's rack-alternated list).
fn interleave_by_rack(brokers: &[Candidate]) -> Vec<Candidate> {
    let mut by_rack: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for b in brokers {
        by_rack
            .entry(b.rack.as_deref().unwrap_or_default())
            .or_default()
            .push(b);
    }
    for list in by_rack.values_mut() {
        list.sort_by_key(|b| b.id);
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for list in by_rack.values() {
            if let Some(b) = list.get(round) {
                out.push((*b).clone());
            }
        }
        round += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<Candidate> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| Candidate {
                id: i as i32 + 1,
                rack: r.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn leaders_and_replicas_spread_evenly_over_the_brokers() {
        let b = brokers(&[None, None, None]);
        for start in 0..3 {
            let placed = place(6, 3, 0, &b, start, 1).unwrap();
            let mut leaders = BTreeMap::new();
            for replicas in &placed {
                assert_eq!(replicas.len(), 3);
                let distinct: BTreeSet<_> = replicas.iter().collect();
                assert_eq!(distinct.len(), 3, "{replicas:?}");
                *leaders.entry(replicas[0]).or_insert(0) += 1;
            }
            assert_eq!(leaders.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
        }
    }

    #[test]
    fn no_two_replicas_share_a_rack_while_racks_allow() {
        let b = brokers(&[
            Some("a"),
            Some("a"),
            Some("b"),
            Some("b"),
            Some("c"),
            Some("c"),
        ]);
        let rack = |id: i32| b[(id - 1) as usize].rack.clone();
        for (start, shift) in [(0, 0), (1, 3), (5, 2)] {
            for replicas in place(12, 3, 0, &b, start, shift).unwrap() {
                let racks: BTreeSet<_> = replicas.iter().map(|id| rack(*id)).collect();
                assert_eq!(racks.len(), 3, "{replicas:?}");
            }
            // More replicas than racks: every rack used, then repeats.
            for replicas in place(6, 4, 0, &b, start, shift).unwrap() {
                let racks: BTreeSet<_> = replicas.iter().map(|id| rack(*id)).collect();
                assert_eq!(racks.len(), 3, "{replicas:?}");
                let distinct: BTreeSet<_> = replicas.iter().collect();
                assert_eq!(distinct.len(), 4);
            }
        }
    }

    #[test]
    fn a_replication_factor_above_the_brokers_is_refused() {
        let b = brokers(&[None, None]);
        assert_eq!(
            place(1, 3, 0, &b, 0, 0),
            Err(TooFewBrokers {
                replication_factor: 3,
                brokers: 2
            })
        );
        assert!(place(1, 1, 0, &[], 0, 0).is_err());
    }
}
