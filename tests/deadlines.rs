//! Every per-connection deadline, with short values, closing inside
//! [T, T + tick + 0.5 s].

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Asserts `closed_at - since` lies in [t, t + tick + slack].
fn assert_in_window(since: Instant, closed_at: Instant, t: Duration) {
    let took = closed_at - since;
    assert!(took >= t, "closed early: after {took:?}, deadline {t:?}");
    assert!(
        took <= t + TICK + SLACK,
        "closed late: after {took:?}, deadline {t:?}"
    );
}

#[test]
fn idle_connection_closes_after_keepalive_timeout() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--keepalive-timeout", "1"]);
    let mut s = server.connect();
    // Taken before the request: the server's idle time starts after its
    // answer, so the close can never come earlier than a second after this.
    let before_request = Instant::now();
    let r = exchange(&mut s, &get("/a.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=1, max=99"));
    let answered = before_request.elapsed();
    let (closed, got) = wait_closed(&mut s, secs(3.0));
    assert!(got.is_empty(), "an idle close sends nothing");
    let took = closed.expect("closed") - before_request;
    assert!(took >= secs(1.0), "closed early: {took:?}");
    assert!(
        took <= secs(1.0) + answered + TICK + SLACK,
        "closed late: {took:?}"
    );
}

#[test]
fn keepalive_timeout_is_reset_by_each_request() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--keepalive-timeout", "0.6"]);
    let mut s = server.connect();
    for _ in 0..4 {
        assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
        // Idle for most of the timeout, not a wait: each request resets it.
        std::thread::sleep(secs(0.35));
    }
    let idle_since = Instant::now() - secs(0.35);
    let (closed, _) = wait_closed(&mut s, secs(3.0));
    assert_in_window(idle_since, closed.expect("closed"), secs(0.6));
}

#[test]
fn keepalive_timeout_never_closes_a_request_in_progress() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &["--keepalive-timeout", "0.3", "--header-timeout", "5"],
    );
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
    s.write_all(b"GET /b.txt HTTP/1.1\r\n").unwrap();
    assert_stays_open(&mut s, secs(1.0));
    s.write_all(b"Host: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).body, b"bb\n");
}

#[test]
fn keepalive_timeout_never_closes_a_response_in_progress() {
    let site = Site::new();
    site.dir.write("www/big.bin", vec![7u8; 32 << 20]);
    let server = Server::start(&site.root(), &["--keepalive-timeout", "0.3"]);
    let mut s = server.connect();
    s.write_all(get("/big.bin").as_bytes()).unwrap();
    // Read slowly for well past the keep-alive timeout.
    let mut total = 0usize;
    let mut chunk = vec![0u8; 256 * 1024];
    let start = Instant::now();
    while start.elapsed() < secs(1.2) {
        total += s.read(&mut chunk).unwrap();
        // A slow reader's pace, not a wait.
        std::thread::sleep(Duration::from_millis(50));
    }
    s.set_read_timeout(Some(secs(10.0))).unwrap();
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed mid-response after {total} bytes");
        total += n;
        if total >= (32 << 20) + 100 {
            break;
        }
    }
}

#[test]
fn silent_connection_closes_at_header_timeout_without_a_word() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--header-timeout", "1"]);
    let start = Instant::now();
    let mut s = server.connect();
    let (closed, got) = wait_closed(&mut s, secs(3.0));
    assert!(got.is_empty());
    assert_in_window(start, closed.expect("closed"), secs(1.0));
}

#[test]
fn slowloris_gets_408_at_header_timeout_however_it_trickles() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--header-timeout", "1"]);
    let start = Instant::now();
    let mut s = server.connect();
    let mut writer = s.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            // The trickle itself, not a wait: a byte every 100 ms.
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (closed, got) = wait_closed(&mut s, secs(4.0));
    let closed = closed.expect("closed");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert!(text.contains("Connection: close\r\n"));
    // The 408 arrives at the deadline; the close follows the linger.
    assert_in_window(start, closed, secs(1.0));
    drop(s);
    let _ = trickle.join();
}

#[test]
fn header_timeout_of_a_later_request_counts_from_its_first_byte() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &["--header-timeout", "1", "--keepalive-timeout", "5"],
    );
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
    // Idle longer than the header timeout, not a wait: that is fine.
    std::thread::sleep(secs(1.2));
    let first_byte = Instant::now();
    s.write_all(b"GET /b.txt HTTP/1.1\r\n").unwrap();
    let (closed, got) = wait_closed(&mut s, secs(4.0));
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408 "));
    assert_in_window(first_byte, closed.expect("closed"), secs(1.0));
}

#[test]
fn stalled_download_is_abandoned_at_send_timeout() {
    let site = Site::new();
    let big = site.root().join("huge.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let server = Server::start(&site.root(), &["--send-timeout", "1"]);
    let pid = server.pid();
    let baseline = fd_count(pid);
    let mut s = server.connect();
    s.set_read_timeout(Some(secs(5.0))).unwrap();
    // The last write progress is after the request: the abandon can never
    // come earlier than the send timeout after this.
    let requested = Instant::now();
    s.write_all(get("/huge.bin").as_bytes()).unwrap();
    // Let the kernel buffers fill: the server holds the socket and the file.
    assert!(wait_until(secs(5.0), || fd_count(pid) == baseline + 2));
    let with_download = baseline + 2;
    // The moment writes stop progressing is the moment buffers filled;
    // watch the fds until the connection and its file are gone.
    let stalled_by = Instant::now();
    assert!(
        wait_until(secs(4.0), || fd_count(pid) <= with_download - 2),
        "the stalled download was not abandoned"
    );
    let took = stalled_by.elapsed();
    assert!(took <= secs(1.0) + TICK + SLACK, "abandoned after {took:?}");
    let since_request = requested.elapsed();
    assert!(
        since_request >= secs(1.0),
        "abandoned {since_request:?} after the request: before the send timeout"
    );
    // It never reached the client whole: reading ends early.
    let mut total = 0usize;
    let mut chunk = vec![0u8; 1 << 20];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        total += n;
    }
    assert!(total < 100 << 20);
}

#[test]
fn send_timeout_does_not_fire_while_the_client_reads() {
    let site = Site::new();
    site.dir.write("www/big.bin", vec![1u8; 24 << 20]);
    let server = Server::start(&site.root(), &["--send-timeout", "0.5"]);
    let mut s = server.connect();
    s.write_all(get("/big.bin").as_bytes()).unwrap();
    let mut total = 0usize;
    let mut chunk = vec![0u8; 512 * 1024];
    s.set_read_timeout(Some(secs(5.0))).unwrap();
    while total < (24 << 20) + 100 {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {total} bytes");
        total += n;
        // Slow, but progressing: the reader's pace, not a wait.
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn lingering_close_delivers_the_last_allowed_response_intact() {
    // The client pipelines more requests than --max-requests allows, plus
    // a large unread tail. A plain close with unread input sends RST,
    // which can destroy responses in flight; lingering prevents it.
    let site = Site::new();
    site.dir.write("www/mid.bin", vec![b'm'; 200_000]);
    let server = Server::start(&site.root(), &["--max-requests", "2"]);
    let mut s = server.connect();
    let mut burst: String = (0..6).map(|_| get("/mid.bin")).collect();
    burst.push_str(&format!("X-Junk: {}\r\n", "j".repeat(300_000)));
    let mut writer = s.try_clone().unwrap();
    let send = std::thread::spawn(move || {
        let _ = writer.write_all(burst.as_bytes());
    });
    // The server answers its two requests and shuts its write side while
    // the rest of the burst is unread: it lingers.
    assert!(wait_until(secs(5.0), || matches!(
        server_end(&s),
        Some((TCP_FIN_WAIT1 | TCP_FIN_WAIT2, _, _))
    )));
    let mut buf = Vec::new();
    let first = read_response_after(&mut s, &mut buf, "GET");
    assert_eq!(first.header("Keep-Alive"), Some("timeout=5, max=1"));
    assert_eq!(first.body.len(), 200_000);
    let last = read_response_after(&mut s, &mut buf, "GET");
    assert_eq!(last.header("Connection"), Some("close"));
    assert_eq!(last.body.len(), 200_000);
    assert!(buf.is_empty());
    let mut rest = [0u8; 16];
    s.set_read_timeout(Some(secs(5.0))).unwrap();
    assert_eq!(
        s.read(&mut rest).unwrap(),
        0,
        "EOF, not a reset, after the last response"
    );
    send.join().unwrap();
}

#[test]
fn linger_gives_up_at_linger_timeout() {
    // A client that keeps sending after the server's last response is cut
    // off at --linger-timeout.
    let site = Site::new();
    // --max-requests 1: the server closes while the client may still be
    // pipelining, so it lingers.
    let server = Server::start(
        &site.root(),
        &["--linger-timeout", "1", "--max-requests", "1"],
    );
    let pid = server.pid();
    let baseline = fd_count(pid);
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
    let linger_start = Instant::now();
    assert!(wait_until(secs(1.0), || fd_count(pid) == baseline + 1));
    // Keep the client side open and sending; the server only discards.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writer = s.try_clone().unwrap();
    let flag = stop.clone();
    let chatter = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if writer.write_all(b"more junk\r\n").is_err() {
                return;
            }
            // The client's chatter, not a wait: more junk every 50 ms.
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert!(wait_until(secs(3.0), || fd_count(pid) == baseline));
    let took = linger_start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = chatter.join();
    assert!(
        took >= secs(1.0) - TICK && took <= secs(1.0) + TICK + SLACK,
        "linger lasted {took:?}"
    );
}
