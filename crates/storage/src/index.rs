//! A segment's sparse indexes: [`OffsetIndex`] (`.index`) and [`TimeIndex`] (`.timeindex`).
//!
//! On-disk formats, as Kafka writes them (big-endian, no header):
//! - `.index`: 8-byte entries `relative offset: u32, file position: u32`. An entry says the
//!   batch starting at `position` in the `.log` has base offset `segment base + relative`.
//! - `.timeindex`: 12-byte entries `timestamp: i64, relative offset: u32`. An entry says every
//!   record before the batch with that offset has a timestamp below `timestamp`.
//!
//! Both are sparse (one entry per `index.interval.bytes` of log) and strictly increasing in
//! both fields. Entries live in memory and are written to the file on flush, roll and close;
//! recovery rebuilds whatever was not written, so the files never need their own fsync ordering.
//! Not thread-safe by themselves: the owning segment guards them with a lock.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// A fixed-size index entry.
pub(crate) trait Entry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

/// Offset index entry: relative offset → position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Offset relative to the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Time index entry: timestamp → relative offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp seen before the batch at `relative_offset`, inclusive of that batch.
    pub timestamp: i64,
    /// Offset relative to the segment's base offset.
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// Entries plus what of them is already in the file.
#[derive(Debug, Clone)]
pub(crate) struct IndexFile<E: Entry> {
    entries: Vec<E>,
    /// Entries `[0, persisted)` are in the file as they are in memory.
    persisted: usize,
    max_entries: usize,
}

impl<E: Entry> IndexFile<E> {
    pub(crate) fn new(max_entries: usize) -> Self {
        IndexFile {
            entries: Vec::new(),
            persisted: 0,
            max_entries,
        }
    }

    /// Reads the entries of a file; `None` if its length is not a multiple of the entry size.
    pub(crate) fn read(path: &Path, max_entries: usize) -> std::io::Result<Option<Self>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if bytes.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let entries: Vec<E> = bytes.chunks_exact(E::SIZE).map(E::decode).collect();
        let persisted = entries.len();
        Ok(Some(IndexFile {
            entries,
            persisted,
            max_entries: max_entries.max(persisted),
        }))
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[E] {
        &self.entries
    }

    pub(crate) fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    pub(crate) fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }

    /// Appends the entries not yet written to the file at `path`.
    pub(crate) fn persist(&mut self, path: &Path) -> std::io::Result<()> {
        if self.persisted == self.entries.len() {
            return Ok(());
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let start = (self.persisted * E::SIZE) as u64;
        let mut buf = Vec::with_capacity((self.entries.len() - self.persisted) * E::SIZE);
        for e in &self.entries[self.persisted..] {
            e.encode(&mut buf);
        }
        file.seek(SeekFrom::Start(start))?;
        file.write_all(&buf)?;
        // Segments below the recovery point are trusted with their indexes: make them durable.
        file.sync_data()?;
        self.persisted = self.entries.len();
        Ok(())
    }

    /// Writes the whole index to `path`, replacing it.
    pub(crate) fn write_all(&mut self, path: &Path) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(self.entries.len() * E::SIZE);
        for e in &self.entries {
            e.encode(&mut buf);
        }
        let mut file = File::create(path)?;
        file.write_all(&buf)?;
        file.sync_data()?;
        self.persisted = self.entries.len();
        Ok(())
    }

    /// Bytes of memory the entries use.
    pub(crate) fn memory(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<E>()
    }
}

/// The offset index of one segment.
pub(crate) type OffsetIndex = IndexFile<OffsetEntry>;
/// The time index of one segment.
pub(crate) type TimeIndex = IndexFile<TimeEntry>;

impl IndexFile<OffsetEntry> {
    /// The last entry at or below `relative_offset`: the position to start scanning from.
    pub(crate) fn lookup(&self, relative_offset: u32) -> OffsetEntry {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        if n == 0 {
            OffsetEntry {
                relative_offset: 0,
                position: 0,
            }
        } else {
            self.entries[n - 1]
        }
    }

    /// The last entry whose position is at or below `position`.
    pub(crate) fn lookup_position(&self, position: u32) -> OffsetEntry {
        let n = self.entries.partition_point(|e| e.position <= position);
        if n == 0 {
            OffsetEntry {
                relative_offset: 0,
                position: 0,
            }
        } else {
            self.entries[n - 1]
        }
    }

    /// True when entries increase strictly and all point inside a log of `log_size` bytes.
    pub(crate) fn is_consistent(&self, log_size: u64) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
            && self
                .entries
                .last()
                .is_none_or(|e| u64::from(e.position) < log_size)
    }
}

impl IndexFile<TimeEntry> {
    /// Appends an entry if it raises the largest timestamp indexed so far.
    pub(crate) fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(last) if last.timestamp >= timestamp => {}
            Some(last) if last.relative_offset > relative_offset => {}
            _ => self.entries.push(TimeEntry {
                timestamp,
                relative_offset,
            }),
        }
    }

    /// The last entry with a timestamp at or below `timestamp`.
    pub(crate) fn lookup(&self, timestamp: i64) -> Option<TimeEntry> {
        let n = self.entries.partition_point(|e| e.timestamp <= timestamp);
        (n > 0).then(|| self.entries[n - 1])
    }

    /// True when entries increase strictly in timestamp and do not decrease in offset.
    pub(crate) fn is_consistent(&self) -> bool {
        self.entries.windows(2).all(|w| {
            w[0].timestamp < w[1].timestamp && w[0].relative_offset <= w[1].relative_offset
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oe(r: u32, p: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset: r,
            position: p,
        }
    }

    #[test]
    fn offset_lookup_edges() {
        let mut idx = OffsetIndex::new(3);
        assert_eq!(
            idx.lookup(5),
            oe(0, 0),
            "empty index starts at the segment start"
        );
        idx.push(oe(10, 100));
        idx.push(oe(20, 200));
        assert_eq!(idx.lookup(9), oe(0, 0));
        assert_eq!(idx.lookup(10), oe(10, 100));
        assert_eq!(idx.lookup(19), oe(10, 100));
        assert_eq!(idx.lookup(u32::MAX), oe(20, 200));
        assert_eq!(idx.lookup_position(150), oe(10, 100));
        assert_eq!(idx.lookup_position(99), oe(0, 0));
        assert!(!idx.is_full());
        idx.push(oe(30, 300));
        assert!(idx.is_full());
        assert!(idx.is_consistent(301));
        assert!(!idx.is_consistent(300));
    }

    #[test]
    fn offset_index_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::new(100);
        for i in 0..10 {
            idx.push(oe(i * 10, i * 1000));
        }
        idx.persist(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
        idx.push(oe(97, 9700));
        idx.persist(&path).unwrap();
        let back = OffsetIndex::read(&path, 100).unwrap().unwrap();
        assert_eq!(back.entries(), idx.entries());
        assert_eq!(back.entries().len(), 11);
        std::fs::write(&path, [0u8; 9]).unwrap();
        assert!(
            OffsetIndex::read(&path, 100).unwrap().is_none(),
            "torn entry"
        );
        assert!(OffsetIndex::read(&dir.path().join("x.index"), 100)
            .unwrap()
            .is_none());
    }

    #[test]
    fn time_index_only_grows() {
        let mut idx = TimeIndex::new(10);
        idx.maybe_push(100, 0);
        idx.maybe_push(90, 5);
        idx.maybe_push(100, 6);
        idx.maybe_push(200, 7);
        assert_eq!(idx.entries().len(), 2);
        assert_eq!(idx.lookup(50), None);
        assert_eq!(idx.lookup(150).unwrap().relative_offset, 0);
        assert_eq!(idx.lookup(200).unwrap().relative_offset, 7);
        assert!(idx.is_consistent());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        idx.persist(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
        let back = TimeIndex::read(&path, 10).unwrap().unwrap();
        assert_eq!(back.entries(), idx.entries());
    }
}
