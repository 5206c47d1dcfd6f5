//! Bad input gets a precise status, and a close where framing is lost.

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;

/// Sends `request`, expects `status` and, if `closes`, the connection to
/// close right after the response.
fn expect(server: &Server, request: &[u8], status: u16, closes: bool) {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let r = read_response_after(&mut s, &mut buf, "GET");
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(request));
    if closes {
        assert_eq!(
            r.header("Connection"),
            Some("close"),
            "{}",
            String::from_utf8_lossy(request)
        );
        assert_closes(&mut s, Duration::from_secs(2));
    } else {
        assert_ne!(r.header("Connection"), Some("close"));
        let r = exchange(&mut s, &get("/a.txt"));
        assert_eq!(r.body, b"a\n", "the connection should still serve");
    }
}

#[test]
fn table_of_bad_requests() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &["--max-header-bytes", "4096", "--max-uri-bytes", "1024"],
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000));
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(5000)
    );
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let many_fields = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let cases: Vec<(&[u8], u16, bool)> = vec![
        (b"GARBAGE\r\n\r\n", 400, true),
        (b"GET /\r\n\r\n", 400, true),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, true),
        (b"GET / HTTP/3.0\r\n\r\n", 505, true),
        (b"GET / HTTP/1.1\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400, true),
        (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 417, true),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
            405,
            false,
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, true),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, true),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, true),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n", 501, true),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413, true),
        (long_uri.as_bytes(), 414, true),
        (big_head.as_bytes(), 431, true),
        (many_fields.as_bytes(), 431, true),
        (b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400, false),
        (b"DELETE /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 405, false),
        (b"FOO /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 501, false),
    ];
    for (request, status, closes) in cases {
        expect(&server, request, status, closes);
    }
}

#[test]
fn oversized_head_is_refused_without_waiting_for_its_end() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--max-header-bytes", "4096"]);
    let mut s = server.connect();
    // 8 KB of a head that never ends: the 431 comes at 4 KB.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        .unwrap();
    s.write_all(&[b'z'; 8192]).unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 431);
    assert_closes(&mut s, Duration::from_secs(2));
}

#[test]
fn expect_100_continue() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    // Served: 100 Continue, then the answer, then the body is discarded.
    let mut s = server.connect();
    s.write_all(
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let r = read_response_after(&mut s, &mut buf, "GET");
    assert_eq!(r.head, "HTTP/1.1 100 Continue\r\n\r\n");
    let r = read_response_after(&mut s, &mut buf, "GET");
    assert_eq!(r.body, b"a\n");
    s.write_all(b"body").unwrap();
    assert_eq!(exchange(&mut s, &get("/b.txt")).body, b"bb\n");
    // Refused: the final status at once, no 100, and close.
    let mut s = server.connect();
    s.write_all(
        b"PUT /a.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Connection"), Some("close"));
}

#[test]
fn garbage_never_kills_the_server() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut seed = 7u64;
    for _ in 0..200 {
        let mut s = server.connect();
        let len = 1 + (seed % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if seed.is_multiple_of(5) {
                    b"\r\n :/%"[(seed % 6) as usize]
                } else {
                    (seed >> 8) as u8
                }
            })
            .collect();
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        assert_closes(&mut s, Duration::from_secs(5));
    }
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
}

/// A chunked body has no length to refuse up front: its request is
/// answered once the body is in, so a body past --max-body-bytes gets 413
/// and a close whether it comes in one write or trickles.
#[test]
fn a_chunked_body_past_the_limit_is_413_in_one_write_or_trickled() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--max-body-bytes", "10"]);
    let head = "POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let whole = format!("{head}b\r\n0123456789a\r\n0\r\n\r\n");
    expect(&server, whole.as_bytes(), 413, true);
    let mut s = server.connect();
    s.write_all(head.as_bytes()).unwrap();
    for chunk in ["4\r\nabcd\r\n", "4\r\nefgh\r\n", "4\r\nijkl\r\n"] {
        wait_server_read_all(&s);
        s.write_all(chunk.as_bytes()).unwrap();
    }
    let r = read_response(&mut s);
    assert_eq!(r.status, 413);
    assert_eq!(r.header("Connection"), Some("close"));
    assert_closes(&mut s, Duration::from_secs(2));
}

/// A slow chunked body is answered when it ends (405: POST to a file), the
/// connection stays open; a body that stops arriving is closed at
/// --header-timeout after its last byte, without an answer.
#[test]
fn a_slow_body_is_answered_when_it_ends_and_a_stalled_one_times_out() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--header-timeout", "1"]);
    let head = "POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut s = server.connect();
    s.write_all(head.as_bytes()).unwrap();
    // Each piece comes within the timeout of the one before, the whole
    // body takes longer than the timeout: still fine.
    for chunk in ["3\r\nabc\r\n", "3\r\ndef\r\n", "3\r\nghi\r\n", "0\r\n\r\n"] {
        assert_stays_open(&mut s, Duration::from_millis(400));
        s.write_all(chunk.as_bytes()).unwrap();
    }
    let r = read_response(&mut s);
    assert_eq!(r.status, 405);
    assert_ne!(r.header("Connection"), Some("close"));
    assert_eq!(exchange(&mut s, &get("/a.txt")).body, b"a\n");
    // A body that stalls: closed one header timeout after its last byte.
    s.write_all(format!("{head}3\r\nabc\r\n").as_bytes())
        .unwrap();
    wait_server_read_all(&s);
    let last_byte = std::time::Instant::now();
    let (closed, got) = wait_closed(&mut s, Duration::from_secs(5));
    let closed = closed.expect("closed");
    assert!(
        got.is_empty(),
        "no answer to a request whose body never ended"
    );
    let after = closed - last_byte;
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_secs(1) + TICK + SLACK,
        "closed {after:?} after the last body byte"
    );
}
