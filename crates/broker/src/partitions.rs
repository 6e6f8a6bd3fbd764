//! The broker acting on the metadata image: every committed change is brought into the
//! local state here, in image order. A partition with a replica on this node is handed to
//! the replica manager (which creates its log and becomes its leader or follower); a
//! deleted topic or a replica moved away loses its log; config changes reach the logs; the
//! `__consumer_offsets`
//! partitions this node leads are loaded into the group coordinator, and the ones it stopped
//! leading are unloaded.
//!
//! [`Broker::catch_up`] is idempotent and serialized (a mutex): the follower task calls it
//! for each new image, and a request handler after its own change, so the change is in
//! effect before the client hears of it. It does nothing until the broker has caught up
//! with the metadata log (first unfenced): a restarted broker's own old log would make it
//! lead partitions that moved while it was down.

use std::sync::{Arc, Weak};

use strom_coordinator::OFFSETS_TOPIC;
use strom_metadata::MetadataImage;
use strom_replication::Assignment;
use strom_types::TopicPartition;

use crate::broker::Broker;
use crate::dynamic_config::{
    FOLLOWER_THROTTLED_RATE, FOLLOWER_THROTTLED_REPLICAS, LEADER_THROTTLED_RATE,
    LEADER_THROTTLED_REPLICAS,
};

/// Which replication throttles a topic's `*.replication.throttled.replicas` put on the
/// replica of `partition` on broker `me`.
fn throttle_mask(configs: &strom_metadata::records::Configs, partition: i32, me: i32) -> u8 {
    use strom_replication::throttle::names_replica;
    let named = |key: &str| {
        configs
            .get(key)
            .is_some_and(|v| names_replica(v, partition, me))
    };
    let mut mask = 0;
    if named(LEADER_THROTTLED_REPLICAS) {
        mask |= strom_replication::THROTTLE_LEADER;
    }
    if named(FOLLOWER_THROTTLED_REPLICAS) {
        mask |= strom_replication::THROTTLE_FOLLOWER;
    }
    mask
}

/// Follows the metadata image for as long as the broker lives.
pub(crate) async fn follow(broker: Weak<Broker>) {
    let mut rx = match broker.upgrade() {
        Some(b) => b.metadata.subscribe(),
        None => return,
    };
    while rx.changed().await.is_ok() {
        let Some(b) = broker.upgrade() else { return };
        b.catch_up();
    }
}

impl Broker {
    /// Brings the logs and the coordinator in line with the latest image. Creating logs
    /// and loading a `__consumer_offsets` partition do file I/O, so on a multi-threaded
    /// runtime this runs with the worker marked as blocking.
    pub(crate) fn catch_up(&self) {
        if !self.joined.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let run = || {
            let mut applied = self.applied.lock();
            let new = self.metadata.image();
            if Arc::ptr_eq(&applied, &new) {
                return;
            }
            self.reconcile(&applied, &new);
            *applied = new;
        };
        strom_replication::blocking(run)
    }

    /// Deletes the logs on disk that the image gives no replica here: topics deleted, or
    /// recreated under a new id, while this node was down. Called once this broker has
    /// caught up with the metadata log (when it is first unfenced), never before: a partial
    /// image would make live logs look stray.
    pub(crate) fn delete_stray_logs(&self) {
        let applied = self.applied.lock();
        let me = self.config.node_id;
        for log in self.logs.logs() {
            let tp = log.topic_partition().clone();
            let wanted = applied
                .topics
                .get(tp.topic.as_str())
                .and_then(|t| t.partitions.get(&tp.partition))
                .is_some_and(|p| p.replicas.contains(&me));
            if wanted {
                continue;
            }
            tracing::info!(partition = %tp, "deleting a log the metadata no longer gives this broker");
            if let Err(e) = self.replicas.remove(&tp) {
                tracing::warn!(partition = %tp, error = %e, "could not delete a stray log");
            }
        }
    }

    fn reconcile(&self, old: &MetadataImage, new: &MetadataImage) {
        let me = self.config.node_id;
        for (name, t) in &old.topics {
            if new.topics.get(name).map(|n| n.topic_id) == Some(t.topic_id) {
                continue;
            }
            for p in t.partitions.keys() {
                if name == OFFSETS_TOPIC && self.coordinator.is_partition_loaded(*p) {
                    self.coordinator.unload_partition(*p);
                }
                if name == strom_coordinator::txn::TRANSACTION_STATE_TOPIC {
                    self.transactions.unload_partition(*p);
                }
                if let Err(e) = self
                    .replicas
                    .remove(&TopicPartition::new(name.as_str(), *p))
                {
                    tracing::warn!(topic = %name, partition = p, error = %e, "could not delete the log of a deleted topic");
                }
            }
        }
        let broker_configs_changed = old.broker_configs != new.broker_configs;
        {
            // Cheap, so every image: the static value counts before any dynamic one.
            let rate = |key: &str| {
                new.dynamic_broker_config(me, key)
                    .or_else(|| self.config.raw.get(key))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|v| *v < i64::MAX as u64)
            };
            self.replicas
                .set_throttle_rates(rate(LEADER_THROTTLED_RATE), rate(FOLLOWER_THROTTLED_RATE));
        }
        for (name, t) in &new.topics {
            let before = old.topics.get(name).filter(|o| o.topic_id == t.topic_id);
            if !broker_configs_changed && before == Some(t) {
                continue; // unchanged: nothing to do for it
            }
            let config = self.log_config(new, name);
            let min_isr = self.min_insync_replicas(new, name);
            for (p, placement) in &t.partitions {
                let tp = TopicPartition::new(name.as_str(), *p);
                if !placement.replicas.contains(&me) {
                    // Reassigned away from this broker.
                    if self.replicas.get(&tp).is_some() {
                        if let Err(e) = self.replicas.remove(&tp) {
                            tracing::warn!(partition = %tp, error = %e, "could not delete a moved replica's log");
                        }
                    }
                    continue;
                }
                let assignment = Assignment {
                    topic_id: t.topic_id,
                    replicas: placement.replicas.clone(),
                    isr: placement.isr.clone(),
                    leader: placement.leader,
                    leader_epoch: placement.leader_epoch,
                    partition_epoch: placement.partition_epoch,
                };
                if let Err(e) = self
                    .replicas
                    .apply(&tp, assignment, config.clone(), min_isr)
                {
                    tracing::error!(partition = %tp, error = %e, "could not bring a replica in line with the metadata");
                }
                if let Some(r) = self.replicas.get(&tp) {
                    r.set_throttled(throttle_mask(&t.configs, *p, me));
                }
            }
            // A topic seen for the first time may have logs opened from disk before its
            // configs were known: they get them now.
            if broker_configs_changed || before.is_none_or(|b| b.configs != t.configs) {
                for p in t.partitions.keys() {
                    if let Some(log) = self.logs.get(&TopicPartition::new(name.as_str(), *p)) {
                        log.set_config(config.clone());
                    }
                }
            }
        }
        self.reconcile_transactions(new);
        if let Some(offsets) = new.topics.get(OFFSETS_TOPIC) {
            for (p, placement) in &offsets.partitions {
                let owned = self.coordinator.is_partition_loaded(*p)
                    || self.coordinator.is_partition_loading(*p);
                if placement.leader == me && !owned {
                    let Some(log) = self.logs.get(&TopicPartition::new(OFFSETS_TOPIC, *p)) else {
                        continue;
                    };
                    // Replayed in the background, as Kafka's coordinator loads: meanwhile
                    // its groups are answered COORDINATOR_LOAD_IN_PROGRESS, and the image
                    // goes on being applied.
                    let token = self.coordinator.begin_loading(*p);
                    let coordinator = self.coordinator.clone();
                    let (partition, epoch) = (*p, placement.leader_epoch);
                    let load = move || {
                        if let Err(e) = coordinator.finish_loading(partition, log, epoch, token) {
                            tracing::error!(partition, error = %e, "could not load a __consumer_offsets partition");
                            coordinator.unload_partition(partition);
                        }
                    };
                    match tokio::runtime::Handle::try_current() {
                        Ok(rt) => drop(rt.spawn_blocking(load)),
                        Err(_) => load(),
                    }
                } else if placement.leader != me && owned {
                    self.coordinator.unload_partition(*p);
                }
            }
        }
    }
}
