//! HTTP Basic authentication (`auth` rules): hashes made by `holdline
//! hash-password`, the 401 challenge, wrong, missing, malformed,
//! non-ASCII and huge credentials, credentials never in the access log,
//! and a verification that does not stall the other connections.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `holdline hash-password --cost COST` of `password`.
fn hash(password: &str, cost: u32) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_holdline"))
        .args(["hash-password", "--cost", &cost.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn basic(user: &str, password: &str) -> String {
    // Base64 by hand, so that the test does not trust the server's decoder.
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Authorization: Basic {out}\r\n")
}

struct Protected {
    site: Site,
    server: Server,
    log: std::path::PathBuf,
}

fn start(cost: u32) -> Protected {
    let site = Site::new();
    site.dir.write("www/admin/index.html", "<h1>admin</h1>\n");
    let users = format!(
        "# made with holdline hash-password\nalice:{}\nbob:{}\n",
        hash("wonderland", cost),
        hash("pässwörd", cost)
    );
    site.dir.write("admin.users", users);
    let file = site.dir.path().join("admin.users");
    let rule = format!("/admin/** auth Admin area {}", file.display());
    let log = site.dir.path().join("access.log");
    let server = Server::start(
        &site.root(),
        &["--rule", &rule, "--access-log", log.to_str().unwrap()],
    );
    Protected { site, server, log }
}

#[test]
fn auth_rules_challenge_and_let_in_only_good_credentials() {
    let p = start(6);
    let mut s = p.server.connect();
    // No credentials: 401 with the challenge, and the connection stays.
    let r = exchange(&mut s, &get("/admin/"));
    assert_eq!(r.status, 401, "{}", r.head);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"Admin area\", charset=\"UTF-8\"")
    );
    assert_eq!(r.body_text(), "401 Unauthorized\n");
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    // Good ones (ASCII and not), on the same connection.
    let r = exchange(&mut s, &get_with("/admin/", &basic("alice", "wonderland")));
    assert_eq!(
        (r.status, r.body_text().as_str()),
        (200, "<h1>admin</h1>\n")
    );
    let r = exchange(&mut s, &get_with("/admin/", &basic("bob", "pässwörd")));
    assert_eq!(r.status, 200);
    // A second request with them passes at once (remembered).
    let r = exchange(&mut s, &get_with("/admin/", &basic("alice", "wonderland")));
    assert_eq!(r.status, 200);
    // Wrong password, unknown user, another scheme, malformed base64,
    // no colon, a NUL: 401 each.
    for header in [
        basic("alice", "wonderlanD"),
        basic("mallory", "wonderland"),
        basic("alice", ""),
        "Authorization: Bearer abc\r\n".to_string(),
        "Authorization: Basic !!!!\r\n".to_string(),
        "Authorization: Basic YWxpY2U=\r\n".to_string(),
        basic("alice\0", "wonderland"),
    ] {
        let r = exchange(&mut s, &get_with("/admin/", &header));
        assert_eq!(r.status, 401, "{header:?}");
    }
    // A header too large for the head limit: 431, and the close.
    let huge = format!("Authorization: Basic {}\r\n", "A".repeat(20_000));
    let mut h = p.server.connect();
    h.write_all(get_with("/admin/", &huge).as_bytes()).unwrap();
    let got = assert_closes(&mut h, Duration::from_secs(5));
    assert!(
        got.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // Paths the rule does not name need nothing.
    assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 200);
    // Credentials are never logged.
    let mut lines = String::new();
    wait_until(Duration::from_secs(5), || {
        lines = std::fs::read_to_string(&p.log).unwrap_or_default();
        lines.lines().count() >= 12
    });
    assert!(lines.contains("/admin/"), "{lines}");
    for secret in ["wonderland", "YWxpY2U6d29uZGVybGFuZA", "Basic"] {
        assert!(!lines.contains(secret), "{secret} in the log:\n{lines}");
    }
    drop(p.site);
}

/// While one request's credentials are verified (bcrypt on the verifier
/// thread), the worker serves everyone else: another connection's request,
/// sent after it, is answered before it.
#[test]
fn a_verification_does_not_stall_other_connections() {
    let p = start(10);
    let mut slow = p.server.connect();
    let mut other = p.server.connect();
    // Several guesses, each a new verification, all queued at once.
    let guesses: String = (0..4)
        .map(|i| get_with("/admin/", &basic("alice", &format!("guess{i}"))))
        .collect();
    slow.write_all(guesses.as_bytes()).unwrap();
    // The other client, after them.
    let r = exchange(&mut other, &get("/hello.txt"));
    assert_eq!(r.status, 200);
    // The guesses were not answered yet when it was (each takes a
    // cost-10 bcrypt, over 100 ms in a debug build).
    let (_, early) = wait_closed(&mut slow, Duration::from_millis(1));
    assert!(
        early.len() < 4 * 20,
        "{:?}",
        String::from_utf8_lossy(&early)
    );
    let mut buf = early;
    for _ in 0..4 {
        let r = read_response_after(&mut slow, &mut buf, "GET");
        assert_eq!(r.status, 401);
    }
    // And a good one after the bad ones, on the same connection.
    let r = exchange(
        &mut slow,
        &get_with("/admin/", &basic("alice", "wonderland")),
    );
    assert_eq!(r.status, 200);
}
