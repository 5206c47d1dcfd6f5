//! A bounded fd-exhaustion storm against a holdline (or any HTTP server,
//! nginx included) on loopback, for scripts/fd-exhaustion.sh.
//!
//! ```text
//! cargo run --release --example storm -- --addr 127.0.0.1:8080 --pid PID [--pid PID2] \
//!     --conns 3000 --variant idle|partial|slow|multirange|mixed --seconds 10 \
//!     [--status /status] [--no-status] [--reopen]
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

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
}

impl Variant {
    fn parse(name: &str) -> Variant {
        match name {
            "idle" => Variant::Idle,
            "partial" => Variant::Partial,
            "slow" => Variant::Slow,
            "multirange" => Variant::MultiRange,
            "mixed" => Variant::Mixed,
            _ => panic!("--variant: idle, partial, slow, multirange or mixed, not {name}"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Idle => "A (idle connects)",
            Variant::Partial => "B (unfinished heads)",
            Variant::Slow => "C (slow readers)",
            Variant::MultiRange => "D (slow multi-range readers)",
            Variant::Mixed => "mixed (A+B+C, renewed)",
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
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:8080".parse().unwrap(),
        pids: Vec::new(),
        conns: 3000,
        variant: Variant::Idle,
        seconds: 10.0,
        status: "/status".into(),
        no_status: false,
        reopen: false,
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
            "--pid" => args.pids.push(value.parse().expect("--pid")),
            "--conns" => args.conns = value.parse().expect("--conns"),
            "--variant" => args.variant = Variant::parse(&value),
            "--seconds" => args.seconds = value.parse().expect("--seconds"),
            "--status" => args.status = value,
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
    let connection = if close { "Connection: close\r\n" } else { "" };
    let req = format!("GET {path} HTTP/1.1\r\nHost: storm\r\n{connection}\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
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
    let mut existing = TcpStream::connect(addr).expect("the server must be up");
    assert!(
        request(&mut existing, "/index.html", false).is_some(),
        "the first request failed"
    );

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

    // The storm: threads that open and hold connections, re-opening
    // those the server closes when told to, until told to stop.
    let counts = Arc::new(StormCounts::default());
    let threads = 8;
    let stormers: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, counts) = (stop.clone(), counts.clone());
            let what = (addr, args.variant, args.reopen);
            let conns = args.conns;
            std::thread::spawn(move || storm_thread(what, (t, threads, conns), &stop, &counts))
        })
        .collect();

    let fresh_ok = Arc::new(AtomicU64::new(0));
    let fresh_tried = Arc::new(AtomicU64::new(0));
    let fresh_thread = {
        let (stop, ok, tried) = (stop.clone(), fresh_ok.clone(), fresh_tried.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                tried.fetch_add(1, Ordering::Relaxed);
                if fresh(addr, "/index.html") {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (mut existing_ok, mut existing_tried) = (0u64, 0u64);
    let mut reconnects = 0;
    let mut reconnect = false;
    while storm_start.elapsed().as_secs_f64() < args.seconds {
        existing_tried += 1;
        // Reconnect right before a request, as a browser does, not 20 ms
        // ahead of it.
        if reconnect {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => existing = s,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        match request(&mut existing, "/index.html", false) {
            Some((_, closes)) => {
                existing_ok += 1;
                // --max-requests ended the connection in band, as HTTP
                // allows: a real client reconnects; not a failure.
                reconnects += u64::from(closes);
                reconnect = closes;
            }
            // Lost: reconnect so the next attempt measures anew.
            None => reconnect = true,
        }
        std::thread::sleep(Duration::from_millis(20));
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
        if fresh(addr, "/index.html") {
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
        if recovery_start.elapsed() > Duration::from_secs(30) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
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
        fresh_ok.load(Ordering::Relaxed),
        fresh_tried.load(Ordering::Relaxed),
    );
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
}
