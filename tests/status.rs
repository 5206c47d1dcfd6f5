//! The status path's JSON and its live page: every counter and gauge for
//! scripts, and a self-contained page that a real browser polls.

mod common;

use common::*;
use std::io::Write;

#[test]
fn json_has_every_counter_and_gauge() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--status-path", "/status"]);
    // One idle keep-alive connection (deadline in 5 s), one request each
    // for the file and the status.
    let mut idle = server.connect();
    assert_eq!(exchange(&mut idle, &get("/a.txt")).status, 200);
    let v = status_json(&server);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["workers"], 1);
    let c = &v["connections"];
    // The status request itself is counted as reading when answered.
    assert_eq!(
        (c["reading"].as_u64(), c["idle"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(c["total"], 2);
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["requests"], 2);
    for reason in ["client", "idle_timeout", "evicted", "overflow", "shutdown"] {
        assert_eq!(v["closes"][reason], 0, "{reason}");
    }
    for class in ["idle", "fresh", "partial_head", "stalled", "lingering"] {
        assert_eq!(v["evictions"][class], 0, "{class}");
    }
    for kind in ["full", "resumed", "failed", "tls1_2", "tls1_3"] {
        assert_eq!(v["tls_handshakes"][kind], 0, "{kind}");
    }
    let fd = &v["fd"];
    assert!(fd["limit"].as_u64().unwrap() > fd["budget"].as_u64().unwrap());
    assert_eq!(fd["in_use"], 2);
    assert_eq!(v["requests_per_connection"]["sum"], 0);
    // The idle connection's keep-alive deadline (5 s) and the status
    // request's own header deadline (10 s) are both within 10 s.
    let d = &v["deadlines"];
    assert_eq!(
        (
            d["within_1s"].as_u64(),
            d["within_10s"].as_u64(),
            d["later"].as_u64()
        ),
        (Some(0), Some(2), Some(0)),
        "{d}"
    );
    // Counters move: the idle connection closes, and is counted.
    drop(idle);
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        status_json(&server)["closes"]["client"] == 1
    }));
    // Two connections closed with one request each: the first status
    // request's and the idle one.
    assert!(status_json(&server)["requests_per_connection"]["<=1"].as_u64() >= Some(2));
}

#[test]
fn a_browser_gets_the_live_page() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--status-path", "/status"]);
    let mut s = server.connect();
    s.write_all(
        b"GET /status HTTP/1.1\r\nHost: x\r\nAccept: text/html,application/xhtml+xml,*/*;q=0.8\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let page = r.body_text();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("?format=json"), "it polls the JSON");
    // Self-contained: no external script, style sheet, font or image.
    for external in ["src=\"http", "href=\"http", "@import", "url("] {
        assert!(!page.contains(external), "{external}");
    }
    // Without Accept: text/html, nginx's stub_status as before.
    let r = exchange(&mut s, &get("/status"));
    assert!(r.body_text().starts_with("Active connections: "));
}

/// Headless Chromium runs the page's script: it must poll the JSON and
/// show numbers that change (its own polls are requests).
#[test]
fn chromium_shows_live_numbers() {
    let Some(chromium) = peer_program("chromium") else {
        return;
    };
    let site = Site::new();
    let server = Server::start(&site.root(), &["--status-path", "/status"]);
    let profile = TempDir::new("chromium-status");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Let the page's one-second timer run four times.
            "--virtual-time-budget=4500",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(server.url("/status"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let attr = |name: &str| -> String {
        let start = dom
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("{dom}"))
            + name.len()
            + 2;
        dom[start..].split('"').next().unwrap().to_string()
    };
    let polls: u32 = attr("data-polls").parse().unwrap();
    assert!(polls >= 2, "the page polled {polls} times\n{dom}");
    let samples: Vec<u64> = attr("data-requests")
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        samples.windows(2).all(|w| w[1] > w[0]),
        "requests_total must grow with every poll: {samples:?}"
    );
    assert!(dom.contains("reading"), "the phases are drawn\n{dom}");
}
