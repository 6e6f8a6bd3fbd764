//! Strom's cluster metadata, kept as a log (KRaft's model).
//!
//! - [`records`]: [`MetadataRecord`], every change to the cluster (topic created, partition
//!   placed, config set, topic removed), serialized as JSON in the values of v2 record
//!   batches.
//! - [`image`]: [`MetadataImage`], the immutable state the records replay into. Brokers act
//!   on an image, never on ad-hoc shared state.
//! - [`log`]: [`MetadataLog`], the quorum's interface, and [`LocalMetadataLog`], a one-voter
//!   quorum over a `strom-storage` log in `__cluster_metadata-0`: appended, fsynced, then
//!   applied. The cluster work puts openraft behind the same trait.

pub mod image;
pub mod log;
pub mod records;

pub use image::{MetadataImage, PartitionImage, TopicImage};
pub use log::{LocalMetadataLog, MetadataError, MetadataLog};
pub use records::MetadataRecord;
