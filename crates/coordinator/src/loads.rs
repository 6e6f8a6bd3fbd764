//! Which coordinator partitions are being loaded, shared by both coordinators: each load
//! has a token, so a load that ends after its partition was unloaded (leadership moved on
//! meanwhile) is recognised and dropped. The lock is held by whoever installs a finished
//! load or unloads a partition, so the two never interleave.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

/// The loads in progress, by partition.
#[derive(Debug, Default)]
pub(crate) struct Loads {
    loading: Mutex<HashMap<i32, u64>>,
    next: AtomicU64,
}

/// Held while a finished load is installed or a partition unloaded.
pub(crate) type LoadGuard<'a> = MutexGuard<'a, HashMap<i32, u64>>;

impl Loads {
    /// Marks `partition` as loading; returns the token its end must show.
    pub(crate) fn begin(&self, partition: i32) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.loading.lock().insert(partition, token);
        token
    }

    /// True while `partition` is being loaded.
    pub(crate) fn is_loading(&self, partition: i32) -> bool {
        self.loading.lock().contains_key(&partition)
    }

    /// Ends the load of `partition` begun with `token`: the guard to hold while installing
    /// it, or `None` if the partition was unloaded (or loaded again) since.
    pub(crate) fn finish(&self, partition: i32, token: u64) -> Option<LoadGuard<'_>> {
        let mut loading = self.loading.lock();
        if loading.get(&partition) != Some(&token) {
            return None;
        }
        loading.remove(&partition);
        Some(loading)
    }

    /// Cancels any load of `partition`: the guard to hold while unloading it.
    pub(crate) fn cancel(&self, partition: i32) -> LoadGuard<'_> {
        let mut loading = self.loading.lock();
        loading.remove(&partition);
        loading
    }
}
