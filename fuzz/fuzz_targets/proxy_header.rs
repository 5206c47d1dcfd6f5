//! Arbitrary bytes as a trusted proxy's first bytes: see
//! `holdline::fuzzing::proxy_header`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| holdline::fuzzing::proxy_header(data));
