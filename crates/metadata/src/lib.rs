//! Strom's cluster metadata, kept as a log replicated by a Raft quorum (KRaft's model).
//!
//! - [`records`]: [`MetadataRecord`], every change to the cluster (broker registered or
//!   fenced, topic created, partition placed or led anew, config set, producer ids handed
//!   out), serialized as JSON.
//! - [`image`]: [`MetadataImage`], the state the records replay into. Brokers act on an
//!   image, never on ad-hoc shared state.
//! - [`raft`]: the quorum on openraft: the Raft log (a `strom-storage` log in
//!   `__cluster_metadata-0`), the durable vote, snapshots of the image, the RPC transport.
//! - [`controller`]: the only writer of metadata, active on the quorum's leader: topics,
//!   configs, placement, broker liveness and partition leader elections.
//! - [`node`]: [`MetadataNode`], what a broker holds: the image, and the way to the active
//!   controller from any node.
//! - [`log`]: errors, cluster ids, and reading metadata logs written before the quorum.
//!
//! Thread-safety: every public type is `Send + Sync`; images are immutable `Arc`s.

pub mod controller;
pub mod image;
pub mod log;
pub mod node;
pub mod raft;
pub mod records;

pub use controller::{ConfigResource, ControllerError, ControllerReply, ControllerRequest};
pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use log::{MetadataError, METADATA_DIR};
pub use node::MetadataNode;
pub use raft::{Quorum, QuorumConfig, QuorumStatus};
pub use records::MetadataRecord;
