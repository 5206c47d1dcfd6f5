//! Binary upgrades without a lost request (SIGUSR2): the running process
//! starts the binary again, hands it its listeners (the same sockets) and,
//! once it serves, every connection with nothing in flight; clients
//! between two requests never see their connection close. A successor
//! that fails leaves the old process serving.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Keep-alive clients request through an upgrade: every request is
/// answered, none of their connections closes, new connections are
/// served throughout, and the old process exits once it handed over.
fn upgrade_under_load(workers: &str) {
    let site = Site::new();
    let args = [
        "--workers",
        workers,
        "--keepalive-timeout",
        "30",
        "--max-requests",
        "0",
    ];
    let mut server = Server::start(&site.root(), &args);
    let old = server.pid();
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    // The longest a request waited, in µs: the upgrade's stall, if any.
    let longest = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        let longest = Arc::clone(&longest);
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        clients.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let asked = std::time::Instant::now();
                let r = exchange(&mut s, &get("/hello.txt"));
                longest.fetch_max(asked.elapsed().as_micros() as u64, Ordering::Relaxed);
                assert_eq!(
                    (r.status, &r.body[..]),
                    (200, &b"hello\n"[..]),
                    "{}",
                    r.head
                );
                assert_eq!(r.header("Connection"), Some("keep-alive"));
                answered.fetch_add(1, Ordering::Relaxed);
            }
            // The same connection, still open, after the upgrade.
            let r = exchange(&mut s, &get("/a.txt"));
            assert_eq!(r.body, b"a\n");
        }));
    }
    // And new connections all along.
    let fresh = {
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        let longest = Arc::clone(&longest);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let asked = std::time::Instant::now();
                let mut s = TcpStream::connect(addr).expect("connect during the upgrade");
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let r = exchange(&mut s, &get("/b.txt"));
                assert_eq!(r.body, b"bb\n");
                longest.fetch_max(asked.elapsed().as_micros() as u64, Ordering::Relaxed);
                answered.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            n
        })
    };
    assert!(wait_until(Duration::from_secs(5), || answered
        .load(Ordering::Relaxed)
        > 100));
    server.signal(libc::SIGUSR2);
    assert!(
        wait_until(Duration::from_secs(20), || server.successor_pid().is_some()),
        "{}",
        server.log_text()
    );
    let new = server.successor_pid().unwrap();
    let _reap = Reap(new);
    assert_ne!(new, old);
    // The old process hands everything over and exits 0.
    assert_eq!(
        server.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        server.log_text()
    );
    assert!(alive(new));
    let before = answered.load(Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(5), || {
        answered.load(Ordering::Relaxed) > before + 100
    }));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client
            .join()
            .expect("a client lost a request or its connection");
    }
    let fresh = fresh.join().expect("a new connection failed");
    let log = server.log_text();
    assert!(log.contains("connections handed over; exiting"), "{log}");
    assert!(log.contains("connections taken over"), "{log}");
    eprintln!(
        "upgrade with {workers} worker(s): {} requests answered, {fresh} of them on new connections, 8 keep-alive connections kept, the longest wait {} ms",
        answered.load(Ordering::Relaxed),
        longest.load(Ordering::Relaxed) / 1000
    );
}

#[test]
fn an_upgrade_keeps_every_keep_alive_connection_and_loses_no_request() {
    upgrade_under_load("1");
}

#[test]
fn an_upgrade_with_workers_hands_over_every_listener_and_connection() {
    upgrade_under_load("2");
}

/// A successor that cannot start (here its config file broke meanwhile)
/// is given up: the old process says why and serves on, its keep-alive
/// connections untouched.
#[test]
fn a_successor_that_fails_leaves_the_old_process_serving() {
    let site = Site::new();
    let dir = TempDir::new("upgrade-config");
    let config = dir.path().join("holdline.toml");
    std::fs::write(&config, "keepalive-timeout = 30\n").unwrap();
    let server = Server::start(&site.root(), &["--config", config.to_str().unwrap()]);
    let mut kept = server.connect();
    assert_eq!(exchange(&mut kept, &get("/a.txt")).status, 200);
    std::fs::write(&config, "keepalive-timeout = \"soon\"\n").unwrap();
    server.signal(libc::SIGUSR2);
    assert!(
        wait_until(Duration::from_secs(20), || {
            server.log_text().contains("upgrade: the new binary")
        }),
        "{}",
        server.log_text()
    );
    let log = server.log_text();
    assert!(
        log.contains("exited before it served: exit status: 2; still serving"),
        "{log}"
    );
    assert_eq!(exchange(&mut kept, &get("/hello.txt")).body, b"hello\n");
    assert_eq!(
        exchange(&mut server.connect(), &get("/b.txt")).body,
        b"bb\n"
    );
}

/// TLS connections are not handed over (their session keys stay): the
/// next response on one says close, and new TLS connections are served
/// by the successor.
#[test]
fn tls_connections_close_after_their_response_and_new_ones_reach_the_successor() {
    let site = Site::new();
    let pki = Pki::new();
    pki.leaf("leaf", "localhost", &["localhost", "127.0.0.1"]);
    let (cert, key) = (pki.cert("leaf"), pki.key("leaf"));
    let args = [
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    let mut server = Server::start(&site.root(), &args);
    let tls = tls_addr(&server);
    let client = pki.client();
    let connect = || {
        let tcp = TcpStream::connect(tls).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::clone(&client), name).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    };
    let ask = |s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>| {
        s.write_all(get("/a.txt").as_bytes()).unwrap();
        s.flush().unwrap();
        read_framed(s, &mut Vec::new())
    };
    let mut idle = connect();
    assert_eq!(ask(&mut idle).1, b"a\n");
    server.signal(libc::SIGUSR2);
    assert!(wait_until(Duration::from_secs(20), || server
        .successor_pid()
        .is_some()));
    let _reap = Reap(server.successor_pid().unwrap());
    // The idle TLS connection was closed (cleanly: close_notify).
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    let mut fresh = connect();
    let (head, body) = ask(&mut fresh);
    assert_eq!(body, b"a\n", "{head}");
}

/// A unix-socket listener and a keep-alive client on it (a reverse proxy
/// on the same host) go to the successor too; the socket file stays.
#[test]
fn a_unix_socket_listener_and_its_clients_are_handed_over() {
    use std::os::unix::net::UnixStream;
    let site = Site::new();
    let dir = TempDir::new("upgrade-unix");
    let path = dir.path().join("holdline.sock");
    let listen = format!("unix:{}", path.display());
    let mut server = Server::start(
        &site.root(),
        &["--listen", &listen, "--keepalive-timeout", "30"],
    );
    let mut proxy = UnixStream::connect(&path).unwrap();
    proxy
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let ask = |s: &mut UnixStream, path: &str| {
        s.write_all(get(path).as_bytes()).unwrap();
        read_framed(s, &mut Vec::new())
    };
    assert_eq!(ask(&mut proxy, "/a.txt").1, b"a\n");
    server.signal(libc::SIGUSR2);
    assert!(wait_until(Duration::from_secs(20), || server
        .successor_pid()
        .is_some()));
    let _reap = Reap(server.successor_pid().unwrap());
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    assert_eq!(
        ask(&mut proxy, "/hello.txt").1,
        b"hello\n",
        "the same connection"
    );
    assert!(path.exists(), "the socket file is the successor's now");
    let mut fresh = UnixStream::connect(&path).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(ask(&mut fresh, "/b.txt").1, b"bb\n");
}

/// A handed-over connection keeps its state: the requests it was allowed
/// count on from where they were (`Keep-Alive: max=`), and the last one
/// allowed still says close.
#[test]
fn a_handed_over_connection_keeps_its_request_count() {
    let site = Site::new();
    let mut server = Server::start(
        &site.root(),
        &["--keepalive-timeout", "30", "--max-requests", "4"],
    );
    let mut kept = server.connect();
    let r = exchange(&mut kept, &get("/a.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=30, max=3"));
    let r = exchange(&mut kept, &get("/a.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=30, max=2"));
    let reap = server.upgrade();
    let new = reap.0;
    assert!(alive(new));
    let r = exchange(&mut kept, &get("/a.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=30, max=1"));
    let r = exchange(&mut kept, &get("/b.txt"));
    assert_eq!(
        (r.body.as_slice(), r.header("Connection")),
        (&b"bb\n"[..], Some("close"))
    );
    let mut rest = Vec::new();
    assert_eq!(
        kept.read_to_end(&mut rest).unwrap(),
        0,
        "the connection closes"
    );
}
