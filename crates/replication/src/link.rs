//! The ways out of a broker that replication needs: a follower fetching from its leader,
//! and a leader proposing an ISR change to the controller. Both are traits so the same
//! fetchers and partitions run over TCP in the broker and over a seeded in-memory network
//! in the simulation.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use strom_types::TopicPartition;

/// A leader's epoch boundary: the end offset of `epoch` in its log (Fetch's
/// `DivergingEpoch`, OffsetsForLeaderEpoch's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    /// The largest epoch at or below the one asked about; -1 when there is none.
    pub epoch: i32,
    /// Where it ends; -1 when there is none.
    pub end_offset: i64,
}

/// One partition of a replica fetch.
#[derive(Debug, Clone)]
pub struct FetchPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// Its topic id (Fetch v13+ names topics by id).
    pub topic_id: uuid::Uuid,
    /// The follower's log end offset: where to read from.
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch (-1: none), for the divergence check.
    pub last_fetched_epoch: i32,
    /// The leader epoch the follower follows in.
    pub current_leader_epoch: i32,
    /// The follower's log start offset.
    pub log_start_offset: i64,
    /// `replica.fetch.max.bytes`.
    pub max_bytes: i32,
}

/// A follower's fetch to one leader (Fetch with the replica's id and broker epoch).
#[derive(Debug, Clone)]
pub struct ReplicaFetch {
    /// The follower's broker id.
    pub replica_id: i32,
    /// The follower's broker epoch.
    pub broker_epoch: i64,
    /// `replica.fetch.wait.max.ms`.
    pub max_wait_ms: i32,
    /// `replica.fetch.min.bytes`.
    pub min_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub max_bytes: i32,
    /// The partitions.
    pub partitions: Vec<FetchPartition>,
}

/// A partition's part of the answer.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// What went wrong, if anything.
    pub error: Option<LinkError>,
    /// The leader's high watermark.
    pub high_watermark: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// Set when the follower's log diverges from the leader's: truncate, then fetch again.
    pub diverging_epoch: Option<EpochEnd>,
    /// Whole batches, with the leader's offsets and epochs.
    pub records: Bytes,
}

/// Why a fetch (or one partition of it) failed, as the follower must act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The broker asked does not lead the partition (wait for the metadata to move).
    #[error("not the leader")]
    NotLeader,
    /// The follower's leader epoch is older than the leader's.
    #[error("fenced leader epoch")]
    FencedLeaderEpoch,
    /// The follower's leader epoch is newer than the leader's (it has not caught up).
    #[error("unknown leader epoch")]
    UnknownLeaderEpoch,
    /// The fetch offset is outside the leader's log.
    #[error("offset out of range")]
    OffsetOutOfRange,
    /// The leader has no such partition (yet).
    #[error("unknown topic or partition")]
    UnknownPartition,
    /// The leader could not be reached or answered garbage.
    #[error("{0}")]
    Transport(String),
    /// Any other error code.
    #[error("error code {0}")]
    Other(i16),
}

/// Fetching from leaders: `fetch(leader, request)` sends one replica fetch to broker
/// `leader` and returns its partitions' answers.
pub trait ReplicaLinks: Send + Sync + 'static {
    /// Sends `request` to `leader`.
    fn fetch(
        &self,
        leader: i32,
        request: ReplicaFetch,
    ) -> BoxFuture<'static, Result<Vec<FetchedPartition>, LinkError>>;
}

/// A leader's proposal of a new ISR (AlterPartition), at the epochs it acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The partition.
    pub tp: TopicPartition,
    /// Its topic id.
    pub topic_id: uuid::Uuid,
    /// The leader's epoch.
    pub leader_epoch: i32,
    /// The partition epoch the proposal is based on.
    pub partition_epoch: i32,
    /// The proposed ISR.
    pub new_isr: Vec<i32>,
    /// The broker epoch each follower in it last fetched with, where known (KIP-903).
    pub member_epochs: Vec<(i32, i64)>,
}

/// Sends ISR proposals to the controller. `Ok` means committed; the leader still acts only
/// when the change reaches it in the metadata image. `Err` carries the reason, and the
/// leader proposes again later if the change is still wanted.
pub trait IsrProposer: Send + Sync + 'static {
    /// Proposes `proposal`.
    fn alter_partition(&self, proposal: IsrProposal) -> BoxFuture<'static, Result<(), String>>;
}
