//! Request-head parsing and validation (RFC 9112 §2–§7, RFC 9110 §5–§9).
//!
//! [`parse_head`] takes the bytes buffered so far and answers one of three
//! things: the head is not complete yet, here is a validated head, or the
//! request must be rejected with a precise status. It never touches a
//! socket and never allocates: header values stay borrowed from the input.
//!
//! Panics: none from input. The slices left are bounded where they are
//! taken: `&input[..line_limit]` only when `long_line` found the input
//! longer than that, `leading_empty_lines` steps only past the line ends
//! it matched, and a byte is a digit before `b - b'0'`.

use std::mem::MaybeUninit;

use super::body::Framing;
use super::status::Status;

/// The most header fields a request may carry (beyond this: 431).
pub const MAX_HEADERS: usize = 100;

/// Limits on the size of a request head, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The whole head, request line included (`--max-header-bytes`).
    pub max_header_bytes: usize,
    /// The request target (`--max-uri-bytes`).
    pub max_uri_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Options,
    /// A method defined by RFC 9110 (or PATCH) that holdline does not
    /// serve: answered 405 with `Allow`.
    OtherKnown,
    /// Any other token: answered 501.
    Unknown,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            "POST" | "PUT" | "DELETE" | "CONNECT" | "TRACE" | "PATCH" => Method::OtherKnown,
            _ => Method::Unknown,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// The tokens of every `Connection` header that matter to persistence
/// (RFC 9110 §7.6.1: a comma-separated, case-insensitive list, possibly
/// spread over several header lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionTokens {
    pub close: bool,
    pub keep_alive: bool,
}

/// A complete, validated request head. Everything borrows from the input.
#[derive(Debug, Clone)]
pub struct RequestHead<'a> {
    pub method: Method,
    pub method_str: &'a str,
    pub target: &'a str,
    pub version: Version,
    /// Bytes the head occupies in the input, final CRLFCRLF included.
    pub head_len: usize,
    pub connection: ConnectionTokens,
    pub framing: Framing,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_match: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub accept_encoding: Option<&'a [u8]>,
    /// `Accept`: only the status page reads it (HTML for a browser).
    pub accept: Option<&'a [u8]>,
    /// `Host`, as sent (one at most: two are refused).
    pub host: Option<&'a [u8]>,
    /// `Referer` and `User-Agent`: only the access log reads them.
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// The last `X-Forwarded-For` line: read only when the peer is a
    /// `--trusted-proxy`.
    pub forwarded_for: Option<&'a [u8]>,
    /// `Authorization`, for `auth` rules; never logged.
    pub authorization: Option<&'a [u8]>,
}

/// Why a request is refused before it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: Status,
    /// The version, when it could be read: decides nothing but logging.
    pub version: Option<Version>,
    /// Bytes of the input this request occupied, when the head was
    /// complete; `None` when framing is lost. Every rejection closes the
    /// connection either way (its answer says close); this tells tests and
    /// the fuzzer where the head ended.
    pub head_len: Option<usize>,
}

impl<'a> RequestHead<'a> {
    /// A plain HTTP/1.1 GET (or HEAD) of `target` with no other header:
    /// what the server asks itself for when it serves a page in place of
    /// a request it could not read (`--error-page`).
    pub fn plain(target: &'a str, is_head: bool) -> RequestHead<'a> {
        RequestHead {
            method: if is_head { Method::Head } else { Method::Get },
            method_str: if is_head { "HEAD" } else { "GET" },
            target,
            version: Version::Http11,
            head_len: 0,
            connection: ConnectionTokens::default(),
            framing: Framing::None,
            expect_continue: false,
            if_none_match: None,
            if_modified_since: None,
            if_match: None,
            if_unmodified_since: None,
            range: None,
            if_range: None,
            accept_encoding: None,
            accept: None,
            host: None,
            referer: None,
            user_agent: None,
            forwarded_for: None,
            authorization: None,
        }
    }
}

// Returned by value for every request; boxing the head would allocate per
// request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum HeadOutcome<'a> {
    /// More bytes are needed; nothing is wrong yet.
    Partial,
    Complete(RequestHead<'a>),
    Reject(Rejection),
}

fn reject(status: Status) -> HeadOutcome<'static> {
    HeadOutcome::Reject(Rejection {
        status,
        version: None,
        head_len: None,
    })
}

/// Parses the request head at the start of `buf`.
///
/// `buf` holds at most `limits.max_header_bytes` bytes; when it is that full
/// and the head is still incomplete, the answer is 431 (or 414 when even the
/// request line has not ended), so an oversized head is refused without
/// being buffered whole.
pub fn parse_head<'a>(buf: &'a [u8], limits: &HeadLimits) -> HeadOutcome<'a> {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before
    // the request line (some clients send CRLF after a POST body).
    let skip = leading_empty_lines(buf);
    let input = &buf[skip..];

    // A request line longer than any allowed target could make it
    // ("METHOD SP target SP HTTP/1.1") gets 414 without waiting for its
    // end. To give the same answer however the bytes were split, such a
    // line is judged on its first `line_limit` bytes only: a syntax error
    // there is a 400, anything else a 414.
    // Saturating: `--max-uri-bytes` may be any number (a reload sets it).
    let line_limit = limits.max_uri_bytes.saturating_add(64);
    let long_line = match input.iter().position(|&b| b == b'\n') {
        Some(end) => end > line_limit,
        None => input.len() > line_limit,
    };
    let judged = if long_line {
        &input[..line_limit]
    } else {
        input
    };

    // Uninitialized: httparse writes only the slots it fills, and filling
    // a hundred empty headers first would cost more than parsing a head.
    let mut headers = [const { MaybeUninit::<httparse::Header<'a>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(judged, &mut headers) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return reject(Status::HeaderFieldsTooLarge),
        Err(httparse::Error::Version) => {
            return match version_status(judged) {
                Some(status) => reject(status),
                // Judge the version only on a whole request line, so the
                // answer does not depend on where the bytes were split.
                None if long_line => reject(Status::UriTooLong),
                None => partial_outcome(judged, buf.len(), limits),
            };
        }
        Err(_) => return reject(Status::BadRequest),
    };
    let head_len = match status {
        httparse::Status::Complete(n) => n + skip,
        httparse::Status::Partial if long_line => return reject(Status::UriTooLong),
        httparse::Status::Partial => return partial_outcome(judged, buf.len(), limits),
    };

    let (Some(method_str), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return reject(Status::BadRequest);
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let refuse = |status| {
        HeadOutcome::Reject(Rejection {
            status,
            version: Some(version),
            head_len: Some(head_len),
        })
    };
    let refuse_and_close = |status| {
        HeadOutcome::Reject(Rejection {
            status,
            version: Some(version),
            head_len: None,
        })
    };
    if target.len() > limits.max_uri_bytes {
        return refuse_and_close(Status::UriTooLong);
    }

    let mut connection = ConnectionTokens::default();
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = TransferCodings::default();
    let mut host_count = 0usize;
    let mut host = None;
    let mut expect_continue = false;
    let mut expect_other = false;
    let mut if_none_match = None;
    let mut if_modified_since = None;
    let mut if_match = None;
    let mut if_unmodified_since = None;
    let mut range = None;
    let mut if_range = None;
    let mut accept_encoding = None;
    let mut accept = None;
    let mut user_agent = None;
    let mut referer = None;
    let mut forwarded_for = None;
    let mut authorization = None;

    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        // By length first: one comparison of the name's bytes at most
        // for most lines, however many names are known.
        match name.len() {
            4 if is(b"host") => {
                host_count += 1;
                host = Some(trim_ows(h.value));
            }
            5 if is(b"range") => range = Some(h.value),
            6 if is(b"accept") => accept = Some(h.value),
            6 if is(b"expect") => {
                if trim_ows(h.value).eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    expect_other = true;
                }
            }
            7 if is(b"referer") => referer = Some(h.value),
            8 if is(b"if-match") => if_match = Some(h.value),
            8 if is(b"if-range") => if_range = Some(h.value),
            10 if is(b"connection") => {
                for token in list_tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        connection.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        connection.keep_alive = true;
                    }
                }
            }
            10 if is(b"user-agent") => user_agent = Some(h.value),
            13 if is(b"authorization") => authorization = Some(h.value),
            13 if is(b"if-none-match") => if_none_match = Some(h.value),
            14 if is(b"content-length") => {
                // RFC 9110 §8.6: digits only; a list of identical values
                // may be accepted, differing values are an unrecoverable
                // framing error.
                for item in h.value.split(|&b| b == b',') {
                    let Some(n) = parse_content_length(trim_ows(item)) else {
                        return refuse_and_close(Status::BadRequest);
                    };
                    match content_length {
                        Some(prev) if prev != n => return refuse_and_close(Status::BadRequest),
                        _ => content_length = Some(n),
                    }
                }
            }
            15 if is(b"accept-encoding") => accept_encoding = Some(h.value),
            15 if is(b"x-forwarded-for") => forwarded_for = Some(h.value),
            17 if is(b"if-modified-since") => if_modified_since = Some(h.value),
            17 if is(b"transfer-encoding") => transfer_encoding.add(h.value),
            19 if is(b"if-unmodified-since") => if_unmodified_since = Some(h.value),
            _ => {}
        }
    }

    // RFC 9112 §6.1–§6.3: body framing. Transfer-Encoding wins over
    // Content-Length, but a request that sends both is a smuggling attempt
    // or a broken intermediary: refuse it and close.
    let framing = if transfer_encoding.seen {
        if version == Version::Http10 || content_length.is_some() {
            return refuse_and_close(Status::BadRequest);
        }
        if transfer_encoding.unknown {
            return refuse_and_close(Status::NotImplemented);
        }
        if !transfer_encoding.final_chunked() {
            return refuse_and_close(Status::BadRequest);
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };

    // RFC 9112 §3.2: an HTTP/1.1 request carries exactly one Host.
    let bad_host = match version {
        Version::Http11 => host_count != 1,
        Version::Http10 => host_count > 1,
    };
    if bad_host {
        return match framing {
            Framing::None | Framing::Length(_) => refuse(Status::BadRequest),
            Framing::Chunked => refuse_and_close(Status::BadRequest),
        };
    }
    if expect_other {
        return refuse(Status::ExpectationFailed);
    }

    HeadOutcome::Complete(RequestHead {
        method: Method::from_token(method_str),
        method_str,
        target,
        version,
        head_len,
        connection,
        framing,
        expect_continue,
        if_none_match,
        if_modified_since,
        if_match,
        if_unmodified_since,
        range,
        if_range,
        accept_encoding,
        accept,
        host,
        referer,
        user_agent,
        forwarded_for,
        authorization,
    })
}

/// What to say about a head that is not complete yet.
fn partial_outcome(input: &[u8], buffered: usize, limits: &HeadLimits) -> HeadOutcome<'static> {
    if buffered >= limits.max_header_bytes {
        let line_ended = input.contains(&b'\n');
        return reject(if line_ended {
            Status::HeaderFieldsTooLarge
        } else {
            Status::UriTooLong
        });
    }
    HeadOutcome::Partial
}

/// httparse only knows HTTP/1.0 and HTTP/1.1. A well-formed request line
/// (`method SP target SP HTTP/d.d`) with any other version gets 505 (RFC
/// 9110 §15.6.6); any other line 400. `None` while the line is incomplete.
fn version_status(input: &[u8]) -> Option<Status> {
    let line_end = input.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = &input[..line_end];
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(Status::BadRequest);
    };
    Some(match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Status::VersionNotSupported
        }
        _ => Status::BadRequest,
    })
}

fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if buf[i..].starts_with(b"\r\n") {
            i += 2;
        } else if buf[i..].starts_with(b"\n") {
            i += 1;
        } else {
            return i;
        }
    }
}

/// Transfer codings seen across all Transfer-Encoding lines.
#[derive(Debug, Default)]
struct TransferCodings {
    seen: bool,
    chunked_count: usize,
    last_is_chunked: bool,
    unknown: bool,
}

impl TransferCodings {
    fn add(&mut self, value: &[u8]) {
        // An empty Transfer-Encoding value is still a framing claim.
        self.seen = true;
        for coding in list_tokens(value) {
            let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            let known = is_chunked
                || [
                    &b"gzip"[..],
                    b"x-gzip",
                    b"deflate",
                    b"compress",
                    b"x-compress",
                ]
                .iter()
                .any(|k| coding.eq_ignore_ascii_case(k));
            self.unknown |= !known;
            self.chunked_count += usize::from(is_chunked);
            self.last_is_chunked = is_chunked;
        }
    }

    /// RFC 9112 §6.1: chunked must be applied exactly once, and last.
    fn final_chunked(&self) -> bool {
        self.chunked_count == 1 && self.last_is_chunked
    }
}

/// Iterates the non-empty elements of a comma-separated list, trimmed of
/// optional whitespace (RFC 9110 §5.6.1).
pub fn list_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_content_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests;
