//! The transaction coordinator (KIP-98): each `transactional.id` belongs to one partition of
//! `__transaction_state` (Kafka's hash of the id), and the leader of that partition is its
//! coordinator. State changes are records in that partition, replayed when leadership
//! moves, exactly as the group coordinator does with `__consumer_offsets`.
//!
//! - [`records`]: the key and value schemas of `__transaction_state`.
//! - [`coordinator`]: the state machine of every transactional id of the partitions this
//!   node leads, the marker phase and the timers.

pub mod coordinator;
pub mod records;

pub use coordinator::{
    TransactionCoordinator, TxnCoordinatorConfig, TxnDescription, TxnHost, TxnListing, TxnMarkers,
    TRANSACTION_STATE_TOPIC, TRANSACTION_VERSION_1, TRANSACTION_VERSION_2,
};
pub use records::{TxnStatus, TxnValue};
