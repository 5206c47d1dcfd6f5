//! Response-head encoding: a plain function from a [`ResponseHead`] to
//! bytes appended to a buffer the caller reuses, so encoding allocates
//! nothing once the buffer has grown.

use super::persist::Persistence;
use super::status::Status;

/// The `Allow` value for every resource holdline serves.
pub const ALLOW: &str = "GET, HEAD, OPTIONS";

/// Everything a response head may say. Fields left `None` are omitted.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    pub status: Status,
    /// The `Date` value, from [`super::DateCache`].
    pub date: &'a [u8],
    pub content_type: Option<&'a str>,
    /// Append `; charset=utf-8` to the content type.
    pub charset_utf8: bool,
    /// Omitted for statuses that never carry content (204, 304, 1xx).
    pub content_length: u64,
    pub content_range: Option<ContentRange>,
    pub content_encoding: Option<&'a str>,
    pub last_modified: Option<&'a [u8]>,
    pub etag: Option<&'a [u8]>,
    /// `Accept-Ranges: bytes` (file responses).
    pub accept_ranges: bool,
    /// `Vary: Accept-Encoding` (files that may have precompressed variants).
    pub vary_accept_encoding: bool,
    /// `Vary: Accept` (a listing, HTML or JSON by the request's Accept).
    pub vary_accept: bool,
    pub cache_control: Option<&'a str>,
    pub location: Option<&'a [u8]>,
    pub allow: bool,
    /// `WWW-Authenticate: Basic realm="..."` (401): the realm, checked
    /// at configuration to hold no quote, backslash or control character.
    pub www_authenticate: Option<&'a str>,
    pub retry_after_secs: Option<u32>,
    pub persistence: Persistence,
    /// Header lines the operator added (`--header`), each ending in CRLF.
    pub extra: &'a [u8],
}

/// The `Content-Range` of a 206 or 416 (RFC 9110 §14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes first-last/len`
    Bytes { first: u64, last: u64, len: u64 },
    /// `bytes */len`, with 416.
    Unsatisfied { len: u64 },
}

/// Appends a Content-Range value.
pub fn push_content_range(out: &mut Vec<u8>, range: ContentRange) {
    out.extend_from_slice(b"bytes ");
    match range {
        ContentRange::Bytes { first, last, len } => {
            push_decimal(out, first);
            out.push(b'-');
            push_decimal(out, last);
            out.push(b'/');
            push_decimal(out, len);
        }
        ContentRange::Unsatisfied { len } => {
            out.extend_from_slice(b"*/");
            push_decimal(out, len);
        }
    }
}

impl<'a> ResponseHead<'a> {
    /// A head with only the mandatory parts; set the rest by field.
    pub fn new(status: Status, date: &'a [u8], persistence: Persistence) -> Self {
        ResponseHead {
            status,
            date,
            content_type: None,
            charset_utf8: false,
            content_length: 0,
            content_range: None,
            content_encoding: None,
            last_modified: None,
            etag: None,
            accept_ranges: false,
            vary_accept_encoding: false,
            vary_accept: false,
            cache_control: None,
            location: None,
            allow: false,
            www_authenticate: None,
            retry_after_secs: None,
            persistence,
            extra: b"",
        }
    }

    /// [`ResponseHead::new`] with the operator's header lines.
    pub fn with_extra(
        status: Status,
        date: &'a [u8],
        extra: &'a [u8],
        persistence: Persistence,
    ) -> Self {
        ResponseHead {
            extra,
            ..ResponseHead::new(status, date, persistence)
        }
    }
}

/// Appends the encoded head, final empty line included, to `out`.
pub fn encode_head(out: &mut Vec<u8>, head: &ResponseHead<'_>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(head.status.line().as_bytes());
    out.extend_from_slice(b"\r\nServer: holdline\r\nDate: ");
    out.extend_from_slice(head.date);
    out.extend_from_slice(b"\r\n");
    if let Some(ct) = head.content_type {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ct.as_bytes());
        if head.charset_utf8 {
            out.extend_from_slice(b"; charset=utf-8");
        }
        out.extend_from_slice(b"\r\n");
    }
    if head.status.has_body() {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, head.content_length);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(range) = head.content_range {
        out.extend_from_slice(b"Content-Range: ");
        push_content_range(out, range);
        out.extend_from_slice(b"\r\n");
    }
    // Each line pushed directly (no table of optional lines to walk),
    // constant lines whole.
    if let Some(coding) = head.content_encoding {
        push_line(out, b"Content-Encoding: ", coding.as_bytes());
    }
    if let Some(date) = head.last_modified {
        push_line(out, b"Last-Modified: ", date);
    }
    if let Some(etag) = head.etag {
        push_line(out, b"ETag: ", etag);
    }
    if head.accept_ranges {
        out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
    }
    match (head.vary_accept_encoding, head.vary_accept) {
        (true, true) => out.extend_from_slice(b"Vary: Accept-Encoding, Accept\r\n"),
        (true, false) => out.extend_from_slice(b"Vary: Accept-Encoding\r\n"),
        (false, true) => out.extend_from_slice(b"Vary: Accept\r\n"),
        (false, false) => {}
    }
    if let Some(cache_control) = head.cache_control {
        push_line(out, b"Cache-Control: ", cache_control.as_bytes());
    }
    if let Some(location) = head.location {
        out.extend_from_slice(b"Location: ");
        out.extend_from_slice(location);
        out.extend_from_slice(b"\r\n");
    }
    if head.allow {
        out.extend_from_slice(b"Allow: ");
        out.extend_from_slice(ALLOW.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(realm) = head.www_authenticate {
        out.extend_from_slice(b"WWW-Authenticate: Basic realm=\"");
        out.extend_from_slice(realm.as_bytes());
        out.extend_from_slice(b"\", charset=\"UTF-8\"\r\n");
    }
    if let Some(secs) = head.retry_after_secs {
        out.extend_from_slice(b"Retry-After: ");
        push_decimal(out, u64::from(secs));
        out.extend_from_slice(b"\r\n");
    }
    // Browsers must not guess a type other than the one we send.
    out.extend_from_slice(b"X-Content-Type-Options: nosniff\r\n");
    out.extend_from_slice(head.extra);
    match head.persistence {
        Persistence::Close(_) => out.extend_from_slice(b"Connection: close\r\n"),
        Persistence::KeepAlive {
            timeout_secs,
            requests_left,
        } => {
            out.extend_from_slice(b"Connection: keep-alive\r\nKeep-Alive: timeout=");
            push_decimal(out, timeout_secs);
            if let Some(left) = requests_left {
                out.extend_from_slice(b", max=");
                push_decimal(out, u64::from(left));
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// `name` (with its `: `), `value`, CRLF.
fn push_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The interim `100 Continue` (RFC 9110 §15.2.1).
pub fn encode_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// "00" to "99": two digits per division.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// Appends `n` in decimal without allocating.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n >= 100 {
        let pair = 2 * (n % 100) as usize;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = 2 * n as usize;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_range_and_continue_bytes() {
        let mut out = Vec::new();
        push_content_range(
            &mut out,
            ContentRange::Bytes {
                first: 0,
                last: 99,
                len: 1000,
            },
        );
        out.push(b'|');
        push_content_range(&mut out, ContentRange::Unsatisfied { len: 1000 });
        out.push(b'|');
        encode_continue(&mut out);
        assert_eq!(
            out,
            b"bytes 0-99/1000|bytes */1000|HTTP/1.1 100 Continue\r\n\r\n"
        );
    }

    use super::*;

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn keep_alive_file_head() {
        let mut head = ResponseHead::new(
            Status::Ok,
            DATE,
            Persistence::KeepAlive {
                timeout_secs: 5,
                requests_left: Some(99),
            },
        );
        head.content_type = Some("text/html");
        head.charset_utf8 = true;
        head.content_length = 1234;
        let mut out = Vec::new();
        encode_head(&mut out, &head);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: holdline\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/html; charset=utf-8\r\nContent-Length: 1234\r\n\
             X-Content-Type-Options: nosniff\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=99\r\n\r\n"
        );
    }

    #[test]
    fn close_405_with_allow_and_unlimited_keepalive() {
        let mut head = ResponseHead::new(
            Status::MethodNotAllowed,
            DATE,
            Persistence::Close(crate::close::CloseReason::ResponseClose),
        );
        head.allow = true;
        head.content_length = 0;
        let mut out = Vec::new();
        encode_head(&mut out, &head);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nAllow: GET, HEAD, OPTIONS\r\n"));
        assert!(text.ends_with(
            "Content-Length: 0\r\nAllow: GET, HEAD, OPTIONS\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
        ));

        let head = ResponseHead::new(
            Status::NoContent,
            DATE,
            Persistence::KeepAlive {
                timeout_secs: 7,
                requests_left: None,
            },
        );
        let mut out = Vec::new();
        encode_head(&mut out, &head);
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("Content-Length"),
            "204 has no Content-Length"
        );
        assert!(text.ends_with("Keep-Alive: timeout=7\r\n\r\n"));
    }

    #[test]
    fn decimal() {
        let edges = (0..20).flat_map(|p| {
            let t = 10u64.pow(p);
            [t - 1, t, t + 1]
        });
        for n in [0u64, 7, 10, 99, 100, 1024, 12345, u64::MAX]
            .into_iter()
            .chain(edges)
            .chain(0..1000)
        {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
