//! One access-log line: what it says ([`Entry`]) and how each format
//! writes it, with client bytes escaped so a line is always one line.
//!
//! Panics: `reply.len() - end - 4` in [`body_bytes`] cannot underflow:
//! `end` is where a 4-byte window of `reply` starts.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::LogFormat;
use crate::http::request::{RequestHead, Version};
use crate::http::session::ConnFacts;

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
            connection_requests: facts.requests_before.saturating_add(1),
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

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

    #[test]
    fn the_request_number_stops_at_its_largest() {
        // A connection past u32::MAX requests (`--max-requests 0`).
        let facts = ConnFacts {
            requests_before: u32::MAX,
            has_body: false,
            peer: "192.0.2.7:4000".parse().unwrap(),
            secure: false,
            started: Instant::now(),
        };
        let entry = Entry::for_refusal(None, &facts, 400, 0);
        assert_eq!(entry.connection_requests, u32::MAX);
    }

    #[test]
    fn a_request_line_carries_what_the_head_said() {
        use crate::http::HeadLimits;
        use crate::http::request::{HeadOutcome, parse_head};
        let limits = HeadLimits {
            max_header_bytes: 4096,
            max_uri_bytes: 1024,
        };
        let bytes =
            b"HEAD /x?y HTTP/1.0\r\nHost: h\r\nReferer: http://r/\r\nUser-Agent: ua/1\r\n\r\n";
        let HeadOutcome::Complete(head) = parse_head(bytes, &limits) else {
            panic!("a complete head");
        };
        let facts = ConnFacts {
            requests_before: 2,
            has_body: false,
            peer: "192.0.2.7:4000".parse().unwrap(),
            secure: false,
            started: Instant::now(),
        };
        let entry = Entry::for_request(&head, &facts, 200, 0);
        assert_eq!(
            line(LogFormat::Combined, &entry),
            "192.0.2.7 - - [06/Nov/1994:08:49:37 +0000] \"HEAD /x?y HTTP/1.0\" 200 0 \
             \"http://r/\" \"ua/1\"\n"
        );
        assert_eq!(entry.connection_requests, 3);
    }

    pub(in crate::accesslog) fn entry<'a>() -> Entry<'a> {
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

    pub(in crate::accesslog) const TIMES: Times<'static> = Times {
        clf: "06/Nov/1994:08:49:37 +0000",
        iso: "1994-11-06T08:49:37+00:00",
    };

    pub(in crate::accesslog) fn line(format: LogFormat, entry: &Entry<'_>) -> String {
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
}
