//! The Kafka error codes the coordinator answers with, in one place, as constants taken
//! from kafka-protocol's table of Kafka's errors.

use kafka_protocol::ResponseError;

/// No error.
pub const NONE: i16 = 0;
/// COORDINATOR_NOT_AVAILABLE.
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
/// ILLEGAL_GENERATION.
pub const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
/// INCONSISTENT_GROUP_PROTOCOL.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = ResponseError::InconsistentGroupProtocol.code();
/// COORDINATOR_LOAD_IN_PROGRESS.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = ResponseError::CoordinatorLoadInProgress.code();
/// NOT_COORDINATOR.
pub const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
/// INVALID_GROUP_ID.
pub const INVALID_GROUP_ID: i16 = ResponseError::InvalidGroupId.code();
/// UNKNOWN_MEMBER_ID.
pub const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
/// INVALID_SESSION_TIMEOUT.
pub const INVALID_SESSION_TIMEOUT: i16 = ResponseError::InvalidSessionTimeout.code();
/// REBALANCE_IN_PROGRESS.
pub const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
/// OFFSET_METADATA_TOO_LARGE.
pub const OFFSET_METADATA_TOO_LARGE: i16 = ResponseError::OffsetMetadataTooLarge.code();
/// NON_EMPTY_GROUP.
pub const NON_EMPTY_GROUP: i16 = ResponseError::NonEmptyGroup.code();
/// GROUP_ID_NOT_FOUND.
pub const GROUP_ID_NOT_FOUND: i16 = ResponseError::GroupIdNotFound.code();
/// MEMBER_ID_REQUIRED.
pub const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
/// FENCED_INSTANCE_ID.
pub const FENCED_INSTANCE_ID: i16 = ResponseError::FencedInstanceId.code();
/// GROUP_MAX_SIZE_REACHED.
pub const GROUP_MAX_SIZE_REACHED: i16 = ResponseError::GroupMaxSizeReached.code();
/// GROUP_SUBSCRIBED_TO_TOPIC.
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = ResponseError::GroupSubscribedToTopic.code();
/// INVALID_REQUEST.
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
/// FENCED_MEMBER_EPOCH.
pub const FENCED_MEMBER_EPOCH: i16 = ResponseError::FencedMemberEpoch.code();
/// UNSUPPORTED_ASSIGNOR.
pub const UNSUPPORTED_ASSIGNOR: i16 = ResponseError::UnsupportedAssignor.code();
/// STALE_MEMBER_EPOCH.
pub const STALE_MEMBER_EPOCH: i16 = ResponseError::StaleMemberEpoch.code();
/// INVALID_REGULAR_EXPRESSION.
pub const INVALID_REGULAR_EXPRESSION: i16 = ResponseError::InvalidRegularExpression.code();
/// CONCURRENT_TRANSACTIONS.
pub const CONCURRENT_TRANSACTIONS: i16 = ResponseError::ConcurrentTransactions.code();
/// INVALID_PRODUCER_ID_MAPPING.
pub const INVALID_PRODUCER_ID_MAPPING: i16 = ResponseError::InvalidProducerIdMapping.code();
/// INVALID_PRODUCER_EPOCH.
pub const INVALID_PRODUCER_EPOCH: i16 = ResponseError::InvalidProducerEpoch.code();
/// PRODUCER_FENCED.
pub const PRODUCER_FENCED: i16 = ResponseError::ProducerFenced.code();
/// INVALID_TXN_STATE.
pub const INVALID_TXN_STATE: i16 = ResponseError::InvalidTxnState.code();
/// INVALID_TRANSACTION_TIMEOUT.
pub const INVALID_TRANSACTION_TIMEOUT: i16 = ResponseError::InvalidTransactionTimeout.code();
/// TRANSACTIONAL_ID_NOT_FOUND.
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = ResponseError::TransactionalIdNotFound.code();
/// UNKNOWN_SERVER_ERROR.
pub const UNKNOWN_SERVER_ERROR: i16 = ResponseError::UnknownServerError.code();
/// NOT_LEADER_OR_FOLLOWER.
pub const NOT_LEADER_OR_FOLLOWER: i16 = ResponseError::NotLeaderOrFollower.code();
