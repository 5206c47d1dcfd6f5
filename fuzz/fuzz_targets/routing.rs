//! Arbitrary bytes through the sites' and rules' code over bytes: see
//! `holdline::fuzzing::routing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| holdline::fuzzing::routing(data));
