//! Partition replication on a broker, as Kafka's ReplicaManager does it.
//!
//! - [`Partition`]: one partition replica on this broker: its [`strom_storage::Log`], its
//!   role in the current leader epoch (leader, follower or offline), and the **high
//!   watermark**, published on a watch so waiting produces and fetches wake without polling.
//!   As leader it tracks each follower's log end offset and when it last caught up, moves
//!   the high watermark to the smallest log end offset of the ISR, and proposes ISR shrinks
//!   and expansions; as follower it appends its leader's batches with their offsets and
//!   epochs and truncates a divergent tail.
//! - [`ReplicaManager`]: every partition replica on the broker. It turns the assignments of
//!   the metadata image into become-leader / become-follower transitions, appends produced
//!   batches with Kafka's acks semantics (`min.insync.replicas`, the delayed produce of
//!   acks=all), serves consumer and replica fetches, checkpoints high watermarks
//!   (`replication-offset-checkpoint`) and runs the ISR-shrink check.
//! - [`fetcher`]: the replica fetchers, `num.replica.fetchers` per source broker, each one
//!   long-polling its leader for the partitions it follows.
//! - [`throttle`]: the replication throttles a reassignment's catching-up replicas run
//!   under (`*.replication.throttled.rate`).
//! - [`link`]: the two ways out of a broker that replication needs, as traits: fetching from
//!   a leader ([`ReplicaLinks`]) and proposing an ISR to the controller ([`IsrProposer`]).
//!   The broker implements them over TCP and the quorum; the simulation in `tests/` over an
//!   in-memory network.
//!
//! The controller alone decides ISR membership and leadership: a leader acts on an ISR
//! change only once the metadata image carries it ([`ReplicaManager::apply`]).

mod error;
pub mod fetcher;
pub mod link;
mod manager;
mod partition;
pub mod throttle;

pub use error::ReplicationError;
pub use link::{
    EpochEnd, FetchPartition, FetchedPartition, IsrProposal, IsrProposer, LinkError, ReplicaFetch,
    ReplicaLinks,
};
pub use manager::{ReplicaManager, ReplicationConfig, HWM_CHECKPOINT};
pub use partition::{
    Assignment, ClientOffsets, ConsumerFetch, ConsumerRead, FollowerFetch, LeaderAppend, Partition,
    ReplicaRead, Role, THROTTLE_FOLLOWER, THROTTLE_LEADER,
};
pub use throttle::Throttle;

/// Runs blocking file I/O from async code: on a multi-threaded runtime the worker is marked
/// as blocking first, so other tasks move to the remaining workers; on a current-thread
/// runtime (the simulation) it just runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}
