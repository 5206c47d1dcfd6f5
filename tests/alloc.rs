//! No heap allocation per request in the steady state: the server runs
//! in this process on its own thread, and a counting global allocator
//! counts the allocations made on that thread only.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;

struct Counting;

thread_local! {
    static ON_SERVER: Cell<bool> = const { Cell::new(false) };
}
static SERVER_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// The counter is every server thread's: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON_SERVER.try_with(Cell::get).unwrap_or(false) {
            SERVER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON_SERVER.try_with(Cell::get).unwrap_or(false) {
            SERVER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Reads one response; returns whether it was in a content coding.
fn read_one(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let (head, _) = read_framed(s, buf);
    head.to_ascii_lowercase().contains("\r\ncontent-encoding:")
}

#[test]
fn steady_state_requests_do_not_allocate() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("alloc");
    dir.write("1k.txt", vec![b'x'; 1024]);
    dir.write("sub/index.html", "<p>hi</p>");
    // Compressed on the fly: one small enough to go with the head, and
    // one (random text: ~3:4) written after it from the cache's bytes.
    let script: String = (0..200)
        .map(|i| format!("function f{i}(a) {{ return a + {i}; }}\n"))
        .collect();
    dir.write("app.js", script);
    let mut x = 1u64;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(x >> 58) as usize]
        })
        .collect();
    dir.write("noise.txt", noise);
    let config = holdline::config::Config::with(|c| {
        c.live.site.root = dir.path().to_path_buf();
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.live.max_requests = 0;
        // --header lines cost no allocation either.
        c.live.site.headers = vec!["Strict-Transport-Security: max-age=63072000".into()];
        // Lines are formatted into recycled buffers and written by a
        // thread of their own (not counted: it is not the reactor's).
        c.live.access_log = Some(dir.path().join("access.log"));
        c.live.log_format = holdline::config::LogFormat::Json;
        // Where the test sees that the compressor is done.
        c.live.status_path = Some("/status".into());
    });
    let server = InProcess::start(config, || ON_SERVER.with(|c| c.set(true)));
    let mut s = server.connect();
    let br_script = get_with("/app.js", "Accept-Encoding: gzip, br\r\n");
    let gzip_noise = get_with("/noise.txt", "Accept-Encoding: gzip\r\n");
    let requests = [
        get("/1k.txt"),
        get_with("/sub/", "Accept-Encoding: gzip, br\r\n"),
        get("/missing"),
        get_with(
            "/1k.txt",
            "If-None-Match: \"nope\"\r\nRange: bytes=0-99\r\n",
        ),
        br_script.clone(),
        gzip_noise.clone(),
    ];
    let mut buf = Vec::new();
    // The compressor's results are in the cache before counting starts.
    for request in [&br_script, &gzip_noise] {
        let compressed = wait_until(Duration::from_secs(60), || {
            s.write_all(request.as_bytes()).unwrap();
            read_one(&mut s, &mut buf)
        });
        assert!(compressed, "never compressed");
    }
    // Every (file, coding) the requests accept goes to the compressor
    // once: app.js in br and gzip, noise.txt in gzip, sub/index.html in br
    // and gzip (too small to gain: remembered as such). All five are back
    // before the warm-up, since putting one in the cache allocates; the
    // compressor runs at idle priority and may finish late on a busy
    // machine.
    s.write_all(requests[1].as_bytes()).unwrap();
    read_one(&mut s, &mut buf);
    assert!(
        wait_until(Duration::from_secs(60), || {
            status_json(&server)["compression"]["compressed"] == 5
        }),
        "the compressor did not finish the five: {}",
        status_json(&server)["compression"]
    );
    let mut round = |n: usize| {
        for i in 0..n {
            s.write_all(requests[i % requests.len()].as_bytes())
                .unwrap();
            read_one(&mut s, &mut buf);
        }
        // And a pipelined burst of all four.
        let burst: String = requests.concat();
        s.write_all(burst.as_bytes()).unwrap();
        for _ in 0..requests.len() {
            read_one(&mut s, &mut buf);
        }
    };
    round(2_000); // warm up: pools, cache, wheel slots reach their size
    let before = SERVER_ALLOCS.load(Ordering::Relaxed);
    // The counter does count: start-up and warm-up allocated (buffers,
    // the pool, cache entries).
    assert!(
        before > 10,
        "only {before} allocations counted during warm-up"
    );
    round(10_000);
    let after = SERVER_ALLOCS.load(Ordering::Relaxed);
    assert_eq!(
        after - before,
        0,
        "{} allocations in 10,000 steady-state requests",
        after - before
    );
}

/// Sites, path rules and per-client limits cost no allocation per
/// request either: the host
/// table is scanned, the path decoded, matched and its header lines
/// edited in buffers the responder keeps.
#[test]
fn sites_and_rules_do_not_allocate_per_request() {
    use holdline::config::{SiteOptions, rules::parse};
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("alloc-sites");
    dir.write("main/1k.txt", vec![b'x'; 1024]);
    dir.write("a/assets/app.css", "body{}\n");
    dir.write("a/about.html", "<h1>about</h1>\n");
    let rules = |lines: &[&str]| lines.iter().map(|l| parse(l).unwrap()).collect::<Vec<_>>();
    let config = holdline::config::Config::with(|c| {
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.fixed.compress = false;
        c.live.max_requests = 0;
        c.live.site.root = dir.path().join("main");
        // Rate buckets live in a table reserved at start.
        c.live.client_rate = 1e9;
        c.live.max_client_connections = 100;
        c.live.site.headers = vec!["X-Frame-Options: DENY".into()];
        c.live.site.rules = rules(&["*.txt header X-Text: 1"]);
        c.live.sites = vec![SiteOptions {
            hosts: vec!["a.test".into(), "*.a.test".into()],
            root: dir.path().join("a"),
            headers: vec!["X-Frame-Options: DENY".into()],
            rules: rules(&[
                "/assets/** header Cache-Control: public, max-age=31536000, immutable",
                "/assets/** remove-header X-Frame-Options",
                "*.html header Cache-Control: no-cache",
                "/old/** redirect 301 /new/{rest}",
                "/about rewrite /about.html",
                "/.git/** deny 404",
            ]),
            ..SiteOptions::default()
        }];
    });
    let server = InProcess::start(config, || ON_SERVER.with(|c| c.set(true)));
    let mut s = server.connect();
    let ask = |host: &str, target: &str| format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let requests = [
        ask("test", "/1k.txt"),
        ask("a.test", "/assets/app.css"),
        ask("www.A.test:8080", "/about"),
        ask("a.test", "/old/x/y.html?q=1"),
        ask("a.test", "/.git/config"),
        ask("a.test", "/missing.html"),
        ask("other.test", "/1k.txt"),
    ];
    let mut buf = Vec::new();
    let mut round = |n: usize| {
        for i in 0..n {
            s.write_all(requests[i % requests.len()].as_bytes())
                .unwrap();
            read_one(&mut s, &mut buf);
        }
    };
    round(2_000);
    let before = SERVER_ALLOCS.load(Ordering::Relaxed);
    round(10_000);
    let after = SERVER_ALLOCS.load(Ordering::Relaxed);
    assert_eq!(
        after - before,
        0,
        "{} allocations in 10,000 requests to sites with rules",
        after - before
    );
}
