//! Properties over many random cases, against the real server:
//! - a valid pipeline gives the same responses, in the same order, however
//!   its bytes are split across writes;
//! - random garbage never crashes the server and always ends in a response
//!   or a close, within the header timeout.

mod common;

use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random valid, persistent pipeline: (bytes, method of each request).
fn pipeline(rng: &mut Rng) -> (Vec<u8>, Vec<&'static str>) {
    let targets = [
        "/a.txt",
        "/b.txt",
        "/hello.txt",
        "/",
        "/sub",
        "/nope",
        "/%61.txt",
        "/sub/../c.txt",
    ];
    let mut bytes = Vec::new();
    let mut methods = Vec::new();
    for _ in 0..1 + rng.below(12) {
        let target = targets[rng.below(targets.len())];
        let method = ["GET", "GET", "HEAD", "OPTIONS", "DELETE"][rng.below(5)];
        methods.push(method);
        let (version, extra) = if rng.below(4) == 0 {
            ("HTTP/1.0", "Connection: keep-alive\r\n")
        } else {
            ("HTTP/1.1", "Host: prop\r\n")
        };
        bytes.extend_from_slice(format!("{method} {target} {version}\r\n{extra}").as_bytes());
        match rng.below(4) {
            0 => {
                let body = "x".repeat(rng.below(40));
                bytes.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
                );
            }
            1 if version == "HTTP/1.1" => {
                bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for _ in 0..rng.below(3) {
                    let chunk = "y".repeat(1 + rng.below(20));
                    bytes.extend_from_slice(
                        format!("{:x};ext\r\n{chunk}\r\n", chunk.len()).as_bytes(),
                    );
                }
                bytes.extend_from_slice(b"0\r\nTrailer: t\r\n\r\n");
            }
            _ => bytes.extend_from_slice(b"\r\n"),
        }
    }
    (bytes, methods)
}

fn responses(server: &Server, chunks: &[&[u8]], methods: &[&str]) -> Vec<String> {
    let mut s = server.connect();
    let writer_chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
    let mut writer = s.try_clone().unwrap();
    let send = std::thread::spawn(move || {
        for chunk in writer_chunks {
            writer.write_all(&chunk).unwrap();
            // Apart, not a wait: each chunk likely a read of its own.
            std::thread::sleep(Duration::from_micros(300));
        }
    });
    let mut buf = Vec::new();
    let out = methods
        .iter()
        .map(|m| {
            let r = read_response_after(&mut s, &mut buf, m);
            format!("{}{}", r.head, r.body_text())
        })
        .collect();
    send.join().unwrap();
    out
}

#[test]
fn a_pipeline_answers_the_same_however_it_is_split() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--max-requests", "0"]);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for case in 0..60 {
        let (bytes, methods) = pipeline(&mut rng);
        let whole = responses(&server, &[&bytes], &methods);
        let mut cuts: Vec<usize> = (0..1 + rng.below(8))
            .map(|_| rng.below(bytes.len()))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            chunks.push(&bytes[start..cut]);
            start = cut;
        }
        let split = responses(&server, &chunks, &methods);
        assert_eq!(
            split,
            whole,
            "case {case}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn garbage_always_ends_in_a_response_or_a_close() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &[
            "--header-timeout",
            "1",
            "--linger-timeout",
            "0.5",
            "--keepalive-timeout",
            "1",
        ],
    );
    let mut rng = Rng(0xbad_cafe_0000_0042);
    let alphabet: &[u8] = b"GET /HTTP1.0\r\n: \t%?#,;Host-Length0123456789chunked\x00\xff";
    let cases: Vec<Vec<u8>> = (0..40)
        .map(|_| {
            let len = 1 + rng.below(200);
            (0..len)
                .map(|_| {
                    if rng.below(3) == 0 {
                        rng.next() as u8
                    } else {
                        alphabet[rng.below(alphabet.len())]
                    }
                })
                .collect()
        })
        .collect();
    let handles: Vec<_> = cases
        .into_iter()
        .map(|bytes| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                let start = Instant::now();
                let _ = s.write_all(&bytes);
                // Never send EOF: the server must end it by itself.
                let (closed, got) = wait_closed(&mut s, Duration::from_secs(4));
                let took = start.elapsed();
                assert!(
                    closed.is_some(),
                    "still open after {took:?}: {:?}",
                    String::from_utf8_lossy(&bytes)
                );
                if !got.is_empty() {
                    assert!(
                        got.starts_with(b"HTTP/1.1 "),
                        "{:?}",
                        String::from_utf8_lossy(&got)
                    );
                }
                // Header timeout, plus the linger after a 408.
                assert!(
                    took <= Duration::from_secs_f64(1.0 + 0.5 + 0.6),
                    "took {took:?}"
                );
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
}
