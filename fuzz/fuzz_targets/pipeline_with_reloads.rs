//! The pipeline target with SIGHUP reloads mixed into its input: see
//! `holdline::fuzzing::pipeline_with_reloads`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| holdline::fuzzing::pipeline_with_reloads(data));
