//! Arbitrary bytes through the whole sans-IO request path: see
//! `holdline::fuzzing::request_head`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| holdline::fuzzing::request_head(data));
