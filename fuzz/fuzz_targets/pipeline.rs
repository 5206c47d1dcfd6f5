//! A pipeline of arbitrary bytes, delivered in arbitrary pieces, through
//! the connection's real HTTP session: see `holdline::fuzzing::pipeline`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| holdline::fuzzing::pipeline(data));
