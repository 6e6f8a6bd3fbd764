//! Kafka's checkpoint files, written atomically (temp file, fsync, rename, fsync dir).
//!
//! - Offset checkpoints, one per log dir (`recovery-point-offset-checkpoint`,
//!   `log-start-offset-checkpoint`): a version line `0`, a count line, then
//!   `<topic> <partition> <offset>` per line.
//! - The leader-epoch checkpoint, one per partition (`leader-epoch-checkpoint`): a version
//!   line `0`, a count line, then `<epoch> <start offset>` per line.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use strom_types::TopicPartition;

use crate::error::{IoContext, Result};

/// Name of the per-dir recovery point checkpoint.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Name of the per-dir log start offset checkpoint.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Name of the per-partition leader epoch checkpoint.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// The marker a clean shutdown leaves in each log dir (Kafka's name).
pub const CLEAN_SHUTDOWN_MARKER: &str = ".kafka_cleanshutdown";

/// Writes `contents` to `path` atomically and durably.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(contents).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    std::fs::rename(&tmp, path).at(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Writes an offset checkpoint.
pub fn write_offsets(path: &Path, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
    let mut s = format!("0\n{}\n", offsets.len());
    for (tp, off) in offsets {
        s.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, off));
    }
    write_atomic(path, s.as_bytes())
}

/// Reads an offset checkpoint; a missing file is empty. A malformed file is reported and
/// ignored (the caller then recovers conservatively), never fatal.
pub fn read_offsets(path: &Path) -> Result<BTreeMap<TopicPartition, i64>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).at(path),
    };
    match parse_offsets(&text) {
        Some(m) => Ok(m),
        None => {
            tracing::warn!(file = %path.display(), "malformed checkpoint file ignored");
            Ok(BTreeMap::new())
        }
    }
}

fn parse_offsets(text: &str) -> Option<BTreeMap<TopicPartition, i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let mut parts = lines.next()?.split(' ');
        let topic = parts.next()?;
        let partition: i32 = parts.next()?.parse().ok()?;
        let offset: i64 = parts.next()?.parse().ok()?;
        out.insert(TopicPartition::new(topic, partition), offset);
    }
    Some(out)
}

/// Writes `(epoch, start offset)` pairs as a leader-epoch checkpoint.
pub fn write_epochs(path: &Path, entries: &[(i32, i64)]) -> Result<()> {
    let mut s = format!("0\n{}\n", entries.len());
    for (epoch, start) in entries {
        s.push_str(&format!("{epoch} {start}\n"));
    }
    write_atomic(path, s.as_bytes())
}

/// Reads a leader-epoch checkpoint; missing or malformed reads as empty.
pub fn read_epochs(path: &Path) -> Result<Vec<(i32, i64)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at(path),
    };
    let parse = || -> Option<Vec<(i32, i64)>> {
        let mut lines = text.lines();
        if lines.next()?.trim() != "0" {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut out = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let (e, o) = lines.next()?.split_once(' ')?;
            out.push((e.parse().ok()?, o.parse().ok()?));
        }
        Some(out)
    };
    Ok(parse().unwrap_or_else(|| {
        tracing::warn!(file = %path.display(), "malformed leader epoch checkpoint ignored");
        Vec::new()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        let mut m = BTreeMap::new();
        m.insert(TopicPartition::new("a-b", 3), 42);
        m.insert(TopicPartition::new("c", 0), 0);
        write_offsets(&path, &m).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0\n2\na-b 3 42\nc 0 0\n"
        );
        assert_eq!(read_offsets(&path).unwrap(), m);
        std::fs::write(&path, "0\n5\nx 1 2\n").unwrap();
        assert!(read_offsets(&path).unwrap().is_empty());
        assert!(read_offsets(&dir.path().join("none")).unwrap().is_empty());
    }

    #[test]
    fn epochs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        write_epochs(&path, &[(0, 0), (3, 120)]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0\n2\n0 0\n3 120\n"
        );
        assert_eq!(read_epochs(&path).unwrap(), vec![(0, 0), (3, 120)]);
    }
}
