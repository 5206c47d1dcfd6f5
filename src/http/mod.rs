//! The sans-IO HTTP/1.1 core: bytes in, decisions and bytes out.
//!
//! Nothing in this module touches a socket or a file, and time comes in
//! only as an `Instant` passed to it (the [`DateCache`] is refreshed by the
//! reactor with the wall clock once per turn); each part is a plain
//! function or a small state machine, unit-tested on byte strings and
//! fuzzable:
//!
//! - [`session`]: one connection's HTTP state machine: phases, deadlines,
//!   which buffered requests to answer, when and why to close.
//! - [`request`]: parse and validate a request head ([`parse_head`]).
//! - [`body`]: frame (and discard) a request body, Content-Length or chunked.
//! - [`persist`]: the persistence decision ([`persist::decide`]).
//! - [`target`]: request target to a safe path relative to ROOT.
//! - [`response`]: encode a response head into a reused buffer.
//! - [`date`]: the `Date` value, formatted once per second.

pub mod body;
pub mod date;
pub mod input;
pub mod persist;
pub mod request;
pub mod response;
pub mod session;
mod status;
pub mod target;
pub mod validators;

pub use date::DateCache;
pub use request::{HeadLimits, HeadOutcome, parse_head};
pub use status::Status;
