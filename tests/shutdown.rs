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
