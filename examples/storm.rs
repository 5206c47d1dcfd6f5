//! A bounded fd-exhaustion storm against a holdline (or any HTTP server)
//! on loopback, for scripts/fd-exhaustion.sh.
//!
//! ```text
//! cargo run --release --example storm -- --addr 127.0.0.1:8080 --pid PID \
//!     --conns 3000 --variant idle|partial --seconds 10 [--status /status]
//! ```
//!
//! While `--conns` storm connections are held open (re-opened when the
//! server sheds them), one keep-alive client that connected before the
//! storm keeps requesting on its connection every 20 ms, and fresh clients
//! connect, request and close every 20 ms. Then the storm closes and the
//! time until a fresh client is served again is measured. Prints the
//! success rates, the server's CPU during the storm (from /proc/PID/stat)
//! and the status counters.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Args {
    addr: SocketAddr,
    pid: u32,
    conns: usize,
    partial: bool,
    seconds: f64,
    status: String,
    /// Re-open storm connections the server sheds (a churn storm).
    reopen: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:8080".parse().unwrap(),
        pid: 0,
        conns: 3000,
        partial: false,
        seconds: 10.0,
        status: "/status".into(),
        reopen: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--reopen" {
            args.reopen = true;
            continue;
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value.parse().expect("--addr"),
            "--pid" => args.pid = value.parse().expect("--pid"),
            "--conns" => args.conns = value.parse().expect("--conns"),
            "--variant" => args.partial = value == "partial",
            "--seconds" => args.seconds = value.parse().expect("--seconds"),
            "--status" => args.status = value,
            _ => panic!("unknown flag {flag}"),
        }
    }
    args
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    utime + stime
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

fn main() {
    let args = parse_args();
    let addr = args.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let mut existing = TcpStream::connect(addr).expect("the server must be up");
    assert!(
        request(&mut existing, "/index.html", false).is_some(),
        "the first request failed"
    );

    let cpu_before = cpu_ticks(args.pid);
    let storm_start = Instant::now();

    // The storm: threads that open and hold connections, re-opening
    // those the server closes, until told to stop.
    let opened = Arc::new(AtomicU64::new(0));
    let threads = 8;
    let stormers: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, opened) = (stop.clone(), opened.clone());
            let share = args.conns / threads + usize::from(t < args.conns % threads);
            let (partial, reopen) = (args.partial, args.reopen);
            std::thread::spawn(move || {
                let open = || {
                    let mut s =
                        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
                    if partial {
                        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: storm\r\nX-Slow: ")
                            .ok()?;
                    }
                    s.set_nonblocking(true).ok()?;
                    Some(s)
                };
                let mut held: Vec<Option<TcpStream>> = (0..share).map(|_| None).collect();
                let mut opened_once = false;
                while !stop.load(Ordering::Relaxed) {
                    for slot in held.iter_mut() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let closed = match slot.as_mut() {
                            None => true,
                            Some(s) => {
                                let mut b = [0u8; 256];
                                match s.read(&mut b) {
                                    // EOF: the server let go (evicted, timed out).
                                    Ok(0) => true,
                                    // A 408: it is closing this one too.
                                    Ok(_answer) => true,
                                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                                }
                            }
                        };
                        if closed && (reopen || slot.is_none() && !opened_once) {
                            *slot = open();
                            if slot.is_some() {
                                opened.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    opened_once = true;
                    std::thread::sleep(Duration::from_millis(100));
                }
                held.iter().filter(|s| s.is_some()).count()
            })
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
    let cpu_after = cpu_ticks(args.pid);
    let storm_secs = storm_start.elapsed().as_secs_f64();
    let status_during = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .ok()
        .and_then(|mut s| request(&mut s, &args.status, true))
        .map(|(body, _)| body);
    stop.store(true, Ordering::Relaxed);
    let held: usize = stormers.into_iter().map(|t| t.join().unwrap()).sum();
    fresh_thread.join().unwrap();

    // Recovery: the storm is gone (its sockets closed by the joins above);
    // how long until a fresh client is served and only we remain?
    let recovery_start = Instant::now();
    let recovered = loop {
        if fresh(addr, "/index.html") {
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
    println!(
        "variant:                {}",
        if args.partial {
            "B (unfinished heads)"
        } else {
            "A (idle connects)"
        }
    );
    println!(
        "storm connections:      {} held at the end, {} opened in all{}",
        held,
        opened.load(Ordering::Relaxed),
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
