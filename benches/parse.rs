//! Micro-benchmarks of the per-request sans-IO path: parsing a typical
//! browser request head, deciding persistence, decoding the target and
//! encoding the response head. Run with `cargo bench --bench parse`.

use std::hint::black_box;
use std::time::Instant;

use holdline::http::persist::{self, PersistContext, Persistence};
use holdline::http::response::{ResponseHead, encode_head};
use holdline::http::target::decode_path;
use holdline::http::{HeadLimits, HeadOutcome, Status, parse_head};

const REQUEST: &[u8] = b"GET /assets/app.3f9a1c.js?v=2 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Accept: */*\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Referer: https://www.example.com/\r\n\
Connection: keep-alive\r\n\r\n";

fn bench(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{name:<40} {per:>8.1} ns/op");
}

fn main() {
    let limits = HeadLimits {
        max_header_bytes: 16 * 1024,
        max_uri_bytes: 8 * 1024,
    };
    bench("parse_head (browser GET, 8 fields)", 1_000_000, || {
        let HeadOutcome::Complete(head) = parse_head(black_box(REQUEST), &limits) else {
            panic!("the benchmark request must parse");
        };
        black_box(head.head_len);
    });

    let mut path = Vec::with_capacity(256);
    bench("decode_path", 1_000_000, || {
        black_box(decode_path(black_box("/assets/app.3f9a1c.js?v=2"), &mut path).is_ok());
    });

    let mut out = Vec::with_capacity(512);
    let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
    bench("persist::decide + encode_head", 1_000_000, || {
        out.clear();
        let persistence = persist::decide(
            holdline::http::request::Version::Http11,
            Default::default(),
            PersistContext {
                keepalive_enabled: true,
                keepalive_timeout_secs: 5,
                max_requests: 100,
                requests_before: black_box(7),
                must_close: false,
                closing: None,
            },
        );
        let mut head = ResponseHead::new(Status::Ok, date, persistence);
        head.content_type = Some("application/javascript");
        head.charset_utf8 = true;
        head.content_length = 1024;
        encode_head(&mut out, &head);
        black_box(out.len());
        black_box(matches!(persistence, Persistence::Close(_)));
    });
}
