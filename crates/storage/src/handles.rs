//! Bounds the open file descriptors and loaded indexes of all segments of a [`LogManager`].
//!
//! Segments open their `.log` file and load their indexes lazily, on first use, and register
//! here. When more than `limit` segments are open, the least recently used are closed: the fd
//! is dropped (a reader still holding a [`FileRegion`] keeps its own `Arc<File>`), and an
//! inactive segment's indexes are dropped from memory (they are on disk already).
//! Eviction only `try_lock`s segments, so it never waits on, or deadlocks with, an append.
//!
//! [`LogManager`]: crate::LogManager
//! [`FileRegion`]: crate::FileRegion

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::segment::Segment;

/// The registry of open segments, shared by every log of a manager.
#[derive(Debug)]
pub struct FileHandles {
    limit: usize,
    clock: AtomicU64,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Weak<Segment>>>,
}

impl FileHandles {
    /// A registry that keeps at most `limit` segments open.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(FileHandles {
            limit: limit.max(2),
            clock: AtomicU64::new(1),
            next_id: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A limit from the process's open-file limit: half of it, leaving the rest to sockets.
    pub fn default_limit() -> usize {
        std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
            })
            .map(|soft| soft / 2)
            .unwrap_or(512)
            .max(64)
    }

    /// The most segments kept open at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Segments open now.
    pub fn open_count(&self) -> usize {
        self.open.lock().len()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Records that `segment` opened its file; closes the least recently used if over the limit.
    pub(crate) fn register(&self, segment: &Arc<Segment>) {
        let mut open = self.open.lock();
        open.insert(segment.id(), Arc::downgrade(segment));
        if open.len() <= self.limit {
            return;
        }
        // Close down to 7/8 of the limit so eviction runs once per many opens, not every time.
        let target = self.limit - self.limit / 8;
        let mut candidates: Vec<(u64, u64, Arc<Segment>)> = Vec::with_capacity(open.len());
        let mut gone = Vec::new();
        for (&id, weak) in open.iter() {
            match weak.upgrade() {
                Some(s) if id != segment.id() => candidates.push((s.last_used(), id, s)),
                Some(_) => {}
                None => gone.push(id),
            }
        }
        for id in gone {
            open.remove(&id);
        }
        candidates.sort_unstable_by_key(|c| c.0);
        for (_, id, s) in candidates {
            if open.len() <= target {
                break;
            }
            if s.try_close_handles() {
                open.remove(&id);
            }
        }
    }

    /// Forgets a segment that closed itself.
    pub(crate) fn unregister(&self, id: u64) {
        self.open.lock().remove(&id);
    }
}
