//! Per-client limits: connections per client (closed at accept past
//! `--max-client-connections`), a request rate with a burst (429 and
//! Retry-After past `--client-rate`), grouping by prefix, and a flood of
//! addresses that neither grows the table past its bound nor frees a
//! client that keeps asking. Sources are addresses of 127.0.0.0/8.

mod common;

use common::*;
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_client_past_its_connections_is_closed_at_accept() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &["--max-client-connections", "3", "--status-path", "/status"],
    );
    let mut open: Vec<TcpStream> = (0..3)
        .map(|_| connect_from(ip("127.0.0.2"), server.addr))
        .collect();
    for s in &mut open {
        assert_eq!(exchange(s, &get("/hello.txt")).status, 200);
    }
    // The fourth from the same address: closed before any byte.
    let mut fourth = connect_from(ip("127.0.0.2"), server.addr);
    let got = assert_closes(&mut fourth, Duration::from_secs(5));
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    // Another address is another client.
    let mut other = connect_from(ip("127.0.0.3"), server.addr);
    assert_eq!(exchange(&mut other, &get("/hello.txt")).status, 200);
    // One closes: its client may open one again (once the server saw
    // the close).
    drop(open.pop());
    assert!(wait_until(Duration::from_secs(5), || {
        let mut again = connect_from(ip("127.0.0.2"), server.addr);
        use std::io::Write;
        again.write_all(get("/hello.txt").as_bytes()).is_ok()
            && wait_closed(&mut again, Duration::from_millis(200))
                .1
                .starts_with(b"HTTP/1.1 200")
    }));
    let json = status_json(&server);
    assert!(
        json["closes"]["client_limit"].as_u64().unwrap() >= 1,
        "{json}"
    );
}

#[test]
fn clients_may_be_whole_prefixes() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &["--max-client-connections", "1", "--client-prefix-v4", "24"],
    );
    let mut first = connect_from(ip("127.0.5.1"), server.addr);
    assert_eq!(exchange(&mut first, &get("/hello.txt")).status, 200);
    // The same /24: the same client.
    let mut neighbour = connect_from(ip("127.0.5.200"), server.addr);
    assert!(assert_closes(&mut neighbour, Duration::from_secs(5)).is_empty());
    let mut elsewhere = connect_from(ip("127.0.6.1"), server.addr);
    assert_eq!(exchange(&mut elsewhere, &get("/hello.txt")).status, 200);
}

#[test]
fn a_client_past_its_rate_gets_429_with_retry_after() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &[
            "--client-rate",
            "0.5",
            "--client-burst",
            "3",
            "--status-path",
            "/status",
            "--health-path",
            "/health",
        ],
    );
    let mut s = connect_from(ip("127.0.0.7"), server.addr);
    for _ in 0..3 {
        assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 200);
    }
    let r = exchange(&mut s, &get("/hello.txt"));
    assert_eq!(r.status, 429, "{}", r.head);
    assert_eq!(r.header("Retry-After"), Some("2"));
    assert_eq!(r.body_text(), "429 Too Many Requests\n");
    // The connection stays usable; the health check is never limited.
    assert_eq!(exchange(&mut s, &get("/health")).status, 200);
    assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 429);
    // Another client has its own bucket, on a new connection or not.
    let mut other = connect_from(ip("127.0.0.8"), server.addr);
    assert_eq!(
        exchange(&mut other, &get("/status?format=json")).status,
        200
    );
    let json = status_json(&server);
    assert_eq!(json["client_rate_limited"].as_u64(), Some(2), "{json}");
}

#[test]
fn a_flood_of_addresses_stays_bounded_and_frees_no_hog() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &[
            "--client-rate",
            "0.01",
            "--client-burst",
            "1",
            "--client-table-entries",
            "64",
        ],
    );
    let hog = ip("127.0.0.9");
    let mut h = connect_from(hog, server.addr);
    assert_eq!(exchange(&mut h, &get("/hello.txt")).status, 200);
    assert_eq!(exchange(&mut h, &get("/hello.txt")).status, 429);
    // 1,500 other addresses, each one request (and allowed: each is new),
    // through a table of 64; the hog keeps asking and stays limited.
    for i in 0..1500u32 {
        let source = IpAddr::V4(std::net::Ipv4Addr::new(
            127,
            10,
            (i / 250) as u8,
            (i % 250 + 1) as u8,
        ));
        let mut s = connect_from(source, server.addr);
        assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 200, "{source}");
        if i % 50 == 0 {
            assert_eq!(
                exchange(&mut h, &get("/hello.txt")).status,
                429,
                "after {i}"
            );
        }
    }
    // (That the table holds at most its entries is asserted on the table
    // itself, in src/clients.rs; here, that a flood frees no hog.)
    assert_eq!(exchange(&mut h, &get("/hello.txt")).status, 429);
}

/// At a full fd budget, the client holding the most slots loses one
/// before an older idle connection of anyone else does.
#[test]
fn at_a_full_budget_the_heaviest_client_is_shed_first() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &["--max-connections", "8", "--keepalive-timeout", "60"],
    );
    let serve = |source: &str| {
        let mut s = connect_from(ip(source), server.addr);
        assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 200);
        s
    };
    // The oldest idle connections are another client's.
    let mut others: Vec<TcpStream> = (0..2).map(|_| serve("127.0.0.3")).collect();
    let mut hogs: Vec<TcpStream> = (0..6).map(|_| serve("127.0.0.2")).collect();
    // Newcomers until one evicts (idle connections become evictable
    // after a second; before, a newcomer is answered without a slot).
    let evicted = wait_until(Duration::from_secs(10), || {
        let mut newcomer = connect_from(ip("127.0.0.4"), server.addr);
        let _ = exchange(&mut newcomer, &get("/hello.txt"));
        hogs.iter_mut()
            .any(|h| wait_closed(h, Duration::from_millis(20)).0.is_some())
    });
    assert!(evicted, "no hog connection was evicted");
    // The other client's older connections are all still served.
    for s in &mut others {
        assert_eq!(exchange(s, &get("/hello.txt")).status, 200);
    }
}

/// With `--workers 2` a client's connections land on either worker
/// (SO_REUSEPORT spreads them by their ports); the limits are the
/// process's, not each worker's.
#[test]
fn limits_hold_over_every_worker() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &[
            "--workers",
            "2",
            "--max-client-connections",
            "2",
            "--client-rate",
            "0.01",
            "--client-burst",
            "3",
        ],
    );
    // Eight connections from one address: two are admitted, whichever
    // worker took them; the others close unanswered.
    let mut conns: Vec<TcpStream> = (0..8)
        .map(|_| connect_from(ip("127.0.0.40"), server.addr))
        .collect();
    let mut served = 0;
    for s in &mut conns {
        use std::io::Write;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(get("/hello.txt").as_bytes());
        let mut buf = [0u8; 12];
        use std::io::Read;
        if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200") {
            served += 1;
        }
    }
    assert_eq!(served, 2, "admitted over both workers");
    drop(conns);
    // The rate: a burst of three, then 429, over connections that land
    // on either worker (each closed by the server before the next, so
    // the connection limit stays out of it).
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let mut s = connect_from(ip("127.0.0.41"), server.addr);
        let r = exchange(&mut s, &get_with("/hello.txt", "Connection: close\r\n"));
        statuses.push(r.status);
        assert_closes(&mut s, Duration::from_secs(5));
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
}
