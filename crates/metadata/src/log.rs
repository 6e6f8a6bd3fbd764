//! The metadata log: the quorum's interface ([`MetadataLog`]) and the single-node quorum
//! ([`LocalMetadataLog`]): records are appended to `__cluster_metadata-0`, fsynced (the
//! commit of a one-voter quorum), then applied to a new [`MetadataImage`].

use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strom_storage::{AppendOrigin, Log, LogConfig, OpenOptions, StorageError};
use strom_types::batch;
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;
use strom_types::TopicPartition;

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// The metadata topic's directory name under the first log dir (KRaft's).
pub const METADATA_DIR: &str = "__cluster_metadata-0";

/// Why metadata could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The metadata log failed.
    #[error("metadata log")]
    Storage(#[from] StorageError),
    /// A stored batch of the metadata log does not parse.
    #[error("metadata log batch")]
    Batch(#[from] strom_types::batch::BatchError),
    /// A stored record does not parse.
    #[error("metadata record at offset {offset} is unreadable")]
    Corrupt {
        /// Where.
        offset: i64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// The quorum as brokers and the controller see it: append records, read the image.
pub trait MetadataLog: Send + Sync {
    /// Appends records atomically (one batch), waits for them to be committed and applied,
    /// and returns the image that includes them.
    fn append(&self, records: &[MetadataRecord]) -> Result<Arc<MetadataImage>, MetadataError>;

    /// The latest applied image.
    fn image(&self) -> Arc<MetadataImage>;
}

/// A one-voter quorum on the local disk.
pub struct LocalMetadataLog {
    log: Arc<Log>,
    image: RwLock<Arc<MetadataImage>>,
    write: Mutex<()>,
}

impl LocalMetadataLog {
    /// Opens (or creates) the metadata log under `dir` and replays it into an image. A new
    /// log gets a cluster id.
    pub fn open(dir: &Path) -> Result<LocalMetadataLog, MetadataError> {
        let tp = TopicPartition::new("__cluster_metadata", 0);
        let (log, report) = Log::open(
            &dir.join(METADATA_DIR),
            tp,
            LogConfig::default(),
            OpenOptions::standalone(),
        )?;
        if report.bytes_truncated > 0 {
            tracing::warn!(
                bytes = report.bytes_truncated,
                "metadata log had a torn tail"
            );
        }
        let mut image = MetadataImage {
            offset: -1,
            ..MetadataImage::default()
        };
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let info = log.read(offset, 1 << 20, None, true)?;
            let Some(region) = info.region else { break };
            let bytes = region.read_to_vec().map_err(|source| StorageError::Io {
                path: log.dir(),
                source,
            })?;
            for b in batch::batches(&bytes) {
                let b = b?;
                offset = b.header().next_offset();
                b.try_for_each_record(64 << 20, |at, r| {
                    let record = MetadataRecord::from_bytes(r.value.unwrap_or_default())
                        .map_err(|source| MetadataError::Corrupt { offset: at, source })?;
                    image.apply(at, &record);
                    Ok::<(), MetadataError>(())
                })?;
            }
        }
        let me = LocalMetadataLog {
            log,
            image: RwLock::new(Arc::new(image)),
            write: Mutex::new(()),
        };
        if me.image().cluster_id.is_empty() {
            me.append(&[MetadataRecord::Cluster {
                cluster_id: new_cluster_id(),
            }])?;
        }
        Ok(me)
    }

    /// Closes the underlying log (flushed on every append already).
    pub fn close(&self) -> Result<(), MetadataError> {
        self.log.close()?;
        Ok(())
    }
}

impl MetadataLog for LocalMetadataLog {
    fn append(&self, records: &[MetadataRecord]) -> Result<Arc<MetadataImage>, MetadataError> {
        let _one_writer = self.write.lock();
        let now = strom_storage::now_ms();
        let mut builder = BatchBuilder::new(Compression::None);
        for r in records {
            builder.append(now, None, Some(&r.to_bytes()), &[]);
        }
        let mut bytes = builder.build(0).map_err(|e| StorageError::InvalidBatch {
            index: 0,
            source: e.into(),
        })?;
        let info = self
            .log
            .append_as_leader(&mut bytes, 0, AppendOrigin::Coordinator, now)?;
        // The commit point of a one-voter quorum: on disk.
        self.log.flush()?;
        let mut image = (*self.image()).clone();
        for (i, r) in records.iter().enumerate() {
            image.apply(info.first_offset + i as i64, r);
        }
        let image = Arc::new(image);
        *self.image.write() = image.clone();
        Ok(image)
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }
}

/// A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_restart_and_replay_into_the_same_image() {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4();
        let image = {
            let log = LocalMetadataLog::open(dir.path()).unwrap();
            assert_eq!(log.image().cluster_id.len(), 22);
            log.append(&[
                MetadataRecord::Topic {
                    name: "orders".into(),
                    topic_id: id,
                },
                MetadataRecord::Partition {
                    topic_id: id,
                    partition: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    leader: 1,
                    leader_epoch: 0,
                },
            ])
            .unwrap();
            log.append(&[MetadataRecord::TopicConfig {
                topic: "orders".into(),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            }])
            .unwrap()
            // Dropped without close: the appends were fsynced.
        };
        let log = LocalMetadataLog::open(dir.path()).unwrap();
        assert_eq!(*log.image(), *image);
        assert_eq!(log.image().topics["orders"].configs["retention.ms"], "1000");
        let after = log
            .append(&[MetadataRecord::RemoveTopic { topic_id: id }])
            .unwrap();
        assert!(after.topics.is_empty());
        assert_eq!(after.cluster_id, image.cluster_id);
    }
}
