//! The access log: one line per request, formatted on the reactor into a
//! buffer of its own, written to disk by one writer thread.
//!
//! The reactor never waits for the disk. Each worker appends lines to its
//! [`AccessLog`] buffer (reused: no allocation per request once it has
//! grown) and, at the end of each turn of its loop, hands the buffer to the
//! [`Sink`]'s writer thread through a channel, taking an empty one back
//! from a free list. The writer thread owns the file and does the blocking
//! `write`s. What may wait for it is bounded ([`SLOTS`] buffers):
//! past that, a slow or stuck disk costs lines (counted and logged once),
//! never memory and never the reactor's time. A failing write (a full
//! disk, `/dev/full`) is logged once, and once more when writes succeed
//! again; it is never fatal.
//!
//! SIGUSR1 asks the writer to reopen the file by its name (logrotate's
//! convention, as nginx's USR1): lines already handed over go to the old
//! file, later ones to the new. The file is opened at start before
//! privileges are dropped; a reopen or a reload that names another file
//! opens it with the server's user (a failure keeps the old file).
//!
//! [`format_line`] is plain code over bytes, tested without a thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::request::{RequestHead, Version};
use crate::http::session::ConnFacts;

/// A worker hands its buffer over once it holds this much, even in the
/// middle of a turn of the loop.
pub const FLUSH_AT: usize = 32 << 10;

/// Buffers are made with room for a flush's worth and a long line more.
const BUF_CAPACITY: usize = FLUSH_AT + (8 << 10);

/// Buffers that travel between the workers and the writer, at most (so at
/// most 2 MiB of lines wait for the disk): when every one is waiting to be
/// written, lines are dropped. Made at start, so handing lines over never
/// allocates.
pub const SLOTS: usize = 64;

/// A buffer that grew past this (a line of hostile length) is not reused.
pub const BUF_KEEP: usize = 2 * FLUSH_AT;

/// The access log's line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// nginx's `combined`: common, then the Referer and User-Agent.
    Combined,
    /// The Common Log Format.
    Common,
    /// One JSON object per line, with the keep-alive fields.
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Combined => "combined",
            LogFormat::Common => "common",
            LogFormat::Json => "json",
        }
    }

    pub fn from_name(name: &str) -> Option<LogFormat> {
        [LogFormat::Combined, LogFormat::Common, LogFormat::Json]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

/// What one request's line says.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub peer: SocketAddr,
    /// "-" for a request that could not be parsed.
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub status: u16,
    /// Body bytes of the response, the head not included (CLF's size,
    /// nginx's `$body_bytes_sent`); 0 for HEAD and 304.
    pub bytes: u64,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// From the request's first byte to its response being queued: the
    /// time spent waiting for the head and answering it (a large body's
    /// transfer is not included; the line is written as it starts).
    pub request_time: Duration,
    /// This request's number on its connection, 1 for the first.
    pub connection_requests: u32,
    pub secure: bool,
}

impl<'a> Entry<'a> {
    /// The line of a response to a parsed request.
    pub fn for_request(
        head: &RequestHead<'a>,
        facts: &ConnFacts,
        status: u16,
        bytes: u64,
    ) -> Entry<'a> {
        Entry {
            method: head.method_str,
            target: head.target,
            version: head.version.as_str(),
            referer: head.referer,
            user_agent: head.user_agent,
            ..Entry::for_refusal(None, facts, status, bytes)
        }
    }

    /// The line of a response to a request that could not be parsed (or
    /// timed out): its version when the request line said one, "-" for
    /// the rest, as nginx logs a bad request.
    pub fn for_refusal(
        version: Option<Version>,
        facts: &ConnFacts,
        status: u16,
        bytes: u64,
    ) -> Entry<'a> {
        Entry {
            peer: facts.peer,
            method: "-",
            target: "-",
            version: version.map_or("-", Version::as_str),
            status,
            bytes,
            referer: None,
            user_agent: None,
            // The clock read now, not the loop's: the answer's own time
            // counts (one vDSO call, only with the log on).
            request_time: Instant::now().saturating_duration_since(facts.started),
            connection_requests: facts.requests_before + 1,
            secure: facts.secure,
        }
    }
}

/// The body bytes of the reply just encoded (what CLF and nginx's
/// `$body_bytes_sent` log): what follows its head, past an interim
/// `100 Continue`. A head never holds an empty line, so its first one
/// ends it.
pub fn body_bytes(reply: &[u8]) -> u64 {
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let reply = reply.strip_prefix(CONTINUE).unwrap_or(reply);
    let head = reply.windows(4).position(|w| w == b"\r\n\r\n");
    head.map_or(0, |end| (reply.len() - end - 4) as u64)
}

/// The times a line may carry, formatted once a second by the caller's
/// date cache.
#[derive(Debug, Clone, Copy)]
pub struct Times<'a> {
    /// `06/Nov/1994:08:49:37 +0000`
    pub clf: &'a str,
    /// `1994-11-06T08:49:37+00:00`
    pub iso: &'a str,
}

/// Appends `entry`'s line (newline included) to `out`.
pub fn format_line(out: &mut Vec<u8>, format: LogFormat, entry: &Entry<'_>, times: Times<'_>) {
    if format == LogFormat::Json {
        return format_json(out, entry, times);
    }
    // nginx: $remote_addr - $remote_user [$time_local] "$request"
    // $status $body_bytes_sent "$http_referer" "$http_user_agent"
    let _ = write!(out, "{} - - [{}] \"", entry.peer.ip(), times.clf);
    escape(out, entry.method.as_bytes());
    out.push(b' ');
    escape(out, entry.target.as_bytes());
    out.push(b' ');
    escape(out, entry.version.as_bytes());
    let _ = write!(out, "\" {} {}", entry.status, entry.bytes);
    if format == LogFormat::Combined {
        for value in [entry.referer, entry.user_agent] {
            out.extend_from_slice(b" \"");
            escape(out, value.unwrap_or(b"-"));
            out.push(b'"');
        }
    }
    out.push(b'\n');
}

fn format_json(out: &mut Vec<u8>, entry: &Entry<'_>, times: Times<'_>) {
    let _ = write!(
        out,
        "{{\"time\":\"{}\",\"remote_addr\":\"{}\",\"method\":\"",
        times.iso,
        entry.peer.ip()
    );
    escape_json(out, entry.method.as_bytes());
    out.extend_from_slice(b"\",\"target\":\"");
    escape_json(out, entry.target.as_bytes());
    out.extend_from_slice(b"\",\"protocol\":\"");
    escape_json(out, entry.version.as_bytes());
    let _ = write!(
        out,
        "\",\"status\":{},\"bytes\":{},\"referer\":",
        entry.status, entry.bytes
    );
    json_string_or_null(out, entry.referer);
    out.extend_from_slice(b",\"user_agent\":");
    json_string_or_null(out, entry.user_agent);
    let _ = writeln!(
        out,
        ",\"request_time\":{:.6},\"connection_requests\":{},\"reused\":{},\"tls\":{}}}",
        entry.request_time.as_secs_f64(),
        entry.connection_requests,
        entry.connection_requests > 1,
        entry.secure
    );
}

fn json_string_or_null(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(b"null"),
        Some(v) => {
            out.push(b'"');
            escape_json(out, v);
            out.push(b'"');
        }
    }
}

/// nginx's escaping for text log formats: `"`, `\`, control bytes and
/// bytes above 0x7e as `\xXX`, so a line is one line of ASCII whatever a
/// client sends.
fn escape(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            push_hex(out, b"\\x", b, 2);
        } else {
            out.push(b);
        }
    }
}

/// JSON string contents: `"` and `\` escaped, control bytes as `\u00XX`;
/// a byte above 0x7e is written as `\u00XX` too (the Latin-1 reading of
/// the byte), so the line stays valid UTF-8 whatever a client sends.
fn escape_json(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => push_hex(out, b"\\u", b, 4),
        }
    }
}

fn push_hex(out: &mut Vec<u8>, prefix: &[u8], b: u8, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(prefix);
    out.extend(std::iter::repeat_n(b'0', digits - 2));
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 15)]);
}

/// What the writer thread is told besides lines, through
/// [`Queue::control`].
enum Control {
    /// SIGUSR1: open the same name again.
    Reopen,
    /// A reload named another file (`None`: logging was turned off).
    Open(Option<PathBuf>),
}

/// Where lines go: standard output, or a file opened for appending.
enum Output {
    Off,
    Stdout,
    File(PathBuf, File),
}

impl Output {
    fn open(path: Option<&Path>) -> io::Result<Output> {
        match path {
            None => Ok(Output::Off),
            Some(p) if p == Path::new("-") => Ok(Output::Stdout),
            Some(p) => {
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o644)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(p)?;
                Ok(Output::File(p.to_path_buf(), file))
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Output::Off => "off".into(),
            Output::Stdout => "standard output".into(),
            Output::File(path, _) => path.display().to_string(),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::Off => Ok(()),
            Output::Stdout => io::stdout().lock().write_all(bytes),
            Output::File(_, file) => file.write_all(bytes),
        }
    }
}

/// What the workers and the writer thread share.
#[derive(Default)]
struct Queue {
    /// Empty buffers, for the workers to swap for full ones.
    free: Mutex<Vec<Vec<u8>>>,
    /// Buffers in existence besides the workers' own: at most [`SLOTS`].
    made: AtomicUsize,
    /// Bytes of lines dropped because the queue was full.
    dropped: AtomicU64,
    /// Reopen and open requests, taken by the writer after each buffer.
    control: Mutex<Vec<Control>>,
}

/// The writer thread, as the workers hold it. One per server; when the
/// last worker lets go of it (at exit), what was handed over is written
/// and the thread ends.
pub struct Sink {
    /// A bounded channel: its slots are allocated once, so handing a
    /// buffer over allocates nothing, and a full one never blocks.
    sender: Mutex<Option<SyncSender<Vec<u8>>>>,
    queue: Arc<Queue>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Sink {
    /// Opens `path` (`-`: standard output; `None`: nothing yet, a reload
    /// may name a file) and starts the writer thread.
    pub fn start(path: Option<&Path>) -> io::Result<Arc<Sink>> {
        let output = Output::open(path)?;
        let (sender, receiver) = mpsc::sync_channel(SLOTS);
        let queue = Arc::new(Queue::default());
        if path.is_some() {
            // Every buffer now: the workers then never allocate one. (A
            // reload that turns logging on makes them as they are needed.)
            let buffers = (0..SLOTS).map(|_| Vec::with_capacity(BUF_CAPACITY));
            lock(&queue.free).extend(buffers);
            queue.made.store(SLOTS, Ordering::Relaxed);
        }
        let shared = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("holdline-log".into())
            .spawn(move || write_loop(&shared, output, receiver))?;
        Ok(Arc::new(Sink {
            sender: Mutex::new(Some(sender)),
            queue,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Hands `lines` to the writer, or gives them back if its channel is
    /// full or closed.
    fn send(&self, lines: Vec<u8>) -> Result<(), Vec<u8>> {
        let sender = lock(&self.sender);
        let Some(sender) = sender.as_ref() else {
            return Err(lines);
        };
        sender.try_send(lines).map_err(|e| match e {
            TrySendError::Full(lines) | TrySendError::Disconnected(lines) => lines,
        })
    }

    fn control(&self, control: Control) {
        lock(&self.queue.control).push(control);
        // Wakes the writer if it waits; if the channel is full, it looks
        // at the controls after the buffer it is writing.
        let _ = self.send(Vec::new());
    }

    /// SIGUSR1: reopen the file by its name.
    pub fn reopen(&self) {
        self.control(Control::Reopen);
    }

    /// A reload named another file, or none.
    pub fn open(&self, path: Option<PathBuf>) {
        self.control(Control::Open(path));
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        lock(&self.sender).take();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: writes what the workers hand over, in order, until
/// every sender is gone.
fn write_loop(queue: &Queue, mut output: Output, receiver: Receiver<Vec<u8>>) {
    let mut failing = false;
    let mut dropped_told = 0;
    while let Ok(mut lines) = receiver.recv() {
        if !lines.is_empty() {
            match output.write_all(&lines) {
                Ok(()) if failing => {
                    log::warn!("access log {}: writing again", output.name());
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    log::error!(
                        "access log {}: {e}; lines are lost until a write succeeds",
                        output.name()
                    );
                    failing = true;
                }
                Err(_) => {}
            }
            lines.clear();
            if lines.capacity() <= BUF_KEEP {
                lock(&queue.free).push(lines);
            } else {
                queue.made.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let controls = std::mem::take(&mut *lock(&queue.control));
        for control in controls {
            match control {
                Control::Reopen => {
                    let Output::File(path, _) = &output else {
                        continue;
                    };
                    match Output::open(Some(path)) {
                        Ok(reopened) => {
                            log::info!("SIGUSR1: reopened the access log {}", path.display());
                            output = reopened;
                            failing = false;
                        }
                        Err(e) => log::error!(
                            "SIGUSR1: cannot reopen the access log {}: {e}; still writing to the old file",
                            path.display()
                        ),
                    }
                }
                Control::Open(path) => match Output::open(path.as_deref()) {
                    Ok(opened) => {
                        output = opened;
                        failing = false;
                    }
                    Err(e) => log::error!(
                        "access log {}: {e}; still writing to {}",
                        path.unwrap_or_default().display(),
                        output.name()
                    ),
                },
            }
        }
        let dropped = queue.dropped.load(Ordering::Relaxed);
        if dropped != dropped_told {
            log::warn!(
                "access log {}: {} bytes of lines dropped: the disk is slower than the requests",
                output.name(),
                dropped - dropped_told
            );
            dropped_told = dropped;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One worker's side of the access log: the format and the buffer lines
/// are formatted into.
pub struct AccessLog {
    /// `None`: not logging.
    format: Option<LogFormat>,
    buf: Vec<u8>,
    sink: Arc<Sink>,
}

impl AccessLog {
    pub fn new(format: Option<LogFormat>, sink: Arc<Sink>) -> AccessLog {
        let buf = match format {
            Some(_) => Vec::with_capacity(BUF_CAPACITY),
            None => Vec::new(),
        };
        AccessLog { format, buf, sink }
    }

    pub fn enabled(&self) -> bool {
        self.format.is_some()
    }

    /// A reload changed the format, or turned logging on or off.
    pub fn set_format(&mut self, format: Option<LogFormat>) {
        self.format = format;
    }

    pub fn sink(&self) -> &Arc<Sink> {
        &self.sink
    }

    /// Formats one request's line into the buffer.
    pub fn log(&mut self, entry: &Entry<'_>, times: Times<'_>) {
        let Some(format) = self.format else {
            return;
        };
        format_line(&mut self.buf, format, entry, times);
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Hands the buffered lines to the writer thread, or drops them if
    /// every buffer already waits for it. Called at the end of each turn
    /// of the reactor's loop.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let queue = &self.sink.queue;
        let spare = lock(&queue.free).pop().or_else(|| {
            let made = queue.made.fetch_add(1, Ordering::Relaxed);
            if made < SLOTS {
                Some(Vec::with_capacity(BUF_CAPACITY))
            } else {
                queue.made.fetch_sub(1, Ordering::Relaxed);
                None
            }
        });
        let Some(empty) = spare else {
            queue
                .dropped
                .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
            self.buf.clear();
            return;
        };
        let full = std::mem::replace(&mut self.buf, empty);
        if let Err(mut back) = self.sink.send(full) {
            // The writer is gone (the server is stopping).
            queue
                .dropped
                .fetch_add(back.len() as u64, Ordering::Relaxed);
            back.clear();
            lock(&queue.free).push(back);
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_bytes_follow_the_head_and_an_interim_continue() {
        use super::body_bytes;
        assert_eq!(
            body_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
            3
        );
        assert_eq!(
            body_bytes(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"),
            0
        );
        // A body that holds an empty line is still counted whole.
        assert_eq!(body_bytes(b"HTTP/1.1 200 OK\r\n\r\na\r\n\r\nb"), 6);
        assert_eq!(
            body_bytes(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: y\r\n\r\nab"),
            2
        );
    }

    use super::*;

    fn entry<'a>() -> Entry<'a> {
        Entry {
            peer: "192.0.2.7:4000".parse().unwrap(),
            method: "GET",
            target: "/a b\"c",
            version: "HTTP/1.1",
            status: 200,
            bytes: 1234,
            referer: Some(b"http://example.com/"),
            user_agent: Some(b"curl/8.0 \x01\xff"),
            request_time: Duration::from_micros(1500),
            connection_requests: 3,
            secure: false,
        }
    }

    const TIMES: Times<'static> = Times {
        clf: "06/Nov/1994:08:49:37 +0000",
        iso: "1994-11-06T08:49:37+00:00",
    };

    fn line(format: LogFormat, entry: &Entry<'_>) -> String {
        let mut out = Vec::new();
        format_line(&mut out, format, entry, TIMES);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn combined_and_common_as_nginx_writes_them() {
        assert_eq!(
            line(LogFormat::Combined, &entry()),
            "192.0.2.7 - - [06/Nov/1994:08:49:37 +0000] \"GET /a b\\x22c HTTP/1.1\" 200 1234 \
             \"http://example.com/\" \"curl/8.0 \\x01\\xff\"\n"
        );
        let bare = Entry {
            referer: None,
            user_agent: None,
            ..entry()
        };
        assert!(line(LogFormat::Combined, &bare).ends_with(" 200 1234 \"-\" \"-\"\n"));
        assert_eq!(
            line(LogFormat::Common, &entry()),
            "192.0.2.7 - - [06/Nov/1994:08:49:37 +0000] \"GET /a b\\x22c HTTP/1.1\" 200 1234\n"
        );
    }

    #[test]
    fn json_parses_and_carries_the_keep_alive_fields() {
        let text = line(LogFormat::Json, &entry());
        // Byte for byte: printable ASCII as is, `"` and `\` escaped, the
        // rest as \u00XX.
        assert_eq!(
            text,
            "{\"time\":\"1994-11-06T08:49:37+00:00\",\"remote_addr\":\"192.0.2.7\",\
             \"method\":\"GET\",\"target\":\"/a b\\\"c\",\"protocol\":\"HTTP/1.1\",\
             \"status\":200,\"bytes\":1234,\"referer\":\"http://example.com/\",\
             \"user_agent\":\"curl/8.0 \\u0001\\u00ff\",\"request_time\":0.001500,\
             \"connection_requests\":3,\"reused\":true,\"tls\":false}\n"
        );
        let backslash = Entry {
            target: "/a\\b",
            ..entry()
        };
        assert!(line(LogFormat::Json, &backslash).contains("\"target\":\"/a\\\\b\""));
        assert!(text.ends_with('\n') && !text.trim_end().contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["time"], "1994-11-06T08:49:37+00:00");
        assert_eq!(v["remote_addr"], "192.0.2.7");
        assert_eq!(v["target"], "/a b\"c");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 1234);
        assert_eq!(v["user_agent"], "curl/8.0 \u{1}\u{ff}");
        assert_eq!(v["request_time"], 0.0015);
        assert_eq!(v["connection_requests"], 3);
        assert_eq!(v["reused"], true);
        let first = Entry {
            connection_requests: 1,
            referer: None,
            ..entry()
        };
        let v: serde_json::Value = serde_json::from_str(&line(LogFormat::Json, &first)).unwrap();
        assert_eq!(v["reused"], false);
        assert!(v["referer"].is_null());
    }

    #[test]
    fn hostile_bytes_stay_on_one_line() {
        let evil = Entry {
            target: "/\r\n127.0.0.1 - - [forged]",
            user_agent: Some(b"\"\\\n"),
            ..entry()
        };
        for format in [LogFormat::Combined, LogFormat::Common, LogFormat::Json] {
            let text = line(format, &evil);
            assert_eq!(text.matches('\n').count(), 1, "{text}");
            assert!(!text.contains('\r'), "{text}");
        }
    }

    /// The writer thread: lines reach the file in order; SIGUSR1's reopen
    /// starts a new file under the name after a rename; a reload's open
    /// moves the log; letting go of the sink writes what was handed over.
    #[test]
    fn the_writer_writes_reopens_moves_and_finishes() {
        let dir = std::env::temp_dir().join(format!("holdline-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, rotated, moved) = (dir.join("a.log"), dir.join("a.log.1"), dir.join("b.log"));
        let lines = |p: &Path, n: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                if text.lines().count() >= n || std::time::Instant::now() > deadline {
                    return text;
                }
                std::thread::yield_now();
            }
        };
        let sink = Sink::start(Some(&path)).unwrap();
        let mut log = AccessLog::new(Some(LogFormat::Common), Arc::clone(&sink));
        let with = |target| Entry { target, ..entry() };
        log.log(&with("/1"), TIMES);
        log.flush();
        assert!(lines(&path, 1).contains("GET /1 HTTP"));
        std::fs::rename(&path, &rotated).unwrap();
        sink.reopen();
        log.log(&with("/2"), TIMES);
        log.flush();
        assert!(lines(&path, 1).contains("GET /2 HTTP"));
        sink.open(Some(moved.clone()));
        log.log(&with("/3"), TIMES);
        log.flush();
        log.log(&with("/4"), TIMES);
        drop(log);
        drop(sink);
        // The thread is joined: everything is on disk now.
        let count = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!((count(&rotated), count(&path), count(&moved)), (1, 1, 2));
        assert!(
            std::fs::read_to_string(&moved)
                .unwrap()
                .contains("GET /4 HTTP")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A sink whose writer never writes, and the receiving end.
    fn stuck_sink() -> (Arc<Sink>, Receiver<Vec<u8>>) {
        let (sender, receiver) = mpsc::sync_channel(SLOTS);
        let sink = Arc::new(Sink {
            sender: Mutex::new(Some(sender)),
            queue: Arc::new(Queue::default()),
            thread: Mutex::new(None),
        });
        (sink, receiver)
    }

    #[test]
    fn a_reload_turns_the_log_off_and_on() {
        let (sink, receiver) = stuck_sink();
        let mut log = AccessLog::new(None, sink);
        assert!(!log.enabled());
        log.log(&entry(), TIMES);
        assert!(log.buf.is_empty());
        log.set_format(Some(LogFormat::Json));
        assert!(log.enabled());
        log.log(&entry(), TIMES);
        log.flush();
        let sent = receiver.try_recv().unwrap();
        assert!(sent.starts_with(b"{\"time\""));
    }

    #[test]
    fn a_buffer_is_handed_over_once_it_holds_a_flush_worth() {
        let (sink, receiver) = stuck_sink();
        let mut log = AccessLog::new(Some(LogFormat::Combined), sink);
        let one = line(LogFormat::Combined, &entry()).len();
        for _ in 0..(FLUSH_AT / one + 1) {
            log.log(&entry(), TIMES);
            assert!(log.buf.len() < FLUSH_AT);
        }
        // Handed over without a flush from the loop, whole lines only.
        let sent = receiver.try_recv().unwrap();
        assert!(sent.len() >= FLUSH_AT && sent.len() % one == 0);
    }

    #[test]
    fn formats_by_name() {
        for f in [LogFormat::Combined, LogFormat::Common, LogFormat::Json] {
            assert_eq!(LogFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(LogFormat::from_name("Combined"), None);
    }

    #[test]
    fn a_full_queue_drops_lines_instead_of_growing() {
        // No writer thread: nothing is ever written, so the channel fills.
        let (sink, receiver) = stuck_sink();
        let mut log = AccessLog::new(Some(LogFormat::Combined), Arc::clone(&sink));
        let mut lines = 0;
        while sink.queue.dropped.load(Ordering::Relaxed) == 0 {
            log.log(&entry(), TIMES);
            log.flush();
            lines += 1;
            assert!(lines < 1_000_000);
        }
        assert_eq!(lines, SLOTS + 1);
        // What waits is SLOTS buffers, made as they were needed; then the
        // worker's own buffer is reused, and nothing more is made.
        assert_eq!(sink.queue.made.load(Ordering::Relaxed), SLOTS);
        assert_eq!(receiver.try_iter().count(), SLOTS);
        assert!(log.buf.is_empty() && log.buf.capacity() > 0);
        drop(log);
        // The writer's side is gone: lines are dropped, not queued.
        let mut log = AccessLog::new(Some(LogFormat::Json), sink);
        log.log(&entry(), TIMES);
        log.flush();
        assert!(log.buf.is_empty());
    }
}
