//! Maps Strom's internal errors to Kafka error codes, in one place.

use kafka_protocol::ResponseError;
use strom_metadata::ControllerError;
use strom_replication::ReplicationError;
use strom_storage::StorageError;
use strom_types::batch::BatchError;

use crate::broker::Refusal;

/// The Kafka error code a storage error becomes in a partition-level response.
pub fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::InvalidBatch { source, .. } => match source {
            BatchError::CrcMismatch { .. }
            | BatchError::Truncated { .. }
            | BatchError::InvalidLength(_)
            | BatchError::Compression(_) => ResponseError::CorruptMessage.code(),
            BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat.code(),
            BatchError::Record(_) => ResponseError::InvalidRecord.code(),
        },
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        StorageError::PolicyViolation(_) => ResponseError::InvalidRecord.code(),
        StorageError::NullKeyOnCompactedTopic { .. } => ResponseError::InvalidRecord.code(),
        StorageError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp.code(),
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        StorageError::InvalidConfig { .. } => ResponseError::InvalidConfig.code(),
        StorageError::Closed(_) => ResponseError::NotLeaderOrFollower.code(),
        StorageError::NonMonotonicOffset { .. } => ResponseError::InvalidRecord.code(),
        StorageError::Io { .. } => ResponseError::KafkaStorageError.code(),
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
        StorageError::DuplicateSequence { .. } => ResponseError::DuplicateSequenceNumber.code(),
        StorageError::InvalidTxnState { .. } => ResponseError::InvalidTxnState.code(),
        StorageError::CoordinatorFenced { .. } => {
            ResponseError::TransactionCoordinatorFenced.code()
        }
        StorageError::State(_) => ResponseError::UnknownServerError.code(),
    }
}

/// The Kafka error code a replication error becomes in a partition-level response.
pub fn replication_error_code(e: &ReplicationError) -> i16 {
    match e {
        ReplicationError::UnknownPartition(_) => ResponseError::UnknownTopicOrPartition.code(),
        ReplicationError::NotLeader { .. } | ReplicationError::NotReplica { .. } => {
            ResponseError::NotLeaderOrFollower.code()
        }
        ReplicationError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch.code(),
        ReplicationError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch.code(),
        ReplicationError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas.code(),
        ReplicationError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend.code()
        }
        ReplicationError::Timeout(_) => ResponseError::RequestTimedOut.code(),
        ReplicationError::OffsetNotAvailable { .. } => ResponseError::OffsetNotAvailable.code(),
        ReplicationError::Storage(e) => storage_error_code(e),
    }
}

/// KIP-467's per-record errors of a refused produce: (index of the record in its batch,
/// why), empty when the fault is the batch's as a whole.
pub fn record_errors(e: &StorageError) -> Vec<(i32, String)> {
    match e {
        StorageError::NullKeyOnCompactedTopic { records } => records
            .iter()
            .map(|&i| {
                (
                    i,
                    "a compacted topic cannot accept a record without a key".to_string(),
                )
            })
            .collect(),
        StorageError::InvalidTimestamp { now, records, .. } => records
            .iter()
            .map(|&i| {
                (
                    i,
                    format!(
                        "the record's timestamp is out of the range the topic accepts around {now}"
                    ),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Shorthand for a protocol error's code.
pub fn code(e: ResponseError) -> i16 {
    e.code()
}

/// The refusal a controller error becomes in a response. NOT_CONTROLLER never reaches a
/// client: [`strom_metadata::MetadataNode::submit`] retries it until its deadline, which
/// then answers REQUEST_TIMED_OUT.
pub fn controller_refusal(e: &ControllerError) -> Refusal {
    let code = match e {
        ControllerError::NotController { .. } | ControllerError::Timeout(_) => {
            ResponseError::RequestTimedOut
        }
        ControllerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        ControllerError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        ControllerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        ControllerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        ControllerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ControllerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        ControllerError::DuplicateBrokerRegistration(_) => {
            ResponseError::DuplicateBrokerRegistration
        }
        ControllerError::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch,
        ControllerError::FencedLeaderEpoch(_) => ResponseError::FencedLeaderEpoch,
        ControllerError::InvalidUpdateVersion(_) => ResponseError::InvalidUpdateVersion,
        ControllerError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
        ControllerError::NoReassignmentInProgress(_) => ResponseError::NoReassignmentInProgress,
        ControllerError::ResourceNotFound(_) => ResponseError::ResourceNotFound,
        ControllerError::Quorum(_) => ResponseError::UnknownServerError,
    };
    Refusal::new(code, e.to_string())
}
