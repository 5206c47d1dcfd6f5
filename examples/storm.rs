//! A bounded fd-exhaustion storm against a holdline (or any HTTP server,
//! nginx included) on loopback, for scripts/fd-exhaustion.sh.
//!
//! ```text
//! cargo run --release --example storm -- --addr 127.0.0.1:8080 --pid PID [--pid PID2] \
//!     --conns 3000 --variant idle|partial|slow|multirange|mixed|handshake --seconds 10 \
//!     [--storm-addr ADDR] [--status /status] [--no-status] [--reopen] [--timeline FILE]
//! ```
//!
//! Variants (what each storm connection does once connected):
//!
//! - `idle` (A): nothing; it never sends.
//! - `partial` (B): sends an unfinished request head and stops.
//! - `slow` (C): a slow reader. SO_RCVBUF is set to 4096 before
//!   connecting (so the window it advertises stays tiny), it sends
//!   `GET /big.bin` and never reads.
//! - `multirange` (D): like `slow`, but asks for four 1 MiB ranges of
//!   `/big.bin`: a ~4 MiB multipart/byteranges response, never read.
//! - `handshake` (E): a real TLS ClientHello (made by rustls's client, as
//!   a browser's would be: SNI, key shares, ALPN), then nothing: the
//!   handshake stalls after the server's first flight, which is never
//!   read. Sent to `--storm-addr` (the server's TLS port); the keep-alive
//!   and fresh clients stay on `--addr`, plain HTTP: they measure what the
//!   storm costs everyone sharing the fd budget.
//! - `mixed`: the connections are split in thirds between idle, partial
//!   and slow, and are always re-opened as soon as the server closes
//!   them, checked every 10 ms: the storm renews itself about as fast as
//!   the server sheds it.
//!
//! Storm connections connect without blocking, so a full listen backlog
//! never holds up the others; a connect not completed within 1 s (a SYN
//! dropped by a full backlog: the kernel would retransmit it then) or
//! failed is started anew, until the connection is established once.
//! That the server closed one is seen without reading from it (reading
//! would let a slow reader progress): `poll` with POLLRDHUP, where
//! POLLRDHUP, POLLHUP or POLLERR mean closed (FIN or RST). With
//! `--reopen` (always, for `mixed`) such a connection is re-opened.
//!
//! While the storm lasts, one keep-alive client that connected before it
//! keeps requesting `/index.html` on its connection every 20 ms, and fresh
//! clients connect, request `/index.html` and close every 20 ms. Then the
//! storm closes and the time until a fresh client is served again (and,
//! unless `--no-status`, until the status page's `Active connections`
//! falls to ours) is measured. Prints the success rates, the server's CPU
//! during the storm (from /proc/PID/stat), its peak RSS during the storm
//! (VmRSS from /proc/PID/status sampled every 50 ms) and VmHWM at its end,
//! both summed over every `--pid` (nginx: master and worker), and the
//! status page as it was at the end of the storm, if it answers.
//!
//! With `--timeline FILE` the run is also recorded over time, for
//! scripts/plots/storm_timeline.py. The keep-alive client and the fresh
//! clients then start 2 s before the storm (a baseline) and, once
//! recovery is measured, run 1 s more; neither stretch counts in the
//! printed rates, which stay those of the storm. From 2 s before the
//! storm to the end, unless `--no-status`, a sampler asks
//! `STATUS?format=json` every 100 ms, each time on a fresh connection
//! with `Connection: close` and a 1 s timeout, and FILE gets one row per
//! sample:
//!
//! ```text
//! t,phase,reading,writing,idle,closing,open_files,evict_idle,evict_fresh,
//! evict_partial_head,evict_stalled,evict_lingering,closes_evicted,closes_overflow,
//! max_connections
//! ```
//!
//! `t` is seconds since the storm started (negative before it); `phase`
//! is `before`, `storm` (until every storm socket is closed) or `after`;
//! then the connections by state, the file fds held open, and the
//! server's cumulative counters: evictions by class and closes for
//! `evicted` and `overflow`. A sample that failed (no answer within 1 s,
//! not a 200, not JSON) is a row with its numbers empty; the recovery
//! probe never overlaps a sample, so the sampler's connection is not
//! counted in the `Active connections` it reads. With `--no-status`
//! (nginx) FILE holds the header only. Every client attempt goes to
//! `FILE.clients.csv`, one row each, `t,phase,who,ok`: `who` is
//! `existing` (the keep-alive client), `fresh`, or `probe` (the recovery
//! loop's fresh client), placed at the attempt's start, `ok` 1 or 0. Two
//! marks share that file: `storm_end` (every storm socket closed) and
//! `recovered` (`ok` 0: not within 30 s).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

/// A storm connection not connected within this long is given up.
const CONNECT_DEADLINE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Idle,
    Partial,
    Slow,
    MultiRange,
    Mixed,
    Handshake,
}

impl Variant {
    fn parse(name: &str) -> Variant {
        match name {
            "idle" => Variant::Idle,
            "partial" => Variant::Partial,
            "slow" => Variant::Slow,
            "multirange" => Variant::MultiRange,
            "mixed" => Variant::Mixed,
            "handshake" => Variant::Handshake,
            _ => {
                panic!("--variant: idle, partial, slow, multirange, mixed or handshake, not {name}")
            }
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Idle => "A (idle connects)",
            Variant::Partial => "B (unfinished heads)",
            Variant::Slow => "C (slow readers)",
            Variant::MultiRange => "D (slow multi-range readers)",
            Variant::Mixed => "mixed (A+B+C, renewed)",
            Variant::Handshake => "E (stalled TLS handshakes)",
        }
    }

    /// What storm connection number `i` (of all threads) does.
    fn kind(self, i: usize) -> Kind {
        match self {
            Variant::Idle => Kind::Idle,
            Variant::Partial => Kind::Partial,
            Variant::Slow => Kind::Slow,
            Variant::MultiRange => Kind::MultiRange,
            Variant::Mixed => [Kind::Idle, Kind::Partial, Kind::Slow][i % 3],
            Variant::Handshake => Kind::Handshake,
        }
    }
}

/// One storm connection's behaviour.
#[derive(Clone, Copy)]
enum Kind {
    Idle,
    Partial,
    Slow,
    MultiRange,
    Handshake,
}

/// A TLS 1.3/1.2 ClientHello for SNI `storm`, as rustls's client sends it.
fn client_hello() -> &'static [u8] {
    static HELLO: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    HELLO.get_or_init(|| {
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("storm").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        hello
    })
}

impl Kind {
    /// What it sends once connected.
    fn request(self) -> &'static [u8] {
        match self {
            Kind::Idle => b"",
            Kind::Partial => b"GET /index.html HTTP/1.1\r\nHost: storm\r\nX-Slow: ",
            Kind::Slow => b"GET /big.bin HTTP/1.1\r\nHost: storm\r\n\r\n",
            Kind::MultiRange => {
                b"GET /big.bin HTTP/1.1\r\nHost: storm\r\n\
                  Range: bytes=0-1048575,2097152-3145727,4194304-5242879,6291456-7340031\r\n\r\n"
            }
            Kind::Handshake => client_hello(),
        }
    }

    /// A reader that never reads: a tiny receive buffer, set before
    /// connecting so the window scale agreed on stays small.
    fn slow_reader(self) -> bool {
        matches!(self, Kind::Slow | Kind::MultiRange)
    }
}

enum Slot {
    /// Not connected yet, or its connect failed: the next pass connects
    /// (again). A storm connection keeps trying until it is held once.
    New,
    Connecting(Socket, Instant),
    Held(Socket),
    /// Closed by the server: re-opened only when re-opening.
    Gone,
}

struct Args {
    addr: SocketAddr,
    /// Where the storm connections go (default: `addr`).
    storm_addr: Option<SocketAddr>,
    pids: Vec<u32>,
    conns: usize,
    variant: Variant,
    seconds: f64,
    status: String,
    /// Judge recovery by fresh clients alone, not by the status page's
    /// `Active connections` (holdline's and nginx's stub_status).
    no_status: bool,
    /// Re-open storm connections the server sheds (a churn storm).
    reopen: bool,
    /// Record the run over time in this CSV (and `FILE.clients.csv`).
    timeline: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:8080".parse().unwrap(),
        storm_addr: None,
        pids: Vec::new(),
        conns: 3000,
        variant: Variant::Idle,
        seconds: 10.0,
        status: "/status".into(),
        no_status: false,
        reopen: false,
        timeline: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--reopen" => {
                args.reopen = true;
                continue;
            }
            "--no-status" => {
                args.no_status = true;
                continue;
            }
            _ => {}
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value.parse().expect("--addr"),
            "--storm-addr" => args.storm_addr = Some(value.parse().expect("--storm-addr")),
            "--pid" => args.pids.push(value.parse().expect("--pid")),
            "--conns" => args.conns = value.parse().expect("--conns"),
            "--variant" => args.variant = Variant::parse(&value),
            "--seconds" => args.seconds = value.parse().expect("--seconds"),
            "--status" => args.status = value,
            "--timeline" => args.timeline = Some(value),
            _ => panic!("unknown flag {flag}"),
        }
    }
    if args.variant == Variant::Mixed {
        args.reopen = true;
    }
    args
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command name (which may contain spaces).
            let rest = stat.rsplit(')').next().unwrap_or("");
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line: 11
            // and 12 here.
            let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
            let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
            utime + stime
        })
        .sum()
}

/// A `/proc/PID/status` field in kB (VmRSS, VmHWM), summed over `pids`.
fn status_kib(pids: &[u32], field: &str) -> u64 {
    pids.iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// The body of a 200 response, and whether the server said it closes.
fn request(stream: &mut TcpStream, path: &str, close: bool) -> Option<(Vec<u8>, bool)> {
    request_until(stream, path, close, None)
}

/// [`request`], given up at `deadline` if there is one (else each read
/// waits at most 2 s).
fn request_until(
    stream: &mut TcpStream,
    path: &str,
    close: bool,
    deadline: Option<Instant>,
) -> Option<(Vec<u8>, bool)> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let req = format!("GET {path} HTTP/1.1\r\nHost: storm\r\n{connection}\r\n");
    let left = |deadline: Instant| {
        Some(deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    };
    if let Some(deadline) = deadline {
        stream.set_write_timeout(Some(left(deadline)?)).ok()?;
    }
    stream.write_all(req.as_bytes()).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(deadline) = deadline {
            stream.set_read_timeout(Some(left(deadline)?)).ok()?;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + len {
                let closes = head.contains("\r\nconnection: close");
                return buf
                    .starts_with(b"HTTP/1.1 200")
                    .then(|| (buf[head_end + 4..head_end + 4 + len].to_vec(), closes));
            }
        }
    }
}

fn fresh(addr: SocketAddr, path: &str) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(mut s) => request(&mut s, path, true).is_some(),
        Err(_) => false,
    }
}

/// Client attempts for `--timeline`: when each started, whose, and
/// whether it was served.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Attempt>>>);

/// When an attempt started, whose it was, whether it was served.
type Attempt = (Instant, &'static str, bool);

impl Log {
    fn record(&self, at: Instant, who: &'static str, ok: bool) {
        self.0.lock().unwrap().push((at, who, ok));
    }
}

/// Fresh clients' tallies for the summary: attempts count while `on`.
#[derive(Default)]
struct FreshCounts {
    on: AtomicBool,
    ok: AtomicU64,
    tried: AtomicU64,
}

/// Fresh clients: connect, request `/index.html` and close, every 20 ms,
/// until `stop`.
fn fresh_clients(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counts: Arc<FreshCounts>,
    log: Log,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let at = Instant::now();
            let counted = counts.on.load(Ordering::Relaxed);
            if counted {
                counts.tried.fetch_add(1, Ordering::Relaxed);
            }
            let ok = fresh(addr, "/index.html");
            if ok && counted {
                counts.ok.fetch_add(1, Ordering::Relaxed);
            }
            log.record(at, "fresh", ok);
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// The keep-alive client that connected before the storm.
struct Existing {
    addr: SocketAddr,
    stream: TcpStream,
    /// The last request was lost or ended the connection.
    reconnect: bool,
    /// Tallies for the summary (turns taken with `counted`).
    ok: u64,
    tried: u64,
    reconnects: u64,
}

impl Existing {
    fn connect(addr: SocketAddr) -> Existing {
        let mut stream = TcpStream::connect(addr).expect("the server must be up");
        assert!(
            request(&mut stream, "/index.html", false).is_some(),
            "the first request failed"
        );
        Existing {
            addr,
            stream,
            reconnect: false,
            ok: 0,
            tried: 0,
            reconnects: 0,
        }
    }

    /// One request on the connection, then a 20 ms pause.
    fn turn(&mut self, counted: bool, log: &Log) {
        let at = Instant::now();
        if counted {
            self.tried += 1;
        }
        let served = self.attempt();
        log.record(at, "existing", served.is_some());
        if let (Some(closes), true) = (served, counted) {
            self.ok += 1;
            // --max-requests ended the connection in band, as HTTP
            // allows: a real client reconnects; not a failure.
            self.reconnects += u64::from(closes);
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    /// Whether the server closes after this response, if served.
    fn attempt(&mut self) -> Option<bool> {
        // Reconnect right before a request, as a browser does, not 20 ms
        // ahead of it.
        if self.reconnect {
            self.stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).ok()?;
        }
        match request(&mut self.stream, "/index.html", false) {
            Some((_, closes)) => {
                self.reconnect = closes;
                Some(closes)
            }
            // Lost: reconnect so the next attempt measures anew.
            None => {
                self.reconnect = true;
                None
            }
        }
    }
}

/// The `--timeline` columns after `t,phase`: a name and where the status
/// JSON has it.
const SAMPLE_FIELDS: [(&str, &str); 13] = [
    ("reading", "/connections/reading"),
    ("writing", "/connections/writing"),
    ("idle", "/connections/idle"),
    ("closing", "/connections/closing"),
    ("open_files", "/fd/open_files"),
    ("evict_idle", "/evictions/idle"),
    ("evict_fresh", "/evictions/fresh"),
    ("evict_partial_head", "/evictions/partial_head"),
    ("evict_stalled", "/evictions/stalled"),
    ("evict_lingering", "/evictions/lingering"),
    ("closes_evicted", "/closes/evicted"),
    ("closes_overflow", "/closes/overflow"),
    ("max_connections", "/fd/max_connections"),
];

type Sample = [Option<u64>; SAMPLE_FIELDS.len()];

/// The status page's JSON, asked on a fresh connection within 1 s; all
/// `None` if it failed.
fn sample(addr: SocketAddr, path: &str) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(1);
    let json: Option<serde_json::Value> = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .ok()
        .and_then(|mut s| request_until(&mut s, path, true, Some(deadline)))
        .and_then(|(body, _)| serde_json::from_slice(&body).ok());
    std::array::from_fn(|i| json.as_ref()?.pointer(SAMPLE_FIELDS[i].1)?.as_u64())
}

/// Samples the status JSON at `path` every 100 ms until `stop`, each
/// under `lock` (which the recovery probe takes too).
fn sampler(
    addr: SocketAddr,
    path: String,
    stop: Arc<AtomicBool>,
    lock: Arc<Mutex<()>>,
) -> std::thread::JoinHandle<Vec<(Instant, Sample)>> {
    std::thread::spawn(move || {
        const PERIOD: Duration = Duration::from_millis(100);
        let start = Instant::now();
        let mut rows = Vec::new();
        let mut tick = 0;
        while !stop.load(Ordering::Relaxed) {
            let at = start + PERIOD * tick;
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let values = {
                let _alone = lock.lock().unwrap();
                sample(addr, &path)
            };
            rows.push((at, values));
            // The next tick still ahead: a slow sample skips some.
            let since = start.elapsed();
            tick = (since.as_nanos() / PERIOD.as_nanos()) as u32 + 1;
        }
        rows
    })
}

/// Seconds from `origin` to `at`, negative before it.
fn secs(origin: Instant, at: Instant) -> f64 {
    if at >= origin {
        (at - origin).as_secs_f64()
    } else {
        -(origin - at).as_secs_f64()
    }
}

/// Writes the `--timeline` files; `storm_end` is `t` when every storm
/// socket was closed, `recovered` when recovery was measured (if it was).
fn write_timeline(
    file: &str,
    storm_start: Instant,
    storm_end: f64,
    samples: &[(Instant, Sample)],
    log: &Log,
    recovered: (f64, bool),
) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let phase = |t: f64| match t {
        t if t < 0.0 => "before",
        t if t < storm_end => "storm",
        _ => "after",
    };
    let mut out = String::from("t,phase");
    for (name, _) in SAMPLE_FIELDS {
        out += ",";
        out += name;
    }
    out += "\n";
    for (at, values) in samples {
        let t = secs(storm_start, *at);
        let _ = write!(out, "{t:.3},{}", phase(t));
        for v in values {
            out += ",";
            if let Some(v) = v {
                let _ = write!(out, "{v}");
            }
        }
        out += "\n";
    }
    std::fs::write(file, out)?;

    let mut events: Vec<(f64, &str, bool)> = log
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|&(at, who, ok)| (secs(storm_start, at), who, ok))
        .collect();
    events.push((storm_end, "storm_end", true));
    events.push((recovered.0, "recovered", recovered.1));
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = String::from("t,phase,who,ok\n");
    for (t, who, ok) in events {
        let _ = writeln!(out, "{t:.3},{},{who},{}", phase(t), u8::from(ok));
    }
    std::fs::write(format!("{file}.clients.csv"), out)
}

/// Starts a non-blocking connect for a storm connection of `kind`.
fn start_connect(addr: &SockAddr, kind: Kind) -> Option<Socket> {
    let socket = Socket::new(Domain::for_address(addr.as_socket()?), Type::STREAM, None).ok()?;
    if kind.slow_reader() {
        socket.set_recv_buffer_size(4096).ok()?;
    }
    socket.set_nonblocking(true).ok()?;
    match socket.connect(addr) {
        Ok(()) => Some(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Some(socket),
        Err(_) => None,
    }
}

/// A connect that `poll` reported done: whether it connected and the
/// request of `kind` went out whole.
fn finish_connect(socket: &Socket, revents: libc::c_short, kind: Kind) -> bool {
    if revents & (libc::POLLERR | libc::POLLHUP) != 0 || !matches!(socket.take_error(), Ok(None)) {
        return false;
    }
    let req = kind.request();
    req.is_empty() || socket.send(req).is_ok_and(|n| n == req.len())
}

#[derive(Default)]
struct StormCounts {
    /// Connections established (and their request sent).
    opened: AtomicU64,
    /// Established connections the server closed (FIN or RST).
    shed: AtomicU64,
    /// Connect attempts refused, failed, or not completed in time (each
    /// is tried again).
    failed: AtomicU64,
}

/// One storm thread: holds the storm connections numbered `first`,
/// `first + step`, ... below `conns` until `stop`; returns how many it
/// held then.
fn storm_thread(
    args: (SocketAddr, Variant, bool),
    (first, step, conns): (usize, usize, usize),
    stop: &AtomicBool,
    counts: &StormCounts,
) -> usize {
    let (addr, variant, reopen) = args;
    let addr = SockAddr::from(addr);
    // The mixed storm renews itself about as fast as it is shed.
    let interval = Duration::from_millis(if variant == Variant::Mixed { 10 } else { 100 });
    let mut slots: Vec<(Kind, Slot)> = (first..conns)
        .step_by(step)
        .map(|i| (variant.kind(i), Slot::New))
        .collect();
    let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(slots.len());
    let mut polled: Vec<usize> = Vec::with_capacity(slots.len());
    while !stop.load(Ordering::Relaxed) {
        for (kind, slot) in slots.iter_mut() {
            if matches!(slot, Slot::New) || reopen && matches!(slot, Slot::Gone) {
                *slot = match start_connect(&addr, *kind) {
                    Some(socket) => Slot::Connecting(socket, Instant::now()),
                    None => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        Slot::New
                    }
                };
            }
        }
        // One poll for all of them, without reading anything.
        pollfds.clear();
        polled.clear();
        for (i, (_, slot)) in slots.iter().enumerate() {
            let (fd, events) = match slot {
                Slot::Connecting(socket, _) => (socket.as_raw_fd(), libc::POLLOUT),
                Slot::Held(socket) => (socket.as_raw_fd(), libc::POLLRDHUP),
                Slot::New | Slot::Gone => continue,
            };
            pollfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            polled.push(i);
        }
        // SAFETY: `pollfds` is a live, initialised array of that length.
        let ready = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, 0) };
        for (pollfd, &i) in pollfds.iter().zip(&polled) {
            let revents = if ready > 0 { pollfd.revents } else { 0 };
            let (kind, slot) = &mut slots[i];
            *slot = match std::mem::replace(slot, Slot::Gone) {
                Slot::Connecting(socket, _) if revents != 0 => {
                    if finish_connect(&socket, revents, *kind) {
                        counts.opened.fetch_add(1, Ordering::Relaxed);
                        Slot::Held(socket)
                    } else {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        Slot::New
                    }
                }
                Slot::Connecting(_, since) if since.elapsed() > CONNECT_DEADLINE => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    Slot::New
                }
                Slot::Held(_)
                    if revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 =>
                {
                    // The server let go (evicted, timed out): FIN or RST.
                    counts.shed.fetch_add(1, Ordering::Relaxed);
                    Slot::Gone
                }
                other => other,
            };
        }
        std::thread::sleep(interval);
    }
    slots
        .iter()
        .filter(|(_, s)| matches!(s, Slot::Held(_)))
        .count()
}

fn main() {
    let args = parse_args();
    let addr = args.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let mut existing = Existing::connect(addr);
    let log = Log::default();
    let fresh_counts = Arc::new(FreshCounts::default());

    // --timeline: the sampler, and 2 s of the clients before the storm.
    let timeline = args.timeline.is_some();
    let probe_lock = Arc::new(Mutex::new(()));
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = (timeline && !args.no_status).then(|| {
        let sep = if args.status.contains('?') { '&' } else { '?' };
        let path = format!("{}{sep}format=json", args.status);
        sampler(addr, path, sampler_stop.clone(), probe_lock.clone())
    });
    let mut fresh_thread = None;
    if timeline {
        fresh_thread = Some(fresh_clients(
            addr,
            stop.clone(),
            fresh_counts.clone(),
            log.clone(),
        ));
        let baseline_end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < baseline_end {
            existing.turn(false, &log);
        }
    }

    // The server's resident memory, sampled every 50 ms during the storm.
    let storm_over = Arc::new(AtomicBool::new(false));
    let rss_sampler = {
        let (over, pids) = (storm_over.clone(), args.pids.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            loop {
                peak = peak.max(status_kib(&pids, "VmRSS"));
                if over.load(Ordering::Relaxed) {
                    break peak;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let cpu_before = cpu_ticks(&args.pids);
    let storm_start = Instant::now();
    fresh_counts.on.store(true, Ordering::Relaxed);

    // The storm: threads that open and hold connections, re-opening
    // those the server closes when told to, until told to stop.
    let counts = Arc::new(StormCounts::default());
    let threads = 8;
    let stormers: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, counts) = (stop.clone(), counts.clone());
            let what = (args.storm_addr.unwrap_or(addr), args.variant, args.reopen);
            let conns = args.conns;
            std::thread::spawn(move || storm_thread(what, (t, threads, conns), &stop, &counts))
        })
        .collect();

    let fresh_thread = fresh_thread
        .unwrap_or_else(|| fresh_clients(addr, stop.clone(), fresh_counts.clone(), log.clone()));
    while storm_start.elapsed().as_secs_f64() < args.seconds {
        existing.turn(true, &log);
    }
    let cpu_after = cpu_ticks(&args.pids);
    let storm_secs = storm_start.elapsed().as_secs_f64();
    storm_over.store(true, Ordering::Relaxed);
    let hwm_kib = status_kib(&args.pids, "VmHWM");
    let peak_rss_kib = rss_sampler.join().unwrap();
    let status_during = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .ok()
        .and_then(|mut s| request(&mut s, &args.status, true))
        .map(|(body, _)| body);
    stop.store(true, Ordering::Relaxed);
    let held: usize = stormers.into_iter().map(|t| t.join().unwrap()).sum();
    fresh_thread.join().unwrap();

    // Recovery: the storm is gone (its sockets closed by the joins above);
    // how long until a fresh client is served and (unless --no-status)
    // only we remain?
    let recovery_start = Instant::now();
    let recovered = loop {
        // Not while the sampler asks: its connection would count.
        let alone = probe_lock.lock().unwrap();
        let at = Instant::now();
        let served = fresh(addr, "/index.html");
        log.record(at, "probe", served);
        if served {
            if args.no_status {
                break Some(recovery_start.elapsed());
            }
            let active = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .ok()
                .and_then(|mut s| request(&mut s, &args.status, true))
                .map(|(b, _)| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let active: usize = active
                .strip_prefix("Active connections: ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            // At most the existing client and this status request.
            if active <= 2 {
                break Some(recovery_start.elapsed());
            }
        }
        drop(alone);
        if recovery_start.elapsed() > Duration::from_secs(30) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let recovery_end = Instant::now();
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu_pct = (cpu_after - cpu_before) as f64 / ticks_per_sec / storm_secs * 100.0;
    let pct = |ok: u64, tried: u64| {
        if tried == 0 {
            0.0
        } else {
            ok as f64 * 100.0 / tried as f64
        }
    };
    let (fo, ft) = (
        fresh_counts.ok.load(Ordering::Relaxed),
        fresh_counts.tried.load(Ordering::Relaxed),
    );
    let (existing_ok, existing_tried, reconnects) =
        (existing.ok, existing.tried, existing.reconnects);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("variant:                {}", args.variant.label());
    println!(
        "storm connections:      {} held at the end, {} opened in all, {} closed by the server, {} connect attempts failed or given up after {} s{}",
        held,
        counts.opened.load(Ordering::Relaxed),
        counts.shed.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        CONNECT_DEADLINE.as_secs(),
        if args.reopen {
            " (re-opening shed ones)"
        } else {
            ""
        }
    );
    println!("storm duration:         {storm_secs:.1} s");
    println!(
        "existing client:        {existing_ok}/{existing_tried} = {:.1}% ({reconnects} in-band closes by --max-requests)",
        pct(existing_ok, existing_tried)
    );
    println!("fresh clients:          {fo}/{ft} = {:.1}%", pct(fo, ft));
    println!("server CPU during storm: {cpu_pct:.1}%");
    println!(
        "peak RSS:               {:.1} MiB (VmHWM {:.1} MiB)",
        mib(peak_rss_kib),
        mib(hwm_kib)
    );
    match recovered {
        Some(d) => println!("recovery:               {:.3} s", d.as_secs_f64()),
        None => println!("recovery:               not within 30 s"),
    }
    if let Some(body) = status_during {
        println!(
            "status during the storm:\n{}",
            String::from_utf8_lossy(&body)
        );
    }

    // --timeline: 1 s more of the clients, now the server is free again,
    // then the files.
    if let Some(file) = &args.timeline {
        let tail_stop = Arc::new(AtomicBool::new(false));
        let tail_fresh = fresh_clients(
            addr,
            tail_stop.clone(),
            Arc::new(FreshCounts::default()),
            log.clone(),
        );
        let tail_end = Instant::now() + Duration::from_secs(1);
        while Instant::now() < tail_end {
            existing.turn(false, &log);
        }
        tail_stop.store(true, Ordering::Relaxed);
        tail_fresh.join().unwrap();
        sampler_stop.store(true, Ordering::Relaxed);
        let samples = sampler.map(|s| s.join().unwrap()).unwrap_or_default();
        let storm_end = secs(storm_start, recovery_start);
        let recovered = (secs(storm_start, recovery_end), recovered.is_some());
        if let Err(e) = write_timeline(file, storm_start, storm_end, &samples, &log, recovered) {
            eprintln!("--timeline {file}: {e}");
            std::process::exit(1);
        }
        let missing = samples.iter().filter(|(_, v)| v[0].is_none()).count();
        eprintln!(
            "timeline: {file} ({} status samples, {missing} missing), {file}.clients.csv ({} client attempts)",
            samples.len(),
            log.0.lock().unwrap().len(),
        );
    }
}
