//! Arbitrary bytes through the whole sans-IO request path: head parsing,
//! body framing, the persistence decision, target decoding and response
//! encoding. Nothing may panic, and the invariants below must hold.
#![no_main]

use holdline::http::body::BodyDecoder;
use holdline::http::persist::{self, PersistContext};
use holdline::http::response::{ResponseHead, encode_head};
use holdline::http::target::decode_path;
use holdline::http::{HeadLimits, HeadOutcome, Status, parse_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits {
        max_header_bytes: 4096,
        max_uri_bytes: 1024,
    };
    let input = &data[..data.len().min(limits.max_header_bytes)];
    match parse_head(input, &limits) {
        HeadOutcome::Partial => {}
        HeadOutcome::Reject(r) => {
            assert!(r.status.code() >= 400);
            if let Some(n) = r.head_len {
                assert!(n <= input.len());
            }
        }
        HeadOutcome::Complete(head) => {
            assert!(head.head_len <= input.len());
            assert!(head.target.len() <= limits.max_uri_bytes);
            let _ = BodyDecoder::new(head.framing, 1 << 20);
            let mut path = Vec::new();
            if let Ok(_info) = decode_path(head.target, &mut path) {
                assert!(!path.starts_with(b"/"));
                assert!(!path.contains(&0));
                for segment in path.split(|&b| b == b'/') {
                    assert!(path.is_empty() || (segment != b".." && segment != b"." && !segment.is_empty()));
                }
            }
            let persistence = persist::decide(
                head.version,
                head.connection,
                PersistContext {
                    keepalive_enabled: true,
                    keepalive_timeout_secs: 5,
                    max_requests: 3,
                    requests_before: u32::from(data.first().copied().unwrap_or(0) % 5),
                    must_close: false,
                },
            );
            let mut out = Vec::new();
            encode_head(
                &mut out,
                &ResponseHead::new(Status::Ok, b"Sun, 06 Nov 1994 08:49:37 GMT", persistence),
            );
            assert!(out.ends_with(b"\r\n\r\n"));
        }
    }
});
