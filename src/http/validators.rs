//! Conditional requests (RFC 9110 §13), byte ranges (§14) and content
//! negotiation of precompressed variants (§12.5.3), as plain functions over
//! header values. The file's validators are inputs; nothing here touches
//! the filesystem.
//!
//! Panics: none from a header or a file's metadata. [`Etag`]'s buffer
//! holds the widest tag any field values make (40 bytes, with a coding of
//! 4 letters at most: the codings are holdline's own `br` and `gzip`);
//! [`parse_range`] takes `len - 1` only where `a < len` or `len > 0` was
//! checked; `entity_tags` slices past a `W/` or a `"` it has just matched.

/// A strong entity tag from the file's version: its modification time
/// (seconds) and size in hex, nginx's formula (`"mtime-size"`), so nginx
/// and holdline give one file the same tag. Nothing local to one machine
/// (the inode) goes in: copies of a file with their mtimes kept on other
/// instances (rsync -t, a container image, a CDN's origin pool) get the
/// same tag, so a revalidation or an `If-Range` works whichever instance
/// answers; Apache 2.4 dropped the inode from its default `FileETag` for
/// this. A file rewritten within the same second to the same size keeps
/// its tag: nginx's trade-off, made here too. A representation holdline
/// compressed itself gets the file's tag with its coding appended
/// ([`Etag::with_coding`]).
#[derive(Clone, Copy)]
pub struct Etag {
    /// The longest: 2 x 16 hex digits, a separator, 2 quotes, and a
    /// coding (`-gzip`), whatever the file's metadata says.
    buf: [u8; 40],
    len: usize,
}

impl Etag {
    pub fn new(size: u64, mtime_secs: i64) -> Etag {
        let mut e = Etag {
            buf: [0; 40],
            len: 0,
        };
        e.push(b'"');
        // A time before 1970 prints as its two's complement, as nginx's
        // `%xT` of a negative time_t does.
        e.hex(mtime_secs as u64);
        e.push(b'-');
        e.hex(size);
        e.push(b'"');
        e
    }

    /// The tag of a version whose content hash is `hash` (`--etag
    /// hash`): its 32 hex digits, quoted.
    pub fn from_hash(hash: &[u8; 16]) -> Etag {
        let mut e = Etag {
            buf: [0; 40],
            len: 0,
        };
        e.push(b'"');
        for &b in hash {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            e.push(HEX[usize::from(b >> 4)]);
            e.push(HEX[usize::from(b & 15)]);
        }
        e.push(b'"');
        e
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The tag of the representation in `coding` made from this one:
    /// `"…-br"`. Distinct from the identity's (RFC 9110 §8.8.3: a
    /// different representation needs a different strong validator), and
    /// as strong, since the same version always compresses to the same
    /// bytes. `coding` is a short token (`br`, `gzip`).
    pub fn with_coding(mut self, coding: &str) -> Etag {
        debug_assert!(coding.len() <= 4, "room for -{coding}");
        self.len -= 1; // the closing quote
        self.push(b'-');
        for &b in coding.as_bytes() {
            self.push(b);
        }
        self.push(b'"');
        self
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn hex(&mut self, mut n: u64) {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[(n & 15) as usize];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            self.push(d);
        }
    }
}

/// The precondition headers of a request (RFC 9110 §13.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct Preconditions<'a> {
    pub if_match: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Serve the representation (possibly a range of it).
    Proceed,
    /// 304 (GET/HEAD only).
    NotModified,
    /// 412.
    PreconditionFailed,
}

/// Evaluates preconditions in the order of RFC 9110 §13.2.2, for a GET or
/// HEAD of a representation with `etag` and `last_modified` (Unix seconds).
pub fn evaluate(pre: &Preconditions<'_>, etag: &[u8], last_modified: u64) -> Condition {
    // 1. If-Match (strong comparison); 2. else If-Unmodified-Since.
    if let Some(list) = pre.if_match {
        if !matches_strong(list, etag) {
            return Condition::PreconditionFailed;
        }
    } else if let Some(date) = pre.if_unmodified_since.and_then(parse_http_date)
        && last_modified > date
    {
        return Condition::PreconditionFailed;
    }
    // 3. If-None-Match (weak comparison); 4. else If-Modified-Since.
    if let Some(list) = pre.if_none_match {
        if matches_weak(list, etag) {
            return Condition::NotModified;
        }
    } else if let Some(date) = pre.if_modified_since.and_then(parse_http_date)
        && last_modified <= date
    {
        return Condition::NotModified;
    }
    Condition::Proceed
}

/// Iterates the entity-tags of an If-Match / If-None-Match list. Commas
/// inside quotes are part of a tag, so this does not simply split on ','.
fn entity_tags(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = list;
    std::iter::from_fn(move || {
        loop {
            while let [b' ' | b'\t' | b',', tail @ ..] = rest {
                rest = tail;
            }
            if rest.is_empty() {
                return None;
            }
            let start = rest;
            let weak = rest.starts_with(b"W/");
            let body = if weak { &rest[2..] } else { rest };
            let len = if body.first() == Some(&b'"') {
                match body[1..].iter().position(|&b| b == b'"') {
                    Some(end) => end + 2 + if weak { 2 } else { 0 },
                    None => start.len(),
                }
            } else {
                // `*` or junk: up to the next comma.
                start.iter().position(|&b| b == b',').unwrap_or(start.len())
            };
            let tag = &start[..len];
            rest = &start[len..];
            let trimmed = super::request::trim_ows(tag);
            if !trimmed.is_empty() {
                return Some(trimmed);
            }
        }
    })
}

fn opaque(tag: &[u8]) -> (&[u8], bool) {
    match tag.strip_prefix(b"W/") {
        Some(rest) => (rest, true),
        None => (tag, false),
    }
}

/// If-None-Match: `*`, or any tag equal to ours ignoring weakness. An
/// empty `etag` (none yet, `--etag hash`) equals no tag.
pub fn matches_weak(list: &[u8], etag: &[u8]) -> bool {
    let ours = opaque(etag).0;
    entity_tags(list).any(|t| t == b"*" || (!ours.is_empty() && opaque(t).0 == ours))
}

/// If-Match / If-Range: `*` (If-Match only), or a strong tag equal to ours.
pub fn matches_strong(list: &[u8], etag: &[u8]) -> bool {
    let (ours, ours_weak) = opaque(etag);
    entity_tags(list).any(|t| {
        let (theirs, weak) = opaque(t);
        t == b"*" || (!weak && !ours_weak && !ours.is_empty() && theirs == ours)
    })
}

/// An HTTP-date in any of the three formats of RFC 9110 §5.6.7, as Unix
/// seconds.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(super::request::trim_ows(value)).ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The most ranges one request may ask for; more is treated as abuse and
/// the Range header is ignored (a full 200).
pub const MAX_RANGES: usize = 16;

/// Satisfiable ranges, coalesced and sorted: `(first, last)` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranges {
    ranges: [(u64, u64); MAX_RANGES],
    count: usize,
}

impl Ranges {
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.ranges[..self.count]
    }
}

// Lives on the stack for one request; boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable Range header: send the whole representation.
    Full,
    /// 416, with `Content-Range: bytes */len`.
    Unsatisfiable,
    Partial(Ranges),
}

/// Parses a Range header value for a representation of `len` bytes (RFC
/// 9110 §14.1.2). Syntax errors and units other than bytes are ignored
/// (Full), as the RFC allows; more than [`MAX_RANGES`] too.
pub fn parse_range(value: &[u8], len: u64) -> RangeRequest {
    let value = super::request::trim_ows(value);
    let Some(specs) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case(b"bytes="))
        .map(|_| &value[6..])
    else {
        return RangeRequest::Full;
    };
    let mut out = Ranges {
        ranges: [(0, 0); MAX_RANGES],
        count: 0,
    };
    let mut any = false;
    for spec in specs.split(|&b| b == b',') {
        let spec = super::request::trim_ows(spec);
        if spec.is_empty() {
            continue;
        }
        let Some(dash) = spec.iter().position(|&b| b == b'-') else {
            return RangeRequest::Full;
        };
        let (first, last) = (&spec[..dash], &spec[dash + 1..]);
        let range = match (digits(first), digits(last)) {
            // a-b and a-
            (Some(a), Some(b)) if !first.is_empty() && !last.is_empty() => {
                if b < a {
                    return RangeRequest::Full;
                }
                (a < len).then(|| (a, b.min(len - 1)))
            }
            (Some(a), _) if !first.is_empty() && last.is_empty() => (a < len).then(|| (a, len - 1)),
            // -n: the last n bytes
            (_, Some(n)) if first.is_empty() && !last.is_empty() => {
                (n > 0 && len > 0).then(|| (len.saturating_sub(n), len - 1))
            }
            _ => return RangeRequest::Full,
        };
        any = true;
        if let Some(r) = range {
            if out.count == MAX_RANGES {
                return RangeRequest::Full;
            }
            out.ranges[out.count] = r;
            out.count += 1;
        }
    }
    if !any {
        return RangeRequest::Full;
    }
    if out.count == 0 {
        return RangeRequest::Unsatisfiable;
    }
    // Coalesce overlapping or adjacent ranges (§14.1.1 lets a server), so
    // `0-99,50-149` costs one part, not two that repeat bytes.
    let ranges = &mut out.ranges[..out.count];
    ranges.sort_unstable();
    let mut merged = 0;
    for i in 1..ranges.len() {
        let (first, last) = ranges[i];
        if first <= ranges[merged].1.saturating_add(1) {
            ranges[merged].1 = ranges[merged].1.max(last);
        } else {
            merged += 1;
            ranges[merged] = (first, last);
        }
    }
    out.count = merged + 1;
    RangeRequest::Partial(out)
}

fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return Some(0);
    }
    if s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// If-Range (§13.1.5): the range applies only if the validator matches
/// exactly: a strong ETag, or a date equal to Last-Modified.
pub fn if_range_holds(value: &[u8], etag: &[u8], last_modified: u64) -> bool {
    let value = super::request::trim_ows(value);
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        matches_strong(value, etag)
    } else {
        parse_http_date(value) == Some(last_modified)
    }
}

/// Whether Accept-Encoding accepts `coding` (q-values honoured: `q=0`
/// refuses; `*` covers codings not named).
pub fn accepts_encoding(accept_encoding: &[u8], coding: &[u8]) -> bool {
    let mut star: Option<bool> = None;
    for item in super::request::list_tokens(accept_encoding) {
        let mut parts = item.split(|&b| b == b';');
        let name = super::request::trim_ows(parts.next().unwrap_or(b""));
        let mut q_positive = true;
        for param in parts {
            let param = super::request::trim_ows(param);
            if param.len() >= 2 && param[..2].eq_ignore_ascii_case(b"q=") {
                q_positive = qvalue_positive(&param[2..]);
            }
        }
        if name.eq_ignore_ascii_case(coding) {
            return q_positive;
        }
        if name == b"*" {
            star = Some(q_positive);
        }
    }
    star.unwrap_or(false)
}

/// A qvalue (`0`, `0.000` .. `1.000`) is positive unless it is all zeros.
fn qvalue_positive(q: &[u8]) -> bool {
    q.iter().any(|&b| (b'1'..=b'9').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &[u8] = b"\"1a-2b-3c.4d\"";

    #[test]
    fn etag_is_nginx_s_hex_mtime_and_size() {
        // nginx 1.22 on a 1,234-byte file last changed at 1700000000:
        // ETag: "6553f100-4d2".
        assert_eq!(
            Etag::new(1234, 1_700_000_000).as_bytes(),
            b"\"6553f100-4d2\""
        );
        assert_eq!(Etag::new(0, 0).as_bytes(), b"\"0-0\"");
        let hashed = Etag::from_hash(&[0xab; 16]).with_coding("gzip");
        assert_eq!(
            hashed.as_bytes(),
            b"\"abababababababababababababababab-gzip\""
        );
        assert_eq!(Etag::new(u64::MAX, i64::MAX).as_bytes().len(), 35);
    }

    #[test]
    fn a_coded_representation_has_its_own_tag() {
        let plain = Etag::new(0x2b, 0x3c);
        assert_eq!(plain.with_coding("br").as_bytes(), b"\"3c-2b-br\"");
        assert!(!matches_weak(
            plain.as_bytes(),
            plain.with_coding("gzip").as_bytes()
        ));
        // Times before 1970 are negative: they fit too.
        let widest = Etag::new(u64::MAX, -1).with_coding("gzip");
        assert_eq!(widest.as_bytes().len(), 40);
    }

    #[test]
    fn tag_lists() {
        assert!(matches_weak(b"\"x\", \"1a-2b-3c.4d\"", TAG));
        assert!(matches_weak(b"W/\"1a-2b-3c.4d\"", TAG));
        assert!(matches_weak(b"*", TAG));
        assert!(!matches_weak(b"\"1a-2b-3c.4e\"", TAG));
        assert!(
            matches_weak(b"\"a,b\", \"1a-2b-3c.4d\"", TAG),
            "commas inside quotes"
        );
        assert!(matches_strong(b"\"1a-2b-3c.4d\"", TAG));
        assert!(
            !matches_strong(b"W/\"1a-2b-3c.4d\"", TAG),
            "weak never matches strongly"
        );
        assert!(matches_strong(b"*", TAG));
    }

    #[test]
    fn precedence_of_preconditions() {
        let lm = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
        let earlier = b"Sat, 05 Nov 1994 08:49:37 GMT";
        let p = |im, inm, ims, ius| Preconditions {
            if_match: im,
            if_none_match: inm,
            if_modified_since: ims,
            if_unmodified_since: ius,
        };
        assert_eq!(
            evaluate(&p(None, Some(TAG), None, None), TAG, lm),
            Condition::NotModified
        );
        assert_eq!(
            evaluate(&p(None, None, Some(date), None), TAG, lm),
            Condition::NotModified
        );
        assert_eq!(
            evaluate(&p(None, None, Some(earlier), None), TAG, lm),
            Condition::Proceed
        );
        // If-Modified-Since is ignored when If-None-Match is present.
        assert_eq!(
            evaluate(&p(None, Some(b"\"other\""), Some(date), None), TAG, lm),
            Condition::Proceed
        );
        assert_eq!(
            evaluate(&p(Some(b"\"other\""), None, None, None), TAG, lm),
            Condition::PreconditionFailed
        );
        assert_eq!(
            evaluate(&p(None, None, None, Some(earlier)), TAG, lm),
            Condition::PreconditionFailed
        );
        // If-Unmodified-Since is ignored when If-Match is present.
        assert_eq!(
            evaluate(&p(Some(TAG), None, None, Some(earlier)), TAG, lm),
            Condition::Proceed
        );
        // An unparseable date is ignored.
        assert_eq!(
            evaluate(&p(None, None, Some(b"yesterday"), None), TAG, lm),
            Condition::Proceed
        );
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), Some(lm));
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), Some(lm));
    }

    fn partial(v: &[u8], len: u64) -> Vec<(u64, u64)> {
        match parse_range(v, len) {
            RangeRequest::Partial(r) => r.as_slice().to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_range_starting_at_the_length_is_unsatisfiable() {
        // The first byte past the end, in both forms: 416, not a range
        // whose last byte precedes its first (which would panic a slice).
        assert_eq!(
            parse_range(b"bytes=1000-1005", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(b"bytes=1000-", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(partial(b"bytes=999-1005", 1000), [(999, 999)]);
    }

    #[test]
    fn range_edge_cases() {
        assert_eq!(parse_range(b"bytes=-", 1000), RangeRequest::Full);
        assert_eq!(parse_range(b"bytes=-5", 0), RangeRequest::Unsatisfiable);
        assert_eq!(
            parse_range(b"bytes=0-5x", 1000),
            RangeRequest::Full,
            "not digits"
        );
        // 19 digits fit a u64; 20 do not.
        assert_eq!(partial(b"bytes=0-1000000000000000000", 1000), [(0, 999)]);
        assert_eq!(
            parse_range(b"bytes=0-10000000000000000000", 1000),
            RangeRequest::Full
        );
    }

    #[test]
    fn short_or_odd_coding_parameters_are_ignored() {
        assert!(accepts_encoding(b"gzip;x", b"gzip"));
        assert!(accepts_encoding(b"gzip; q", b"gzip"));
        assert!(!accepts_encoding(b"gzip;q=0", b"gzip"));
    }

    #[test]
    fn quoted_tags_may_hold_commas() {
        assert!(matches_weak(b"\"a,b\"", b"\"a,b\""));
        assert!(matches_strong(b"\"x\", \"a,b\"", b"\"a,b\""));
        assert!(!matches_strong(b"\"a,b\"", b"\"a\""));
    }

    #[test]
    fn unmodified_since_the_same_second_proceeds() {
        let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
        let pre = Preconditions {
            if_match: None,
            if_none_match: None,
            if_modified_since: None,
            if_unmodified_since: Some(date),
        };
        assert_eq!(evaluate(&pre, b"\"e\"", 784_111_777), Condition::Proceed);
        assert_eq!(
            evaluate(&pre, b"\"e\"", 784_111_778),
            Condition::PreconditionFailed
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(partial(b"bytes=0-99", 1000), [(0, 99)]);
        assert_eq!(partial(b"bytes=900-", 1000), [(900, 999)]);
        assert_eq!(partial(b"bytes=-100", 1000), [(900, 999)]);
        assert_eq!(partial(b"bytes=-5000", 1000), [(0, 999)]);
        assert_eq!(partial(b"bytes=990-2000", 1000), [(990, 999)]);
        assert_eq!(partial(b"bytes=0-99, 200-299", 1000), [(0, 99), (200, 299)]);
        assert_eq!(
            partial(b"bytes=200-299,0-99,50-149", 1000),
            [(0, 149), (200, 299)]
        );
        assert_eq!(partial(b"bytes=0-9,10-19", 1000), [(0, 19)], "adjacent");
        assert_eq!(
            partial(b"bytes=5000-,0-0", 1000),
            [(0, 0)],
            "one satisfiable is enough"
        );
        assert_eq!(
            parse_range(b"bytes=1000-", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(b"bytes=-0", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-", 0), RangeRequest::Unsatisfiable);
        for ignored in [
            &b"items=0-1"[..],
            b"bytes=5-1",
            b"bytes=x-1",
            b"bytes=",
            b"bytes=1",
        ] {
            assert_eq!(
                parse_range(ignored, 1000),
                RangeRequest::Full,
                "{ignored:?}"
            );
        }
        let many: String = (0..17)
            .map(|i| format!("{}-{},", i * 10, i * 10 + 1))
            .collect();
        assert_eq!(
            parse_range(format!("bytes={many}").as_bytes(), 1000),
            RangeRequest::Full
        );
    }

    #[test]
    fn if_range() {
        let lm = 784_111_777;
        assert!(if_range_holds(TAG, TAG, lm));
        assert!(!if_range_holds(b"W/\"1a-2b-3c.4d\"", TAG, lm));
        assert!(if_range_holds(b"Sun, 06 Nov 1994 08:49:37 GMT", TAG, lm));
        assert!(!if_range_holds(b"Sun, 06 Nov 1994 08:49:38 GMT", TAG, lm));
    }

    #[test]
    fn accept_encoding() {
        assert!(accepts_encoding(b"gzip, deflate, br", b"br"));
        assert!(accepts_encoding(b"gzip;q=0.5, br;q=1.0", b"gzip"));
        assert!(!accepts_encoding(b"gzip;q=0, br", b"gzip"));
        assert!(!accepts_encoding(b"gzip;q=0.000", b"gzip"));
        assert!(accepts_encoding(b"*", b"br"));
        assert!(!accepts_encoding(b"*;q=0", b"br"));
        assert!(!accepts_encoding(b"*, br;q=0", b"br"));
        assert!(!accepts_encoding(b"identity", b"gzip"));
        assert!(!accepts_encoding(b"", b"gzip"));
    }
}
