//! Talking HTTP/1.1 to a server over raw sockets: requests as exact
//! bytes, responses parsed with their heads kept as sent, and what the
//! kernel says about the server's end of a connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::wait_until;

/// A GET of `path` with `headers` (each ending in CRLF) after the Host.
pub fn get_with(path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n")
}

/// A plain GET of `path`.
pub fn get(path: &str) -> String {
    get_with(path, "")
}

/// A client socket with a 4 KiB receive buffer, so that what it does not
/// read stays in the server (a slow reader).
pub fn connect_small_window(addr: SocketAddr, within: Duration) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect_timeout(&addr.into(), within)?;
    Ok(socket.into())
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

/// Reads one response framed by its Content-Length from any byte stream
/// (a TLS one too), with `buf` holding bytes already read past earlier
/// responses: (head exactly as sent, body). Lean, for hot loops: no
/// parsing beyond the framing, no HEAD, 204 or 304.
pub fn read_framed(stream: &mut impl Read, buf: &mut Vec<u8>) -> (String, Vec<u8>) {
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length").then_some(value)
                })
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                let body = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                return (head, body);
            }
        }
        let n = stream.read(&mut chunk).expect("read a response");
        assert!(n > 0, "EOF before a full response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
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

/// A connection to `to` from `source` (any address of 127.0.0.0/8, or
/// ::1): a client of its own for per-address rules and limits.
pub fn connect_from(source: std::net::IpAddr, to: SocketAddr) -> TcpStream {
    let domain = socket2::Domain::for_address(to);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();
    stream
}
