//! Shared helpers for the integration tests: start the real `holdline`
//! binary on 127.0.0.1 with a port chosen by the kernel, talk to it with
//! raw sockets, and wait on conditions with deadlines (never fixed sleeps).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The wheel's tick, as the server promises it (reactor::TIMER_TICK).
pub const TICK: Duration = Duration::from_millis(100);
/// Slack a timing assertion allows beyond one tick.
pub const SLACK: Duration = Duration::from_millis(500);

/// A running server; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    /// Dropped with the server: tells its watchdog the test is over.
    _watchdog: std::sync::mpsc::Sender<()>,
}

/// How long one test may keep its server: past it the server is killed, so
/// a test blocked on it fails (EOF, reset) instead of hanging `cargo test`.
pub const SERVER_WATCHDOG: Duration = Duration::from_secs(120);

impl Server {
    /// Starts holdline serving `root` with extra `args`.
    pub fn start(root: &Path, args: &[&str]) -> Server {
        Server::try_start(root, args).expect("server should start")
    }

    pub fn try_start(root: &Path, args: &[&str]) -> Result<Server, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdline"));
        cmd.args(["--listen", "127.0.0.1:0"]).args(args).arg(root);
        Server::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Result<Server, String> {
        cmd.env(
            "RUST_LOG",
            std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_SHOW_LOG").is_some() {
                    eprintln!("server: {line}");
                }
                // Logged before anyone is told, so the log holds the line.
                sink.lock().unwrap().push(line.clone());
                if let Some(addr) = line
                    .split("listening on http://")
                    .nth(1)
                    .and_then(|rest| rest.split('/').next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(addr));
                    }
                } else if line.contains("error")
                    && let Some(tx) = tx.as_ref()
                {
                    let _ = tx.send(Err(line));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(addr)) => {
                let (watchdog, over) = std::sync::mpsc::channel::<()>();
                let pid = child.id() as libc::pid_t;
                std::thread::spawn(move || {
                    if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        over.recv_timeout(SERVER_WATCHDOG)
                    {
                        let _ = writeln!(
                            std::io::stderr(),
                            "WATCHDOG: the test still held its server after {SERVER_WATCHDOG:?}; killing it"
                        );
                        // SAFETY: plain kill(2) of our own child.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                });
                Ok(Server {
                    child,
                    addr,
                    log,
                    _watchdog: watchdog,
                })
            }
            Ok(Err(line)) => {
                let _ = child.kill();
                Err(line)
            }
            Err(_) => {
                let _ = child.kill();
                Err("server did not say where it listens".into())
            }
        }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_nodelay(true).unwrap();
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("holdline-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The site most tests serve: `www/` inside a temp dir, with a secret
/// file beside (outside) it.
pub struct Site {
    pub dir: TempDir,
}

impl Site {
    pub fn new() -> Site {
        let dir = TempDir::new("site");
        dir.write("secret.txt", "TOP SECRET\n");
        dir.write("www/index.html", "<h1>home</h1>\n");
        dir.write("www/hello.txt", "hello\n");
        dir.write("www/a.txt", "a\n");
        dir.write("www/b.txt", "bb\n");
        dir.write("www/c.txt", "ccc\n");
        dir.write("www/sub/index.html", "sub\n");
        dir.write("www/empty/.keep", "");
        Site { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The head exactly as sent, with the Date value replaced by `*`.
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response to a request of `method` from `stream`, with
/// `buf` holding bytes already read past earlier responses.
pub fn read_response_after(stream: &mut TcpStream, buf: &mut Vec<u8>, method: &str) -> Response {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) =
            resp.parse(buf).expect("a valid response head")
        {
            let status = resp.code.unwrap();
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let head = String::from_utf8_lossy(&buf[..head_len])
                .lines()
                .map(|l| match l.split_once(": ") {
                    // Values that change from run to run.
                    Some(("Date", _)) => "Date: *",
                    Some(("ETag", _)) => "ETag: *",
                    Some(("Last-Modified", _)) => "Last-Modified: *",
                    _ => l,
                })
                .map(|l| format!("{l}\r\n"))
                .collect::<String>();
            let len = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
            let body_len = if method == "HEAD" || status == 204 || status == 304 || status < 200 {
                0
            } else {
                len
            };
            while buf.len() < head_len + body_len {
                read_some(stream, buf);
            }
            let body = buf[head_len..head_len + body_len].to_vec();
            buf.drain(..head_len + body_len);
            return Response {
                status,
                head,
                headers,
                body,
            };
        }
        read_some(stream, buf);
    }
}

/// How long a test waits for bytes it expects, when the test set no
/// timeout of its own: a hung server fails the test instead of hanging
/// `cargo test`.
pub const READ_WATCHDOG: Duration = Duration::from_secs(30);

fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 65536];
    if stream.read_timeout().ok().flatten().is_none() {
        stream.set_read_timeout(Some(READ_WATCHDOG)).unwrap();
    }
    let n = loop {
        match stream.read(&mut chunk) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read: {e}; got so far: {:?}", String::from_utf8_lossy(buf)),
        }
    };
    assert!(
        n > 0,
        "connection closed early; got so far: {:?}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

pub fn read_response(stream: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    let r = read_response_after(stream, &mut buf, "GET");
    assert!(
        buf.is_empty(),
        "unexpected bytes after the response: {:?}",
        String::from_utf8_lossy(&buf)
    );
    r
}

/// Sends one request and reads its response.
pub fn exchange(stream: &mut TcpStream, request: &str) -> Response {
    stream.write_all(request.as_bytes()).unwrap();
    let method = request.split(' ').next().unwrap_or("GET").to_string();
    let mut buf = Vec::new();
    read_response_after(stream, &mut buf, &method)
}

pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Waits until the server closes `stream` (EOF or reset), at most
/// `within`; returns when it closed, or `None` if it stayed open.
/// Bytes received meanwhile are returned too.
pub fn wait_closed(stream: &mut TcpStream, within: Duration) -> (Option<Instant>, Vec<u8>) {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (None, got);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return (Some(Instant::now()), got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (None, got);
            }
            Err(_) => return (Some(Instant::now()), got),
        }
    }
}

/// Asserts the server closes `stream` within `within`.
pub fn assert_closes(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let (closed, got) = wait_closed(stream, within);
    assert!(closed.is_some(), "connection still open after {within:?}");
    got
}

/// Asserts the connection stays open (no bytes, no EOF) for `for_`.
pub fn assert_stays_open(stream: &mut TcpStream, for_: Duration) {
    let (closed, got) = wait_closed(stream, for_);
    assert!(
        closed.is_none(),
        "connection closed; got {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        got.is_empty(),
        "unexpected bytes {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// Polls `cond` until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Says loudly that a test did not run, and why: on stderr directly (not
/// with `eprintln!`, which the harness captures), so `cargo test` shows it
/// without `--nocapture`. With `HOLDLINE_REQUIRE_PEERS=1` (set by `.ci/run`)
/// it fails the test instead: CI never counts a skipped test as passed.
pub fn skip(reason: &str) {
    let message = format!("SKIPPED: {reason}. This test did not run.");
    assert!(
        std::env::var_os("HOLDLINE_REQUIRE_PEERS").is_none(),
        "{message} (HOLDLINE_REQUIRE_PEERS is set)"
    );
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// A peer program (curl, chromium...) or `None`, with a loud notice.
///
/// See [`skip`].
pub fn peer_program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skip(&format!("`{name}` is not installed; .ci/run installs it"));
    }
    found
}

/// The kernel's view of the server's end of `client`'s connection, from
/// /proc/net/tcp: (TCP state, bytes queued to send, bytes received and not
/// yet read by the server). Lets a test wait on what the server did
/// (read the request, shut its write side) instead of sleeping.
pub fn server_end(client: &TcpStream) -> Option<(u8, u64, u64)> {
    let (local, peer) = (client.local_addr().ok()?, client.peer_addr().ok()?);
    let hex = |a: SocketAddr| -> Option<String> {
        match a {
            SocketAddr::V4(v4) => Some(format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(v4.ip().octets()),
                v4.port()
            )),
            SocketAddr::V6(_) => None,
        }
    };
    // The server's end: its local address is our peer, its remote is us.
    let (want_local, want_remote) = (hex(peer)?, hex(local)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[1] != want_local || f[2] != want_remote {
            return None;
        }
        let state = u8::from_str_radix(f[3], 16).ok()?;
        let (tx, rx) = f[4].split_once(':')?;
        Some((
            state,
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// TCP states in /proc/net/tcp (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_FIN_WAIT1: u8 = 4;
pub const TCP_FIN_WAIT2: u8 = 5;

/// Waits until the server has read everything `client` sent.
pub fn wait_server_read_all(client: &TcpStream) {
    assert!(
        wait_until(Duration::from_secs(5), || {
            matches!(server_end(client), Some((TCP_ESTABLISHED, _, 0)))
        }),
        "the server did not read what was sent: {:?}",
        server_end(client)
    );
}

/// A child's output, killing it if it runs longer than `within`: a peer
/// program that hangs fails its test instead of stalling `cargo test`.
pub fn output_within(child: std::process::Child, within: Duration) -> std::process::Output {
    let pid = child.id();
    let (done, over) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if over.recv_timeout(within).is_err() {
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let output = child.wait_with_output().unwrap();
    drop(done);
    output
}

/// stub_status's three counters: (accepted, handled, requests). The
/// status request is itself one connection and one request.
pub fn stub_counters(server: &Server) -> (u64, u64, u64) {
    let mut s = server.connect();
    let body = exchange(&mut s, &get("/status")).body_text();
    let numbers: Vec<u64> = body
        .lines()
        .nth(2)
        .unwrap_or_default()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let [accepted, handled, requests] = numbers[..] else {
        panic!("not stub_status: {body}")
    };
    (accepted, handled, requests)
}
