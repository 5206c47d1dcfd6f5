//! The heap bound holds under hostile clients: the server runs in this
//! process on its own thread, a counting global allocator tracks the bytes
//! that thread holds, and clients that never read (slow multi-range
//! readers, pipeliners, listing readers) try to make it hold more than
//! `holdline::memory::MemoryBound` allows.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

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

/// A client socket with a 4 KiB receive buffer, so that what it does not
/// read stays in the server.
fn small_window(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    socket.into()
}

/// The stub_status `Writing:` figure.
fn writing(addr: SocketAddr) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split("Writing: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The tests here read one process-wide counter: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts a server on its own thread, counting its heap; returns its
/// address.
fn start_counted(config: holdline::config::Config) -> SocketAddr {
    start_counted_all(config)[0]
}

/// [`start_counted`], with every listener's address (plain, then TLS).
fn start_counted_all(config: holdline::config::Config) -> Vec<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut server = holdline::reactor::Server::bind(config).unwrap();
        tx.send(server.local_addrs()).unwrap();
        ON_SERVER.with(|c| c.set(true));
        let _ = server.run();
    });
    rx.recv().unwrap()
}

/// An idle keep-alive connection holds no buffers: they go back to the
/// pool when it goes idle, so a hundred connections that each made one
/// request, one after another, share one set of buffers (README's bytes
/// per idle connection rest on this).
#[test]
fn idle_connections_hold_no_buffers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("holdline-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "a\n").unwrap();
    let addr = start_counted(holdline::config::Config::with(|c| {
        c.fixed.root = dir.clone();
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
    }));
    let request = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let ask = |s: &mut TcpStream| {
        s.write_all(request).unwrap();
        let mut buf = [0u8; 512];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].ends_with(b"a\n"));
    };
    // Warm up: the pool's first set, the cache, the date.
    let mut first = TcpStream::connect(addr).unwrap();
    ask(&mut first);
    let baseline = LIVE.load(Ordering::Relaxed);
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_clients_cannot_push_the_heap_past_its_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("holdline-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("many")).unwrap();
    std::fs::File::create(dir.join("big.bin"))
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    std::fs::write(dir.join("small.txt"), vec![b's'; 16 * 1024]).unwrap();
    // A directory whose listing would be megabytes if it were not capped.
    for i in 0..1500 {
        std::fs::write(
            dir.join("many").join(format!("{i:04}-{}", "x".repeat(200))),
            "",
        )
        .unwrap();
    }
    let config = holdline::config::Config::with(|c| {
        c.fixed.root = dir.clone();
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.fixed.max_connections = Some(64);
        // Pipeliners keep going (no in-band close after 100 requests).
        c.live.max_requests = 0;
        c.fixed.file_cache_entries = 16;
        c.live.listing = true;
        c.live.status_path = Some("/status".into());
        c.live.send_timeout = Duration::from_secs(60);
        c.live.evict_stalled_after = Duration::from_secs(60);
    });
    let bound = MemoryBound::compute(&config, 64);
    let addr = start_counted(config);
    // Warm up (pool, cache, date), then take the baseline.
    for path in ["/small.txt", "/many/", "/big.bin"] {
        let mut s = TcpStream::connect(addr).unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).unwrap();
    }
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);

    let mut held = Vec::new();
    // 24 slow readers of four 1 MiB ranges each (a 4 MiB multipart body).
    for _ in 0..24 {
        let mut s = small_window(addr);
        s.write_all(
            b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\
              Range: bytes=0-1048575,2097152-3145727,4194304-5242879,6291456-7340031\r\n\r\n",
        )
        .unwrap();
        held.push(s);
    }
    // 12 listing readers that never read (a capped listing fits in the
    // kernel's socket buffers: these pass through Writing to Idle).
    for _ in 0..12 {
        let mut s = small_window(addr);
        s.write_all(b"GET /many/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        held.push(s);
    }
    // 12 pipeliners of 16 KiB files, writing until the server stops
    // reading them.
    let request = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..12 {
        let mut s = small_window(addr);
        s.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut sent = 0usize;
        while Instant::now() < deadline && sent < 10_000 {
            match s.write(request) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        held.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while writing(addr) < 36 {
        assert!(
            Instant::now() < deadline,
            "the multi-range readers and pipeliners should be stuck in Writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let grown = (PEAK.load(Ordering::Relaxed) - baseline) as usize;
    eprintln!(
        "heap grew by {} KiB under 48 hostile clients; bound for 64 connections: {} KiB",
        grown / 1024,
        bound.total() / 1024
    );
    // The counter counts: 48 working connections hold their buffers.
    assert!(grown >= 48 * 16 * 1024, "only {grown} bytes counted");
    assert!(
        grown <= bound.total(),
        "the heap grew by {grown} bytes, past the bound of {} ({bound:?})",
        bound.total()
    );
    // And per connection, well under what whole multipart bodies (4 MiB
    // each) or whole listings would cost.
    assert!(grown / 48 <= bound.tables_per_connection + bound.work_per_connection);
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
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
    let dir = std::env::temp_dir().join(format!("holdline-memory-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::File::create(dir.join("big.bin"))
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    std::fs::write(dir.join("small.txt"), vec![b's'; 16 * 1024]).unwrap();
    let (tls_certs, client) = tls_pair(&dir);
    let config = holdline::config::Config::with(|c| {
        c.fixed.root = dir.clone();
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.fixed.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.fixed.tls_certs = tls_certs;
        c.fixed.max_connections = Some(64);
        c.live.max_requests = 0;
        c.fixed.file_cache_entries = 16;
        c.live.status_path = Some("/status".into());
        c.live.send_timeout = Duration::from_secs(60);
        c.live.evict_stalled_after = Duration::from_secs(60);
    });
    let bound = MemoryBound::compute(&config, 64);
    let addrs = start_counted_all(config);
    let (plain, tls) = (addrs[0], addrs[1]);
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
            .write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
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
        conn.writer()
            .write_all(
                b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\
                  Range: bytes=0-1048575,2097152-3145727,4194304-5242879,6291456-7340031\r\n\r\n",
            )
            .unwrap();
        while conn.wants_write() {
            conn.write_tls(&mut sock).unwrap();
        }
        held.push((conn, sock));
    }
    // 12 TLS pipeliners of 16 KiB files, writing until the server stops
    // reading them.
    for _ in 0..12 {
        let (mut conn, mut sock) = connect();
        sock.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        'fill: while Instant::now() < deadline {
            conn.writer()
                .write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while writing(plain) < 36 {
        assert!(
            Instant::now() < deadline,
            "the TLS readers and pipeliners should be stuck in Writing ({})",
            writing(plain)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let grown = (PEAK.load(Ordering::Relaxed) - baseline) as usize;
    eprintln!(
        "heap grew by {} KiB under 36 hostile TLS clients; bound for 64 connections: {} KiB",
        grown / 1024,
        bound.total() / 1024
    );
    assert!(grown >= 36 * 16 * 1024, "only {grown} bytes counted");
    assert!(
        grown <= bound.total(),
        "the heap grew by {grown} bytes, past the bound of {} ({bound:?})",
        bound.total()
    );
    assert!(
        grown / 36
            <= bound.tables_per_connection + bound.work_per_connection + bound.tls_per_connection
    );
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What an idle TLS keep-alive connection keeps on the heap: rustls's
/// connection state only; its record buffers went back to the pool
/// (README's HTTPS section and bench.sh's scenario 11 rest on this).
#[test]
fn idle_tls_connections_hold_their_rustls_state_only() {
    use std::sync::Arc;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("holdline-idle-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "a\n").unwrap();
    let (tls_certs, client) = tls_pair(&dir);
    let addrs = start_counted_all(holdline::config::Config::with(|c| {
        c.fixed.root = dir.clone();
        c.fixed.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.fixed.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.fixed.tls_certs = tls_certs;
    }));
    let open = || {
        let mut sock = TcpStream::connect(addrs[1]).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::clone(&client), name).unwrap();
        {
            let mut stream = rustls::Stream::new(&mut conn, &mut sock);
            stream
                .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
}
