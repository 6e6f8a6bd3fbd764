//! Broker liveness as records: registration, heartbeats (unfencing a broker that caught up,
//! controlled shutdown), fencing, and the partition leader elections each causes.
//!
//! A fenced broker leaves the ISR of its partitions (unless it is the last member) and every
//! partition it led gets a new leader from the remaining ISR, or none (-1) when no in-sync
//! replica is active; an unfenced broker takes the lead of leaderless partitions whose ISR
//! holds it. Each leader change bumps the leader epoch; every change bumps the partition
//! epoch.

use super::ControllerError;
use crate::image::MetadataImage;
use crate::records::{Endpoint, MetadataRecord};

/// The records that register `broker_id`, and its new epoch. A different incarnation while
/// the registered one is still heard from is a duplicate `node.id`.
pub fn register(
    image: &MetadataImage,
    broker_id: i32,
    incarnation_id: uuid::Uuid,
    listeners: Vec<Endpoint>,
    rack: Option<String>,
    recently_heard: bool,
) -> Result<(Vec<MetadataRecord>, i64), ControllerError> {
    let mut records = Vec::new();
    if let Some(b) = image.brokers.get(&broker_id) {
        if b.incarnation_id != incarnation_id && !b.fenced && recently_heard {
            return Err(ControllerError::DuplicateBrokerRegistration(format!(
                "node {broker_id} is registered by another process (incarnation {}) whose \
                 session is still open: either two brokers share this node.id, which must be \
                 unique in the cluster, or this broker restarted within \
                 broker.session.timeout.ms and may register once the old session expires",
                b.incarnation_id
            )));
        }
        // A new registration replaces the old one: what the old one led moves first.
        records.extend(fence(image, broker_id));
    }
    // Greater than every epoch handed out before: each registration is a new entry.
    let epoch = image.offset + 1;
    records.push(MetadataRecord::RegisterBroker {
        broker_id,
        incarnation_id,
        epoch,
        listeners,
        rack,
    });
    Ok((records, epoch))
}

/// What a heartbeat changes.
#[derive(Debug, Default)]
pub struct HeartbeatOutcome {
    /// Records to commit.
    pub records: Vec<MetadataRecord>,
    /// Whether the broker is fenced afterwards.
    pub fenced: bool,
    /// Whether a controlled shutdown is complete.
    pub should_shut_down: bool,
}

/// A heartbeat from `broker_id` at `epoch`: unfences it once it has replayed past its
/// registration; with `want_shut_down`, moves its leaderships away and fences it.
pub fn heartbeat(
    image: &MetadataImage,
    broker_id: i32,
    epoch: i64,
    metadata_offset: i64,
    want_shut_down: bool,
) -> Result<HeartbeatOutcome, ControllerError> {
    let Some(b) = image.brokers.get(&broker_id) else {
        return Err(ControllerError::StaleBrokerEpoch(format!(
            "broker {broker_id} is not registered"
        )));
    };
    if b.epoch != epoch {
        return Err(ControllerError::StaleBrokerEpoch(format!(
            "broker {broker_id} has epoch {}, the heartbeat carries {epoch}",
            b.epoch
        )));
    }
    if want_shut_down {
        return Ok(HeartbeatOutcome {
            records: fence(image, broker_id),
            fenced: true,
            should_shut_down: true,
        });
    }
    if b.fenced && metadata_offset >= b.registered_offset {
        let mut records = vec![MetadataRecord::UnfenceBroker { broker_id, epoch }];
        records.extend(elect_leaderless(image, broker_id));
        return Ok(HeartbeatOutcome {
            records,
            fenced: false,
            should_shut_down: false,
        });
    }
    Ok(HeartbeatOutcome {
        records: Vec::new(),
        fenced: b.fenced,
        should_shut_down: false,
    })
}

/// The records that fence `broker_id` and move its partitions' leadership and ISR
/// membership away. Nothing when it is unknown or already fenced.
pub fn fence(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let Some(b) = image.brokers.get(&broker_id).filter(|b| !b.fenced) else {
        return Vec::new();
    };
    let mut records = vec![MetadataRecord::FenceBroker {
        broker_id,
        epoch: b.epoch,
    }];
    let can_lead =
        |id: i32| id != broker_id && image.brokers.get(&id).is_some_and(|b| b.is_active());
    for topic in image.topics.values() {
        for (index, p) in &topic.partitions {
            if !p.replicas.contains(&broker_id) {
                continue;
            }
            let mut isr = p.isr.clone();
            if isr.len() > 1 {
                isr.retain(|r| *r != broker_id);
            }
            let leader = if p.leader == broker_id {
                let unclean = super::partitions::unclean_allowed(image, &topic.name);
                match super::partitions::elect(p, &isr, unclean, can_lead) {
                    Some((leader, new_isr)) => {
                        isr = new_isr;
                        leader
                    }
                    None => -1,
                }
            } else {
                p.leader
            };
            if leader == p.leader && isr == p.isr {
                continue;
            }
            let mut next = p.clone();
            next.leader_epoch += i32::from(leader != p.leader);
            next.partition_epoch += 1;
            next.isr = isr;
            next.leader = leader;
            records.push(MetadataRecord::partition(topic.topic_id, *index, &next));
        }
    }
    records
}

/// Leaderless partitions whose ISR holds `broker_id` get it as leader; with unclean
/// election allowed, so do those it is merely a replica of.
fn elect_leaderless(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for (index, p) in &topic.partitions {
            if p.leader != -1 || !p.replicas.contains(&broker_id) {
                continue;
            }
            let unclean = super::partitions::unclean_allowed(image, &topic.name);
            let elected = super::partitions::elect(p, &p.isr, unclean, |r| r == broker_id);
            if let Some((leader, isr)) = elected {
                let mut next = p.clone();
                next.isr = isr;
                next.leader = leader;
                next.leader_epoch += 1;
                next.partition_epoch += 1;
                records.push(MetadataRecord::partition(topic.topic_id, *index, &next));
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with_brokers(ids: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in ids {
            let (records, epoch) =
                register(&image, *id, uuid::Uuid::new_v4(), Vec::new(), None, false).unwrap();
            let next = image.offset + 1;
            for r in &records {
                image.apply(next, r);
            }
            let hb = heartbeat(&image, *id, epoch, next, false).unwrap();
            let next = image.offset + 1;
            for r in &hb.records {
                image.apply(next, r);
            }
        }
        image
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        let next = image.offset + 1;
        for r in records {
            image.apply(next, r);
        }
    }

    #[test]
    fn a_fenced_leader_hands_over_to_an_in_sync_replica_and_returns_when_leaderless() {
        let mut image = image_with_brokers(&[1, 2]);
        assert!(image.brokers.values().all(|b| !b.fenced));
        let id = uuid::Uuid::new_v4();
        apply(
            &mut image,
            &[
                MetadataRecord::Topic {
                    name: "t".into(),
                    topic_id: id,
                },
                MetadataRecord::Partition {
                    topic_id: id,
                    partition: 0,
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                    leader: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                },
            ],
        );
        let records = fence(&image, 1);
        apply(&mut image, &records);
        let p = &image.topics["t"].partitions[&0];
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (2, 1, vec![2]));
        assert!(fence(&image, 1).is_empty(), "fencing twice changes nothing");
        let records = fence(&image, 2);
        apply(&mut image, &records);
        let p = &image.topics["t"].partitions[&0];
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (-1, 2, vec![2]));
        // Broker 1 comes back: it is not in the ISR, so it cannot lead. Broker 2 can.
        let epoch1 = image.brokers[&1].epoch;
        let out = heartbeat(&image, 1, epoch1, image.offset, false).unwrap();
        apply(&mut image, &out.records);
        assert_eq!(image.topics["t"].partitions[&0].leader, -1);
        let epoch2 = image.brokers[&2].epoch;
        let out = heartbeat(&image, 2, epoch2, image.offset, false).unwrap();
        assert!(!out.fenced);
        apply(&mut image, &out.records);
        assert_eq!(image.topics["t"].partitions[&0].leader, 2);
    }

    #[test]
    fn a_second_incarnation_of_a_live_node_id_is_refused_and_stale_epochs_rejected() {
        let image = image_with_brokers(&[1]);
        let err = register(&image, 1, uuid::Uuid::new_v4(), Vec::new(), None, true).unwrap_err();
        assert!(matches!(
            err,
            ControllerError::DuplicateBrokerRegistration(_)
        ));
        // Not heard from lately: the new incarnation replaces it.
        assert!(register(&image, 1, uuid::Uuid::new_v4(), Vec::new(), None, false).is_ok());
        let epoch = image.brokers[&1].epoch;
        assert!(matches!(
            heartbeat(&image, 1, epoch - 1, 0, false),
            Err(ControllerError::StaleBrokerEpoch(_))
        ));
        assert!(matches!(
            heartbeat(&image, 7, epoch, 0, false),
            Err(ControllerError::StaleBrokerEpoch(_))
        ));
    }

    #[test]
    fn a_broker_stays_fenced_until_it_has_replayed_its_registration() {
        let mut image = MetadataImage::default();
        let (records, epoch) =
            register(&image, 3, uuid::Uuid::new_v4(), Vec::new(), None, false).unwrap();
        apply(&mut image, &records);
        let at = image.brokers[&3].registered_offset;
        let out = heartbeat(&image, 3, epoch, at - 1, false).unwrap();
        assert!(out.fenced && out.records.is_empty());
        let out = heartbeat(&image, 3, epoch, at, false).unwrap();
        assert!(!out.fenced);
        let out = heartbeat(&image, 3, epoch, at, true).unwrap();
        assert!(out.should_shut_down);
    }
}
