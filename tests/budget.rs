//! The fd budget under exhaustion, at small scale: a limit of 64 fds and
//! storms of 300 connections. The full-scale run is scripts/fd-exhaustion.sh.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn holdline(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_holdline"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn start_logs_the_fd_figures_in_one_line() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--max-fds", "64"]);
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("fd limit"))
        .expect("an fd line");
    assert!(line.contains("-> 64 (hard "), "{line}");
    assert!(
        line.contains("reserve 9, file headroom 6, max connections 49"),
        "{line}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().nth(3),
        Some("64"),
        "{open_files}"
    );
}

#[test]
fn impossible_limits_are_one_line_errors_with_the_numbers() {
    let (_, hard) = holdline::budget::nofile_limit().unwrap();
    let too_many = (hard + 1).to_string();
    let out = holdline(&["--listen", "127.0.0.1:0", "--max-fds", &too_many, "."]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&too_many) && err.contains(&hard.to_string()),
        "{err}"
    );
    let out = holdline(&[
        "--listen",
        "127.0.0.1:0",
        "--max-fds",
        "64",
        "--max-connections",
        "500",
        ".",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("500") && err.contains("49") && err.contains("64"),
        "{err}"
    );
}

/// One run of a storm: what the clients saw.
struct StormResult {
    existing_ok: usize,
    existing_tried: usize,
    fresh_ok: usize,
    fresh_tried: usize,
}

/// What each storm connection does after connecting.
#[derive(Clone, Copy, PartialEq)]
enum Storm {
    /// Nothing: a connect that never speaks.
    Idle,
    /// An unfinished request head (slowloris).
    PartialHead,
    /// A request for a big file, with a 4 KiB receive window, never read.
    SlowReader,
}

fn storm_connection(addr: SocketAddr, kind: Storm) -> Option<TcpStream> {
    let within = Duration::from_millis(500);
    let mut s = if kind == Storm::SlowReader {
        connect_small_window(addr, within).ok()?
    } else {
        TcpStream::connect_timeout(&addr, within).ok()?
    };
    let _ = match kind {
        Storm::Idle => Ok(()),
        Storm::PartialHead => s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: storm\r\nX-Slow: "),
        Storm::SlowReader => s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: storm\r\n\r\n"),
    };
    Some(s)
}

fn storm(server: &Server, storm_size: usize, kind: Storm, duration: Duration) -> StormResult {
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));

    // The existing client: connected before the storm, keeps requesting.
    let mut existing = server.connect();
    assert_eq!(exchange(&mut existing, &get("/a.txt")).status, 200);

    // The storm's connections are held until this is dropped.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let stormer = std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..storm_size {
            held.extend(storm_connection(addr, kind));
        }
        let _ = released.recv();
        held.len()
    });
    let fresh = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut tried) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                tried += 1;
                if fresh_request(addr) {
                    ok += 1;
                }
                // The pace of arrivals, not a wait: a fresh client every
                // 20 ms during the storm.
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, tried)
        })
    };
    let start = Instant::now();
    let (mut existing_ok, mut existing_tried) = (0, 0);
    while start.elapsed() < duration {
        existing_tried += 1;
        existing
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        if existing.write_all(get("/a.txt").as_bytes()).is_ok() {
            let mut buf = [0u8; 1024];
            if let Ok(n) = existing.read(&mut buf)
                && buf[..n].starts_with(b"HTTP/1.1 200 OK")
            {
                existing_ok += 1;
            }
        }
        // The existing client's pace, not a wait: a request every 20 ms.
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    drop(release);
    let (fresh_ok, fresh_tried) = fresh.join().unwrap();
    let stormed = stormer.join().unwrap();
    eprintln!(
        "storm of {stormed}: existing {existing_ok}/{existing_tried}, fresh {fresh_ok}/{fresh_tried}"
    );
    StormResult {
        existing_ok,
        existing_tried,
        fresh_ok,
        fresh_tried,
    }
}

fn fresh_request(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 1024];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200 OK"))
}

/// A server under a 64-fd limit; --max-requests 0 so the existing client
/// never has to reconnect.
fn storm_target(site: &Site) -> Server {
    let args = [
        "--max-fds",
        "64",
        "--status-path",
        "/status",
        "--max-requests",
        "0",
    ];
    Server::start(&site.root(), &args)
}

#[test]
fn idle_storm_is_shed_and_real_clients_are_served() {
    let site = Site::new();
    let server = storm_target(&site);
    let r = storm(&server, 300, Storm::Idle, Duration::from_secs(2));
    assert_eq!(
        r.existing_ok, r.existing_tried,
        "the existing client must not lose a request"
    );
    assert!(
        r.fresh_ok * 100 >= r.fresh_tried * 95,
        "fresh clients {}/{}",
        r.fresh_ok,
        r.fresh_tried
    );
    let prom = status_prometheus(&server);
    assert_never_out_of_fds(&prom);
    // The storm's connections were shed as fresh; the existing client,
    // idle between its requests, never.
    let fresh = metric(&prom, "holdline_evictions_total{class=\"fresh\"}");
    assert!(fresh >= 200, "{fresh} fresh evictions\n{prom}");
    assert_eq!(metric(&prom, "holdline_evictions_total{class=\"idle\"}"), 0);
    assert_eq!(
        metric(&prom, "holdline_closes_total{reason=\"evicted\"}"),
        fresh
    );
}

/// Admission never ran out of fds: accept never failed with EMFILE, and
/// no file body was refused for want of one.
fn assert_never_out_of_fds(prom: &str) {
    assert_eq!(metric(prom, "holdline_accept_emfile_total"), 0, "{prom}");
    assert_eq!(metric(prom, "holdline_open_emfile_total"), 0, "{prom}");
}

/// The eviction order, seen from outside: the budget is filled with
/// unfinished heads, then newcomers that say nothing arrive. A newcomer
/// that says nothing is worth less than a head under way, so each one
/// evicts the previous newcomer and the heads stay; in the reversed order
/// every head would go.
#[test]
fn fresh_connections_go_before_partial_heads() {
    let site = Site::new();
    let server = storm_target(&site);
    let heads: Vec<TcpStream> = (0..47)
        .filter_map(|_| storm_connection(server.addr, Storm::PartialHead))
        .collect();
    assert!(wait_until(Duration::from_secs(5), || {
        status(&server, "?format=json")
            .body_text()
            .contains("\"reading\":48")
    }));
    let newcomers: Vec<TcpStream> = (0..40)
        .filter_map(|_| storm_connection(server.addr, Storm::Idle))
        .collect();
    assert!(wait_until(Duration::from_secs(5), || {
        let prom = status_prometheus(&server);
        metric(&prom, "holdline_evictions_total{class=\"fresh\"}")
            + metric(&prom, "holdline_evictions_total{class=\"partial_head\"}")
            >= 35
    }));
    let prom = status_prometheus(&server);
    let fresh = metric(&prom, "holdline_evictions_total{class=\"fresh\"}");
    let heads_lost = metric(&prom, "holdline_evictions_total{class=\"partial_head\"}");
    // The first newcomer (and each status request) may find no fresh
    // connection to evict and take a head's place: a few, not forty.
    assert!(
        heads_lost <= 5,
        "{heads_lost} heads evicted, {fresh} fresh\n{prom}"
    );
    assert!(fresh >= 30, "{fresh} fresh evictions\n{prom}");
    drop((heads, newcomers));
}

#[test]
fn slowloris_storm_is_shed_and_real_clients_are_served() {
    let site = Site::new();
    let server = storm_target(&site);
    let r = storm(&server, 300, Storm::PartialHead, Duration::from_secs(2));
    assert!(
        r.existing_ok * 100 >= r.existing_tried * 99,
        "existing {}/{}",
        r.existing_ok,
        r.existing_tried
    );
    assert!(
        r.fresh_ok * 100 >= r.fresh_tried * 80,
        "fresh clients {}/{}",
        r.fresh_ok,
        r.fresh_tried
    );
    let prom = status_prometheus(&server);
    assert_never_out_of_fds(&prom);
    let heads = metric(&prom, "holdline_evictions_total{class=\"partial_head\"}");
    assert!(heads >= 100, "{heads} partial-head evictions\n{prom}");
    assert_eq!(metric(&prom, "holdline_evictions_total{class=\"idle\"}"), 0);
}

/// The value of a Prometheus sample line that starts with `name`
/// (labels included); panics if it is missing.
fn metric(prom: &str, name: &str) -> u64 {
    prom.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{prom}"))
        .parse()
        .unwrap()
}

/// Slow readers: 150 connections ask for a 64 MiB file and never read.
/// Each holds a socket (the file's fd is shared by all), and the budget
/// fills with responses in flight: nothing of the older classes is left to
/// evict. Returns the status counters after a 2 s storm in which the
/// existing keep-alive client and fresh clients were all served.
fn slow_reader_storm(extra: &[&str]) -> String {
    let site = Site::new();
    big_file(&site, "big.bin");
    let mut args = vec![
        "--max-fds",
        "64",
        "--status-path",
        "/status",
        "--max-requests",
        "0",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&site.root(), &args);
    let r = storm(&server, 150, Storm::SlowReader, Duration::from_secs(2));
    assert_eq!(
        r.existing_ok, r.existing_tried,
        "the existing client must not lose a request"
    );
    assert!(
        r.fresh_ok * 100 >= r.fresh_tried * 90,
        "fresh clients {}/{}",
        r.fresh_ok,
        r.fresh_tried
    );
    let prom = status_prometheus(&server);
    // Nobody was refused for want of an fd: the file's one fd was shared.
    assert_eq!(metric(&prom, "holdline_open_emfile_total"), 0);
    assert_eq!(metric(&prom, "holdline_accept_emfile_total"), 0);
    assert!(metric(&prom, "holdline_open_files") <= 1);
    // No idle connection was evicted: the existing client is safe.
    for class in ["idle", "fresh", "partial_head", "lingering"] {
        let name = format!("holdline_evictions_total{{class=\"{class}\"}}");
        assert_eq!(metric(&prom, &name), 0, "{class}");
    }
    prom
}

/// By default the storm's excess waits --admission-wait (20 ms) in the
/// backlog, then is answered without a slot: its requests need a file
/// body, so 503, and the connection closes.
#[test]
fn slow_reader_storm_excess_is_answered_without_a_slot() {
    let prom = slow_reader_storm(&[]);
    let overflow = metric(&prom, "holdline_closes_total{reason=\"overflow\"}");
    // At least the 150 - 47 that did not fit, and the fresh clients that
    // arrived while the budget was full (served from memory, then closed).
    assert!(overflow >= 103, "{overflow} overflow closes\n{prom}");
}

/// With newcomers told to wait, stalled responses are evicted instead:
/// past --evict-stalled-after, the one stalled longest first.
#[test]
fn slow_reader_storm_stalled_responses_are_evicted() {
    let prom = slow_reader_storm(&[
        "--admission-wait",
        "60",
        // Shorter than the default 1 s so the storm's backlog drains in
        // the two seconds the test runs.
        "--evict-stalled-after",
        "0.3",
    ]);
    let stalled = metric(&prom, "holdline_evictions_total{class=\"stalled\"}");
    assert!(stalled >= 103, "{stalled} stalled evictions\n{prom}");
    assert_eq!(
        metric(&prom, "holdline_closes_total{reason=\"overflow\"}"),
        0
    );
}

/// A newcomer that finds the budget full and nothing to evict is not left
/// in the backlog past --admission-wait: its request is answered from
/// memory with `Connection: close`, or refused with 503 when it needs a
/// file body, and no slot is taken.
#[test]
fn at_a_full_budget_newcomers_are_answered_without_a_slot() {
    let site = Site::new();
    big_file(&site, "big.bin");
    let server = Server::start(
        &site.root(),
        &[
            "--max-connections",
            "2",
            "--status-path",
            "/status",
            "--evict-stalled-after",
            "60",
            "--admission-wait",
            "0.3",
        ],
    );
    let _downloads = stalled_downloads(&server, &same_file(2));
    let start = Instant::now();
    let mut small = server.connect();
    small.write_all(get("/a.txt").as_bytes()).unwrap();
    let r = read_response(&mut small);
    let waited = start.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"a\n");
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(assert_closes(&mut small, SLACK), b"");
    assert!(
        waited >= Duration::from_millis(300) && waited <= Duration::from_millis(300) + SLACK,
        "answered after {waited:?}"
    );
    let mut large = server.connect();
    let r = exchange(&mut large, &get("/big.bin"));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert_eq!(r.header("Connection"), Some("close"));
    // The status request itself gets no slot either.
    let prom = status_prometheus(&server);
    assert_eq!(
        metric(&prom, "holdline_closes_total{reason=\"overflow\"}"),
        2
    );
    assert_eq!(metric(&prom, "holdline_connections{state=\"writing\"}"), 2);
}

/// Stalls one download (never reading) of each of `paths`; returns the
/// sockets.
fn stalled_downloads(server: &Server, paths: &[String]) -> Vec<TcpStream> {
    paths
        .iter()
        .map(|path| {
            let mut s = server.connect();
            s.write_all(get(path).as_bytes()).unwrap();
            s
        })
        .collect()
}

/// `n` paths to the same big file.
fn same_file(n: usize) -> Vec<String> {
    vec!["/big.bin".to_string(); n]
}

fn big_file(site: &Site, name: &str) {
    std::fs::File::create(site.root().join(name))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
}

#[test]
fn with_nothing_to_evict_accepting_pauses_and_resumes_when_a_slot_frees() {
    // --max-fds 32: budget 23 fds, headroom 2. Twenty stalled downloads of
    // one file hold a socket each and share one file fd (21 fds, and
    // 21 + 2 = 23): the budget is full. They are not evictable for a
    // minute (--evict-stalled-after 60): nothing may go.
    let site = Site::new();
    big_file(&site, "big.bin");
    let server = Server::start(
        &site.root(),
        &[
            "--max-fds",
            "32",
            "--status-path",
            "/status",
            "--send-timeout",
            "60",
            "--evict-stalled-after",
            "60",
            "--admission-wait",
            "60",
        ],
    );
    let pid = server.pid();
    let baseline = fd_count(pid);
    let mut downloads = stalled_downloads(&server, &same_file(20));
    assert!(
        wait_until(Duration::from_secs(5), || fd_count(pid) == baseline + 21),
        "20 downloads of one file: 20 sockets and 1 shared file fd, not {}",
        fd_count(pid) - baseline
    );
    // A new client is not accepted: it waits in the backlog, unanswered.
    let mut waiting = server.connect();
    waiting.write_all(get("/a.txt").as_bytes()).unwrap();
    assert_stays_open(&mut waiting, Duration::from_millis(500));
    assert_eq!(fd_count(pid), baseline + 21);
    // One download ends: the waiting client is accepted and served.
    let gone = downloads.pop().unwrap();
    drop(gone);
    let r = read_response(&mut waiting);
    assert_eq!(r.body, b"a\n");
    drop(waiting);
    drop(downloads);
    // Every socket closed; the file's fd stays cached (unused) for a while.
    assert!(wait_until(Duration::from_secs(5), || fd_count(pid) <= baseline + 1));
    let prom = status_prometheus(&server);
    // Two pauses: for the waiting client, and again right after it was
    // admitted and answered (the budget full once more, and a client idle
    // for less than a second is never evicted).
    assert!(prom.contains("holdline_accept_pauses_total 2\n"), "{prom}");
    assert!(
        prom.contains("holdline_evictions_total{class=\"stalled\"} 0\n"),
        "{prom}"
    );
}

#[test]
fn no_fd_for_a_file_body_is_503_with_retry_after() {
    // --max-fds 32: budget 23. Two keep-alive clients, then ten stalled
    // downloads of ten different files (22 fds). The first client's
    // download of an eleventh file takes the 23rd fd; the second's of a
    // twelfth would break the budget: 503. A file already open costs no
    // new fd: the second client may download it.
    let site = Site::new();
    for i in 0..12 {
        big_file(&site, &format!("big{i}.bin"));
    }
    let server = Server::start(
        &site.root(),
        &[
            "--max-fds",
            "32",
            "--send-timeout",
            "60",
            "--evict-stalled-after",
            "60",
        ],
    );
    let mut first = server.connect();
    let mut second = server.connect();
    assert_eq!(exchange(&mut first, &get("/a.txt")).status, 200);
    assert_eq!(exchange(&mut second, &get("/a.txt")).status, 200);
    let pid = server.pid();
    let baseline = fd_count(pid);
    let paths: Vec<String> = (0..10).map(|i| format!("/big{i}.bin")).collect();
    let _downloads = stalled_downloads(&server, &paths);
    assert!(wait_until(Duration::from_secs(5), || fd_count(pid) == baseline + 20));
    first.write_all(get("/big10.bin").as_bytes()).unwrap();
    let mut head = [0u8; 64];
    first.read_exact(&mut head).unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200 OK"));
    let r = exchange(&mut second, &get("/big11.bin"));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    // Small files are read into memory and need no lasting fd.
    assert_eq!(exchange(&mut second, &get("/a.txt")).status, 200);
    // A file being sent already is shared: no new fd, no 503.
    second.write_all(get("/big3.bin").as_bytes()).unwrap();
    second.read_exact(&mut head).unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200 OK"), "{head:?}");
    assert_eq!(fd_count(pid), baseline + 21);
}

#[test]
fn stub_status_speaks_nginx() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--status-path", "/status"]);
    let mut idle = server.connect();
    assert_eq!(exchange(&mut idle, &get("/a.txt")).status, 200);
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/status"));
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    // The status request is counted as reading at the moment it is answered.
    assert_eq!(
        r.body_text(),
        "Active connections: 2 \nserver accepts handled requests\n 2 2 2 \nReading: 1 Writing: 0 Waiting: 1 \n"
    );
    let r = exchange(&mut s, &get("/status?format=prometheus"));
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(r.body_text().contains("holdline_requests_total 3\n"));
    // Off by default.
    let plain = Server::start(&site.root(), &[]);
    let mut s = plain.connect();
    assert_eq!(exchange(&mut s, &get("/status")).status, 404);
}

/// Reads TCP keepalive options off the server's own accepted socket:
/// pidfd_getfd(2) duplicates its fd into this process.
#[test]
fn tcp_keepalive_probes_are_set_on_accepted_sockets() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &[
            "--tcp-keepalive-time",
            "37",
            "--tcp-keepalive-interval",
            "7",
            "--tcp-keepalive-probes",
            "4",
        ],
    );
    let client = server.connect();
    let Some(fd) = server_side_socket(server.pid(), &client) else {
        skip("pidfd_getfd is not permitted here; cannot read the server's socket options");
        return;
    };
    let opt = |fd, level, name| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        v
    };
    assert_eq!(opt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
    assert_eq!(opt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 37);
    assert_eq!(opt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), 7);
    assert_eq!(opt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 4);
    assert_ne!(opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY), 0);
    unsafe { libc::close(fd) };

    let server = Server::start(&site.root(), &["--no-tcp-keepalive"]);
    let client = server.connect();
    let fd = server_side_socket(server.pid(), &client).expect("pidfd_getfd worked a moment ago");
    assert_eq!(opt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
    unsafe { libc::close(fd) };
}

/// `--defer-accept`: a client that connects and says nothing stays in the
/// kernel (not accepted, no fd, no slot) until its first bytes arrive;
/// then it is served at once. Without the option it is accepted at once.
#[test]
fn defer_accept_leaves_silent_connections_to_the_kernel() {
    let site = Site::new();
    site.dir.write("www/deferred.txt", "deferred");
    for (args, silent_accepted) in [
        (
            &["--status-path", "/status", "--defer-accept", "30"][..],
            false,
        ),
        (&["--status-path", "/status"][..], true),
    ] {
        let server = Server::start(&site.root(), args);
        let mut silent: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
        // Each status request is accepted (it sends at once) and counts
        // itself; the silent three count only when accepted.
        let expected = if silent_accepted { 4 } else { 1 };
        assert!(
            wait_until(Duration::from_secs(5), || {
                let stub = stub_status(&server);
                stub.active == expected && stub.accepted == stub.handled
            }),
            "{args:?}: {:?}",
            stub_status(&server)
        );
        if !silent_accepted {
            // Still not accepted a moment later, well inside the 30 s.
            assert_stays_open(&mut silent[0], Duration::from_millis(300));
            assert_eq!(stub_status(&server).active, 1, "{args:?}");
        }
        for s in &mut silent {
            let r = exchange(s, &get("/deferred.txt"));
            assert_eq!((r.status, r.body_text().as_str()), (200, "deferred"));
        }
        assert_eq!(stub_status(&server).active, 4, "{args:?}");
    }
}

/// Finds, in process `pid`, the accepted socket whose peer is `client`,
/// and returns a duplicate of it in this process.
fn server_side_socket(pid: u32, client: &TcpStream) -> Option<libc::c_int> {
    let port = client.local_addr().unwrap().port();
    let pidfd =
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as libc::c_int;
    if pidfd < 0 {
        return None;
    }
    // The server accepts the connection on a turn of its own: look until
    // it has.
    let mut look = Look::NotYet;
    wait_until(Duration::from_secs(2), || {
        look = look_for_peer(pid, pidfd, port);
        !matches!(look, Look::NotYet)
    });
    unsafe { libc::close(pidfd) };
    match look {
        Look::Found(fd) => Some(fd),
        Look::Denied | Look::NotYet => None,
    }
}

/// What one pass over a process's fds found.
enum Look {
    /// A duplicate of the socket.
    Found(libc::c_int),
    /// pidfd_getfd(2) is not permitted here.
    Denied,
    NotYet,
}

/// One pass over `pid`'s fds for a TCP socket whose peer has `port`.
fn look_for_peer(pid: u32, pidfd: libc::c_int, port: u16) -> Look {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Look::NotYet;
    };
    for entry in entries.flatten() {
        let Ok(target_fd) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else {
            continue;
        };
        let fd =
            unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target_fd, 0) } as libc::c_int;
        if fd < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
                return Look::Denied;
            }
            continue;
        }
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = unsafe {
            libc::getpeername(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len)
        };
        if rc == 0 && addr.sin_family as i32 == libc::AF_INET && u16::from_be(addr.sin_port) == port
        {
            return Look::Found(fd);
        }
        unsafe { libc::close(fd) };
    }
    Look::NotYet
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn set_soft_nofile(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0);
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// A miscounted budget (here: the limit lowered under the server's feet
/// with prlimit) makes accept fail with EMFILE. The reactor must not spin
/// on the still-readable listener: it pauses, warns at most once a second,
/// and resumes by itself once fds are available again.
#[test]
fn emfile_at_accept_pauses_instead_of_spinning_and_recovers() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--status-path", "/status"]);
    let pid = server.pid();
    // The next fd the server gets is its lowest free number: a limit at
    // that number makes the next accept fail.
    let used: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let lowest_free = (0..).find(|n| !used.contains(n)).unwrap();
    set_soft_nofile(pid, lowest_free);
    let mut client = server.connect(); // completes in the kernel backlog
    client.write_all(get("/a.txt").as_bytes()).unwrap();
    let cpu_before = cpu_ticks(pid);
    let wall = Instant::now();
    assert!(wait_until(Duration::from_secs(2), || server
        .log_text()
        .contains("pausing accept")));
    // The measurement window, not a wait: CPU time is counted over 1.5 s
    // of failing accepts.
    std::thread::sleep(Duration::from_millis(1500));
    let ticks = cpu_ticks(pid) - cpu_before;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = ticks as f64 / hz / wall.elapsed().as_secs_f64();
    assert!(
        cpu < 0.10,
        "the reactor used {:.0}% CPU while accept failed",
        cpu * 100.0
    );
    let warnings = server.log_text().matches("pausing accept").count();
    assert!((1..=3).contains(&warnings), "{warnings} warnings in ~2 s");
    set_soft_nofile(pid, 20_000.min(holdline::budget::nofile_limit().unwrap().1));
    let r = read_response(&mut client);
    assert_eq!(r.body, b"a\n");
    let prom = status_prometheus(&server);
    let emfile: u64 = prom
        .lines()
        .find_map(|l| l.strip_prefix("holdline_accept_emfile_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(emfile >= 5, "accept retried every 100 ms: {emfile}");
}

#[test]
fn two_workers_both_serve_and_shut_down_together() {
    let site = Site::new();
    let mut server = Server::start(
        &site.root(),
        &["--workers", "2", "--status-path", "/status"],
    );
    assert!(server.log_text().contains("with 2 workers"));
    for _ in 0..200 {
        let mut s = server.connect();
        assert_eq!(
            exchange(
                &mut s,
                "GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .status,
            200
        );
    }
    let prom = status_prometheus(&server);
    let per_worker: Vec<u64> = prom
        .lines()
        .filter(|l| l.starts_with("holdline_worker_connections_handled_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(per_worker.len(), 2, "{prom}");
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "both workers serve: {per_worker:?}"
    );
    // The totals add up across workers (published once per loop turn):
    // the 200 connections, the status requests, all handled.
    assert!(wait_until(std::time::Duration::from_secs(2), || {
        let stub = stub_status(&server);
        stub.accepted == stub.handled
            && stub.accepted >= 201
            && stub.requests >= 201
            && stub.active == 1
    }));
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(std::time::Duration::from_secs(5)), Some(0));
}

/// Clients that keep every slot busy with a request every 200 ms are never
/// idle for the 1 s grace. A newcomer is still admitted, once it has waited
/// that grace: then the connection idle longest (if only 200 ms) goes.
#[test]
fn keepalive_hogs_cannot_lock_newcomers_out() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &[
            "--max-connections",
            "4",
            "--max-requests",
            "0",
            "--status-path",
            "/status",
            // Longer than the idle grace: the newcomer waits for a slot
            // rather than being answered without one.
            "--admission-wait",
            "5",
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..4)
        .map(|_| {
            let mut s = server.connect();
            assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut served = 0;
                while !stop.load(Ordering::Relaxed) {
                    // A hog's pace, not a wait: a request every 200 ms
                    // keeps it under the 1 s idle grace.
                    std::thread::sleep(Duration::from_millis(200));
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = [0u8; 512];
                    let ok = s.write_all(get("/a.txt").as_bytes()).is_ok()
                        && matches!(s.read(&mut buf), Ok(n) if n > 0);
                    if !ok {
                        return (served, true);
                    }
                    served += 1;
                }
                (served, false)
            })
        })
        .collect();
    let start = Instant::now();
    let mut newcomer = server.connect();
    newcomer
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut newcomer);
    let waited = start.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        waited >= Duration::from_millis(900) && waited <= Duration::from_secs(1) + TICK + SLACK,
        "the newcomer waited {waited:?}"
    );
    stop.store(true, Ordering::Relaxed);
    let outcomes: Vec<(u32, bool)> = hogs.into_iter().map(|h| h.join().unwrap()).collect();
    let lost = outcomes.iter().filter(|(_, lost)| *lost).count();
    assert_eq!(lost, 1, "exactly one hog made room: {outcomes:?}");
    let prom = status_prometheus(&server);
    assert_eq!(metric(&prom, "holdline_evictions_total{class=\"idle\"}"), 1);
}

/// A response abandoned at --send-timeout ends with an RST, not a FIN
/// behind the unsent data: the kernel drops what the client never read at
/// once, instead of keeping it in an orphaned socket for minutes.
#[test]
fn an_abandoned_response_is_reset() {
    let site = Site::new();
    big_file(&site, "big.bin");
    let server = Server::start(
        &site.root(),
        &["--send-timeout", "0.5", "--status-path", "/status"],
    );
    let mut s = storm_connection(server.addr, Storm::SlowReader).unwrap();
    // The server fills the socket buffers, then gives up on the reader.
    assert!(wait_until(Duration::from_secs(5), || {
        let prom = status_prometheus(&server);
        metric(&prom, "holdline_closes_total{reason=\"send_timeout\"}") == 1
    }));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = 0usize;
    let mut chunk = [0u8; 65536];
    let end = loop {
        match s.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => got += n,
            Err(e) => break Err(e.kind()),
        }
    };
    assert_eq!(
        end,
        Err(std::io::ErrorKind::ConnectionReset),
        "after {got} bytes"
    );
    assert!(got < 64 << 20, "the whole file came: {got} bytes");
}
