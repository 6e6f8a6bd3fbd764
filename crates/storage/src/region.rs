//! [`FileRegion`]: a byte range of a segment file that a reader owns while sending it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Whole record batches at `[position, position + len)` of a segment's `.log` file.
///
/// The region holds its own `Arc<File>`: closing idle segments, rolling, retention and
/// compaction (which rename files and unlink them later) never invalidate it, so the broker
/// can `sendfile(2)` it at leisure or fall back to [`FileRegion::read_to_vec`]. Only a log
/// truncation (replica divergence) may shorten the file under it.
#[derive(Debug, Clone)]
pub struct FileRegion {
    file: Arc<File>,
    position: u64,
    len: u64,
    base_offset: i64,
}

impl FileRegion {
    pub(crate) fn new(file: Arc<File>, position: u64, len: u64, base_offset: i64) -> Self {
        FileRegion {
            file,
            position,
            len,
            base_offset,
        }
    }

    /// The open segment file (for `sendfile`).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Start of the region in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes in the region.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the region holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Base offset of the first batch in the region.
    pub fn first_batch_offset(&self) -> i64 {
        self.base_offset
    }

    /// Copies the region into memory: the buffered fallback to `sendfile` (e.g. under TLS).
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}
