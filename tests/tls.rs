//! HTTPS end to end: the real server with `--tls-listen`, certificates
//! made at test time (rcgen: a test CA and leaf certificates), and real
//! clients: rustls's own client (in process, for exact control of the
//! connection), curl, openssl s_client and Python's `ssl`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Listening, Pki, Server, Site, TlsStream, assert_closes, connect_tls, get, get_with,
    peer_program, read_framed, status_json, tls_addr, wait_until,
};
use rcgen::KeyPair;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};

/// A server with a TLS listener for the leaf files `pairs` (made with
/// [`Pki::leaf`]; the first is the default), the status page, and `extra`.
fn start_with(site: &Site, pki: &Pki, pairs: &[&str], extra: &[&str]) -> (Server, SocketAddr) {
    start_with_env(site, pki, pairs, extra, &[])
}

/// [`start_with`], with variables in the server's environment.
fn start_with_env(
    site: &Site,
    pki: &Pki,
    pairs: &[&str],
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Server, SocketAddr) {
    let mut args: Vec<String> = ["--tls-listen", "127.0.0.1:0", "--status-path", "/status"]
        .map(String::from)
        .to_vec();
    for pair in pairs {
        args.extend([
            "--tls-cert".into(),
            pki.cert(pair),
            "--tls-key".into(),
            pki.key(pair),
        ]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_env(&site.root(), &args, env);
    let addr = tls_addr(&server);
    (server, addr)
}

/// A server with one leaf for localhost and 127.0.0.1.
fn start_tls(site: &Site, pki: &Pki, extra: &[&str]) -> (Server, SocketAddr) {
    pki.leaf("leaf", "localhost", &["localhost", "127.0.0.1"]);
    start_with(site, pki, &["leaf"], extra)
}

/// A rustls client that trusts the test CA and speaks only `version`.
fn client_for(pki: &Pki, version: &'static rustls::SupportedProtocolVersion) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_protocol_versions(&[version])
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection to `addr` for `name` (see `common::connect_tls`).
fn connect(config: &Arc<ClientConfig>, addr: SocketAddr, name: &str) -> TlsStream {
    connect_tls(config, addr, name)
}

/// Sends `request` and reads one response whose body has a
/// Content-Length: (head, body).
fn exchange(stream: &mut TlsStream, request: &str) -> (String, Vec<u8>) {
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    read_framed(stream, &mut Vec::new())
}

#[test]
fn keep_alive_over_tls_serves_many_requests_on_one_handshake() {
    let site = Site::new();
    site.dir.write("www/big.bin", big_file());
    let pki = Pki::new();
    let (server, addr) = start_tls(&site, &pki, &[]);
    let client = pki.client();
    let mut stream = connect(&client, addr, "localhost");
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for _ in 0..3 {
        let (head, body) = exchange(&mut stream, &get("/hello.txt"));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, b"hello\n");
    }
    // A file body too large for one write: read in chunks, encrypted,
    // sent; every byte arrives, in order.
    let (head, body) = exchange(&mut stream, &get("/big.bin"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(body == big_file(), "the large body differs");
    // A range and a multi-range body, on the same connection.
    let (head, body) = exchange(
        &mut stream,
        &get_with("/big.bin", "Range: bytes=100000-100009\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 206 "), "{head}");
    assert_eq!(body, &big_file()[100000..100010]);
    let (head, body) = exchange(
        &mut stream,
        &get_with("/big.bin", "Range: bytes=0-0,2000000-2000001\r\n"),
    );
    assert!(head.contains("multipart/byteranges"), "{head}");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("Content-Range: bytes 0-0/3000000"), "{text}");
    assert!(
        text.contains("Content-Range: bytes 2000000-2000001/3000000"),
        "{text}"
    );
    let counters = status_json(&server);
    assert_eq!(counters["tls_handshakes"]["full"], 1, "{counters}");
    assert_eq!(counters["tls_handshakes"]["tls1_3"], 1, "{counters}");
}

fn big_file() -> Vec<u8> {
    (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

#[test]
fn a_closing_response_ends_with_close_notify() {
    let site = Site::new();
    let pki = Pki::new();
    let (_server, addr) = start_tls(&site, &pki, &[]);
    let mut stream = connect(&pki.client(), addr, "localhost");
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    // rustls's reader says EOF (Ok(0)) only after a close_notify; a TCP
    // EOF without one is an UnexpectedEof error.
    stream
        .read_to_end(&mut all)
        .expect("a clean TLS close (close_notify)");
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello\n"), "{text}");
}

/// The server's suite order picks AES-128-GCM for a client that lists
/// AES-256 first (OpenSSL's order; its TLS 1.3 key schedule is SHA-256,
/// cheaper than AES-256's SHA-384), a client that lists ChaCha20 first
/// (no AES hardware) gets ChaCha20, and a client that offers one suite
/// gets that one; in TLS 1.3 and 1.2 alike, every one served.
#[test]
fn suites_are_the_servers_order_unless_the_client_puts_chacha_first() {
    use rustls::CipherSuite as S;
    use rustls::crypto::aws_lc_rs::{cipher_suite as cs, default_provider};
    let site = Site::new();
    let pki = Pki::new();
    let (_server, addr) = start_tls(&site, &pki, &[]);
    let client = |suites: Vec<rustls::SupportedCipherSuite>| {
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: suites,
            ..default_provider()
        };
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        Arc::new(
            ClientConfig::builder_with_provider(Arc::new(provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    let cases = [
        (
            vec![
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                cs::TLS13_AES_128_GCM_SHA256,
            ],
            S::TLS13_AES_128_GCM_SHA256,
        ),
        (
            vec![
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS13_AES_128_GCM_SHA256,
            ],
            S::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        (
            vec![cs::TLS13_AES_256_GCM_SHA384],
            S::TLS13_AES_256_GCM_SHA384,
        ),
        (
            vec![
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ],
            S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            vec![
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ],
            S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ];
    for (offered, expected) in cases {
        let mut stream = connect(&client(offered.clone()), addr, "localhost");
        let got = stream.conn.negotiated_cipher_suite().map(|s| s.suite());
        assert_eq!(got, Some(expected), "offered {offered:?}");
        let (_, body) = exchange(&mut stream, &get("/hello.txt"));
        assert_eq!(body, b"hello\n");
    }
}

#[test]
fn resumption_works_for_tls12_and_tls13() {
    let site = Site::new();
    let pki = Pki::new();
    let (server, addr) = start_tls(&site, &pki, &[]);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client_for(&pki, version);
        let mut first = connect(&config, addr, "localhost");
        assert_eq!(first.conn.handshake_kind(), Some(HandshakeKind::Full));
        // TLS 1.3 tickets come after the handshake: one exchange takes them.
        exchange(&mut first, &get("/hello.txt"));
        let mut second = connect(&config, addr, "localhost");
        assert_eq!(
            second.conn.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{version:?}"
        );
        let (_, body) = exchange(&mut second, &get("/hello.txt"));
        assert_eq!(body, b"hello\n");
    }
    let counters = status_json(&server);
    let tls = &counters["tls_handshakes"];
    assert_eq!(
        (&tls["full"], &tls["resumed"]),
        (&2.into(), &2.into()),
        "{tls}"
    );
    assert_eq!((&tls["tls1_2"], &tls["tls1_3"]), (&2.into(), &2.into()));
}

#[test]
fn without_tickets_and_cache_nothing_resumes() {
    let site = Site::new();
    let pki = Pki::new();
    let (server, addr) = start_tls(
        &site,
        &pki,
        &["--no-tls-tickets", "--tls-session-cache", "0"],
    );
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client_for(&pki, version);
        let mut first = connect(&config, addr, "localhost");
        exchange(&mut first, &get("/hello.txt"));
        let second = connect(&config, addr, "localhost");
        assert_eq!(
            second.conn.handshake_kind(),
            Some(HandshakeKind::Full),
            "{version:?}"
        );
    }
    assert_eq!(status_json(&server)["tls_handshakes"]["resumed"], 0);
}

#[test]
fn without_tickets_the_session_cache_still_resumes() {
    let site = Site::new();
    let pki = Pki::new();
    let (_server, addr) = start_tls(&site, &pki, &["--no-tls-tickets"]);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client_for(&pki, version);
        let mut first = connect(&config, addr, "localhost");
        exchange(&mut first, &get("/hello.txt"));
        let second = connect(&config, addr, "localhost");
        assert_eq!(
            second.conn.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{version:?}"
        );
    }
}

#[test]
fn sni_chooses_the_certificate_and_the_first_is_the_default() {
    let site = Site::new();
    let pki = Pki::new();
    let a = pki.leaf("a", "a.test", &["a.test", "127.0.0.1"]);
    let b = pki.leaf("b", "b.test", &["b.test", "*.b.test"]);
    let (_server, addr) = start_with(&site, &pki, &["a", "b"], &[]);
    let client = pki.client();
    let served = |name: &str| -> CertificateDer<'static> {
        let stream = connect(&client, addr, name);
        stream.conn.peer_certificates().unwrap()[0].clone()
    };
    assert_eq!(served("b.test"), b);
    assert_eq!(served("www.b.test"), b, "wildcard");
    assert_eq!(served("a.test"), a);
    // An IP literal sends no SNI: the default (first) pair.
    assert_eq!(served("127.0.0.1"), a);
}

#[test]
fn rsa_and_ecdsa_certificates_serve_side_by_side() {
    let site = Site::new();
    let pki = Pki::new();
    let ecdsa = pki.leaf("ec", "ec.test", &["ec.test"]);
    let rsa_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let rsa = pki.leaf_with("rsa", "rsa.test", &["rsa.test"], rsa_key);
    let (_server, addr) = start_with(&site, &pki, &["ec", "rsa"], &[]);
    let client = pki.client();
    for (name, cert) in [("rsa.test", &rsa), ("ec.test", &ecdsa)] {
        let mut stream = connect(&client, addr, name);
        assert_eq!(&stream.conn.peer_certificates().unwrap()[0], cert);
        assert_eq!(exchange(&mut stream, &get("/hello.txt")).1, b"hello\n");
    }
}

#[test]
fn sighup_reloads_certificates_without_dropping_connections() {
    let site = Site::new();
    let pki = Pki::new();
    let old = pki.leaf("leaf", "old", &["localhost"]);
    let key = pki.key("leaf");
    let (server, addr) = start_with(&site, &pki, &["leaf"], &[]);
    let client = pki.client();
    let mut kept = connect(&client, addr, "localhost");
    assert_eq!(kept.conn.peer_certificates().unwrap()[0], old);
    exchange(&mut kept, &get("/hello.txt"));

    let new = pki.leaf("leaf", "new", &["localhost"]);
    server.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(5), || server
            .log_text()
            .contains("reloaded 1 TLS certificate")),
        "{}",
        server.log_text()
    );
    // A fresh client (no session to resume) sees the new certificate.
    let fresh = connect(&pki.client(), addr, "localhost");
    assert_eq!(fresh.conn.peer_certificates().unwrap()[0], new);
    // The connection from before the reload goes on.
    let (head, body) = exchange(&mut kept, &get("/hello.txt"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello\n");
    // Tickets issued before the reload still resume.
    let resumed = connect(&client, addr, "localhost");
    assert_eq!(resumed.conn.handshake_kind(), Some(HandshakeKind::Resumed));

    // A broken key: the reload fails in one log line and the last good
    // certificate stays.
    std::fs::write(&key, "not a key\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(5), || server
            .log_text()
            .contains("TLS reload failed, keeping the old certificates")),
        "{}",
        server.log_text()
    );
    let line = server
        .log_text()
        .lines()
        .find(|l| l.contains("TLS reload failed"))
        .unwrap()
        .to_string();
    assert!(line.contains("leaf.key"), "{line}");
    let after = connect(&pki.client(), addr, "localhost");
    assert_eq!(after.conn.peer_certificates().unwrap()[0], new);
}

#[test]
fn plain_http_on_the_tls_port_gets_400_and_close() {
    let site = Site::new();
    let pki = Pki::new();
    let (server, addr) = start_tls(&site, &pki, &[]);
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let got = assert_closes(&mut raw, Duration::from_secs(5));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 47\r\n\
         Connection: close\r\n\r\nThe plain HTTP request was sent to HTTPS port.\n"
    );
    assert_eq!(status_json(&server)["tls_handshakes"]["failed"], 1);
}

#[test]
fn a_bad_client_hello_gets_an_alert_and_a_clean_close() {
    let site = Site::new();
    let pki = Pki::new();
    let (server, addr) = start_tls(&site, &pki, &[]);
    let mut raw = TcpStream::connect(addr).unwrap();
    // A handshake record holding a ClientHello that is all garbage.
    let mut record = vec![0x16, 0x03, 0x01, 0x00, 0x20, 0x01, 0x00, 0x00, 0x1c];
    record.extend_from_slice(&[0xee; 28]);
    raw.write_all(&record).unwrap();
    let got = assert_closes(&mut raw, Duration::from_secs(5));
    // A TLS alert record (content type 21), then the close.
    assert_eq!(got.first(), Some(&21), "{got:?}");
    assert_eq!(status_json(&server)["closes"]["tls_error"], 1);
    // The server goes on.
    let mut stream = connect(&pki.client(), addr, "localhost");
    assert_eq!(exchange(&mut stream, &get("/hello.txt")).1, b"hello\n");
}

#[test]
fn a_stalled_handshake_ends_at_the_header_deadline() {
    let site = Site::new();
    let pki = Pki::new();
    let (server, addr) = start_tls(&site, &pki, &["--header-timeout", "1"]);
    let started = Instant::now();
    let mut raw = TcpStream::connect(addr).unwrap();
    // The first bytes of a ClientHello, then nothing.
    raw.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let (closed, _) = common::wait_closed(&mut raw, Duration::from_secs(5));
    let after = closed.expect("closed").duration_since(started);
    assert!(
        after >= Duration::from_secs(1) && after <= Duration::from_secs(1) + common::SLACK,
        "{after:?}"
    );
    assert_eq!(status_json(&server)["closes"]["header_timeout"], 1);
}

/// Sends `request` through `openssl s_client` with `args`; returns what
/// it printed (stdout and stderr).
fn s_client(addr: SocketAddr, args: &[&str], request: &str) -> String {
    let openssl = peer_program("openssl").expect("checked by the caller");
    let mut child = Command::new(openssl)
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .args(["-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let output = wait_output(child);
    String::from_utf8_lossy(&output).into_owned()
}

/// A child's stdout and stderr, killing it after 20 s.
fn wait_output(child: std::process::Child) -> Vec<u8> {
    let output = common::output_within(child, Duration::from_secs(20));
    let mut all = output.stdout;
    all.extend_from_slice(&output.stderr);
    all
}

#[test]
fn openssl_s_client_negotiates_tls12_and_tls13_and_resumes() {
    if peer_program("openssl").is_none() {
        return;
    }
    let site = Site::new();
    let pki = Pki::new();
    let (_server, addr) = start_tls(&site, &pki, &[]);
    let request = "GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    for (flag, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let session = pki.path(&format!("session{flag}"));
        let ca = pki.ca_path();
        let ca = ca.to_str().unwrap();
        let common = [flag, "-CAfile", ca, "-servername", "localhost"];
        let first = s_client(
            addr,
            &[&common[..], &["-sess_out", &session]].concat(),
            request,
        );
        assert!(first.contains(&format!("New, {name}")), "{first}");
        assert!(first.contains("Verify return code: 0 (ok)"), "{first}");
        assert!(first.contains("\r\n\r\nhello\n"), "{first}");
        let second = s_client(
            addr,
            &[&common[..], &["-sess_in", &session]].concat(),
            request,
        );
        assert!(second.contains(&format!("Reused, {name}")), "{second}");
        assert!(second.contains("\r\n\r\nhello\n"), "{second}");
    }
}

#[test]
fn curl_reuses_one_tls_connection() {
    let Some(curl) = peer_program("curl") else {
        return;
    };
    let site = Site::new();
    let pki = Pki::new();
    let (_server, addr) = start_tls(&site, &pki, &[]);
    let url = format!("https://localhost:{}/hello.txt", addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let child = Command::new(curl)
        .args(["-sS", "--cacert", pki.ca_path().to_str().unwrap()])
        .args(["--resolve", &resolve])
        .args([
            "-w",
            "[%{num_connects} %{http_version} %{ssl_verify_result}]\n",
        ])
        .args([&url, &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = String::from_utf8_lossy(&wait_output(child)).into_owned();
    assert_eq!(out, "hello\n[1 1.1 0]\nhello\n[0 1.1 0]\n");
}

#[test]
fn python_ssl_client_gets_the_file() {
    let Some(python) = peer_program("python3") else {
        return;
    };
    let site = Site::new();
    let pki = Pki::new();
    let (_server, addr) = start_tls(&site, &pki, &[]);
    let script = format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context(cafile={ca:?})
ctx.set_alpn_protocols(["http/1.1"])
with socket.create_connection(("127.0.0.1", {port})) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        print(s.version(), s.selected_alpn_protocol(), data.split(b"\r\n")[0].decode(), data.endswith(b"\r\n\r\nhello\n"))
"#,
        ca = pki.ca_path().to_str().unwrap(),
        port = addr.port()
    );
    let child = Command::new(python)
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = String::from_utf8_lossy(&wait_output(child)).into_owned();
    assert_eq!(out, "TLSv1.3 http/1.1 HTTP/1.1 200 OK True\n");
}

#[test]
fn redirect_to_https_answers_plain_requests_with_308() {
    let site = Site::new();
    let pki = Pki::new();
    let (server, addr) = start_tls(&site, &pki, &["--redirect-to-https"]);
    let port = addr.port();
    let mut plain = server.connect();
    let r = common::exchange(
        &mut plain,
        "GET /hello.txt?x=1 HTTP/1.1\r\nHost: example.test:8080\r\n\r\n",
    );
    assert_eq!(r.status, 308, "{}", r.head);
    assert_eq!(
        r.header("Location"),
        Some(format!("https://example.test:{port}/hello.txt?x=1").as_str())
    );
    // Keep-alive goes on; an IPv6 literal keeps its brackets.
    let r = common::exchange(&mut plain, "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
    assert_eq!(
        r.header("Location"),
        Some(format!("https://[::1]:{port}/").as_str())
    );
    // Without a Host (HTTP/1.0), the TLS listener's address.
    let r = common::exchange(
        &mut plain,
        "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_eq!(
        r.header("Location"),
        Some(format!("https://127.0.0.1:{port}/a.txt").as_str())
    );
    // A Host that is not a host name is not echoed into a header.
    let mut other = server.connect();
    let r = common::exchange(&mut other, "GET / HTTP/1.1\r\nHost: a b@c\r\n\r\n");
    assert_eq!(r.status, 400);
    // The status path stays on plain HTTP, for monitoring.
    let mut status = server.connect();
    let r = common::exchange(&mut status, "GET /status HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    // And HTTPS itself serves.
    let mut stream = connect(&pki.client(), addr, "localhost");
    assert_eq!(exchange(&mut stream, &get("/hello.txt")).1, b"hello\n");
}

#[test]
fn a_missing_certificate_is_a_one_line_start_error() {
    let site = Site::new();
    let missing = Path::new("/nonexistent/cert.pem");
    let err = Server::try_start(
        &site.root(),
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            missing.to_str().unwrap(),
            "--tls-key",
            "/nonexistent/key.pem",
        ],
    )
    .err()
    .expect("no start without the certificate");
    assert!(
        err.contains("cannot load TLS certificates: /nonexistent/cert.pem"),
        "{err}"
    );
}

/// A handshake record of `payload`.
fn handshake_record(payload: &[u8]) -> Vec<u8> {
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    record.extend_from_slice(payload);
    record
}

#[test]
fn oversized_and_endless_client_hellos_are_refused_cleanly() {
    let site = Site::new();
    let pki = Pki::new();
    let (server, addr) = start_tls(&site, &pki, &[]);
    // A ClientHello claiming 40,000 bytes, sent in full records of
    // garbage: joined across records (beyond one record's buffer), then
    // refused with an alert.
    let mut message = vec![0x01, 0x00, 0x9c, 0x40];
    message.extend(std::iter::repeat_n(0xab, 40_000));
    let mut raw = TcpStream::connect(addr).unwrap();
    for chunk in message.chunks(16_384) {
        raw.write_all(&handshake_record(chunk)).unwrap();
    }
    let got = assert_closes(&mut raw, Duration::from_secs(5));
    assert_eq!(got.first(), Some(&21), "an alert record: {got:?}");
    // One claiming 16 MiB: refused at once, without waiting for it
    // (rustls's deframer refuses it before any state could send an alert:
    // a plain close, or an alert if one comes).
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(&handshake_record(&[0x01, 0xff, 0xff, 0xff, 0x03, 0x03]))
        .unwrap();
    let got = assert_closes(&mut raw, Duration::from_secs(5));
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    // A message of 65,000 bytes claimed, sent in 1,000-byte records of
    // garbage: joined up to rustls's 64 KiB limit, refused, closed.
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(&handshake_record(&[0x01, 0x00, 0xfd, 0xe8]))
        .unwrap();
    let mut sent = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline && sent < 70_000 {
        if raw.write_all(&handshake_record(&[0xab; 1000])).is_err() {
            break;
        }
        sent += 1000;
    }
    assert_closes(&mut raw, Duration::from_secs(5));
    let closes = &status_json(&server)["closes"];
    assert!(closes["tls_error"].as_u64().unwrap() >= 2, "{closes}");
    // The server goes on serving.
    let mut stream = connect(&pki.client(), addr, "localhost");
    assert_eq!(exchange(&mut stream, &get("/hello.txt")).1, b"hello\n");
}

#[test]
fn tiny_records_and_key_updates_keep_alive_and_a_key_update_storm_is_refused() {
    let site = Site::new();
    let pki = Pki::new();
    let (server, addr) = start_tls(&site, &pki, &[]);
    let mut stream = connect(&pki.client(), addr, "localhost");
    // A request written one byte per TLS record.
    stream.conn.set_buffer_limit(None);
    for b in get("/hello.txt").bytes() {
        stream.conn.writer().write_all(&[b]).unwrap();
        stream.conn.write_tls(&mut stream.sock).unwrap();
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(b"\r\n\r\nhello\n") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    // A KeyUpdate (asking the server to update too), then a request:
    // answered on the same connection, under the new keys.
    stream.conn.refresh_traffic_keys().unwrap();
    let (head, body) = exchange(&mut stream, &get("/a.txt"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"a\n");
    // A storm of them without application data in between: rustls's
    // limit refuses it, the connection closes as tls_error, and the server
    // goes on.
    for _ in 0..50 {
        stream.conn.refresh_traffic_keys().unwrap();
    }
    while stream.conn.wants_write() {
        if stream.conn.write_tls(&mut stream.sock).is_err() {
            break;
        }
    }
    assert_closes(&mut stream.sock, Duration::from_secs(5));
    let closes = &status_json(&server)["closes"];
    assert_eq!(closes["tls_error"], 1, "{closes}");
    let mut again = connect(&pki.client(), addr, "localhost");
    assert_eq!(exchange(&mut again, &get("/hello.txt")).1, b"hello\n");
}

#[test]
fn garbage_after_a_real_client_hello_never_takes_the_server_down() {
    let site = Site::new();
    let pki = Pki::new();
    let (server, addr) = start_tls(&site, &pki, &[]);
    // A real ClientHello, as rustls's client sends it.
    let hello = {
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = ClientConnection::new(pki.client(), name).unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        hello
    };
    // A small deterministic generator (xorshift), so a failure replays.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        let mut raw = TcpStream::connect(addr).unwrap();
        let mut bytes = Vec::new();
        // Half start with the real hello (cut somewhere), half do not;
        // then garbage, sometimes shaped as records.
        if round % 2 == 0 {
            let cut = (next() as usize) % (hello.len() + 1);
            bytes.extend_from_slice(&hello[..cut]);
        }
        let len = (next() as usize) % 3000;
        for _ in 0..len {
            bytes.push(next() as u8);
        }
        if round % 3 == 0 {
            bytes = handshake_record(&bytes[..bytes.len().min(16_000)]);
        }
        let _ = raw.write_all(&bytes);
        let _ = raw.shutdown(std::net::Shutdown::Write);
        assert_closes(&mut raw, Duration::from_secs(5));
    }
    // Still serving, over TLS and plain HTTP.
    let mut stream = connect(&pki.client(), addr, "localhost");
    assert_eq!(exchange(&mut stream, &get("/hello.txt")).1, b"hello\n");
    let mut plain = server.connect();
    assert_eq!(
        common::exchange(&mut plain, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
}

/// A panic while the TLS transport decrypts a request (the debug build's
/// fault injector) closes that connection only, as `internal_error`: a
/// keep-alive TLS connection opened before it, and new handshakes after
/// it, are served.
#[test]
fn a_panic_in_the_tls_transport_closes_that_connection_only() {
    let site = Site::new();
    let pki = Pki::new();
    pki.leaf("leaf", "localhost", &["localhost", "127.0.0.1"]);
    let faults = [("HOLDLINE_FAULTS", "panic@tls=/boom-tls")];
    let (server, addr) = start_with_env(&site, &pki, &["leaf"], &[], &faults);
    let client = pki.client();
    let mut before = connect(&client, addr, "localhost");
    assert_eq!(exchange(&mut before, &get("/a.txt")).1, b"a\n");
    for _ in 0..3 {
        let mut doomed = connect(&client, addr, "localhost");
        doomed.write_all(get("/boom-tls").as_bytes()).unwrap();
        doomed.flush().unwrap();
        let mut got = Vec::new();
        // Closed without an answer (abortively: a reset, or an EOF
        // without close_notify, whichever the client sees first).
        let _ = doomed.read_to_end(&mut got);
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
    assert_eq!(exchange(&mut before, &get("/hello.txt")).1, b"hello\n");
    let mut after = connect(&client, addr, "localhost");
    assert_eq!(exchange(&mut after, &get("/b.txt")).1, b"bb\n");
    assert_eq!(status_json(&server)["closes"]["internal_error"], 3);
    // The panic came before the request reached the session: the log
    // line names the place, not a request line.
    let log = server.log_text();
    assert_eq!(
        log.matches("internal error, connection closed").count(),
        3,
        "{log}"
    );
    assert!(log.contains("injected fault at Tls"), "{log}");
}
