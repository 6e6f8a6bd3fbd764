//! Strom's commit log: durable, segmented partition storage, with no networking and no Kafka
//! request types in its API. The broker, replication and the coordinators all stand on it.
//!
//! Main types:
//! - [`Log`]: one partition: append (validating and assigning offsets), read as a
//!   [`FileRegion`] for `sendfile`, offsets by timestamp, truncate, advance the log start
//!   offset, roll, flush, retention, close, delete.
//! - [`LogManager`]: every partition under `log.dirs`: parallel load with recovery,
//!   checkpoints, the clean-shutdown marker, background retention, flushing and compaction,
//!   and a bound on open file descriptors.
//! - [`LogConfig`]: Kafka's topic-level log configs.
//!
//! Modules:
//! - [`segment`]: one `.log` with its indexes; [`index`]: the `.index` and `.timeindex`
//!   formats; [`checkpoint`]: checkpoint files; [`epoch_cache`]: leader epochs;
//!   [`cleaner`]: compaction; [`txn_index`]: aborted transactions; [`handles`]: the fd budget; [`deleter`]: delayed file removal.
//!
//! On disk (Kafka's layout): `<log.dir>/<topic>-<partition>/` holds
//! `<20-digit base offset>.log|.index|.timeindex|.txnindex`, producer snapshots `<offset>.snapshot` and `leader-epoch-checkpoint`; each log dir
//! holds `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//! `cleaner-offset-checkpoint` and, after a clean shutdown, `.kafka_cleanshutdown`.

pub mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod deleter;
pub mod epoch_cache;
pub mod error;
pub mod handles;
pub mod index;
pub mod log;
pub mod manager;
pub mod producer_state;
pub mod region;
pub mod segment;
pub mod txn_index;
mod validator;

pub use config::{CleanupPolicy, LogConfig, LOG_CONFIG_NAMES};
pub use error::{Result, StorageError};
pub use handles::FileHandles;
pub use log::{now_ms, AppendInfo, AppendOrigin, LoadReport, Log, OpenOptions, ReadInfo};
pub use manager::{LogManager, LogManagerConfig};
pub use producer_state::ProducerInfo;
pub use region::FileRegion;
pub use txn_index::AbortedTxn;
