//! Asynchronous file deletion: segments renamed to `.deleted` are unlinked after
//! `file.delete.delay.ms`, so readers that still hold a region of them finish undisturbed.

use std::path::PathBuf;

use parking_lot::Mutex;

/// Files waiting for removal, with the time (ms) each becomes due.
#[derive(Debug, Default)]
pub struct FileDeleter {
    pending: Mutex<Vec<(i64, PathBuf)>>,
}

impl FileDeleter {
    /// An empty queue.
    pub fn new() -> Self {
        FileDeleter::default()
    }

    /// Queues `paths` (files or directories) for removal at `due_ms`.
    pub fn schedule(&self, due_ms: i64, paths: impl IntoIterator<Item = PathBuf>) {
        self.pending
            .lock()
            .extend(paths.into_iter().map(|p| (due_ms, p)));
    }

    /// Removes everything due at `now_ms`; returns how many paths were removed.
    pub fn delete_due(&self, now_ms: i64) -> usize {
        let due: Vec<PathBuf> = {
            let mut pending = self.pending.lock();
            let (due, keep): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(t, _)| *t <= now_ms);
            *pending = keep;
            due.into_iter().map(|(_, p)| p).collect()
        };
        let n = due.len();
        for p in due {
            let result = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            if let Err(e) = result {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %p.display(), error = %e, "could not delete file");
                }
            }
        }
        n
    }

    /// Paths still waiting.
    pub fn pending(&self) -> usize {
        self.pending.lock().len()
    }
}
