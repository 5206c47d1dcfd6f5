//! Nothing a request does takes down more than its own connection: panics
//! injected (debug builds' `HOLDLINE_FAULTS`, see `src/fault.rs`) in the
//! session, the responder and the compressor close the connection that
//! hit them as `internal_error`, while other connections (idle keep-alive,
//! pipelined, mid-download) get every byte they asked for; disk errors
//! get a precise status and one log line; a worker that dies anyway ends
//! the process with a non-zero status.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const FAULTS: &str = "panic@session=/boom-session;panic@respond=/boom-respond;\
                      panic@compress=crash.js;eio@open=broken.txt;eio@read=unreadable.txt";

fn faulty(site: &Site, args: &[&str]) -> Server {
    let mut all = vec!["--status-path", "/status"];
    all.extend_from_slice(args);
    Server::start_env(&site.root(), &all, &[("HOLDLINE_FAULTS", FAULTS)])
}

/// A file large enough that its download is still under way while other
/// connections panic.
fn big_file(site: &Site) -> Vec<u8> {
    let body: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    site.dir.write("www/big.bin", &body);
    body
}

/// Asks for `path` on a fresh connection and reads until the server
/// closes it: what it said, if anything.
fn request_and_read_all(server: &Server, path: &str) -> Vec<u8> {
    let mut s = server.connect();
    s.write_all(get(path).as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn a_panic_closes_its_connection_only_and_everyone_else_gets_every_byte() {
    let site = Site::new();
    let body = big_file(&site);
    let server = faulty(&site, &["--keepalive-timeout", "60"]);
    // Before the panics: an idle keep-alive connection, a download half
    // read, a pipelined pair waiting to be read.
    let mut idle = server.connect();
    assert_eq!(exchange(&mut idle, &get("/a.txt")).body, b"a\n");
    let mut download = connect_small_window(server.addr, Duration::from_secs(2)).unwrap();
    download.write_all(get("/big.bin").as_bytes()).unwrap();
    let mut downloaded = Vec::new();
    let mut chunk = [0u8; 65536];
    while downloaded.len() < 1 << 20 {
        let n = download.read(&mut chunk).unwrap();
        assert!(n > 0);
        downloaded.extend_from_slice(&chunk[..n]);
    }
    let mut pipelined = server.connect();
    let pair = format!("{}{}", get("/b.txt"), get("/c.txt"));
    pipelined.write_all(pair.as_bytes()).unwrap();

    // Panics in the session and in the responder: each connection closes
    // without an answer, and nothing else goes.
    for path in [
        "/boom-session",
        "/boom-respond",
        "/boom-session",
        "/boom-respond",
    ] {
        let got = request_and_read_all(&server, path);
        assert!(got.is_empty(), "{path}: {}", String::from_utf8_lossy(&got));
    }

    // Everyone else: every byte.
    let mut buf = Vec::new();
    assert_eq!(
        read_response_after(&mut pipelined, &mut buf, "GET").body,
        b"bb\n"
    );
    assert_eq!(
        read_response_after(&mut pipelined, &mut buf, "GET").body,
        b"ccc\n"
    );
    assert_eq!(exchange(&mut idle, &get("/hello.txt")).body, b"hello\n");
    download
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head_end = downloaded
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap()
        + 4;
    while downloaded.len() < head_end + body.len() {
        let n = download.read(&mut chunk).unwrap();
        assert!(n > 0, "the download was cut at {}", downloaded.len());
        downloaded.extend_from_slice(&chunk[..n]);
    }
    assert!(downloaded[head_end..] == body[..], "the download's bytes");
    // And new connections are served.
    assert!(request_and_read_all(&server, "/a.txt").ends_with(b"\r\n\r\na\n"));

    // Counted, exported, and the tables read as if they closed normally:
    // two connections open (idle and pipelined, the download done and
    // idle: three), none left counted as reading or writing.
    drop(download);
    let status = status_json(&server);
    assert_eq!(status["closes"]["internal_error"], 4, "{status}");
    let prometheus = status_prometheus(&server);
    assert!(
        prometheus.contains("holdline_closes_total{reason=\"internal_error\"} 4\n"),
        "{prometheus}"
    );
    // The idle and the pipelined connection are idle, the download's gone
    // (closed by its client), the panicked ones left nothing behind: the
    // one reading is the status request itself.
    assert!(
        wait_until(Duration::from_secs(3), || {
            let c = &status_json(&server)["connections"];
            c["writing"] == 0 && c["reading"] == 1 && c["idle"] == 2 && c["total"] == 3
        }),
        "{}",
        status_json(&server)
    );
    // One log line per panic, with the request line; the backtrace once
    // per place.
    let log = server.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("internal error"))
        .collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(
        lines[0].contains("\"GET /boom-session HTTP/1.1\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"GET /boom-respond HTTP/1.1\""),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("(backtrace logged before)"),
        "{}",
        lines[2]
    );
    assert!(
        log.contains("holdline::serve::Responder::respond"),
        "a backtrace: {log}"
    );
}

#[test]
fn a_panicking_compression_leaves_that_file_uncompressed_and_the_compressor_running() {
    let site = Site::new();
    let script: String = (0..400).map(|i| format!("let v{i} = {i} * 2;\n")).collect();
    site.dir.write("www/crash.js", &script);
    site.dir.write("www/fine.js", &script);
    let server = faulty(&site, &[]);
    let ask = |path: &str| {
        let mut s = server.connect();
        exchange(&mut s, &get_with(path, "Accept-Encoding: gzip\r\n"))
    };
    // The first answer is identity while the file is compressed; the
    // panicking one stays identity, the other comes back gzip.
    assert_eq!(ask("/crash.js").body, script.as_bytes());
    assert!(wait_until(Duration::from_secs(20), || {
        ask("/fine.js").head.contains("Content-Encoding: gzip")
    }));
    let crashed = ask("/crash.js");
    assert_eq!(crashed.body, script.as_bytes());
    assert!(
        !crashed.head.contains("Content-Encoding"),
        "{}",
        crashed.head
    );
    let log = server.log_text();
    assert!(log.contains("compressor: panic 'injected fault"), "{log}");
    assert!(log.contains("stays uncompressed"), "{log}");
}

#[test]
fn disk_errors_get_a_precise_status_and_one_log_line() {
    let site = Site::new();
    site.dir.write("www/broken.txt", "never read\n");
    site.dir.write("www/unreadable.txt", "never read either\n");
    let server = faulty(&site, &[]);
    for _ in 0..5 {
        // Opening fails with EIO: the storage is failing, try again (or
        // elsewhere).
        let mut s = server.connect();
        let r = exchange(&mut s, &get("/broken.txt"));
        assert_eq!(r.status, 503, "{}", r.head);
        assert!(r.head.contains("Retry-After: 1\r\n"), "{}", r.head);
        // Reading fails: 500.
        let r = exchange(&mut s, &get("/unreadable.txt"));
        assert_eq!(r.status, 500, "{}", r.head);
        // Everything else is served.
        assert_eq!(exchange(&mut s, &get("/a.txt")).body, b"a\n");
    }
    let log = server.log_text();
    let opens = log.matches("opening files beneath ROOT: ").count();
    let reads = log.matches("reading files beneath ROOT: ").count();
    // Successes in between do not end an episode: only 10 s without a
    // failure do.
    assert_eq!((opens, reads), (1, 1), "one line per episode:\n{log}");
}

#[test]
fn a_worker_that_dies_ends_the_process_with_a_failure_status() {
    let site = Site::new();
    let faults = [("HOLDLINE_FAULTS", "panic@worker=/kill-the-worker")];
    for workers in ["1", "2"] {
        let args = ["--workers", workers, "--shutdown-timeout", "2"];
        let mut server = Server::start_env(&site.root(), &args, &faults);
        // Served, then the loop panics outside any connection.
        for _ in 0..8 {
            let Ok(mut s) = TcpStream::connect(server.addr) else {
                break;
            };
            let _ = s.write_all(get("/kill-the-worker").as_bytes());
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        let code = server.wait_exit(Duration::from_secs(10));
        assert_eq!(code, Some(1), "--workers {workers}");
        let log = server.log_text();
        assert!(
            log.contains("died: panic 'injected fault in the reactor's loop'"),
            "{log}"
        );
    }
}

/// ROOT made unreadable under the running server (a wrong `chmod`, a
/// mount gone bad): 503 with `Retry-After`, one log line, and served
/// again as soon as it is readable. As root the server runs as `nobody`,
/// since root reads anything.
#[test]
fn an_unreadable_root_is_unavailable_not_forbidden() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let root = site.root();
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let args: &[&str] = if as_root { &["--user", "nobody"] } else { &[] };
    let server = Server::start(&root, args);
    let ask = || {
        let mut s = server.connect();
        exchange(&mut s, &get("/a.txt"))
    };
    assert_eq!(ask().status, 200);
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Files the cache holds are served from it until revalidated.
    assert!(wait_until(Duration::from_secs(3), || ask().status == 503));
    let r = ask();
    assert!(r.head.contains("Retry-After: 1\r\n"), "{}", r.head);
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(ask().status, 200);
    let log = server.log_text();
    assert_eq!(log.matches("ROOT cannot be searched").count(), 1, "{log}");
}
