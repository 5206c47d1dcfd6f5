//! No heap allocation per request in the steady state: the server runs
//! in this process on its own thread, and a counting global allocator
//! counts the allocations made on that thread only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

thread_local! {
    static ON_SERVER: Cell<bool> = const { Cell::new(false) };
}
static SERVER_ALLOCS: AtomicU64 = AtomicU64::new(0);

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

/// Reads one response whose body is `Content-Length` long (no HEAD here);
/// returns whether it was in a content coding.
fn read_one(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])
                .unwrap()
                .to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse().unwrap());
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                return head.contains("content-encoding:");
            }
        }
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn steady_state_requests_do_not_allocate() {
    let dir = std::env::temp_dir().join(format!("holdline-alloc-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("1k.txt"), vec![b'x'; 1024]).unwrap();
    // Worth compressing, so that the wait below can see when it is.
    let index: String = (0..40).map(|i| format!("<p>item {i}</p>\n")).collect();
    std::fs::write(dir.join("sub/index.html"), index).unwrap();
    // Compressed on the fly: one small enough to go with the head, and
    // one (random text: ~3:4) written after it from the cache's bytes.
    let script: String = (0..200)
        .map(|i| format!("function f{i}(a) {{ return a + {i}; }}\n"))
        .collect();
    std::fs::write(dir.join("app.js"), script).unwrap();
    let mut x = 1u64;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(x >> 58) as usize]
        })
        .collect();
    std::fs::write(dir.join("noise.txt"), noise).unwrap();
    let config = holdline::config::Config::with(|c| {
        c.fixed.root = dir.clone();
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.live.max_requests = 0;
        // --header lines cost no allocation either.
        c.live.headers = vec!["Strict-Transport-Security: max-age=63072000".into()];
        // Lines are formatted into recycled buffers and written by a
        // thread of their own (not counted: it is not the reactor's).
        c.live.access_log = Some(dir.join("access.log"));
        c.live.log_format = holdline::config::LogFormat::Json;
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut server = holdline::reactor::Server::bind(config).unwrap();
        tx.send(server.local_addrs()[0]).unwrap();
        ON_SERVER.with(|c| c.set(true));
        let _ = server.run();
    });
    let addr = rx.recv().unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let br_script = &b"GET /app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n\r\n"[..];
    let gzip_noise = &b"GET /noise.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"[..];
    let requests: [&[u8]; 6] = [
        b"GET /1k.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /sub/ HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n\r\n",
        b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /1k.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"nope\"\r\nRange: bytes=0-99\r\n\r\n",
        br_script,
        gzip_noise,
    ];
    let mut buf = Vec::new();
    // The compressor's results are in the cache before counting starts:
    // every file asked for in a coding comes back in each coding its
    // requests accept (the compressor makes all of them, under SCHED_IDLE:
    // on a busy machine, late).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let waits: [&[u8]; 5] = [
        br_script,
        b"GET /app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
        gzip_noise,
        b"GET /sub/ HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n",
        b"GET /sub/ HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
    ];
    for request in waits {
        loop {
            s.write_all(request).unwrap();
            if read_one(&mut s, &mut buf) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never compressed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let mut round = |n: usize| {
        for i in 0..n {
            s.write_all(requests[i % requests.len()]).unwrap();
            read_one(&mut s, &mut buf);
        }
        // And a pipelined burst of all four.
        let burst: Vec<u8> = requests.concat();
        s.write_all(&burst).unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
}
