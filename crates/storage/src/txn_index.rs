//! The aborted-transaction index: every transaction an ABORT marker ended in this
//! partition, which read_committed fetches hand to consumers so they drop those records.
//!
//! On disk it is Kafka's `.txnindex` beside each segment: one 34-byte entry per aborted
//! transaction (version 0, producer id, first offset, last offset, last stable offset), in
//! the file of the segment that holds the ABORT marker. In memory the log keeps all entries
//! in one list ordered by marker offset; the files are derived from it, so a truncation or a
//! compaction rewrites the files of the segments it touched from the list.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::segment::file_name;

/// Suffix of a segment's aborted-transaction index.
pub const TXN_INDEX_SUFFIX: &str = "txnindex";

const ENTRY_LEN: usize = 34;

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of its first record in this partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset once the marker was written.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    fn decode(e: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| -> Option<i64> {
            Some(i64::from_be_bytes(e.get(at..at + 8)?.try_into().ok()?))
        };
        if i16::from_be_bytes(e.get(0..2)?.try_into().ok()?) != 0 {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2)?,
            first_offset: i64_at(10)?,
            last_offset: i64_at(18)?,
            last_stable_offset: i64_at(26)?,
        })
    }
}

/// The index file of the segment based at `base`.
pub(crate) fn path(dir: &Path, base: i64) -> PathBuf {
    dir.join(file_name(base, TXN_INDEX_SUFFIX))
}

/// Reads the index files of `bases` (ascending segment bases). A torn last entry (a crash
/// mid-write) is ignored; recovery writes it again from the log.
pub(crate) fn load(dir: &Path, bases: &[i64]) -> Result<Vec<AbortedTxn>> {
    let mut out = Vec::new();
    for base in bases {
        let p = path(dir, *base);
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).at(&p),
        };
        out.extend(bytes.chunks_exact(ENTRY_LEN).filter_map(AbortedTxn::decode));
    }
    out.sort_by_key(|t| t.last_offset);
    out.dedup();
    Ok(out)
}

/// Appends one entry to the file of segment `base`.
pub(crate) fn append(dir: &Path, base: i64, entry: &AbortedTxn) -> Result<()> {
    let p = path(dir, base);
    let mut bytes = Vec::with_capacity(ENTRY_LEN);
    entry.encode(&mut bytes);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .at(&p)?;
    f.write_all(&bytes).at(&p)
}

/// Rewrites the file of segment `base` to hold exactly `entries` (removed when empty).
pub(crate) fn rewrite(dir: &Path, base: i64, entries: &[AbortedTxn]) -> Result<()> {
    write_file(&path(dir, base), entries)
}

/// Writes `entries` as the index file `p` (through a temporary file), or removes `p` when
/// there are none.
pub(crate) fn write_file(p: &Path, entries: &[AbortedTxn]) -> Result<()> {
    let p = p.to_path_buf();
    if entries.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(&p),
            _ => Ok(()),
        };
    }
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        e.encode(&mut bytes);
    }
    let mut tmp = p.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, &bytes).at(&tmp)?;
    std::fs::rename(&tmp, &p).at(&p)
}

/// The entries a fetch of `[from, to)` needs: transactions that end at or after `from` and
/// began before `to`. `entries` is ordered by last offset.
pub(crate) fn collect(entries: &[AbortedTxn], from: i64, to: i64) -> Vec<AbortedTxn> {
    let start = entries.partition_point(|t| t.last_offset < from);
    entries[start..]
        .iter()
        .filter(|t| t.first_offset < to)
        .copied()
        .collect()
}

/// The entries whose marker lies in `[base, next)`.
pub(crate) fn in_range(entries: &[AbortedTxn], base: i64, next: Option<i64>) -> &[AbortedTxn] {
    let lo = entries.partition_point(|t| t.last_offset < base);
    let hi = match next {
        Some(n) => entries.partition_point(|t| t.last_offset < n),
        None => entries.len(),
    };
    &entries[lo..hi.max(lo)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn files_round_trip_and_a_torn_entry_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), 0, &t(1, 0, 5)).unwrap();
        append(dir.path(), 0, &t(2, 3, 8)).unwrap();
        append(dir.path(), 10, &t(3, 9, 12)).unwrap();
        let p = path(dir.path(), 10);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[0, 0, 1, 2, 3]).unwrap();
        let all = load(dir.path(), &[0, 10]).unwrap();
        assert_eq!(all, vec![t(1, 0, 5), t(2, 3, 8), t(3, 9, 12)]);
        rewrite(dir.path(), 0, &all[..1]).unwrap();
        rewrite(dir.path(), 10, &[]).unwrap();
        assert!(!p.exists());
        assert_eq!(load(dir.path(), &[0, 10]).unwrap(), vec![t(1, 0, 5)]);
    }

    #[test]
    fn a_fetch_gets_the_transactions_overlapping_its_range() {
        let all = vec![t(1, 0, 5), t(2, 3, 8), t(3, 9, 12), t(4, 20, 30)];
        assert_eq!(collect(&all, 6, 10), vec![t(2, 3, 8), t(3, 9, 12)]);
        assert_eq!(collect(&all, 0, 1), vec![t(1, 0, 5)]);
        assert_eq!(collect(&all, 13, 20), vec![]);
        assert_eq!(in_range(&all, 8, Some(20)), &[t(2, 3, 8), t(3, 9, 12)]);
        assert_eq!(in_range(&all, 20, None), &[t(4, 20, 30)]);
    }
}
