//! Reloads under fire: SIGHUPs that change every live option (limits up
//! and down, timeouts, headers, error pages, the access log on, off and
//! moved, its format) and swap the certificate, every 250 ms for a few
//! seconds, while well-formed and hostile clients keep coming (keep-alive
//! and pipelined requests, held chunked bodies, long targets, slow
//! readers, half-done TLS handshakes, full TLS requests). Asserted: no
//! panic (no `internal_error` close, nothing in the log), every
//! well-formed request answered under a configuration in force while it
//! was under way (each generation's responses carry `X-Gen`), every
//! hostile one refused with a clean status or close, and the counters add
//! up once everyone is gone.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the storm lasts.
const STORM: Duration = Duration::from_secs(6);

/// Generation `k`'s configuration file: every live option moves with it.
fn generation(k: u64, logs: &TempDir) -> String {
    let mut text = format!(
        "workers = 2\n\
         status-path = \"/status\"\n\
         header = [\"X-Gen: {k}\"]\n\
         max-uri-bytes = {}\n\
         max-body-bytes = {}\n\
         keepalive-timeout = {}\n\
         header-timeout = {}\n\
         send-timeout = {}\n\
         linger-timeout = {}\n\
         max-requests = {}\n\
         cache-control = \"max-age={k}\"\n\
         log-format = \"{}\"\n",
        [4096, 128][k as usize % 2],
        [65536, 16, 1024][k as usize % 3],
        5 + k % 3,
        4 + k % 2,
        10 + k % 5,
        1 + k % 2,
        [0, 1000][k as usize % 2],
        ["combined", "json", "common"][k as usize % 3],
    );
    if k.is_multiple_of(2) {
        text.push_str("error-page = [\"404=/404.html\"]\n");
    }
    if k % 2 == 1 {
        text.push_str("dotfiles = true\nlisting = true\n");
    }
    match k % 3 {
        0 => {}
        1 => text.push_str(&format!(
            "access-log = \"{}\"\n",
            logs.path().join("a.log").display()
        )),
        _ => text.push_str(&format!(
            "access-log = \"{}\"\n",
            logs.path().join("b.log").display()
        )),
    }
    text
}

/// The generations a response may carry: the one applied when its
/// request was sent (one less: the other worker may not have taken it
/// yet) up to the last one signalled when it was answered.
struct Generations {
    applied: AtomicU64,
    signalled: AtomicU64,
}

impl Generations {
    fn check(&self, low: u64, response: &Response, what: &str) {
        let high = self.signalled.load(Ordering::SeqCst);
        let generation: u64 = response
            .header("X-Gen")
            .unwrap_or_else(|| panic!("{what}: no X-Gen in {}", response.head))
            .parse()
            .unwrap();
        assert!(
            low.saturating_sub(1) <= generation && generation <= high,
            "{what}: X-Gen {generation} outside {}..={high}",
            low.saturating_sub(1)
        );
    }
}

/// Runs `client` in a loop on its own thread until `stop`; returns how
/// many rounds it made.
fn spawn_loop(
    stop: &Arc<AtomicBool>,
    mut client: impl FnMut() + Send + 'static,
) -> std::thread::JoinHandle<usize> {
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) {
            client();
            rounds += 1;
        }
        rounds
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn reloads_under_fire_lose_nothing_and_panic_nowhere() {
    let site = Site::new();
    site.dir.write("www/404.html", "<h1>not here</h1>\n");
    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 253) as u8).collect();
    site.dir.write("www/big.bin", &big);
    let logs = TempDir::new("stress-logs");
    let config_dir = TempDir::new("stress-config");
    let config = config_dir.path().join("holdline.toml");
    std::fs::write(&config, generation(0, &logs)).unwrap();
    let pki = Pki::new();
    // Two certificates for the same names, swapped on every reload.
    pki.leaf("one", "localhost", &["localhost", "127.0.0.1"]);
    pki.leaf("two", "localhost", &["localhost", "127.0.0.1"]);
    let copy_leaf = |from: &str| {
        std::fs::copy(pki.cert(from), pki.cert("live")).unwrap();
        std::fs::copy(pki.key(from), pki.key("live")).unwrap();
    };
    copy_leaf("one");
    let (cert, key) = (pki.cert("live"), pki.key("live"));
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    let server = Arc::new(Server::start(&site.root(), &args));
    let (addr, tls) = (server.addr, tls_addr(&server));
    let gens = Arc::new(Generations {
        applied: AtomicU64::new(0),
        signalled: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();

    // Keep-alive clients: a connection each, a request after another.
    for _ in 0..3 {
        let (gens, requests) = (Arc::clone(&gens), Arc::clone(&requests));
        let mut s = connect(addr);
        threads.push(spawn_loop(&stop, move || {
            let low = gens.applied.load(Ordering::SeqCst);
            s.write_all(get("/hello.txt").as_bytes()).unwrap();
            let r = read_response(&mut s);
            assert_eq!(
                (r.status, &r.body[..]),
                (200, &b"hello\n"[..]),
                "{}",
                r.head
            );
            gens.check(low, &r, "keep-alive");
            requests.fetch_add(1, Ordering::Relaxed);
            if r.header("Connection") == Some("close") {
                s = connect(addr);
            }
        }));
    }
    // Pipelined bursts, answered in order, each under one generation.
    {
        let (gens, requests) = (Arc::clone(&gens), Arc::clone(&requests));
        threads.push(spawn_loop(&stop, move || {
            let mut s = connect(addr);
            let low = gens.applied.load(Ordering::SeqCst);
            let burst: String = ["/a.txt", "/b.txt", "/c.txt", "/missing"]
                .iter()
                .map(|p| get(p))
                .collect();
            s.write_all(burst.as_bytes()).unwrap();
            let mut buf = Vec::new();
            for (status, body) in [(200, &b"a\n"[..]), (200, b"bb\n"), (200, b"ccc\n")] {
                let r = read_response_after(&mut s, &mut buf, "GET");
                assert_eq!((r.status, &r.body[..]), (status, body), "{}", r.head);
                gens.check(low, &r, "pipelined");
            }
            // The 404: the error page or the text, by generation.
            let r = read_response_after(&mut s, &mut buf, "GET");
            assert_eq!(r.status, 404, "{}", r.head);
            gens.check(low, &r, "pipelined 404");
            requests.fetch_add(4, Ordering::Relaxed);
        }));
    }
    // Hostile: chunked bodies trickled across reloads, their target too
    // long for every other generation's --max-uri-bytes (a POST is refused
    // with 405 once its body is in, 413 past the body limit in force when
    // its head came, 414 for a target too long then: a head held across a
    // reload that tightens the limit keeps the limit it was accepted
    // under, which took the worker down once), and targets whose length is
    // legal in one generation and not the next (404 or 414). A clean
    // status, then a clean close.
    {
        threads.push(spawn_loop(&stop, move || {
            let mut s = connect(addr);
            let head = format!(
                "POST /upload-{} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                "y".repeat(200)
            );
            s.write_all(head.as_bytes()).unwrap();
            for _ in 0..3 {
                let _ = s.write_all(b"8\r\n01234567\r\n");
                std::thread::sleep(Duration::from_millis(40)); // the trickle itself
            }
            let _ = s.write_all(b"0\r\n\r\n");
            let r = read_response(&mut s);
            assert!(matches!(r.status, 405 | 413 | 414), "{}", r.head);
        }));
        threads.push(spawn_loop(&stop, move || {
            let mut s = connect(addr);
            let target = format!("/{}", "x".repeat(600));
            s.write_all(get(&target).as_bytes()).unwrap();
            let r = read_response(&mut s);
            assert!(matches!(r.status, 404 | 414), "{}", r.head);
        }));
    }
    // A slow reader of a large file: every byte, whatever reloads do to
    // the send timeout (never below 10 s; it reads every 50 ms).
    {
        let big = big.clone();
        threads.push(spawn_loop(&stop, move || {
            let mut s = connect_small_window(addr, Duration::from_secs(2)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(get("/big.bin").as_bytes()).unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 256 * 1024];
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "cut at {}", got.len());
                got.extend_from_slice(&chunk[..n]);
                std::thread::sleep(Duration::from_millis(50)); // the slowness itself
            }
            let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let sent = &got[end..];
            assert_eq!(sent, &big[..sent.len()], "the bytes so far");
        }));
    }
    // Half-done TLS handshakes: a ClientHello's start, then nothing; and
    // full TLS requests across certificate swaps.
    threads.push(spawn_loop(&stop, move || {
        let mut s = connect(tls);
        let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]);
        std::thread::sleep(Duration::from_millis(100)); // held half done
    }));
    {
        let client = pki.client();
        let (gens, requests) = (Arc::clone(&gens), Arc::clone(&requests));
        threads.push(spawn_loop(&stop, move || {
            let tcp = connect(tls);
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(Arc::clone(&client), name).unwrap();
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            let low = gens.applied.load(Ordering::SeqCst);
            stream.write_all(get("/a.txt").as_bytes()).unwrap();
            stream.flush().unwrap();
            let (head, body) = read_framed(&mut stream, &mut Vec::new());
            assert_eq!(body, b"a\n", "{head}");
            let gen_line = head
                .lines()
                .find_map(|l| l.strip_prefix("X-Gen: "))
                .unwrap();
            let r = Response {
                status: 200,
                head: head.clone(),
                headers: vec![("X-Gen".into(), gen_line.into())],
                body,
            };
            gens.check(low, &r, "tls");
            requests.fetch_add(1, Ordering::Relaxed);
        }));
    }

    // The reloads.
    let started = Instant::now();
    let mut k = 0;
    while started.elapsed() < STORM {
        k += 1;
        std::fs::write(&config, generation(k, &logs)).unwrap();
        copy_leaf(["one", "two"][k as usize % 2]);
        gens.signalled.store(k, Ordering::SeqCst);
        let seen = server.log_text().matches("SIGHUP: reloaded ").count();
        server.signal(libc::SIGHUP);
        // Each reload says so twice: the file, and the certificate.
        assert!(
            wait_until(Duration::from_secs(5), || {
                server.log_text().matches("SIGHUP: reloaded ").count() >= seen + 2
            }),
            "reload {k} never done"
        );
        gens.applied.store(k, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(250)); // the pace of reloads
    }
    stop.store(true, Ordering::Relaxed);
    let rounds: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();

    // Still serving, with the last generation.
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/hello.txt"));
    assert_eq!(r.header("X-Gen"), Some(k.to_string().as_str()));
    drop(s);
    let log = server.log_text();
    assert!(!log.contains("panic"), "{log}");
    assert!(!log.contains("keeping the running configuration"), "{log}");
    // Counters add up: once every client is gone, every accepted
    // connection was closed for exactly one reason but the one asking.
    assert!(
        wait_until(Duration::from_secs(15), || {
            status_json(&*server)["connections"]["total"] == 1
        }),
        "{}",
        status_json(&*server)
    );
    let status = status_json(&*server);
    assert_eq!(status["closes"]["internal_error"], 0, "{status}");
    let closes: u64 = status["closes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let accepted = status["accepted"].as_u64().unwrap();
    assert_eq!(closes + 1, accepted, "{status}");
    let answered = requests.load(Ordering::Relaxed) as u64;
    assert!(status["requests"].as_u64().unwrap() >= answered, "{status}");
    eprintln!(
        "reload stress: {k} reloads in {:?}, {rounds} client rounds, {answered} well-formed requests answered, {accepted} connections, 0 failures",
        started.elapsed()
    );
}
