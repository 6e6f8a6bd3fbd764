//! Offsets committed inside transactions (TxnOffsetCommit, KIP-98 and KIP-447): written to
//! the group's `__consumer_offsets` partition as a transactional batch of the producer, held
//! as pending until the transaction's marker reaches that partition, then committed or
//! dropped.

use std::collections::BTreeMap;

use strom_storage::now_ms;

use super::{CommitEntry, GroupCoordinator};
use crate::codes;

/// The producer a TxnOffsetCommit comes from, with the group membership it claims.
#[derive(Debug, Clone)]
pub struct TxnCommitter {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Member id (v3+, empty when not given).
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Generation (-1 when not given).
    pub generation: i32,
}

impl GroupCoordinator {
    /// TxnOffsetCommit: a top-level error, or one code per entry. The offsets are pending
    /// until [`GroupCoordinator::complete_txn`] is called for the producer.
    pub fn txn_commit_offsets(
        &self,
        group_id: &str,
        by: &TxnCommitter,
        entries: &[CommitEntry],
    ) -> Result<Vec<i16>, i16> {
        if group_id.is_empty() {
            return Err(codes::INVALID_GROUP_ID);
        }
        let handle = self.get_or_create(group_id)?;
        let mut g = handle.group.lock();
        g.validate_txn_commit(&by.member_id, by.instance_id.as_deref(), by.generation)?;
        let now = now_ms();
        let (out, records, values) = self.offset_records(group_id, entries, now);
        if !records.is_empty() {
            if let Err(err) = handle
                .sink
                .append_batch(&records, Some((by.producer_id, by.producer_epoch)))
            {
                tracing::warn!(group = group_id, error = %err, "could not store transactional offsets");
                return Err(codes::COORDINATOR_NOT_AVAILABLE);
            }
            g.pending_txn
                .entry(by.producer_id)
                .or_default()
                .extend(values);
        }
        Ok(out)
    }

    /// A transaction marker of `producer_id` reached `__consumer_offsets` partition
    /// `partition`: its pending offsets there are committed, or dropped on an abort.
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let handles: Vec<_> = self
            .groups
            .lock()
            .values()
            .filter(|h| h.partition == partition)
            .cloned()
            .collect();
        for h in handles {
            let mut g = h.group.lock();
            let Some(pending) = g.pending_txn.remove(&producer_id) else {
                continue;
            };
            if commit {
                g.offsets.extend(pending);
            }
        }
    }

    /// True when a transaction not yet ended holds an offset of `(topic, partition)` for
    /// `group` (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let Some(h) = self.existing(group) else {
            return false;
        };
        let g = h.group.lock();
        let key = (topic.to_string(), partition);
        g.pending_txn
            .values()
            .any(|m: &BTreeMap<_, _>| m.contains_key(&key))
    }
}
