//! A real browser: headless Chromium loads a page of 100 stylesheets from
//! holdline, over HTTP and over HTTPS, and the status counters show that at
//! most 6 keep-alive connections carried its requests. Skips loudly where
//! Chromium is not installed (.ci/run installs it).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The page of 100 stylesheets, written into `site`.
fn write_page(site: &Site) {
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
}

/// Loads `url` in headless Chromium (killed after 60 s) with `extra`
/// flags; returns (requests, connections) the server counted for it.
fn load(server: &Server, url: &str, extra: &[String]) -> (u64, u64) {
    let chromium = peer_program("chromium").expect("checked by the caller");
    let before = stub_status(server);
    let profile = TempDir::new("chromium-profile");
    let child = Command::new(chromium)
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
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within(child, Duration::from_secs(60));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("loaded"),
        "chromium did not load the page: {dom} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = stub_status(server);
    // Each stub_status() call is one connection and one request of its own.
    (
        after.requests - before.requests - 1,
        after.handled - before.handled - 1,
    )
}

#[test]
fn chromium_loads_101_files_over_at_most_6_connections() {
    if peer_program("chromium").is_none() {
        return;
    }
    let site = Site::new();
    write_page(&site);
    let server = Server::start(&site.root(), &["--status-path", "/status"]);
    let (requests, connections) = load(&server, &server.url("/page.html"), &[]);
    eprintln!("chromium: {requests} requests over {connections} connections");
    assert!(requests >= 101, "page and 100 assets: {requests} requests");
    assert!((1..=6).contains(&connections), "{connections} connections");
}

/// Standard base64, for Chromium's SPKI hash flag.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    out
}

#[test]
fn chromium_loads_the_page_over_https_on_at_most_6_connections() {
    if peer_program("chromium").is_none() {
        return;
    }
    let site = Site::new();
    write_page(&site);
    // A throwaway certificate; Chromium is told to trust its key by hash
    // (what --ignore-certificate-errors-spki-list is for), not to skip checks.
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    site.dir.write("tls/cert.pem", cert.pem());
    site.dir.write("tls/key.pem", key.serialize_pem());
    let spki = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &rcgen::PublicKeyData::subject_public_key_info(&key),
    );
    let (cert_path, key_path) = (
        site.dir.path().join("tls/cert.pem"),
        site.dir.path().join("tls/key.pem"),
    );
    let server = Server::start(
        &site.root(),
        &[
            "--status-path",
            "/status",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let port = server
        .log_text()
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("an https listener");
    let url = format!("https://localhost:{port}/page.html");
    let trust = format!(
        "--ignore-certificate-errors-spki-list={}",
        base64(spki.as_ref())
    );
    let (requests, connections) = load(&server, &url, &[trust]);
    eprintln!("chromium over https: {requests} requests over {connections} connections");
    assert!(requests >= 101, "page and 100 assets: {requests} requests");
    assert!((1..=6).contains(&connections), "{connections} connections");
}

#[test]
fn base64_is_standard() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}
