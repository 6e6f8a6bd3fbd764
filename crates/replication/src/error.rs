//! What replication refuses, typed; the broker maps each to its Kafka error code.

use strom_storage::StorageError;
use strom_types::TopicPartition;

/// Why a produce, fetch or transition on a partition replica failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// UNKNOWN_TOPIC_OR_PARTITION: no replica of it here.
    #[error("{0} has no replica on this broker")]
    UnknownPartition(TopicPartition),
    /// NOT_LEADER_OR_FOLLOWER: another broker leads it (or none does).
    #[error("broker {me} does not lead {tp} (its leader is {leader})")]
    NotLeader {
        /// The partition.
        tp: TopicPartition,
        /// This broker.
        me: i32,
        /// The leader this broker knows of, -1 for none.
        leader: i32,
    },
    /// FENCED_LEADER_EPOCH: the request names an older leader epoch than the current one.
    #[error("leader epoch {requested} of {tp} is older than the current {current}")]
    FencedLeaderEpoch {
        /// The partition.
        tp: TopicPartition,
        /// The epoch asked for.
        requested: i32,
        /// The epoch here.
        current: i32,
    },
    /// UNKNOWN_LEADER_EPOCH: the request names an epoch this broker has not reached yet.
    #[error("leader epoch {requested} of {tp} is newer than the {current} this broker knows")]
    UnknownLeaderEpoch {
        /// The partition.
        tp: TopicPartition,
        /// The epoch asked for.
        requested: i32,
        /// The epoch here.
        current: i32,
    },
    /// NOT_ENOUGH_REPLICAS: refused before the append.
    #[error("{tp} has {in_sync} in-sync replicas, min.insync.replicas is {min}")]
    NotEnoughReplicas {
        /// The partition.
        tp: TopicPartition,
        /// ISR size.
        in_sync: usize,
        /// `min.insync.replicas`.
        min: i32,
    },
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND: written, but the ISR shrank below the minimum.
    #[error("{tp} was written but its ISR shrank to {in_sync}, below min.insync.replicas {min}")]
    NotEnoughReplicasAfterAppend {
        /// The partition.
        tp: TopicPartition,
        /// ISR size.
        in_sync: usize,
        /// `min.insync.replicas`.
        min: i32,
    },
    /// REQUEST_TIMED_OUT: acks=all and the ISR did not hold the batch in time.
    #[error("{0}: the in-sync replicas did not acknowledge in time")]
    Timeout(TopicPartition),
    /// NOT_LEADER_OR_FOLLOWER: a replica fetch from a broker that is not a replica.
    #[error("broker {replica} is not a replica of {tp}")]
    NotReplica {
        /// The partition.
        tp: TopicPartition,
        /// The fetching broker.
        replica: i32,
    },
    /// OFFSET_NOT_AVAILABLE: a new leader's high watermark has not reached where its
    /// epoch began, so its visible end is not yet known.
    #[error(
        "{tp}: the high watermark {high_watermark} is below the leader epoch's start {epoch_start}"
    )]
    OffsetNotAvailable {
        /// The partition.
        tp: TopicPartition,
        /// The high watermark here.
        high_watermark: i64,
        /// The log end when this leader's epoch began.
        epoch_start: i64,
    },
    /// The log refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
