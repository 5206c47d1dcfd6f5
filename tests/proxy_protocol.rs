//! The PROXY protocol (v1 and v2) from a trusted proxy: its header names
//! the client for rules, per-client limits and the access log, before
//! HTTP and before TLS; a trusted peer without one is closed unanswered,
//! and anyone else's header is not believed. Then HAProxy's own
//! `send-proxy` and `send-proxy-v2` in front, health checks included.
//! Sources are addresses of 127.0.0.0/8: 127.0.0.5 is the proxy.

mod common;

use common::*;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const PROXY: &str = "127.0.0.5";

fn v1(client: &str) -> String {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 80\r\n")
}

/// A version 2 header for a TCP/IPv4 client, with one TLV behind the
/// addresses (HAProxy sends some; they are skipped).
fn v2(client: [u8; 4]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12 + 5]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&40001u16.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h.extend_from_slice(&[0x01, 0, 2, b'h', b'2']);
    h
}

/// `head` then a GET on one write from the proxy's address.
fn through_proxy(server: &Server, head: &[u8], path: &str) -> TcpStream {
    let mut s = connect_from(ip(PROXY), server.addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[head, get(path).as_bytes()].concat()).unwrap();
    s
}

/// Waits until the access log has `lines` lines, and returns it.
fn log_lines(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    wait_until(Duration::from_secs(5), || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().count() >= lines
    });
    text
}

#[test]
fn a_trusted_proxys_header_names_the_client_for_rules_and_the_log() {
    let site = Site::new();
    let log = site.dir.path().join("access.log");
    let server = Server::start(
        &site.root(),
        &[
            "--trusted-proxy",
            PROXY,
            "--proxy-protocol",
            "--rule",
            "/hello.txt allow-from 203.0.113.0/24",
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    // v1: the client it names is allowed; the connection stays for more.
    let mut s = through_proxy(&server, v1("203.0.113.9").as_bytes(), "/hello.txt");
    let mut buf = Vec::new();
    assert_eq!(read_response_after(&mut s, &mut buf, "GET").status, 200);
    assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 200);
    // v2: a client outside the range is refused, as it would be directly.
    let mut s = through_proxy(&server, &v2([198, 51, 100, 1]), "/hello.txt");
    assert_eq!(read_response(&mut s).status, 403);
    // The header split over two segments is waited for.
    let mut s = connect_from(ip(PROXY), server.addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let header = v1("203.0.113.10");
    s.write_all(&header.as_bytes()[..15]).unwrap();
    s.flush().unwrap();
    s.write_all(&[&header.as_bytes()[15..], get("/hello.txt").as_bytes()].concat())
        .unwrap();
    assert_eq!(read_response(&mut s).status, 200);

    // The trusted proxy without a header, or with a broken one: closed,
    // unanswered (framing is lost from the first byte).
    for head in [
        &b""[..],
        b"PROXY TCP4 203.0.113.9\r\n",
        b"PROXY TCP9 a b c d\r\n",
    ] {
        let mut s = through_proxy(&server, head, "/hello.txt");
        let got = assert_closes(&mut s, Duration::from_secs(5));
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    // Anyone else is served as it comes: its header is not believed (it
    // is a bad request line), and it is its own client.
    let mut stranger = connect_from(ip("127.0.0.2"), server.addr);
    stranger
        .write_all(&[v1("203.0.113.9").as_bytes(), get("/hello.txt").as_bytes()].concat())
        .unwrap();
    let got = assert_closes(&mut stranger, Duration::from_secs(5));
    assert!(
        got.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let mut stranger = connect_from(ip("127.0.0.2"), server.addr);
    assert_eq!(exchange(&mut stranger, &get("/hello.txt")).status, 403);

    // The log names the clients, never the proxy.
    let lines = log_lines(&log, 6);
    let first: Vec<&str> = lines
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        first,
        [
            "203.0.113.9",
            "203.0.113.9",
            "198.51.100.1",
            "203.0.113.10",
            "127.0.0.2",
            "127.0.0.2"
        ],
        "{lines}"
    );
}

#[test]
fn per_client_limits_count_the_clients_a_proxy_names_not_the_proxy() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &[
            "--trusted-proxy",
            PROXY,
            "--proxy-protocol",
            "--max-client-connections",
            "1",
            "--status-path",
            "/status",
        ],
    );
    // Two clients through one proxy: each has its one connection (the
    // proxy's own address counts for none).
    let mut a = through_proxy(&server, v1("192.0.2.1").as_bytes(), "/hello.txt");
    assert_eq!(read_response(&mut a).status, 200);
    let mut b = through_proxy(&server, &v2([192, 0, 2, 2]), "/hello.txt");
    assert_eq!(read_response(&mut b).status, 200);
    // A second for the first client: closed once its header named it.
    let mut again = through_proxy(&server, v1("192.0.2.1").as_bytes(), "/hello.txt");
    let got = assert_closes(&mut again, Duration::from_secs(5));
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let json = status_json(&server);
    assert_eq!(json["closes"]["client_limit"].as_u64(), Some(1), "{json}");
    // Its first closes: it may come again.
    drop(a);
    assert!(wait_until(Duration::from_secs(5), || {
        let mut s = through_proxy(&server, v1("192.0.2.1").as_bytes(), "/hello.txt");
        wait_closed(&mut s, Duration::from_millis(300))
            .1
            .starts_with(b"HTTP/1.1 200")
    }));
    assert_eq!(exchange(&mut b, &get("/hello.txt")).status, 200);
}

#[test]
fn the_header_comes_before_the_tls_handshake() {
    let pki = Pki::new();
    pki.leaf("site", "site.test", &["site.test"]);
    let site = Site::new();
    let log = site.dir.path().join("access.log");
    let server = Server::start(
        &site.root(),
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &pki.cert("site"),
            "--tls-key",
            &pki.key("site"),
            "--trusted-proxy",
            PROXY,
            "--proxy-protocol",
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    let mut tcp = connect_from(ip(PROXY), tls_addr(&server));
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&v2([203, 0, 113, 77])).unwrap();
    let name = rustls::pki_types::ServerName::try_from("site.test").unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(&pki.client()), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = "GET /hello.txt HTTP/1.1\r\nHost: site.test\r\n\r\n";
    tls.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let (head, body) = read_framed(&mut tls, &mut buf);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, std::fs::read(site.root().join("hello.txt")).unwrap());
    let lines = log_lines(&log, 1);
    assert!(lines.starts_with("203.0.113.77 "), "{lines}");
}

/// HAProxy in front, as operators run it: a frontend sending v1
/// (`send-proxy`) and one sending v2 (`send-proxy-v2`) to the same
/// holdline, health-checked (the checks carry the header too), HAProxy
/// connecting from the trusted 127.0.0.5; requests come from 127.0.0.7,
/// and holdline must log that address, not HAProxy's.
#[test]
fn haproxy_send_proxy_v1_and_v2_name_the_client() {
    let Some(haproxy) = peer_program("haproxy") else {
        return;
    };
    let site = Site::new();
    let log = site.dir.path().join("access.log");
    let server = Server::start(
        &site.root(),
        &[
            "--trusted-proxy",
            PROXY,
            "--proxy-protocol",
            "--health-path",
            "/healthz",
            "--status-path",
            "/status",
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    let dir = TempDir::new("haproxy-proxy");
    let (front1, front2) = (free_port(), free_port());
    let backend = server.addr;
    let config = format!(
        "global\n  maxconn 100\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
         \x20 option httpchk GET /healthz\n  http-check expect status 200\n\
         \x20 default-server inter 100ms fall 1 rise 1\n\
         frontend v1\n  bind 127.0.0.1:{front1}\n  default_backend v1\n\
         frontend v2\n  bind 127.0.0.1:{front2}\n  default_backend v2\n\
         backend v1\n  server s {backend} source {PROXY} check send-proxy\n\
         backend v2\n  server s {backend} source {PROXY} check send-proxy-v2\n"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let _haproxy = KillOnDrop(
        Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for front in [front1, front2] {
        let front: SocketAddr = ([127, 0, 0, 1], front).into();
        // Up once HAProxy listens and its check passed (a server down
        // answers 503).
        assert!(
            wait_until(Duration::from_secs(10), || {
                TcpStream::connect(front).is_ok_and(|mut s| {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    exchange(&mut s, &get("/healthz")).status == 200
                })
            }),
            "HAProxy never saw holdline up on {front}"
        );
        let mut s = connect_from(ip("127.0.0.7"), front);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for _ in 0..2 {
            let r = exchange(&mut s, &get("/hello.txt"));
            assert_eq!(r.status, 200, "{}", r.head);
        }
    }
    let mut lines = String::new();
    let found = wait_until(Duration::from_secs(5), || {
        lines = std::fs::read_to_string(&log).unwrap_or_default();
        lines.matches("GET /hello.txt").count() >= 4
    });
    assert!(found, "{lines}");
    for line in lines.lines().filter(|l| l.contains("GET /hello.txt")) {
        assert!(line.starts_with("127.0.0.7 "), "{line}");
    }
    // The checks (every 100 ms, not logged) were answered, not closed:
    // holdline read their headers too.
    assert!(wait_until(Duration::from_secs(5), || {
        status_json(&server)["requests"].as_u64().unwrap_or(0) >= 12
    }));
    let json = status_json(&server);
    assert_eq!(json["closes"]["protocol_error"].as_u64(), Some(0), "{json}");
}

#[test]
fn a_header_that_never_completes_times_out_like_a_head() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &[
            "--trusted-proxy",
            PROXY,
            "--proxy-protocol",
            "--header-timeout",
            "1",
        ],
    );
    let mut s = connect_from(ip(PROXY), server.addr);
    s.write_all(b"PROXY TCP4 192.0.2.1 ").unwrap();
    let started = std::time::Instant::now();
    let got = assert_closes(&mut s, Duration::from_secs(5));
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}
