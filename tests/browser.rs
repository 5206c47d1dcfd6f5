//! A real browser: headless Chromium loads a page of 100 stylesheets from
//! holdline, and the status counters show that at most 6 keep-alive
//! connections carried its requests. Skips loudly where Chromium is not
//! installed (.ci/run installs it).

mod common;

use common::*;

/// (connections accepted, requests answered) from stub_status.
fn counters(server: &Server) -> (u64, u64) {
    let mut s = server.connect();
    let body = exchange(&mut s, &get("/status")).body_text();
    let numbers: Vec<u64> = body
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    (numbers[1], numbers[2])
}

#[test]
fn chromium_loads_101_files_over_at_most_6_connections() {
    let Some(chromium) = peer_program("chromium") else {
        return;
    };
    let site = Site::new();
    let mut page = String::from("<!DOCTYPE html><html><head><title>100 assets</title>\n");
    for i in 1..=100 {
        site.dir.write(
            &format!("www/assets/a{i:03}.css"),
            format!(".a{i} {{ color: red }}\n"),
        );
        page.push_str(&format!(
            "<link rel=\"stylesheet\" href=\"/assets/a{i:03}.css\">\n"
        ));
    }
    page.push_str("</head><body>loaded</body></html>\n");
    site.dir.write("www/page.html", &page);
    let server = Server::start(&site.root(), &["--status-path", "/status"]);
    let (handled_before, requests_before) = counters(&server);
    let profile = TempDir::new("chromium-profile");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(server.url("/page.html"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("loaded"),
        "chromium did not load the page: {dom}"
    );
    let (handled_after, requests_after) = counters(&server);
    // Each counters() call is one connection and one request of its own.
    let connections = handled_after - handled_before - 1;
    let requests = requests_after - requests_before - 1;
    eprintln!("chromium: {requests} requests over {connections} connections");
    assert!(requests >= 101, "page and 100 assets: {requests} requests");
    assert!((1..=6).contains(&connections), "{connections} connections");
}
