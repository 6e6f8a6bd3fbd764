//! Partition reassignment (KIP-455, as KRaft does it): a partition's replica set changes
//! in two steps so it never has fewer in-sync copies than before.
//!
//! 1. AlterPartitionReassignments sets the replicas to the target followed by the current
//!    replicas the target drops, and records which replicas are being added and removed.
//!    The added replicas start following the leader and catching up.
//! 2. When the ISR holds every target replica (the leader's AlterPartition of the last
//!    expansion), the reassignment completes in the same record: the replicas become the
//!    target, the removed ones leave the ISR, and if the leader itself was removed the
//!    first in-sync target replica leads in a new leader epoch. Brokers that lost their
//!    replica delete its log when they see the record.
//!
//! A reassignment can be cancelled (a `None` target) while in progress: the replicas go
//! back to the original ones.

use super::ControllerError;
use crate::image::{MetadataImage, PartitionImage};
use crate::records::MetadataRecord;

/// One partition of an AlterPartitionReassignments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reassignment {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The replicas it should have, or `None` to cancel the reassignment in progress.
    pub target: Option<Vec<i32>>,
}

/// The records of `changes`, with each partition's outcome in order. With
/// `allow_replication_factor_change` false (AlterPartitionReassignments v1, KIP-860) a
/// target of another size is refused.
pub fn alter_reassignments(
    image: &MetadataImage,
    changes: &[Reassignment],
    allow_replication_factor_change: bool,
) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(changes.len());
    for change in changes {
        let outcome = reassign_one(image, change, allow_replication_factor_change).map(|next| {
            if let Some((topic_id, next)) = next {
                records.push(MetadataRecord::partition(topic_id, change.partition, &next));
            }
        });
        outcomes.push(outcome);
    }
    (records, outcomes)
}

fn reassign_one(
    image: &MetadataImage,
    change: &Reassignment,
    allow_rf_change: bool,
) -> Result<Option<(uuid::Uuid, PartitionImage)>, ControllerError> {
    let name = format!("{}-{}", change.topic, change.partition);
    let Some((topic, p)) = image
        .topics
        .get(&change.topic)
        .and_then(|t| t.partitions.get(&change.partition).map(|p| (t, p)))
    else {
        return Err(ControllerError::UnknownTopic(name));
    };
    let mut next = p.clone();
    match &change.target {
        None => {
            if !p.is_reassigning() {
                return Err(ControllerError::NoReassignmentInProgress(format!(
                    "no reassignment of {name} is in progress"
                )));
            }
            let original: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| !p.adding_replicas.contains(r))
                .collect();
            next.isr.retain(|r| original.contains(r));
            if next.isr.is_empty() {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "cannot cancel the reassignment of {name}: no original replica is in sync"
                )));
            }
            next.replicas = original;
            next.adding_replicas.clear();
            next.removing_replicas.clear();
            reelect_within_replicas(image, &mut next);
        }
        Some(target) => {
            check_target(image, &name, target)?;
            let current_size = p.target_replicas().len();
            if !allow_rf_change && target.len() != current_size {
                return Err(ControllerError::InvalidReplicationFactor(format!(
                    "the reassignment of {name} changes its replication factor from {current_size} to {}",
                    target.len()
                )));
            }
            let mut merged = target.clone();
            merged.extend(p.replicas.iter().copied().filter(|r| !target.contains(r)));
            next.adding_replicas = target
                .iter()
                .copied()
                .filter(|r| !p.replicas.contains(r))
                .collect();
            next.removing_replicas = p
                .replicas
                .iter()
                .copied()
                .filter(|r| !target.contains(r))
                .collect();
            next.replicas = merged;
            maybe_complete(image, &mut next);
        }
    }
    if next == *p {
        return Ok(None);
    }
    next.partition_epoch = p.partition_epoch + 1;
    Ok(Some((topic.topic_id, next)))
}

/// Kafka's checks of a manual assignment: not empty, no broker twice, every broker
/// registered (INVALID_REPLICA_ASSIGNMENT).
fn check_target(image: &MetadataImage, name: &str, target: &[i32]) -> Result<(), ControllerError> {
    if target.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "the target replicas of {name} are empty"
        )));
    }
    for (i, r) in target.iter().enumerate() {
        if target[..i].contains(r) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "the target replicas of {name} name broker {r} twice"
            )));
        }
        if !image.brokers.contains_key(r) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "the target replicas of {name} name broker {r}, which is not registered"
            )));
        }
    }
    Ok(())
}

/// Completes the reassignment in progress on `p` when every target replica is in the ISR:
/// the replicas become the target and the removed ones leave the ISR (and the
/// leadership). Returns whether it completed.
pub fn maybe_complete(image: &MetadataImage, p: &mut PartitionImage) -> bool {
    if !p.is_reassigning() {
        return false;
    }
    let target = p.target_replicas();
    if !target.iter().all(|r| p.isr.contains(r)) {
        return false;
    }
    p.isr.retain(|r| target.contains(r));
    p.replicas = target;
    p.adding_replicas.clear();
    p.removing_replicas.clear();
    reelect_within_replicas(image, p);
    true
}

/// A leader no longer among the replicas hands over to the first live in-sync replica, in
/// a new leader epoch (leaderless if there is none).
fn reelect_within_replicas(image: &MetadataImage, p: &mut PartitionImage) {
    if p.leader < 0 || p.replicas.contains(&p.leader) {
        return;
    }
    let live = |id: i32| image.brokers.get(&id).is_some_and(|b| b.is_active());
    p.leader = p
        .replicas
        .iter()
        .copied()
        .find(|r| p.isr.contains(r) && live(*r))
        .unwrap_or(-1);
    p.leader_epoch += 1;
}

/// The partitions with a reassignment in progress among `wanted` (topic and partitions;
/// `None`: all), as ListPartitionReassignments answers: (topic, partition, replicas,
/// adding, removing).
pub fn list_reassignments(
    image: &MetadataImage,
    wanted: Option<&[(String, Vec<i32>)]>,
) -> Vec<(String, i32, PartitionImage)> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        let filter = match wanted {
            None => None,
            Some(w) => match w.iter().find(|(name, _)| *name == t.name) {
                Some((_, ps)) => Some(ps),
                None => continue,
            },
        };
        for (index, p) in &t.partitions {
            if p.is_reassigning() && filter.is_none_or(|ps| ps.contains(index)) {
                out.push((t.name.clone(), *index, p.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(brokers: &[i32], replicas: &[i32]) -> MetadataImage {
        let p = PartitionImage {
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        };
        crate::controller::testing::image(brokers, 0, &p)
    }

    fn run(image: &mut MetadataImage, target: Option<Vec<i32>>) -> Result<(), ControllerError> {
        let change = Reassignment {
            topic: "t".into(),
            partition: 0,
            target,
        };
        let (records, mut outcomes) = alter_reassignments(image, &[change], true);
        let next = image.offset + 1;
        for r in &records {
            image.apply(next, r);
        }
        outcomes.remove(0)
    }

    fn partition(image: &MetadataImage) -> &PartitionImage {
        &image.topics["t"].partitions[&0]
    }

    #[test]
    fn a_move_adds_first_and_drops_the_leader_only_once_the_new_replicas_are_in_sync() {
        let mut img = image(&[1, 2, 3, 4], &[1, 2, 3]);
        run(&mut img, Some(vec![4, 2, 3])).unwrap();
        let p = partition(&img).clone();
        assert_eq!(p.replicas, vec![4, 2, 3, 1]);
        assert_eq!(
            (p.adding_replicas.clone(), p.removing_replicas.clone()),
            (vec![4], vec![1])
        );
        assert_eq!(
            (p.leader, p.leader_epoch),
            (1, 0),
            "the leader stays until completion"
        );
        assert_eq!(list_reassignments(&img, None).len(), 1);

        // Broker 4 caught up: the leader's ISR expansion completes the reassignment.
        let mut grown = p.clone();
        grown.isr.push(4);
        assert!(maybe_complete(&img, &mut grown));
        assert_eq!(grown.replicas, vec![4, 2, 3]);
        assert_eq!(grown.isr, vec![2, 3, 4]);
        assert_eq!((grown.leader, grown.leader_epoch), (4, 1));
        assert!(!grown.is_reassigning());
    }

    #[test]
    fn a_target_already_in_sync_completes_at_once_and_a_cancel_restores_the_original() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3]);
        run(&mut img, Some(vec![2, 3])).unwrap();
        let p = partition(&img);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![2, 3], vec![2, 3])
        );
        assert_eq!(p.leader, 2);
        assert!(!p.is_reassigning());

        run(&mut img, Some(vec![2, 3, 1])).unwrap();
        assert_eq!(partition(&img).adding_replicas, vec![1]);
        run(&mut img, None).unwrap();
        let p = partition(&img);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![2, 3], vec![2, 3])
        );
        assert!(!p.is_reassigning());
        assert!(matches!(
            run(&mut img, None),
            Err(ControllerError::NoReassignmentInProgress(_))
        ));
    }

    #[test]
    fn bad_targets_are_refused_with_kafkas_errors() {
        let mut img = image(&[1, 2, 3], &[1, 2]);
        for target in [vec![], vec![1, 1], vec![1, 9]] {
            assert!(matches!(
                run(&mut img, Some(target)),
                Err(ControllerError::InvalidReplicaAssignment(_))
            ));
        }
        let change = Reassignment {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![1, 2, 3]),
        };
        let (records, outcomes) = alter_reassignments(&img, &[change], false);
        assert!(records.is_empty());
        assert!(matches!(
            outcomes[0],
            Err(ControllerError::InvalidReplicationFactor(_))
        ));
        let change = Reassignment {
            topic: "nope".into(),
            partition: 0,
            target: Some(vec![1]),
        };
        assert!(matches!(
            alter_reassignments(&img, &[change], true).1[0],
            Err(ControllerError::UnknownTopic(_))
        ));
        assert_eq!(partition(&img).replicas, vec![1, 2], "nothing changed");
    }
}
