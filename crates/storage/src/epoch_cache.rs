//! The leader-epoch cache of a partition: at which offset each leader epoch began.
//!
//! Replication uses it to answer OffsetForLeaderEpoch and to truncate divergent tails; it is
//! kept in `leader-epoch-checkpoint` and trimmed whenever the log is truncated at either end.

use std::path::PathBuf;

use crate::checkpoint::{read_epochs, write_epochs};
use crate::error::Result;

/// `(epoch, start offset)` entries, both strictly increasing, persisted on every change.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Loads the cache from its checkpoint file (missing = empty).
    pub fn load(path: PathBuf) -> Result<Self> {
        let mut entries = read_epochs(&path)?;
        entries.dedup_by_key(|e| e.0);
        Ok(LeaderEpochCache { path, entries })
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest epoch.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        if epoch < 0 {
            return Ok(());
        }
        match self.entries.last() {
            Some(&(e, _)) if e >= epoch => Ok(()),
            _ => {
                self.entries.push((epoch, start_offset));
                self.persist()
            }
        }
    }

    /// Drops epochs that start at or after `end_offset` (the log was truncated to it).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// The log now starts at `start_offset`: drops epochs wholly before it, and moves the
    /// start of the epoch that covers it.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<()> {
        let covering = self.entries.partition_point(|&(_, s)| s <= start_offset);
        if covering == 0 {
            return Ok(());
        }
        let mut changed = covering > 1;
        self.entries.drain(..covering - 1);
        if self.entries[0].1 < start_offset {
            self.entries[0].1 = start_offset;
            changed = true;
        }
        if changed {
            self.persist()?;
        }
        Ok(())
    }

    /// Kafka's OffsetForLeaderEpoch: the largest epoch at or below `epoch` and the offset
    /// where it ended (the next epoch's start, or `log_end` for the latest epoch).
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> Option<(i32, i64)> {
        let n = self.entries.partition_point(|&(e, _)| e <= epoch);
        if n == 0 {
            return None;
        }
        let found = self.entries[n - 1].0;
        let end = self.entries.get(n).map(|e| e.1).unwrap_or(log_end);
        Some((found, end))
    }

    fn persist(&self) -> Result<()> {
        write_epochs(&self.path, &self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_truncate_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leader-epoch-checkpoint");
        let mut c = LeaderEpochCache::load(path.clone()).unwrap();
        c.assign(0, 0).unwrap();
        c.assign(0, 5).unwrap();
        c.assign(2, 10).unwrap();
        c.assign(1, 12).unwrap();
        c.assign(4, 20).unwrap();
        assert_eq!(c.entries(), &[(0, 0), (2, 10), (4, 20)]);
        assert_eq!(c.end_offset_for(3, 30), Some((2, 20)));
        assert_eq!(c.end_offset_for(4, 30), Some((4, 30)));
        assert_eq!(c.end_offset_for(-1, 30), None);
        c.truncate_from_end(20).unwrap();
        assert_eq!(c.entries(), &[(0, 0), (2, 10)]);
        c.truncate_from_start(12).unwrap();
        assert_eq!(c.entries(), &[(2, 12)]);
        let back = LeaderEpochCache::load(path).unwrap();
        assert_eq!(back.entries(), &[(2, 12)]);
    }
}
