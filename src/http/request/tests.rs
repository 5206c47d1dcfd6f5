use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 16 * 1024,
    max_uri_bytes: 8 * 1024,
};

fn complete(bytes: &[u8]) -> RequestHead<'_> {
    match parse_head(bytes, &LIMITS) {
        HeadOutcome::Complete(h) => h,
        other => panic!("expected a complete head, got {other:?}"),
    }
}

fn rejected(bytes: &[u8]) -> Rejection {
    match parse_head(bytes, &LIMITS) {
        HeadOutcome::Reject(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn simple_get() {
    let h = complete(b"GET /a/b?x=1 HTTP/1.1\r\nHost: x\r\n\r\nGET");
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.target, "/a/b?x=1");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.head_len, 34);
    assert_eq!(h.framing, Framing::None);
}

#[test]
fn partial_until_blank_line() {
    for cut in 0..33 {
        let bytes = &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..cut.min(26)];
        assert!(matches!(parse_head(bytes, &LIMITS), HeadOutcome::Partial));
    }
}

#[test]
fn connection_tokens_across_headers_any_case() {
    let h = complete(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nconnection: foo,  CLOSE \r\n\r\n",
    );
    assert!(h.connection.close);
    let h = complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(h.connection.keep_alive && !h.connection.close);
    assert_eq!(h.version, Version::Http10);
}

#[test]
fn version_errors() {
    assert_eq!(
        rejected(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").status,
        Status::VersionNotSupported
    );
    assert_eq!(
        rejected(b"GET / HTTP/3.0\r\n\r\n").status,
        Status::VersionNotSupported
    );
    assert_eq!(rejected(b"GET /\r\n\r\n").status, Status::BadRequest);
    assert_eq!(
        rejected(b"GET / FOO/1.1\r\n\r\n").status,
        Status::BadRequest
    );
    // Found by fuzzing: judged on the whole line, the same whatever the
    // split; a line with four parts is not a well-formed request line.
    assert_eq!(
        rejected(b"GET /a HTTP/1/a HTTP/1.1\r\nHost: x\r\n\r\n").status,
        Status::BadRequest
    );
    assert!(matches!(
        parse_head(b"GET / HTTP/2", &LIMITS),
        HeadOutcome::Partial
    ));
    assert!(matches!(
        parse_head(b"GET /a HTTP/1/a", &LIMITS),
        HeadOutcome::Partial
    ));
}

/// RFC 9110's methods: GET, HEAD and OPTIONS are served; the others
/// it defines (and PATCH) get 405 with Allow; any other token 501.
/// The request line's length limit (max_uri_bytes + 64) at its edges:
/// a line ending exactly at it is parsed whole, one past it is judged
/// on its first line_limit bytes (414), and a target one byte over
/// --max-uri-bytes is 414 even in a short line.
#[test]
fn request_line_limits_at_their_edges() {
    let max = LIMITS.max_uri_bytes;
    let line_limit = max + 64;
    let target = format!("/{}", "a".repeat(max - 1));
    // "M SP target SP HTTP/1.1 CR" ends (its LF) at line_limit: an
    // unknown method of the right length is parsed whole (400-class
    // routing happens later), not cut short as a 414.
    let method = "A".repeat(line_limit - target.len() - 11);
    let exact = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(exact.find('\n'), Some(line_limit));
    let head = complete(exact.as_bytes());
    assert_eq!(head.method, Method::Unknown);
    // One byte longer: judged on its first line_limit bytes, 414.
    let longer = format!("B{exact}");
    assert_eq!(rejected(longer.as_bytes()).status, Status::UriTooLong);
    // A line past the limit wherever its version falls: 414 every time
    // (the answer does not depend on where the limit cuts the line).
    for extra in 0..12 {
        let method = "C".repeat(line_limit - target.len() - 11 + 1 + extra);
        let line = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            rejected(line.as_bytes()).status,
            Status::UriTooLong,
            "{extra}"
        );
    }
    // A long line whose version is already wrong within the first
    // line_limit bytes: judged only on a whole line, so 414 too.
    let bad_version = format!("GET / XTTP/1.1{}", "x".repeat(line_limit));
    assert_eq!(rejected(bad_version.as_bytes()).status, Status::UriTooLong);
    // An unfinished line of exactly line_limit bytes may still end in
    // time: wait for more; one byte more is a 414 at once.
    let partial = format!("GET /{}", "a".repeat(line_limit - 5));
    assert_eq!(partial.len(), line_limit);
    assert!(matches!(
        parse_head(partial.as_bytes(), &LIMITS),
        HeadOutcome::Partial
    ));
    let over = format!("{partial}a");
    assert_eq!(rejected(over.as_bytes()).status, Status::UriTooLong);
    // A target one byte over --max-uri-bytes in a short line.
    let too_long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(max));
    assert_eq!(rejected(too_long.as_bytes()).status, Status::UriTooLong);
    let fits = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(complete(fits.as_bytes()).target.len(), max);
}

/// A well-formed version other than 1.0 and 1.1 is 505; anything that
/// is not `HTTP/digit.digit` is 400.
#[test]
fn unsupported_and_malformed_versions() {
    for line in ["GET / HTTP/3.0", "GET / HTTP/0.9", "GET / HTTP/2.0"] {
        let req = format!("{line}\r\nHost: x\r\n\r\n");
        assert_eq!(
            rejected(req.as_bytes()).status,
            Status::VersionNotSupported,
            "{line}"
        );
    }
    for line in [
        "GET / HTTP/a.b",
        "GET / HTTP/2.x",
        "GET / HTTP/x.1",
        "GET / HTTX/1.1",
    ] {
        let req = format!("{line}\r\nHost: x\r\n\r\n");
        assert_eq!(
            rejected(req.as_bytes()).status,
            Status::BadRequest,
            "{line}"
        );
    }
}

/// RFC 9112 §2.2: empty lines before the request line are skipped, and
/// they count in the head's length (the next request starts after).
#[test]
fn leading_empty_lines_are_skipped_and_counted() {
    assert_eq!(leading_empty_lines(b"\r\n\n\r\nGET"), 5);
    assert_eq!(leading_empty_lines(b"GET"), 0);
    let req = b"\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
    let h = complete(req);
    assert_eq!(h.head_len, req.len() - 4);
    assert_eq!(h.target, "/");
}

/// At most 19 digits (no u64 overflow check needed past that, and no
/// unbounded run of leading zeros).
#[test]
fn content_length_digits_are_bounded() {
    let req = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n";
    assert_eq!(
        complete(req).framing,
        Framing::Length(9_999_999_999_999_999_999)
    );
    let req = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 00000000000000000005\r\n\r\n";
    assert_eq!(rejected(req).status, Status::BadRequest);
}

#[test]
fn versions_print_as_sent() {
    assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
    assert_eq!(Version::Http11.as_str(), "HTTP/1.1");
}

#[test]
fn methods_by_token() {
    for (token, method) in [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("OPTIONS", Method::Options),
        ("get", Method::Unknown),
        ("BREW", Method::Unknown),
    ] {
        assert_eq!(Method::from_token(token), method, "{token}");
    }
    for token in ["POST", "PUT", "DELETE", "CONNECT", "TRACE", "PATCH"] {
        assert_eq!(Method::from_token(token), Method::OtherKnown, "{token}");
    }
}

#[test]
fn host_rules() {
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\n\r\n").status,
        Status::BadRequest
    );
    let r = rejected(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(r.head_len, Some(36));
    // HTTP/1.0 may omit Host, or send one; never two.
    complete(b"GET / HTTP/1.0\r\n\r\n");
    let h = complete(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n");
    assert_eq!(h.host, Some(&b"a"[..]));
    let r = rejected(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(r.status, Status::BadRequest);
}

#[test]
fn content_length_rules() {
    let h = complete(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(5));
    let h = complete(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(5));
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
    ] {
        let r = rejected(bad);
        assert_eq!(r.status, Status::BadRequest);
        assert_eq!(r.head_len, None, "framing is lost");
    }
}

#[test]
fn transfer_encoding_rules() {
    let h = complete(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked);
    let cases: [(&[u8], Status); 5] = [
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            Status::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Status::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n",
            Status::NotImplemented,
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Status::BadRequest,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            Status::BadRequest,
        ),
    ];
    for (bytes, status) in cases {
        let r = rejected(bytes);
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(bytes));
        assert_eq!(r.head_len, None);
    }
}

#[test]
fn syntax_errors_are_400() {
    for bad in [
        &b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        assert_eq!(rejected(bad).status, Status::BadRequest);
    }
}

#[test]
fn oversized_heads() {
    let limits = HeadLimits {
        max_header_bytes: 256,
        max_uri_bytes: 64,
    };
    let mut long_target = b"GET /".to_vec();
    long_target.extend(std::iter::repeat_n(b'a', 200));
    match parse_head(&long_target, &limits) {
        HeadOutcome::Reject(r) => assert_eq!(r.status, Status::UriTooLong),
        other => panic!("{other:?}"),
    }
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 300));
    match parse_head(&big[..256], &limits) {
        HeadOutcome::Reject(r) => assert_eq!(r.status, Status::HeaderFieldsTooLarge),
        other => panic!("{other:?}"),
    }
    let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..101 {
        many.extend(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    assert_eq!(rejected(&many).status, Status::HeaderFieldsTooLarge);
}

#[test]
fn leading_crlf_is_ignored() {
    let h = complete(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(h.head_len, 29);
}

#[test]
fn expect() {
    let h =
        complete(b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(h.expect_continue);
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n").status,
        Status::ExpectationFailed
    );
}

#[test]
fn the_largest_uri_limit_parses_as_no_limit() {
    // What `--max-uri-bytes 18446744073709551615` gives: the line limit
    // saturates instead of wrapping to 63 (414 for every request) or
    // panicking on overflow.
    let limits = HeadLimits {
        max_header_bytes: 16 * 1024,
        max_uri_bytes: usize::MAX,
    };
    let target = format!("/{}", "a".repeat(200));
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    match parse_head(request.as_bytes(), &limits) {
        HeadOutcome::Complete(head) => assert_eq!(head.target, target),
        other => panic!("{other:?}"),
    }
}
