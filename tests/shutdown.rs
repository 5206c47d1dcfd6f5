//! Graceful shutdown on SIGTERM/SIGINT.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn sigterm_lets_a_download_finish_refuses_new_connections_and_exits_0() {
    let site = Site::new();
    let size = 64usize << 20;
    std::fs::File::create(site.root().join("big.bin"))
        .unwrap()
        .set_len(size as u64)
        .unwrap();
    let mut server = Server::start(&site.root(), &[]);
    let mut idle = server.connect();
    assert_eq!(exchange(&mut idle, &get("/a.txt")).status, 200);
    let mut download = server.connect();
    download.write_all(get("/big.bin").as_bytes()).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    let mut total = download.read(&mut chunk).unwrap();

    server.signal(libc::SIGTERM);
    // The idle keep-alive connection is closed at once.
    assert_closes(&mut idle, Duration::from_secs(2));
    // New connections are refused.
    assert!(wait_until(Duration::from_secs(2), || {
        std::net::TcpStream::connect(server.addr).is_err()
    }));
    // The download completes.
    download
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        let n = download.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        // A slow reader, not a wait: the download is still under way
        // while the server shuts down around it.
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(total > size, "the whole body ({total} bytes with the head)");
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn shutdown_timeout_bounds_the_wait() {
    let site = Site::new();
    std::fs::File::create(site.root().join("big.bin"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut server = Server::start(&site.root(), &["--shutdown-timeout", "1"]);
    let mut stuck = server.connect();
    stuck.write_all(get("/big.bin").as_bytes()).unwrap(); // never read
    wait_server_read_all(&stuck);
    let start = std::time::Instant::now();
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took <= Duration::from_millis(1600),
        "{took:?}"
    );
}

#[test]
fn second_signal_exits_at_once() {
    let site = Site::new();
    std::fs::File::create(site.root().join("big.bin"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut server = Server::start(&site.root(), &["--shutdown-timeout", "30"]);
    let mut stuck = server.connect();
    stuck.write_all(get("/big.bin").as_bytes()).unwrap();
    wait_server_read_all(&stuck);
    server.signal(libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(2), || server
        .log_text()
        .contains("shutting down gracefully")));
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(2)), Some(0));
}

#[test]
fn responses_after_the_signal_say_close() {
    let site = Site::new();
    std::fs::File::create(site.root().join("big.bin"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut server = Server::start(&site.root(), &[]);
    // A connection with half a request when the signal arrives finishes
    // its request and is told to close.
    let mut busy = server.connect();
    busy.write_all(b"GET /a.txt HTTP/1.1\r\n").unwrap();
    wait_server_read_all(&busy);
    server.signal(libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(2), || server
        .log_text()
        .contains("shutting down gracefully")));
    busy.write_all(b"Host: x\r\n\r\n").unwrap();
    let r = read_response(&mut busy);
    assert_eq!(r.body, b"a\n");
    assert_eq!(r.header("Connection"), Some("close"));
    assert_closes(&mut busy, Duration::from_secs(2));
    // The server lingers until the client closes its side too.
    drop(busy);
    assert_eq!(server.wait_exit(Duration::from_secs(2)), Some(0));
}

/// The lame-duck drain a load balancer needs (Kubernetes' preStop,
/// Envoy's drain): on SIGTERM with `--drain-delay`, holdline goes on
/// accepting and serving while `--health-path` answers 503 and every
/// response says `Connection: close`, so the balancer takes it out of its
/// pool; then the graceful shutdown of before.
#[test]
fn a_drain_delay_fails_the_health_check_while_serving_then_shuts_down() {
    let site = Site::new();
    let args = [
        "--health-path",
        "/healthz",
        "--drain-delay",
        "1.5",
        "--keepalive-timeout",
        "30",
    ];
    let mut server = Server::start(&site.root(), &args);
    let health = |server: &Server| exchange(&mut server.connect(), &get("/healthz"));
    let ok = health(&server);
    assert_eq!((ok.status, &ok.body[..]), (200, &b"ok\n"[..]));
    assert_eq!(ok.header("Cache-Control"), Some("no-store"));
    assert_eq!(ok.header("Connection"), Some("keep-alive"));
    let mut kept = server.connect();
    assert_eq!(exchange(&mut kept, &get("/a.txt")).status, 200);

    server.signal(libc::SIGTERM);
    let signalled = std::time::Instant::now();
    assert!(wait_until(Duration::from_secs(1), || health(&server)
        .status
        == 503));
    let draining = health(&server);
    assert_eq!(draining.body, b"draining\n");
    assert_eq!(draining.header("Connection"), Some("close"));
    // Still accepting and serving, each answer saying close, the open
    // keep-alive connection's next one too.
    let fresh = exchange(&mut server.connect(), &get("/hello.txt"));
    assert_eq!(
        (fresh.status, fresh.header("Connection")),
        (200, Some("close"))
    );
    let last = exchange(&mut kept, &get("/b.txt"));
    assert_eq!(
        (last.status, last.header("Connection")),
        (200, Some("close"))
    );
    assert_closes(&mut kept, Duration::from_secs(1));
    assert!(
        signalled.elapsed() < Duration::from_millis(1500),
        "still in the drain"
    );
    // Then the listeners close and the process exits 0.
    assert!(wait_until(Duration::from_secs(3), || {
        std::net::TcpStream::connect(server.addr).is_err()
    }));
    assert!(
        signalled.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        signalled.elapsed()
    );
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        server.log_text().contains("draining for 1.5s"),
        "{}",
        server.log_text()
    );
}

/// The health check is never redirected to https, nor written to the
/// access log.
#[test]
fn the_health_check_is_neither_redirected_nor_logged() {
    let site = Site::new();
    let log = site.dir.path().join("access.log");
    let pki = Pki::new();
    pki.leaf("leaf", "localhost", &["localhost", "127.0.0.1"]);
    let (cert, key) = (pki.cert("leaf"), pki.key("leaf"));
    let args = [
        "--health-path",
        "/healthz",
        "--access-log",
        log.to_str().unwrap(),
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--redirect-to-https",
    ];
    let server = Server::start(&site.root(), &args);
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/healthz")).status, 200);
    assert_eq!(exchange(&mut s, &get("/a.txt")).status, 308);
    assert!(wait_until(Duration::from_secs(3), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("GET /a.txt"))
    }));
    assert!(!std::fs::read_to_string(&log).unwrap().contains("healthz"));
}

/// Connections the kernel queued on the listeners (here while the server
/// is stopped, spread over a SO_REUSEPORT group of two workers) when the
/// shutdown begins are accepted and answered, not reset with the
/// listener: closing a listener drops its backlog, so the shutdown takes
/// what is queued first.
#[test]
fn connections_queued_at_shutdown_are_answered_not_reset() {
    let site = Site::new();
    let mut server = Server::start(&site.root(), &["--workers", "2"]);
    server.signal(libc::SIGSTOP);
    let queued: Vec<std::net::TcpStream> = (0..32)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(server.addr).unwrap();
            s.write_all(get("/hello.txt").as_bytes()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    server.signal(libc::SIGTERM);
    server.signal(libc::SIGCONT);
    // Each dropped once read: the server's lingering close waits for it.
    for (i, mut s) in queued.into_iter().enumerate() {
        let mut answer = String::new();
        s.read_to_string(&mut answer)
            .unwrap_or_else(|e| panic!("queued connection {i}: {e}"));
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{i}: {answer:?}");
        assert!(answer.ends_with("\r\n\r\nhello\n"), "{i}: {answer:?}");
    }
    assert_eq!(
        server.wait_exit(Duration::from_secs(5)),
        Some(0),
        "{}",
        server.log_text()
    );
}
