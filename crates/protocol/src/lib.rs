//! Kafka's wire protocol for Strom, over the `kafka-protocol` crate's generated messages.
//!
//! - [`frame`]: size-prefixed frames, refused above `socket.request.max.bytes`.
//! - [`header`]: request headers parsed defensively (short input is an error, never a panic).
//! - [`guard`]: checks a request body's array and string lengths against the bytes present
//!   before `kafka-protocol` decodes it (its decoders allocate whatever a length claims).

pub mod frame;
pub mod guard;
pub mod header;
