//! Partition state changes the leaders propose and the controller decides: AlterPartition
//! (an ISR shrink or expansion, KIP-497), and whether a partition whose in-sync replicas
//! are all gone may elect an out-of-sync one (`unclean.leader.election.enable`).

use super::ControllerError;
use crate::image::{MetadataImage, PartitionImage};
use crate::records::MetadataRecord;

/// A leader's proposal of a new ISR for one partition, made at the partition and leader
/// epochs it knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartition {
    /// The proposing broker.
    pub broker_id: i32,
    /// Its registration epoch: a proposal from an earlier incarnation is stale.
    pub broker_epoch: i64,
    /// The topic.
    pub topic_id: uuid::Uuid,
    /// The partition.
    pub partition: i32,
    /// The leader epoch the leader acts in.
    pub leader_epoch: i32,
    /// The partition epoch the proposal is based on.
    pub partition_epoch: i32,
    /// The ISR it proposes.
    pub new_isr: Vec<i32>,
    /// The broker epoch each follower of it fetched with, where the leader knows it
    /// (KIP-903): a member joining on the word of an older incarnation is refused.
    #[serde(default)]
    pub member_epochs: Vec<(i32, i64)>,
}

/// The record that commits `change`, after Kafka's checks: the proposer leads the
/// partition in the epoch it names (FENCED_LEADER_EPOCH), the partition has not changed
/// since (INVALID_UPDATE_VERSION), and every new member is a live replica
/// (INELIGIBLE_REPLICA). A proposal of what is already committed commits nothing.
pub fn alter_partition(
    image: &MetadataImage,
    change: &AlterPartition,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    match image.brokers.get(&change.broker_id) {
        Some(b) if b.epoch == change.broker_epoch => {}
        _ => {
            return Err(ControllerError::StaleBrokerEpoch(format!(
                "broker {} at epoch {} is not the registered incarnation",
                change.broker_id, change.broker_epoch
            )))
        }
    }
    let Some((topic, p)) = image
        .topic_by_id(&change.topic_id)
        .and_then(|t| t.partitions.get(&change.partition).map(|p| (t, p)))
    else {
        return Err(ControllerError::UnknownTopic(format!(
            "{}-{}",
            change.topic_id, change.partition
        )));
    };
    let name = format!("{}-{}", topic.name, change.partition);
    if p.leader != change.broker_id || p.leader_epoch != change.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch(format!(
            "{name} is led by {} in epoch {}, not by {} in epoch {}",
            p.leader, p.leader_epoch, change.broker_id, change.leader_epoch
        )));
    }
    if p.partition_epoch != change.partition_epoch {
        if p.isr == change.new_isr {
            return Ok(Vec::new());
        }
        return Err(ControllerError::InvalidUpdateVersion(format!(
            "{name} is at partition epoch {}, the proposal was made at {}",
            p.partition_epoch, change.partition_epoch
        )));
    }
    if change.new_isr.is_empty() || !change.new_isr.contains(&change.broker_id) {
        return Err(ControllerError::InvalidRequest(format!(
            "the ISR of {name} must hold its leader"
        )));
    }
    for r in &change.new_isr {
        if !p.replicas.contains(r) {
            return Err(ControllerError::IneligibleReplica(format!(
                "{r} is not a replica of {name}"
            )));
        }
        let joining = !p.isr.contains(r);
        if !joining {
            continue;
        }
        let Some(b) = image.brokers.get(r).filter(|b| b.is_active()) else {
            return Err(ControllerError::IneligibleReplica(format!(
                "broker {r} is fenced or unregistered and cannot join the ISR of {name}"
            )));
        };
        if let Some((_, epoch)) = change.member_epochs.iter().find(|(id, _)| id == r) {
            if *epoch != b.epoch {
                return Err(ControllerError::IneligibleReplica(format!(
                    "broker {r} caught up on {name} at broker epoch {epoch}, but its registration is at {}",
                    b.epoch
                )));
            }
        }
    }
    if p.isr == change.new_isr {
        return Ok(Vec::new());
    }
    let mut next = p.clone();
    next.isr = change.new_isr.clone();
    next.partition_epoch += 1;
    super::reassign::maybe_complete(image, &mut next);
    Ok(vec![MetadataRecord::partition(
        change.topic_id,
        change.partition,
        &next,
    )])
}

/// Whether `topic` may elect a leader outside its ISR: the topic's
/// `unclean.leader.election.enable`, else the cluster's dynamic default, else false.
pub fn unclean_allowed(image: &MetadataImage, topic: &str) -> bool {
    const KEY: &str = "unclean.leader.election.enable";
    image
        .topics
        .get(topic)
        .and_then(|t| t.configs.get(KEY))
        .or_else(|| image.broker_configs.get("").and_then(|c| c.get(KEY)))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The leader a partition gets when its leader is gone and `can_lead` says who is alive:
/// the first replica (preferred order) in the ISR, or, only when `unclean`, the first live
/// replica at all, which becomes the whole ISR. `None`: nobody can lead.
pub fn elect(
    p: &PartitionImage,
    isr: &[i32],
    unclean: bool,
    can_lead: impl Fn(i32) -> bool,
) -> Option<(i32, Vec<i32>)> {
    if let Some(r) = p
        .replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && can_lead(*r))
    {
        return Some((r, isr.to_vec()));
    }
    if unclean {
        if let Some(r) = p.replicas.iter().copied().find(|r| can_lead(*r)) {
            tracing::warn!(leader = r, "unclean leader election: records may be lost");
            return Some((r, vec![r]));
        }
    }
    None
}

/// How ElectLeaders picks (Kafka's ElectionType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionType {
    /// Back to the first replica, if it is live and in the ISR.
    Preferred,
    /// A leaderless partition takes any live replica, in or out of the ISR.
    Unclean,
}

/// Why one partition of an election did not change leader.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionOutcome {
    /// A new leader was elected.
    Elected,
    /// ELECTION_NOT_NEEDED: it already has the leader asked for.
    NotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica is fenced or out of sync.
    PreferredNotAvailable,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: no live replica can lead.
    NoneEligible,
    /// UNKNOWN_TOPIC_OR_PARTITION.
    Unknown,
}

/// One partition (topic, index) of an election and what happened to it.
pub type PartitionOutcome = ((String, i32), ElectionOutcome);

/// The records of an election over `partitions` (topic name, index; `None`: every
/// partition), with each partition's outcome.
pub fn elect_leaders(
    image: &MetadataImage,
    kind: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, Vec<PartitionOutcome>) {
    let wanted: Vec<(String, i32)> = match partitions {
        Some(list) => list.to_vec(),
        None => image
            .topics
            .values()
            .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p)))
            .collect(),
    };
    let live = |id: i32| image.brokers.get(&id).is_some_and(|b| b.is_active());
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(wanted.len());
    for (topic, index) in wanted {
        let Some((t, p)) = image
            .topics
            .get(&topic)
            .and_then(|t| t.partitions.get(&index).map(|p| (t, p)))
        else {
            outcomes.push(((topic, index), ElectionOutcome::Unknown));
            continue;
        };
        let choice = match kind {
            ElectionType::Preferred => {
                let preferred = p.replicas.first().copied().unwrap_or(-1);
                if p.leader == preferred {
                    Err(ElectionOutcome::NotNeeded)
                } else if live(preferred) && p.isr.contains(&preferred) {
                    Ok((preferred, p.isr.clone()))
                } else {
                    Err(ElectionOutcome::PreferredNotAvailable)
                }
            }
            ElectionType::Unclean => {
                if p.leader >= 0 && live(p.leader) {
                    Err(ElectionOutcome::NotNeeded)
                } else {
                    elect(p, &p.isr, true, live).ok_or(ElectionOutcome::NoneEligible)
                }
            }
        };
        match choice {
            Ok((leader, isr)) => {
                let mut next = p.clone();
                next.isr = isr;
                next.leader = leader;
                next.leader_epoch += 1;
                next.partition_epoch += 1;
                records.push(MetadataRecord::partition(t.topic_id, index, &next));
                outcomes.push(((topic, index), ElectionOutcome::Elected));
            }
            Err(outcome) => outcomes.push(((topic, index), outcome)),
        }
    }
    (records, outcomes)
}

/// Kafka's `auto.leader.rebalance.enable` check: the partitions of every live broker whose
/// share of partitions it prefers but does not lead exceeds `imbalance_percent`, moved back
/// to it where it is in sync.
pub fn rebalance_leaders(image: &MetadataImage, imbalance_percent: u32) -> Vec<MetadataRecord> {
    let mut preferred: std::collections::BTreeMap<i32, (usize, Vec<(String, i32)>)> =
        Default::default();
    for t in image.topics.values() {
        for (index, p) in &t.partitions {
            let Some(first) = p.replicas.first().copied() else {
                continue;
            };
            let entry = preferred.entry(first).or_default();
            entry.0 += 1;
            if p.leader != first {
                entry.1.push((t.name.clone(), *index));
            }
        }
    }
    let mut wanted = Vec::new();
    for (broker, (total, not_led)) in preferred {
        if !image.brokers.get(&broker).is_some_and(|b| b.is_active()) || not_led.is_empty() {
            continue;
        }
        if not_led.len() * 100 > total * imbalance_percent as usize {
            wanted.extend(not_led);
        }
    }
    if wanted.is_empty() {
        return Vec::new();
    }
    elect_leaders(image, ElectionType::Preferred, Some(&wanted)).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> MetadataImage {
        let p = PartitionImage {
            replicas: vec![1, 2],
            isr: vec![1],
            leader: 1,
            leader_epoch: 3,
            partition_epoch: 5,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        };
        // Broker 1 at epoch 11, broker 2 at 12.
        crate::controller::testing::image(&[1, 2], 10, &p)
    }

    fn expand(member_epochs: Vec<(i32, i64)>) -> AlterPartition {
        AlterPartition {
            broker_id: 1,
            broker_epoch: 11,
            topic_id: crate::controller::testing::TOPIC_ID,
            partition: 0,
            leader_epoch: 3,
            partition_epoch: 5,
            new_isr: vec![1, 2],
            member_epochs,
        }
    }

    #[test]
    fn an_expansion_earned_by_an_older_incarnation_of_the_follower_is_refused() {
        let image = image();
        // Broker 2 registered at epoch 12; the leader saw it fetch at 9 (before a restart).
        assert!(matches!(
            alter_partition(&image, &expand(vec![(2, 9)])),
            Err(ControllerError::IneligibleReplica(_))
        ));
        let records = alter_partition(&image, &expand(vec![(2, 12)])).unwrap();
        assert!(matches!(
            &records[..],
            [MetadataRecord::Partition { isr, partition_epoch: 6, .. }] if *isr == vec![1, 2]
        ));
        // A follower that did not say (Fetch before v15) is taken on the leader's word.
        assert_eq!(alter_partition(&image, &expand(vec![])).unwrap().len(), 1);
        let stale_leader = AlterPartition {
            partition_epoch: 4,
            ..expand(vec![])
        };
        assert!(matches!(
            alter_partition(&image, &stale_leader),
            Err(ControllerError::InvalidUpdateVersion(_))
        ));
    }
}
