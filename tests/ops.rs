//! Running it like nginx: the `--config` file and its SIGHUP reload, the
//! access log's formats, logrotate's rename + SIGUSR1, and a full disk.

mod common;

use common::*;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn sighup_done(server: &Server, count: usize) -> bool {
    wait_until(Duration::from_secs(5), || {
        server.log_text().matches("SIGHUP: ").count() >= count
    })
}

/// A file's lines once at least `n` are there.
fn lines_within(path: &Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    wait_until(Duration::from_secs(5), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        lines = text.lines().map(str::to_string).collect();
        lines.len() >= n
    });
    lines
}

#[test]
fn a_reload_changes_keep_alive_on_open_connections_in_every_worker() {
    let site = Site::new();
    let dir = TempDir::new("reload");
    let config = dir.path().join("holdline.toml");
    std::fs::write(
        &config,
        "keepalive-timeout = 7\nmax-requests = 50\nheader = [\"X-Generation: 1\"]\nworkers = 2\n",
    )
    .unwrap();
    let server = Server::start(&site.root(), &["--config", config.to_str().unwrap()]);
    let mut open = server.connect();
    let r = exchange(&mut open, &get("/hello.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=7, max=49"));
    assert_eq!(r.header("X-Generation"), Some("1"));

    std::fs::write(
        &config,
        "keepalive-timeout = 3\nmax-requests = 50\nheader = [\"X-Generation: 2\", \"X-More: 1\"]\nworkers = 1\n",
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 1), "{}", server.log_text());
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("SIGHUP: reloaded"))
        .unwrap();
    assert!(
        line.contains(
            "changed keepalive-timeout 7 -> 3, header X-Generation: 1 -> X-Generation: 2"
        ),
        "{line}"
    );
    // The header line is longer: the heap bound follows.
    assert!(line.contains(", heap bound "), "{line}");
    assert!(line.ends_with("; needs a restart: workers"), "{line}");

    // The connection opened before the reload is still served, with the
    // new values.
    let r = exchange(&mut open, &get("/hello.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=3, max=48"));
    assert_eq!(r.header("X-Generation"), Some("2"));
    // New connections, spread over both workers by SO_REUSEPORT, too.
    for _ in 0..16 {
        let mut s = server.connect();
        let r = exchange(&mut s, &get("/hello.txt"));
        assert_eq!(r.header("Keep-Alive"), Some("timeout=3, max=49"));
        assert_eq!(r.header("X-Generation"), Some("2"));
    }
}

#[test]
fn a_broken_file_on_sighup_keeps_the_running_configuration() {
    let site = Site::new();
    let dir = TempDir::new("broken");
    let config = dir.path().join("holdline.toml");
    std::fs::write(&config, "keepalive-timeout = 7\n").unwrap();
    let mut server = Server::start(&site.root(), &["--config", config.to_str().unwrap()]);

    std::fs::write(&config, "keepalive-timeout = 2\nmax-requests = \"many\"\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 1), "{}", server.log_text());
    let at = format!(
        "{}:2: 'max-requests': invalid value 'many': expected a whole number; keeping the running configuration",
        config.display()
    );
    assert!(server.log_text().contains(&at), "{}", server.log_text());
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/hello.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Keep-Alive"), Some("timeout=7, max=99"));

    // Gone entirely, then not TOML: the same.
    std::fs::remove_file(&config).unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 2));
    std::fs::write(&config, "keepalive-timeout = = 2\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 3));
    assert!(server.log_text().contains(":1: not valid TOML"));
    let r = exchange(&mut s, &get("/hello.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=7, max=98"));
    assert_eq!(server.child.try_wait().unwrap(), None, "still running");

    // Fixed: applied.
    std::fs::write(&config, "keepalive-timeout = 2\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 4));
    let r = exchange(&mut s, &get("/hello.txt"));
    assert_eq!(r.header("Keep-Alive"), Some("timeout=2, max=97"));
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn a_bad_file_at_start_is_one_line_naming_the_line_and_key() {
    let dir = TempDir::new("badstart");
    let config = dir.path().join("holdline.toml");
    std::fs::write(
        &config,
        "# comment\nlisten = [\"127.0.0.1:0\"]\nkeepalive = 5\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdline"))
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "holdline: error: {}:3: unknown key 'keepalive' (see --help)",
            config.display()
        ),
        "{stderr}"
    );
}

#[test]
fn combined_lines_match_nginx_format() {
    let site = Site::new();
    let dir = TempDir::new("combined");
    let path = dir.path().join("access.log");
    let server = Server::start(&site.root(), &["--access-log", path.to_str().unwrap()]);
    let mut s = server.connect();
    let request = "GET /hello.txt?q=1 HTTP/1.1\r\nHost: x\r\nReferer: http://example.com/page\r\n\
                   User-Agent: Mozilla/5.0 (\"quoted\")\r\n\r\n";
    exchange(&mut s, request);
    exchange(&mut s, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    // Refused before it could be parsed: logged with its peer.
    let mut bad = server.connect();
    bad.write_all(b"GET / HTTP/9.9\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut bad).status, 505);

    let lines = lines_within(&path, 3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let combined = regex::Regex::new(
        r#"^(\S+) - - \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$"#,
    )
    .unwrap();
    let fields = |line: &str| -> Vec<String> {
        let c = combined.captures(line).unwrap_or_else(|| panic!("{line}"));
        (1..=7).map(|i| c[i].to_string()).collect()
    };
    let first = fields(&lines[0]);
    assert_eq!(first[0], "127.0.0.1");
    assert_eq!(first[2], "GET /hello.txt?q=1 HTTP/1.1");
    assert_eq!(first[3], "200");
    assert_eq!(
        first[4], "6",
        "the body's bytes, as nginx's $body_bytes_sent"
    );
    assert_eq!(first[5], "http://example.com/page");
    assert_eq!(first[6], r#"Mozilla/5.0 (\x22quoted\x22)"#);
    let second = fields(&lines[1]);
    assert_eq!(second[2], "HEAD /nope HTTP/1.1");
    assert_eq!(&second[3..], ["404", "0", "-", "-"]);
    let third = fields(&lines[2]);
    // Its request line was not read: nothing of it is echoed.
    assert_eq!(third[2], "- - -");
    assert_eq!(third[3], "505");
}

#[test]
fn common_and_json_lines() {
    let site = Site::new();
    let dir = TempDir::new("formats");
    let logging = |format: &str| {
        let path = dir.path().join(format!("{format}.log"));
        let args = [
            "--access-log",
            path.to_str().unwrap(),
            "--log-format",
            format,
        ];
        (Server::start(&site.root(), &args), path)
    };
    let (server, common) = logging("common");
    let mut s = server.connect();
    exchange(&mut s, &get("/hello.txt"));
    let lines = lines_within(&common, 1);
    assert!(
        regex::Regex::new(r#"^127\.0\.0\.1 - - \[[^\]]+\] "GET /hello\.txt HTTP/1\.1" 200 \d+$"#)
            .unwrap()
            .is_match(&lines[0]),
        "{lines:?}"
    );
    drop(server);

    let (server, json) = logging("json");
    let mut s = server.connect();
    exchange(&mut s, &get("/hello.txt"));
    exchange(
        &mut s,
        "GET /a.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: tést\r\n\r\n",
    );
    let mut other = server.connect();
    exchange(&mut other, &get("/b.txt"));
    let lines = lines_within(&json, 3);
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(parsed[0]["target"], "/hello.txt");
    assert_eq!(parsed[0]["status"], 200);
    assert_eq!(parsed[0]["connection_requests"], 1);
    assert_eq!(parsed[0]["reused"], false);
    assert_eq!(parsed[1]["target"], "/a.txt");
    assert_eq!(parsed[1]["connection_requests"], 2);
    assert_eq!(parsed[1]["reused"], true);
    // Bytes above 0x7e are written as \u00XX: the line stays valid JSON.
    assert_eq!(parsed[1]["user_agent"], "t\u{c3}\u{a9}st");
    assert_eq!(parsed[2]["connection_requests"], 1);
    for v in &parsed {
        assert_eq!(v["remote_addr"], "127.0.0.1");
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(v["tls"], false);
        assert!(v["request_time"].as_f64().is_some_and(|t| t >= 0.0), "{v}");
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with("+00:00")));
        assert!(v["bytes"].as_u64().is_some_and(|b| b > 0));
    }
}

#[test]
fn logrotate_rename_then_sigusr1_starts_a_new_file() {
    let site = Site::new();
    let dir = TempDir::new("rotate");
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let server = Server::start(&site.root(), &["--access-log", path.to_str().unwrap()]);
    let mut s = server.connect();
    exchange(&mut s, &get("/a.txt"));
    assert_eq!(lines_within(&path, 1).len(), 1);

    // logrotate: rename, then tell the server (postrotate).
    std::fs::rename(&path, &rotated).unwrap();
    exchange(&mut s, &get("/b.txt"));
    // Written to the renamed file: the server still holds it open.
    assert_eq!(lines_within(&rotated, 2).len(), 2);
    assert!(!path.exists());
    server.signal(libc::SIGUSR1);
    assert!(wait_until(Duration::from_secs(5), || server
        .log_text()
        .contains("SIGUSR1: reopened the access log")));
    exchange(&mut s, &get("/c.txt"));
    let fresh = lines_within(&path, 1);
    assert_eq!(fresh.len(), 1);
    assert!(fresh[0].contains("GET /c.txt "), "{fresh:?}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("/a.txt") && old.contains("/b.txt") && !old.contains("/c.txt"));
}

#[test]
fn a_full_disk_is_logged_once_and_serving_goes_on() {
    if !Path::new("/dev/full").exists() {
        return skip("no /dev/full");
    }
    let site = Site::new();
    let server = Server::start(&site.root(), &["--access-log", "/dev/full"]);
    let mut s = server.connect();
    for _ in 0..30 {
        let r = exchange(&mut s, &get("/hello.txt"));
        assert_eq!(r.status, 200);
    }
    assert!(wait_until(Duration::from_secs(5), || server
        .log_text()
        .contains("access log /dev/full")));
    // Each request's line is handed over in its own turn of the loop;
    // let the writer try them all before counting the complaints.
    let mut other = server.connect();
    exchange(&mut other, &get("/a.txt"));
    server.signal(libc::SIGUSR1);
    assert!(wait_until(Duration::from_secs(5), || server
        .log_text()
        .contains("SIGUSR1: reopened")));
    let log = server.log_text();
    let complaints = log
        .lines()
        .filter(|l| l.contains("access log /dev/full: ") && l.contains("No space left"))
        .count();
    assert!(complaints >= 1, "{log}");
    // Once before the reopen, at most once after it.
    assert!(complaints <= 2, "{log}");
}

#[test]
fn the_access_log_is_off_by_default_and_a_bad_path_stops_the_start() {
    let site = Site::new();
    let dir = TempDir::new("nolog");
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    exchange(&mut s, &get("/hello.txt"));
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    let missing = dir.path().join("no/such/dir/access.log");
    let err = Server::try_start(&site.root(), &["--access-log", missing.to_str().unwrap()])
        .err()
        .unwrap();
    assert!(err.contains("cannot open the access log"), "{err}");
}

#[test]
fn a_reload_moves_the_access_log_and_changes_its_format() {
    let site = Site::new();
    let dir = TempDir::new("relog");
    let config = dir.path().join("holdline.toml");
    let first = dir.path().join("first.log");
    let second = dir.path().join("second.log");
    std::fs::write(&config, format!("access-log = {first:?}\n")).unwrap();
    let server = Server::start(&site.root(), &["--config", config.to_str().unwrap()]);
    let mut s = server.connect();
    exchange(&mut s, &get("/a.txt"));
    assert!(lines_within(&first, 1)[0].contains("\"GET /a.txt HTTP/1.1\" 200"));

    std::fs::write(
        &config,
        format!("access-log = {second:?}\nlog-format = \"json\"\n"),
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 1));
    let log = server.log_text();
    assert!(log.contains("changed access-log "), "{log}");
    assert!(log.contains("log-format combined -> json"), "{log}");
    exchange(&mut s, &get("/b.txt"));
    let lines = lines_within(&second, 1);
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["target"], "/b.txt");
    assert_eq!(v["connection_requests"], 2);
    assert_eq!(std::fs::read_to_string(&first).unwrap().lines().count(), 1);

    // Turned off by the next reload.
    std::fs::write(&config, "").unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 2));
    exchange(&mut s, &get("/c.txt"));
    exchange(&mut s, &get("/a.txt"));
    let mut other = server.connect();
    exchange(&mut other, &get("/b.txt"));
    // On again: the next line follows the first with nothing between
    // (one writer, in order).
    std::fs::write(&config, format!("access-log = {second:?}\n")).unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 3));
    exchange(&mut s, &get("/hello.txt"));
    let lines = lines_within(&second, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].contains("\"GET /hello.txt HTTP/1.1\" 200 "),
        "{lines:?}"
    );
}

#[test]
fn a_dash_writes_the_access_log_to_standard_output() {
    let site = Site::new();
    let dir = TempDir::new("stdout");
    let socket = dir.path().join("h.sock");
    let listen = format!("unix:{}", socket.display());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_holdline"))
        .args(["--listen", &listen, "--access-log", "-"])
        .arg(site.root())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    }));
    let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = output_within(child, Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Written before exit: what was handed over reaches the output.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("0.0.0.0 - - [") && stdout.contains("\"GET /hello.txt HTTP/1.1\" 200 "),
        "{stdout}"
    );
}

/// A disk that stops (here: a FIFO whose reader never reads) never stalls
/// the reactor: lines wait in at most 64 buffers, the rest are dropped and
/// counted once the writer moves again.
#[test]
fn a_stuck_log_never_stalls_serving() {
    let site = Site::new();
    let dir = TempDir::new("fifo");
    let fifo = dir.path().join("access.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // The server's open for writing waits for a reader: open it first.
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::File::open(reader_path).unwrap());
    let fifo_arg = fifo.to_str().unwrap();
    let server = Server::start(
        &site.root(),
        &["--access-log", fifo_arg, "--max-requests", "0"],
    );
    let mut reader = reader.join().unwrap();
    let agent = "x".repeat(1000);
    let request = format!("GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\n\r\n");
    let mut s = server.connect();
    for _ in 0..500 {
        assert_eq!(exchange(&mut s, &request).status, 200);
    }
    // Nobody has read a byte, and every request was answered. Now read:
    // the writer moves again and says what it dropped.
    let drain = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut sink);
        sink.len()
    });
    exchange(&mut s, &get("/a.txt"));
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log_text()
            .contains("bytes of lines dropped")),
        "{}",
        server.log_text()
    );
    // A graceful exit writes what waited (the writer is joined), then
    // closes the FIFO: the reader sees its end.
    let mut server = server;
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let read = drain.join().unwrap();
    // What the pipe held, then the 64 buffers that waited, then the last
    // request's line: more than the pipe alone, fewer than every line.
    let line = 1000 + 100;
    assert!(read > 64 * 1024 + 32 * line, "{read}");
    assert!(read < 500 * line, "{read}");
}

/// The size field is the body's bytes, as CLF and nginx's
/// `$body_bytes_sent` have it: the whole multipart body of a streamed
/// range request, nothing for HEAD or 304.
#[test]
fn the_logged_size_is_the_body_sent() {
    let site = Site::new();
    site.dir.write("www/big.bin", vec![7u8; 100_000]);
    let dir = TempDir::new("sizes");
    let path = dir.path().join("access.log");
    let server = Server::start(&site.root(), &["--access-log", path.to_str().unwrap()]);
    let mut s = server.connect();
    let hello = exchange(&mut s, &get("/hello.txt"));
    let etag = hello.header("ETag").unwrap().to_string();
    let ranges = exchange(
        &mut s,
        "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,50000-50009,99990-\r\n\r\n",
    );
    assert_eq!(ranges.status, 206);
    let multipart: u64 = ranges.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(multipart, ranges.body.len() as u64);
    let missing = exchange(&mut s, &get("/nope"));
    exchange(&mut s, "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let not_modified = exchange(
        &mut s,
        &format!("GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"),
    );
    assert_eq!(not_modified.status, 304);
    let whole = exchange(&mut s, &get("/big.bin"));
    let sizes: Vec<String> = lines_within(&path, 6)
        .iter()
        .map(|l| l.split('"').nth(2).unwrap().trim().to_string())
        .collect();
    assert_eq!(
        sizes,
        [
            "200 6".to_string(),
            format!("206 {multipart}"),
            format!("404 {}", missing.body.len()),
            "200 0".to_string(),
            "304 0".to_string(),
            format!("200 {}", whole.body.len()),
        ]
    );
}

/// JSON's `request_time` runs from the request's first byte: a head that
/// arrives in two pieces 150 ms apart (the pause is what is measured, not
/// a wait for the server) takes at least that long.
#[test]
fn request_time_counts_from_the_first_byte() {
    let site = Site::new();
    let dir = TempDir::new("reqtime");
    let path = dir.path().join("access.log");
    let server = Server::start(
        &site.root(),
        &[
            "--access-log",
            path.to_str().unwrap(),
            "--log-format",
            "json",
        ],
    );
    let mut s = server.connect();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHo").unwrap();
    wait_server_read_all(&s);
    let sent = std::time::Instant::now();
    // The pause being measured, not a wait.
    std::thread::sleep(Duration::from_millis(150));
    s.write_all(b"st: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).status, 200);
    let took = sent.elapsed().as_secs_f64();
    let lines = lines_within(&path, 1);
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let logged = v["request_time"].as_f64().unwrap();
    // The server's clock started before ours (when it read the first
    // piece), so it saw at least the pause; the upper bound is only sane.
    assert!(
        logged >= 0.150 && logged < took + 5.0,
        "{logged} (client: {took})"
    );
}

/// The header lines a set of rules composed are reused for the next
/// request matching the same rules, never past a reload that changed
/// them, nor for a request matching others.
#[test]
fn header_rules_take_effect_on_open_connections_after_a_reload() {
    let site = Site::new();
    let dir = TempDir::new("reload-rules");
    let config = dir.path().join("holdline.toml");
    let rules =
        |v: u32| format!("rule = [\"*.txt header X-Rule: {v}\", \"/sub/** header X-Sub: {v}\"]\n");
    std::fs::write(&config, rules(1)).unwrap();
    let server = Server::start(&site.root(), &["--config", config.to_str().unwrap()]);
    let mut open = server.connect();
    for _ in 0..2 {
        let r = exchange(&mut open, &get("/hello.txt"));
        assert_eq!(r.header("X-Rule"), Some("1"));
        assert_eq!(r.header("X-Sub"), None);
        let r = exchange(&mut open, &get("/sub/"));
        assert_eq!((r.header("X-Rule"), r.header("X-Sub")), (None, Some("1")));
    }
    std::fs::write(&config, rules(2)).unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 1), "{}", server.log_text());
    let r = exchange(&mut open, &get("/hello.txt"));
    assert_eq!(r.header("X-Rule"), Some("2"), "{}", r.head);
}
