//! The sans-IO HTTP/1.1 core: bytes in, decisions and bytes out.
//!
//! Nothing in this module touches a socket, a file or the clock; each part
//! is a plain function or a small state machine, unit-tested on byte
//! strings and fuzzable:
//!
//! - [`request`]: parse and validate a request head ([`parse_head`]).
//! - [`body`]: frame (and discard) a request body, Content-Length or chunked.
//! - [`persist`]: the persistence decision ([`persist::decide`]).
//! - [`target`]: request target to a safe path relative to ROOT.
//! - [`response`]: encode a response head into a reused buffer.
//! - [`date`]: the `Date` value, formatted once per second.

pub mod body;
pub mod date;
pub mod persist;
pub mod request;
pub mod response;
mod status;
pub mod target;
pub mod validators;

pub use date::DateCache;
pub use request::{HeadLimits, HeadOutcome, parse_head};
pub use status::Status;
