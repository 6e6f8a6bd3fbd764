//! Strom's group coordinator: Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup with static membership and KIP-394 member ids), the KIP-848
//! protocol (ConsumerGroupHeartbeat) and committed
//! offsets, kept as records in the compacted internal topic `__consumer_offsets` in Kafka's
//! own schemas and rebuilt by replaying it.
//!
//! - [`codes`]: the Kafka error codes it answers with.
//! - [`records`]: the key and value schemas of `__consumer_offsets`.
//! - [`group`]: one classic group's state machine.
//! - [`consumer_group`]: KIP-848 groups: server-side assignment and reconciliation.
//! - [`coordinator`]: the groups of the partitions this node leads, their timers and
//!   persistence.

pub mod codes;
pub mod consumer_group;
pub mod coordinator;
pub mod group;
mod loads;
pub mod records;
pub mod replay;
pub mod txn;

pub use codes::NOT_COORDINATOR;
pub use consumer_group::{Assignment, TopicsView};
pub use coordinator::{
    partition_for, CommitEntry, ConsumerGroupDescription, CoordinatorConfig, GroupCoordinator,
    GroupDescription, GroupOverview, MemberDescription, TxnCommitter, OFFSETS_TOPIC,
};
pub use group::{GroupLimits, GroupState, JoinRequest, JoinResponse, SyncResponse};
