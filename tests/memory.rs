//! The heap bound holds under hostile clients: the server runs in this
//! process on its own thread, a counting global allocator tracks the bytes
//! that thread holds, and clients that never read (slow multi-range
//! readers, pipeliners, listing readers) try to make it hold more than
//! `holdline::memory::MemoryBound` allows.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use holdline::memory::MemoryBound;

struct Counting;

thread_local! {
    static ON_SERVER: Cell<bool> = const { Cell::new(false) };
}
/// Bytes allocated on the server thread and not yet freed, and the most
/// there ever were.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn on_server() -> bool {
    ON_SERVER.try_with(Cell::get).unwrap_or(false)
}

fn grew(bytes: isize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on_server() {
            grew(layout.size() as isize);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if on_server() {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on_server() {
            grew(new_size as isize - layout.size() as isize);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests here read one process-wide counter: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts a server on its own thread, counting its heap.
fn start_counted(config: holdline::config::Config) -> InProcess {
    InProcess::start(config, || ON_SERVER.with(|c| c.set(true)))
}

/// A slow reader of the server at `addr`.
fn small_window(addr: std::net::SocketAddr) -> TcpStream {
    connect_small_window(addr, Duration::from_secs(5)).unwrap()
}

/// An idle keep-alive connection holds no buffers: they go back to the
/// pool when it goes idle, so a hundred connections that each made one
/// request, one after another, share one set of buffers (README's bytes
/// per idle connection rest on this).
#[test]
fn idle_connections_hold_no_buffers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("idle");
    dir.write("a.txt", "a\n");
    let server = start_counted(holdline::config::Config::with(|c| {
        c.live.site.root = dir.path().to_path_buf();
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
    }));
    let ask = |s: &mut TcpStream| assert_eq!(exchange(s, &get("/a.txt")).body, b"a\n");
    // Warm up: the pool's first set, the cache, the date.
    let mut first = server.connect();
    ask(&mut first);
    let baseline = LIVE.load(Ordering::Relaxed);
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = server.connect();
            ask(&mut s);
            s
        })
        .collect();
    ask(&mut first); // every earlier answer has settled by now
    let grown = LIVE.load(Ordering::Relaxed) - baseline;
    let per_connection = grown / 100;
    eprintln!("100 idle connections grew the heap by {grown} bytes");
    // A set of buffers is over 16 KiB (--max-header-bytes alone); an idle
    // connection costs a slab entry and its timer, reserved up front.
    assert!(
        per_connection < 1024,
        "{per_connection} bytes of heap per idle connection"
    );
    drop(idle);
}

#[test]
fn hostile_clients_cannot_push_the_heap_past_its_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("memory");
    sparse_file(&dir, "big.bin", 16 << 20);
    dir.write("small.txt", vec![b's'; 16 * 1024]);
    // A directory whose listing would be megabytes if it were not capped.
    for i in 0..1500 {
        dir.write(&format!("many/{i:04}-{}", "x".repeat(200)), "");
    }
    let mut config = hostile_config(&dir);
    config.live.site.listing = true;
    let bound = MemoryBound::compute(&config, 64);
    let server = start_counted(config);
    let addr = server.http_addr();
    // Warm up (pool, cache, date), then take the baseline.
    for path in ["/small.txt", "/many/", "/big.bin"] {
        let mut s = server.connect();
        exchange(&mut s, &get_with(path, "Range: bytes=0-9\r\n"));
    }
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);

    let mut held = Vec::new();
    // 24 slow readers of four 1 MiB ranges each (a 4 MiB multipart body).
    for _ in 0..24 {
        let mut s = small_window(addr);
        s.write_all(four_ranges().as_bytes()).unwrap();
        held.push(s);
    }
    // 12 listing readers that never read (a capped listing fits in the
    // kernel's socket buffers: these pass through Writing to Idle).
    for _ in 0..12 {
        let mut s = small_window(addr);
        s.write_all(get("/many/").as_bytes()).unwrap();
        held.push(s);
    }
    // 12 pipeliners of 16 KiB files, writing until the server stops
    // reading them.
    let request = get("/small.txt");
    for _ in 0..12 {
        let mut s = small_window(addr);
        s.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut sent = 0usize;
        while Instant::now() < deadline && sent < 10_000 {
            match s.write(request.as_bytes()) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        held.push(s);
    }
    let grown = peak_growth_within_bound(&server, baseline, &bound, 48, "clients");
    // And per connection, well under what whole multipart bodies (4 MiB
    // each) or whole listings would cost.
    assert!(grown / 48 <= bound.tables_per_connection + bound.work_per_connection);
    drop(held);
}

/// What the hostile clients face: 64 connections at most, a small file
/// cache, nothing timed out or evicted for a minute, and the status page
/// to watch them on.
fn hostile_config(dir: &TempDir) -> holdline::config::Config {
    holdline::config::Config::with(|c| {
        c.live.site.root = dir.path().to_path_buf();
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.fixed.max_connections = Some(64);
        // Pipeliners keep going (no in-band close after 100 requests).
        c.live.max_requests = 0;
        c.fixed.file_cache_entries = 16;
        c.live.status_path = Some("/status".into());
        c.live.send_timeout = Duration::from_secs(60);
        c.live.evict_stalled_after = Duration::from_secs(60);
    })
}

/// Once 36 of `clients` hostile clients are stuck in Writing: how far
/// the heap grew at its peak past `baseline`, asserted to be what working
/// connections hold (16 KiB each at least) and no more than `bound`.
fn peak_growth_within_bound(
    server: &InProcess,
    baseline: isize,
    bound: &MemoryBound,
    clients: usize,
    kind: &str,
) -> usize {
    let mut writing = 0;
    assert!(
        wait_until(Duration::from_secs(10), || {
            writing = stub_status(server).writing;
            writing >= 36
        }),
        "the hostile {kind} should be stuck in Writing ({writing})"
    );
    let grown = (PEAK.load(Ordering::Relaxed) - baseline) as usize;
    eprintln!(
        "heap grew by {} KiB under {clients} hostile {kind}; bound for 64 connections: {} KiB",
        grown / 1024,
        bound.total() / 1024
    );
    // The counter counts: working connections hold their buffers.
    assert!(grown >= clients * 16 * 1024, "only {grown} bytes counted");
    assert!(
        grown <= bound.total(),
        "the heap grew by {grown} bytes, past the bound of {} ({bound:?})",
        bound.total()
    );
    grown
}

/// A file of `len` zero bytes that takes no disk space.
fn sparse_file(dir: &TempDir, rel: &str, len: u64) {
    std::fs::File::create(dir.path().join(rel))
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// A slow reader's request: four 1 MiB ranges, a 4 MiB multipart body.
fn four_ranges() -> String {
    get_with(
        "/big.bin",
        "Range: bytes=0-1048575,2097152-3145727,4194304-5242879,6291456-7340031\r\n",
    )
}

/// A self-signed certificate for localhost in `dir` (cert.pem, key.pem),
/// as the server's only pair, and a rustls client that trusts it.
fn tls_pair(
    dir: &std::path::Path,
) -> (
    Vec<holdline::tls::CertPaths>,
    std::sync::Arc<rustls::ClientConfig>,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let pair = holdline::tls::CertPaths {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    (vec![pair], std::sync::Arc::new(client))
}

/// The same bound with TLS: the formula adds rustls's buffers per
/// connection and the session cache, and TLS clients that never read
/// (multi-range readers, pipeliners) stay under it.
#[test]
fn hostile_tls_clients_cannot_push_the_heap_past_its_bound() {
    use std::sync::Arc;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("memory-tls");
    sparse_file(&dir, "big.bin", 16 << 20);
    dir.write("small.txt", vec![b's'; 16 * 1024]);
    let (tls_certs, client) = tls_pair(dir.path());
    let mut config = hostile_config(&dir);
    config.fixed.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.fixed.tls_certs = tls_certs;
    let bound = MemoryBound::compute(&config, 64);
    let server = start_counted(config);
    let tls = server.addrs[1];
    // A TLS client over a small-window socket, handshake done.
    let connect = || {
        let mut sock = small_window(tls);
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::clone(&client), name).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        (conn, sock)
    };
    // Warm up (pool, cache, date, a session), then take the baseline.
    {
        let (mut conn, mut sock) = connect();
        conn.writer()
            .write_all(get_with("/small.txt", "Connection: close\r\n").as_bytes())
            .unwrap();
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
    }
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let mut held = Vec::new();
    // 24 slow TLS readers of four 1 MiB ranges each.
    for _ in 0..24 {
        let (mut conn, mut sock) = connect();
        conn.writer().write_all(four_ranges().as_bytes()).unwrap();
        while conn.wants_write() {
            conn.write_tls(&mut sock).unwrap();
        }
        held.push((conn, sock));
    }
    // 12 TLS pipeliners of 16 KiB files, writing until the server stops
    // reading them.
    let request = get("/small.txt");
    for _ in 0..12 {
        let (mut conn, mut sock) = connect();
        sock.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        'fill: while Instant::now() < deadline {
            conn.writer().write_all(request.as_bytes()).unwrap();
            while conn.wants_write() {
                match conn.write_tls(&mut sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break 'fill,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        held.push((conn, sock));
    }
    let grown = peak_growth_within_bound(&server, baseline, &bound, 36, "TLS clients");
    assert!(
        grown / 36
            <= bound.tables_per_connection + bound.work_per_connection + bound.tls_per_connection
    );
    drop(held);
}

/// What an idle TLS keep-alive connection keeps on the heap: rustls's
/// connection state only; its record buffers went back to the pool
/// (README's HTTPS section and bench.sh's scenario 11 rest on this).
#[test]
fn idle_tls_connections_hold_their_rustls_state_only() {
    use std::sync::Arc;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("idle-tls");
    dir.write("a.txt", "a\n");
    let (tls_certs, client) = tls_pair(dir.path());
    let server = start_counted(holdline::config::Config::with(|c| {
        c.live.site.root = dir.path().to_path_buf();
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.fixed.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.fixed.tls_certs = tls_certs;
    }));
    let open = || {
        let mut sock = TcpStream::connect(server.addrs[1]).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::clone(&client), name).unwrap();
        {
            let mut stream = rustls::Stream::new(&mut conn, &mut sock);
            stream.write_all(get("/a.txt").as_bytes()).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"\r\n\r\na\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
        }
        (conn, sock)
    };
    // Warm up: the pool, the cache, the session cache, the date.
    let first = open();
    let baseline = LIVE.load(Ordering::Relaxed);
    let idle: Vec<_> = (0..100).map(|_| open()).collect();
    // Every earlier answer has settled once a new one is answered.
    let last = open();
    let grown = LIVE.load(Ordering::Relaxed) - baseline;
    let per_connection = grown / 101;
    eprintln!("101 idle TLS connections grew the heap by {grown} bytes ({per_connection} each)");
    assert!(
        per_connection < 3 * 1024,
        "{per_connection} bytes of heap per idle TLS connection"
    );
    drop((first, idle, last));
}
