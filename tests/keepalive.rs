//! HTTP/1.1 persistence (RFC 9112 §9.3) against the real server: what the
//! responses say, and whether the socket really stays open or closes.

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;

fn ok_head(len: usize, connection: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nServer: holdline\r\nDate: *\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {len}\r\nLast-Modified: *\r\nETag: *\r\nAccept-Ranges: bytes\r\n\
         Vary: Accept-Encoding\r\nX-Content-Type-Options: nosniff\r\n{connection}\r\n\r\n"
    )
}

#[test]
fn two_requests_on_one_connection() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/hello.txt"));
    assert_eq!(
        r.head,
        ok_head(6, "Connection: keep-alive\r\nKeep-Alive: timeout=5, max=99")
    );
    assert_eq!(r.body, b"hello\n");
    let r = exchange(&mut s, &get("/a.txt"));
    assert_eq!(
        r.head,
        ok_head(2, "Connection: keep-alive\r\nKeep-Alive: timeout=5, max=98")
    );
    assert_eq!(r.body, b"a\n");
    assert_stays_open(&mut s, Duration::from_millis(300));
}

#[test]
fn five_pipelined_requests_in_one_write_are_answered_in_order() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let paths = ["/a.txt", "/b.txt", "/c.txt", "/hello.txt", "/a.txt"];
    let burst: String = paths.iter().map(|p| get(p)).collect();
    s.write_all(burst.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let bodies: Vec<String> = (0..5)
        .map(|_| read_response_after(&mut s, &mut buf, "GET").body_text())
        .collect();
    assert_eq!(bodies, ["a\n", "bb\n", "ccc\n", "hello\n", "a\n"]);
    assert!(buf.is_empty());
}

#[test]
fn pipelined_answers_are_coalesced_into_one_write() {
    // Five answers to five requests that arrive together leave in one
    // write, so they arrive together: one read sees all of them.
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let burst: String = (0..5).map(|_| get("/a.txt")).collect();
    s.write_all(burst.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let first = read_response_after(&mut s, &mut buf, "GET");
    assert_eq!(first.status, 200);
    let one_answer = first.head.len() + first.body.len();
    assert!(
        buf.len() >= 4 * one_answer - 8,
        "the other four answers should have arrived with the first ({} bytes buffered)",
        buf.len()
    );
}

#[test]
fn http10_without_keepalive_closes_after_response() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(&mut s, "GET /hello.txt HTTP/1.0\r\n\r\n");
    assert_eq!(r.head, ok_head(6, "Connection: close"));
    assert_closes(&mut s, Duration::from_secs(2));
}

#[test]
fn http10_with_keepalive_persists_and_says_so() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(
        &mut s,
        "GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_eq!(
        r.head,
        ok_head(6, "Connection: keep-alive\r\nKeep-Alive: timeout=5, max=99")
    );
    let r = exchange(
        &mut s,
        "GET /a.txt HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    );
    assert_eq!(r.body, b"a\n");
    assert_stays_open(&mut s, Duration::from_millis(300));
}

#[test]
fn connection_close_is_honoured() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    for value in ["close", "Upgrade, close", "keep-alive, CLOSE"] {
        let mut s = server.connect();
        let r = exchange(
            &mut s,
            &format!("GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: {value}\r\n\r\n"),
        );
        assert_eq!(
            r.head,
            ok_head(6, "Connection: close"),
            "Connection: {value}"
        );
        assert_closes(&mut s, Duration::from_secs(2));
    }
}

#[test]
fn close_token_in_a_second_connection_header() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(
        &mut s,
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.header("Connection"), Some("close"));
    assert_closes(&mut s, Duration::from_secs(2));
}

#[test]
fn max_requests_counts_down_then_closes() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--max-requests", "3"]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/a.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=5, max=2"));
    let r = exchange(&mut s, &get("/a.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=5, max=1"));
    let r = exchange(&mut s, &get("/a.txt"));
    assert_eq!(r.head, ok_head(2, "Connection: close"));
    assert_closes(&mut s, Duration::from_secs(2));
}

#[test]
fn unlimited_requests_omit_max() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &["--max-requests", "0", "--keepalive-timeout", "7"],
    );
    let mut s = server.connect();
    for _ in 0..150 {
        let r = exchange(&mut s, &get("/a.txt"));
        assert_eq!(r.header("Keep-Alive"), Some("timeout=7"));
    }
}

#[test]
fn keepalive_timeout_zero_closes_every_response() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--keepalive-timeout", "0"]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/hello.txt"));
    assert_eq!(r.head, ok_head(6, "Connection: close"));
    assert_closes(&mut s, Duration::from_secs(2));
    let mut s = server.connect();
    let r = exchange(
        &mut s,
        "GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_eq!(r.header("Connection"), Some("close"));
}

#[test]
fn request_written_one_byte_at_a_time_is_served() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    for b in get("/hello.txt").bytes() {
        s.write_all(&[b]).unwrap();
        // Apart, not a wait: each byte a read of its own.
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = read_response(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello\n");
}

#[test]
fn request_body_is_discarded_so_the_next_request_frames_correctly() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let burst = "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /GET /b.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nGET\r\n0\r\n\r\nGET /c.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(burst.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let bodies: Vec<String> = (0..3)
        .map(|_| read_response_after(&mut s, &mut buf, "GET").body_text())
        .collect();
    assert_eq!(bodies, ["a\n", "bb\n", "ccc\n"]);
}

#[test]
fn client_that_pipelines_without_reading_is_not_buffered_without_bound() {
    // Up to 100,000 pipelined requests (about 20 MB, far more than the
    // kernel's socket buffers hold) for a 1 KB file. The client never
    // reads; the server must stop reading once its output cap is reached,
    // and stay responsive to others.
    let site = Site::new();
    site.dir.write("www/k.txt", vec![b'k'; 1024]);
    let server = Server::start(&site.root(), &["--max-requests", "0"]);
    let mut hog = server.connect();
    hog.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let request = format!(
        "GET /k.txt HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(150)
    );
    let batch = request.repeat(1000);
    let mut sent = 0usize;
    for _ in 0..100 {
        match hog.write(batch.as_bytes()) {
            Ok(n) => sent += n,
            Err(_) => break, // the kernel buffers are full: the server stopped reading
        }
    }
    assert!(
        sent < 100 * batch.len(),
        "the server should have stopped reading"
    );
    let rss_kb = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        rss_kb(server.pid()) < 64 * 1024,
        "server RSS grew past 64 MiB"
    );
    let mut other = server.connect();
    assert_eq!(exchange(&mut other, &get("/a.txt")).status, 200);
}

#[test]
fn curl_reuses_the_connection() {
    let Some(curl) = peer_program("curl") else {
        return;
    };
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let out = std::process::Command::new(curl)
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects}\\n",
        ])
        .arg(server.url("/hello.txt"))
        .arg(server.url("/a.txt"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n0\n");
}

#[test]
fn connection_close_with_nothing_unread_closes_without_lingering() {
    // The client keeps its end open and sends nothing more: with nothing
    // unread there is no reset to fear, so the server closes at once
    // instead of lingering for --linger-timeout (5 s), as nginx does.
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let fds = || fd_count(server.pid());
    let baseline = fds();
    let mut s = server.connect();
    let r = exchange(
        &mut s,
        "GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(
        wait_until(Duration::from_millis(500), || fds() == baseline),
        "still lingering"
    );
    drop(s);
}

/// A keep-alive request and the client's FIN in one go (`printf ... |
/// nc -q0`, a load balancer's last request): the answer is sent whole and
/// the connection closes at once, not after the keep-alive timeout. The
/// FIN came with the data's readiness event (EPOLLRDHUP), so a short read
/// is not taken to mean the socket is drained.
#[test]
fn a_request_with_the_clients_fin_is_answered_and_closed_at_once() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--keepalive-timeout", "30"]);
    for _ in 0..20 {
        let mut s = server.connect();
        // Idle first, so the request and the FIN arrive at a registered,
        // idle connection.
        assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
        s.write_all(get("/hello.txt").as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let rest = assert_closes(&mut s, Duration::from_secs(2));
        let text = String::from_utf8_lossy(&rest);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nhello\n"), "{text}");
    }
}

/// A connection is registered with epoll only after its first read at
/// accept: one that has sent nothing yet by then must still be woken for
/// its request when it comes (edge-triggered registration reports what
/// arrives later, and what arrived in between).
#[test]
fn a_client_silent_at_accept_is_served_when_its_request_comes() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let fds = || fd_count(server.pid());
    let baseline = fds();
    let mut s = server.connect();
    // Accepted (and read once, finding nothing): its fd is the server's.
    assert!(wait_until(Duration::from_secs(5), || fds() == baseline + 1));
    let r = exchange(&mut s, &get("/a.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"a\n");
    // Half a request, then the rest: both reads come from readiness.
    s.write_all(b"GET /hello.txt HTTP/1.1\r\n").unwrap();
    assert_stays_open(&mut s, Duration::from_millis(100));
    let r = exchange(&mut s, "Host: x\r\n\r\n");
    assert_eq!(r.body, b"hello\n");
}
