//! [`LogManager`]: every partition log under `log.dirs`.
//!
//! It loads all partitions at start (in parallel, recovering after an unclean stop), keeps
//! the per-dir checkpoint files and the clean-shutdown marker, runs the background work
//! (retention, time-based flushes, delayed deletions, checkpoints, compaction) on its own
//! threads, and shares one [`FileHandles`] budget so thousands of partitions stay well under
//! the process's fd limit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use strom_types::TopicPartition;

use crate::checkpoint::{
    self, read_offsets, write_offsets, CLEAN_SHUTDOWN_MARKER, LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
};
use crate::cleaner;
use crate::config::LogConfig;
use crate::deleter::FileDeleter;
use crate::error::{IoContext, Result, StorageError};
use crate::handles::FileHandles;
use crate::log::{now_ms, LoadReport, Log, OpenOptions};

/// Name of the per-dir compaction checkpoint (first dirty offset per partition).
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// Settings of the manager, by the Kafka broker property each mirrors.
#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    /// `log.dirs`.
    pub log_dirs: Vec<PathBuf>,
    /// Defaults for every log (`log.*` properties mapped to topic-level names).
    pub default_config: LogConfig,
    /// Most segment files open at once (0 = half the process's open-file limit).
    pub max_open_segments: usize,
    /// `num.recovery.threads.per.data.dir` (Kafka: 2): threads loading logs at start.
    pub recovery_threads: usize,
    /// `log.retention.check.interval.ms` (5 minutes).
    pub retention_check_interval_ms: i64,
    /// How often flush.ms is checked (`log.flush.scheduler.interval.ms`).
    pub flush_check_interval_ms: i64,
    /// `log.flush.offset.checkpoint.interval.ms` (1 minute).
    pub checkpoint_interval_ms: i64,
    /// `log.cleaner.enable` (true).
    pub cleaner_enable: bool,
    /// `log.cleaner.backoff.ms` (15 s): pause when no log needs cleaning.
    pub cleaner_backoff_ms: i64,
    /// `log.cleaner.dedupe.buffer.size` (128 MiB).
    pub cleaner_dedupe_buffer_size: usize,
}

impl LogManagerConfig {
    /// Kafka's defaults over the given directories.
    pub fn new(log_dirs: Vec<PathBuf>) -> Self {
        LogManagerConfig {
            log_dirs,
            default_config: LogConfig::default(),
            max_open_segments: 0,
            recovery_threads: 2,
            retention_check_interval_ms: 300_000,
            flush_check_interval_ms: 1_000,
            checkpoint_interval_ms: 60_000,
            cleaner_enable: true,
            cleaner_backoff_ms: 15_000,
            cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
        }
    }
}

struct Entry {
    log: Arc<Log>,
    dir_index: usize,
}

/// Owns every partition log under `log.dirs`. See the module docs.
pub struct LogManager {
    config: LogManagerConfig,
    handles: Arc<FileHandles>,
    deleter: Arc<FileDeleter>,
    logs: RwLock<HashMap<TopicPartition, Entry>>,
    create_lock: Mutex<()>,
    stop: Mutex<bool>,
    wake: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
    load_report: LoadReport,
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager")
            .field("log_dirs", &self.config.log_dirs)
            .field("logs", &self.logs.read().len())
            .finish()
    }
}

impl LogManager {
    /// Opens every partition under `config.log_dirs` with the default log config.
    pub fn open(config: LogManagerConfig) -> Result<Arc<LogManager>> {
        let defaults = config.default_config.clone();
        LogManager::open_with(config, &move |_| defaults.clone())
    }

    /// Opens every partition, asking `config_for` for each partition's log config.
    pub fn open_with(
        config: LogManagerConfig,
        config_for: &(dyn Fn(&TopicPartition) -> LogConfig + Sync),
    ) -> Result<Arc<LogManager>> {
        if config.log_dirs.is_empty() {
            return Err(StorageError::State("log.dirs is empty".into()));
        }
        let limit = if config.max_open_segments == 0 {
            FileHandles::default_limit()
        } else {
            config.max_open_segments
        };
        let handles = FileHandles::new(limit);
        let deleter = Arc::new(FileDeleter::new());
        let mut jobs = Vec::new();
        for (dir_index, dir) in config.log_dirs.iter().enumerate() {
            std::fs::create_dir_all(dir).at(dir)?;
            let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
            let clean = marker.exists();
            let recovery = read_offsets(&dir.join(RECOVERY_POINT_CHECKPOINT))?;
            let starts = read_offsets(&dir.join(LOG_START_OFFSET_CHECKPOINT))?;
            let dirty = read_offsets(&dir.join(CLEANER_OFFSET_CHECKPOINT))?;
            for entry in std::fs::read_dir(dir).at(dir)? {
                let entry = entry.at(dir)?;
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("__cluster_metadata") {
                    // The metadata log lives beside the partitions (KRaft's layout) but is
                    // owned by the metadata quorum, not by this manager.
                    continue;
                }
                if name.ends_with("-delete") {
                    deleter.schedule(0, [path]);
                    continue;
                }
                let Some(tp) = TopicPartition::from_dir_name(&name) else {
                    tracing::warn!(dir = %path.display(), "ignoring a directory that is not a partition");
                    continue;
                };
                let opts = OpenOptions {
                    handles: handles.clone(),
                    deleter: deleter.clone(),
                    recovery_point: recovery.get(&tp).copied().unwrap_or(0),
                    log_start_offset: starts.get(&tp).copied(),
                    first_dirty_offset: dirty.get(&tp).copied(),
                    clean_shutdown: clean,
                };
                jobs.push((dir_index, path, tp, opts));
            }
            if clean {
                // From here on a crash is unclean again.
                std::fs::remove_file(&marker).at(&marker)?;
                checkpoint::sync_dir(dir)?;
            }
        }
        deleter.delete_due(0);
        let started = std::time::Instant::now();
        let total = jobs.len();
        let queue = Mutex::new(jobs);
        let results = Mutex::new(Vec::with_capacity(total));
        let threads = config.recovery_threads.max(1) * config.log_dirs.len();
        std::thread::scope(|scope| {
            for _ in 0..threads.min(total.max(1)) {
                scope.spawn(|| loop {
                    let Some((dir_index, path, tp, opts)) = queue.lock().pop() else {
                        break;
                    };
                    let log_config = config_for(&tp);
                    let r = Log::open(&path, tp.clone(), log_config, opts);
                    results.lock().push((dir_index, tp, r));
                });
            }
        });
        let mut logs = HashMap::with_capacity(total);
        let mut report = LoadReport::default();
        for (dir_index, tp, r) in results.into_inner() {
            let (log, rep) = r?;
            report.segments_recovered += rep.segments_recovered;
            report.bytes_truncated += rep.bytes_truncated;
            report.segments_dropped += rep.segments_dropped;
            logs.insert(tp, Entry { log, dir_index });
        }
        tracing::info!(
            partitions = total,
            segments_recovered = report.segments_recovered,
            bytes_truncated = report.bytes_truncated,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded logs"
        );
        Ok(Arc::new(LogManager {
            config,
            handles,
            deleter,
            logs: RwLock::new(logs),
            create_lock: Mutex::new(()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            threads: Mutex::new(Vec::new()),
            load_report: report,
        }))
    }

    /// What loading found (segments recovered, bytes truncated).
    pub fn load_report(&self) -> &LoadReport {
        &self.load_report
    }

    /// The shared fd budget.
    pub fn handles(&self) -> &Arc<FileHandles> {
        &self.handles
    }

    /// The manager's settings.
    pub fn config(&self) -> &LogManagerConfig {
        &self.config
    }

    /// The log of a partition, if it exists.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.read().get(tp).map(|e| e.log.clone())
    }

    /// Every log.
    pub fn logs(&self) -> Vec<Arc<Log>> {
        self.logs.read().values().map(|e| e.log.clone()).collect()
    }

    /// The log of `tp`, created with `config` in the least loaded log dir if missing.
    pub fn get_or_create(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<Log>> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let _guard = self.create_lock.lock();
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let dir_index = {
            let logs = self.logs.read();
            let mut counts = vec![0usize; self.config.log_dirs.len()];
            for e in logs.values() {
                counts[e.dir_index] += 1;
            }
            (0..counts.len()).min_by_key(|&i| counts[i]).unwrap_or(0)
        };
        let dir = self.config.log_dirs[dir_index].join(tp.dir_name());
        let opts = OpenOptions {
            handles: self.handles.clone(),
            deleter: self.deleter.clone(),
            recovery_point: 0,
            log_start_offset: None,
            first_dirty_offset: None,
            clean_shutdown: false,
        };
        let (log, _) = Log::open(&dir, tp.clone(), config, opts)?;
        checkpoint::sync_dir(&self.config.log_dirs[dir_index])?;
        self.logs.write().insert(
            tp.clone(),
            Entry {
                log: log.clone(),
                dir_index,
            },
        );
        Ok(log)
    }

    /// Deletes a partition's log and its data (asynchronously, after file.delete.delay.ms).
    pub fn delete(&self, tp: &TopicPartition) -> Result<bool> {
        let Some(entry) = self.logs.write().remove(tp) else {
            return Ok(false);
        };
        entry.log.delete()?;
        Ok(true)
    }

    /// Applies retention to every log now. Returns segments deleted.
    pub fn run_retention(&self, now_ms: i64) -> usize {
        let mut total = 0;
        for log in self.logs() {
            match log.delete_old_segments(now_ms) {
                Ok(n) => total += n,
                Err(e) if log.is_closed() => {
                    tracing::debug!(error = %e, "retention skipped a closed log")
                }
                Err(e) => {
                    tracing::error!(partition = %log.topic_partition(), error = %e, "retention failed")
                }
            }
        }
        total
    }

    /// Runs one compaction pass on the dirtiest log that is due. Returns whether one ran.
    pub fn run_cleaner_once(&self, now_ms: i64) -> bool {
        let mut best: Option<(f64, Arc<Log>)> = None;
        for log in self.logs() {
            if !log.config().cleanup_policy.compact {
                continue;
            }
            if let Ok(c) = cleaner::cleanability(&log, now_ms) {
                if c.due && best.as_ref().is_none_or(|(r, _)| c.dirty_ratio > *r) {
                    best = Some((c.dirty_ratio, log));
                }
            }
        }
        let Some((_, log)) = best else {
            return false;
        };
        match cleaner::clean_log(&log, now_ms, self.config.cleaner_dedupe_buffer_size, false) {
            Ok(r) => r.is_some(),
            Err(e) => {
                tracing::error!(partition = %log.topic_partition(), error = %e, "compaction failed");
                false
            }
        }
    }

    /// Writes the recovery-point, log-start-offset and cleaner checkpoints of every dir.
    pub fn checkpoint(&self) -> Result<()> {
        let n = self.config.log_dirs.len();
        let mut recovery = vec![BTreeMap::new(); n];
        let mut starts = vec![BTreeMap::new(); n];
        let mut dirty = vec![BTreeMap::new(); n];
        for (tp, e) in self.logs.read().iter() {
            recovery[e.dir_index].insert(tp.clone(), e.log.recovery_point());
            starts[e.dir_index].insert(tp.clone(), e.log.log_start_offset());
            if e.log.config().cleanup_policy.compact {
                dirty[e.dir_index].insert(tp.clone(), e.log.first_dirty_offset());
            }
        }
        for (i, dir) in self.config.log_dirs.iter().enumerate() {
            write_offsets(&dir.join(RECOVERY_POINT_CHECKPOINT), &recovery[i])?;
            write_offsets(&dir.join(LOG_START_OFFSET_CHECKPOINT), &starts[i])?;
            write_offsets(&dir.join(CLEANER_OFFSET_CHECKPOINT), &dirty[i])?;
        }
        Ok(())
    }

    /// Removes `.deleted` files and deleted logs that are due.
    pub fn delete_due_files(&self, now_ms: i64) -> usize {
        self.deleter.delete_due(now_ms)
    }

    /// Starts the background threads: maintenance (retention, flush.ms, delayed deletes,
    /// checkpoints) and, if enabled, the log cleaner.
    pub fn start_background(self: &Arc<Self>) {
        let mut threads = self.threads.lock();
        let me = self.clone();
        threads.push(
            std::thread::Builder::new()
                .name("strom-log-maintenance".into())
                .spawn(move || me.maintenance_loop())
                .expect("spawning a thread"),
        );
        if self.config.cleaner_enable {
            let me = self.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("strom-log-cleaner".into())
                    .spawn(move || me.cleaner_loop())
                    .expect("spawning a thread"),
            );
        }
    }

    /// Sleeps up to `ms`; true when asked to stop.
    fn wait(&self, ms: i64) -> bool {
        let mut stop = self.stop.lock();
        if !*stop {
            self.wake
                .wait_for(&mut stop, Duration::from_millis(ms.clamp(1, 60_000) as u64));
        }
        *stop
    }

    fn maintenance_loop(&self) {
        let tick = self
            .config
            .flush_check_interval_ms
            .min(self.config.retention_check_interval_ms)
            .clamp(10, 1_000);
        let mut next_retention = now_ms() + self.config.retention_check_interval_ms;
        let mut next_checkpoint = now_ms() + self.config.checkpoint_interval_ms;
        while !self.wait(tick) {
            let now = now_ms();
            for log in self.logs() {
                if let Err(e) = log.flush_if_due(now) {
                    if !log.is_closed() {
                        tracing::error!(partition = %log.topic_partition(), error = %e, "flush failed");
                    }
                }
            }
            if now >= next_retention {
                self.run_retention(now);
                next_retention = now + self.config.retention_check_interval_ms;
            }
            self.deleter.delete_due(now);
            if now >= next_checkpoint {
                if let Err(e) = self.checkpoint() {
                    tracing::error!(error = %e, "writing checkpoints failed");
                }
                next_checkpoint = now + self.config.checkpoint_interval_ms;
            }
        }
    }

    fn cleaner_loop(&self) {
        loop {
            let ran = self.run_cleaner_once(now_ms());
            let pause = if ran {
                1
            } else {
                self.config.cleaner_backoff_ms
            };
            if self.wait(pause) {
                break;
            }
        }
    }

    /// Stops background work, closes every log (flushing it), writes the checkpoints and the
    /// clean-shutdown marker: the next start skips recovery.
    pub fn shutdown(&self) -> Result<()> {
        *self.stop.lock() = true;
        self.wake.notify_all();
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
        for log in self.logs() {
            log.close()?;
        }
        self.checkpoint()?;
        for dir in &self.config.log_dirs {
            let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
            std::fs::File::create(&marker).at(&marker)?;
            checkpoint::sync_dir(dir)?;
        }
        Ok(())
    }

    /// The log dirs.
    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.config.log_dirs
    }

    /// Where a partition's data lives.
    pub fn dir_of(&self, tp: &TopicPartition) -> Option<PathBuf> {
        self.get(tp).map(|l| l.dir())
    }

    /// True if `path` is one of the log dirs.
    pub fn is_log_dir(&self, path: &Path) -> bool {
        self.config.log_dirs.iter().any(|d| d == path)
    }
}
