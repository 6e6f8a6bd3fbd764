//! What the metadata crate's errors are, cluster ids, and the reader of metadata logs
//! written before the Raft quorum (plain records in `__cluster_metadata-0`).

use std::path::PathBuf;

use strom_storage::StorageError;

use crate::image::MetadataImage;
use crate::raft::log_store::LogStore;
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
    /// A stored record, snapshot or state file does not parse.
    #[error("{what} is unreadable")]
    Corrupt {
        /// What (a file, or a record's offset).
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// openraft failed to start or to store.
    #[error("the metadata quorum")]
    Quorum(#[source] crate::raft::QuorumError),
    /// A pre-quorum metadata log on a node that is not the only voter.
    #[error(
        "{} holds a single-node metadata log from before the Raft quorum; start this node \
         once alone (controller.quorum.voters naming only itself) to move it under the \
         quorum, or point log.dirs at an empty directory to join the cluster as a new node",
        dir.display()
    )]
    Legacy {
        /// The metadata log's directory.
        dir: PathBuf,
    },
}

/// Replays a metadata log written before the quorum (each record value one
/// [`MetadataRecord`]) into an image.
pub(crate) fn read_legacy(log: &LogStore) -> Result<MetadataImage, MetadataError> {
    let mut image = MetadataImage {
        offset: -1,
        ..MetadataImage::default()
    };
    log.for_each_value(|at, value| {
        let record =
            MetadataRecord::from_bytes(value).map_err(|source| MetadataError::Corrupt {
                what: format!("metadata record at offset {at}"),
                source,
            })?;
        image.apply(at, &record);
        Ok(())
    })?;
    Ok(image)
}

/// A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).
pub fn new_cluster_id() -> String {
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
