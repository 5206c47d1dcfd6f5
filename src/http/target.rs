//! From a request target to a path relative to ROOT (RFC 9112 §3.2).
//!
//! The target is percent-decoded first and normalized second, so `%2e%2e`
//! is a `..` like any other and `%2f` is a separator like any other. A `..`
//! that would climb above ROOT, and a NUL byte, are 400. The output is a
//! relative path with no `.`/`..`/empty segments, written into a buffer the
//! caller reuses (no allocation per request).

use super::status::Status;

/// What [`decode_path`] learned besides the path it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInfo<'a> {
    /// The still-encoded path part of the target (no query), for redirects.
    pub raw_path: &'a str,
    /// The path ended with `/` (a directory was asked for).
    pub trailing_slash: bool,
    /// Some segment starts with `.` (dotfiles, `.git`, `.env`).
    pub has_dot_segment: bool,
}

/// Writes the normalized relative path of `target` into `out` (cleared
/// first). An empty result means ROOT itself.
pub fn decode_path<'a>(target: &'a str, out: &mut Vec<u8>) -> Result<PathInfo<'a>, Status> {
    out.clear();
    let raw_path = origin_path(target).ok_or(Status::BadRequest)?;
    let trailing_slash = raw_path.ends_with('/');
    let has_dot_segment = if is_plain(raw_path.as_bytes()) {
        // Already what decoding would give, past its `/` (and before a
        // trailing one).
        let relative = &raw_path.as_bytes()[1..];
        out.extend_from_slice(relative.strip_suffix(b"/").unwrap_or(relative));
        false
    } else {
        decode_into(raw_path, out, 0)?
    };
    Ok(PathInfo {
        raw_path,
        trailing_slash,
        has_dot_segment,
    })
}

/// [`decode_path`]'s path as the path rules match it: rooted (a `/`
/// before it) and with a `/` after it when the target ended in one (and
/// is not ROOT itself).
pub fn decode_rooted<'a>(target: &'a str, out: &mut Vec<u8>) -> Result<PathInfo<'a>, Status> {
    out.clear();
    let raw_path = origin_path(target).ok_or(Status::BadRequest)?;
    let trailing_slash = raw_path.ends_with('/');
    let has_dot_segment = if is_plain(raw_path.as_bytes()) {
        out.extend_from_slice(raw_path.as_bytes());
        false
    } else {
        out.push(b'/');
        let has_dot_segment = decode_into(raw_path, out, 1)?;
        if trailing_slash && out.len() > 1 {
            out.push(b'/');
        }
        has_dot_segment
    };
    Ok(PathInfo {
        raw_path,
        trailing_slash,
        has_dot_segment,
    })
}

/// A path that decoding and normalizing would leave as it is: it starts
/// with `/`, and has no `%`, no NUL, and no segment that is empty or
/// starts with `.` (so no `.`, `..` or dotfile), a final empty one (the
/// trailing `/`) aside. Most targets are; they are copied, not decoded.
fn is_plain(raw_path: &[u8]) -> bool {
    let [b'/', rest @ ..] = raw_path else {
        return false;
    };
    let mut after_slash = true;
    for &b in rest {
        if b == b'%' || b == 0 || (after_slash && (b == b'/' || b == b'.')) {
            return false;
        }
        after_slash = b == b'/';
    }
    true
}

/// Decodes and normalizes `raw_path` onto `out` after its first `base`
/// bytes (which stay); returns whether some segment starts with `.`.
fn decode_into(raw_path: &str, out: &mut Vec<u8>, base: usize) -> Result<bool, Status> {
    let mut has_dot_segment = false;
    // Decode segment by segment into `out`; `segment_start` is where the
    // segment being decoded begins, so `..` can pop the previous one.
    let decoded = percent_encoding::percent_decode(raw_path.as_bytes());
    let mut segment_start = base;
    for byte in decoded.chain(std::iter::once(b'/')) {
        match byte {
            0 => return Err(Status::BadRequest),
            b'/' => {
                let segment = &out[segment_start..];
                match segment {
                    b"" | b"." => out.truncate(segment_start),
                    b".." => {
                        out.truncate(segment_start);
                        if out.len() == base {
                            // Climbing above ROOT.
                            return Err(Status::BadRequest);
                        }
                        // Drop the separator, then the previous segment.
                        out.pop();
                        let prev = out[base..]
                            .iter()
                            .rposition(|&b| b == b'/')
                            .map_or(base, |i| base + i + 1);
                        out.truncate(prev);
                    }
                    _ => {
                        has_dot_segment |= segment[0] == b'.';
                        out.push(b'/');
                    }
                }
                segment_start = out.len();
            }
            b => out.push(b),
        }
    }
    // Drop the separator pushed after the last segment.
    if out.len() > base && out.last() == Some(&b'/') {
        out.pop();
    }
    Ok(has_dot_segment)
}

/// Writes what [`decode_path`] writes for a target from what
/// [`decode_rooted`] gave for it (`rooted` and its `info`): a copy, not a
/// second decoding.
pub fn path_from_rooted(info: &PathInfo<'_>, rooted: &[u8], out: &mut Vec<u8>) {
    let relative = rooted.strip_prefix(b"/").unwrap_or(rooted);
    let relative = match info.trailing_slash {
        true => relative.strip_suffix(b"/").unwrap_or(relative),
        false => relative,
    };
    out.clear();
    out.extend_from_slice(relative);
}

/// The authority of an absolute-form target (`http://example.com:8080/a`
/// gives `example.com:8080`), which names the host instead of the Host
/// header (RFC 9112 §3.2.2); `None` for any other form.
pub fn absolute_authority(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return None;
    }
    let scheme_end = target.find("://")?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The path part of an origin-form or absolute-form target, without the
/// query. `None` for anything else (authority-form, asterisk, garbage).
fn origin_path(target: &str) -> Option<&str> {
    let path = if target.starts_with('/') {
        target
    } else {
        // absolute-form: scheme "://" authority path-abempty
        let scheme_end = target.find("://")?;
        let scheme = &target[..scheme_end];
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        let rest = &target[scheme_end + 3..];
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            _ => "/",
        }
    };
    // A byte loop: a target is short, and a two-char pattern's searcher
    // costs more than the loop.
    let end = path
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    Some(&path[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rooted_path_gives_what_decoding_gives() {
        for target in [
            "/",
            "/a",
            "/a/",
            "/a/b.txt?q=1",
            "/x/../%70rivate/key.txt",
            "//double//slash/",
            "/.git/config",
            "/a/.env",
            "/a/b/./c/",
            "http://h.test/a/b/",
            "/%e2%82%ac/",
        ] {
            let mut decoded = Vec::new();
            let expected = super::decode_path(target, &mut decoded).unwrap();
            // As the rules hold it: rooted, the slash kept.
            let mut rooted = vec![b'/'];
            rooted.extend_from_slice(&decoded);
            if expected.trailing_slash && rooted.len() > 1 {
                rooted.push(b'/');
            }
            let mut direct = Vec::new();
            let info = super::decode_rooted(target, &mut direct).unwrap();
            assert_eq!((info, &direct), (expected, &rooted), "{target}");
            let mut copied = Vec::new();
            super::path_from_rooted(&info, &direct, &mut copied);
            assert_eq!(&copied, &decoded, "{target}");
        }
    }

    use super::*;

    #[test]
    fn absolute_form_names_its_authority() {
        assert_eq!(
            absolute_authority("http://Example.com:81/a?q"),
            Some("Example.com:81")
        );
        assert_eq!(absolute_authority("HTTPS://h?q"), Some("h"));
        assert_eq!(absolute_authority("http://[::1]/"), Some("[::1]"));
        assert_eq!(absolute_authority("http://"), Some(""));
        assert_eq!(absolute_authority("/a://b"), None);
        assert_eq!(absolute_authority("ftp://h/"), None);
        assert_eq!(absolute_authority("*"), None);
    }

    #[test]
    fn absolute_form_keeps_only_the_path() {
        assert_eq!(origin_path("http://example.com/a/b?q=1"), Some("/a/b"));
        assert_eq!(origin_path("http://h/p"), Some("/p"));
        assert_eq!(origin_path("HTTPS://example.com"), Some("/"));
        assert_eq!(origin_path("http://example.com?q=1"), Some("/"));
        assert_eq!(origin_path("ftp://example.com/a"), None);
    }

    fn decode(target: &str) -> Result<(String, PathInfo<'_>), Status> {
        let mut out = Vec::new();
        let info = decode_path(target, &mut out)?;
        Ok((String::from_utf8(out).unwrap(), info))
    }

    fn path(target: &str) -> String {
        decode(target).unwrap().0
    }

    #[test]
    fn plain_paths() {
        assert_eq!(path("/"), "");
        assert_eq!(path("/index.html"), "index.html");
        assert_eq!(path("/a/b/c.txt?x=1#f"), "a/b/c.txt");
        assert_eq!(path("//a///b/./c"), "a/b/c");
        assert_eq!(path("/a/b/../c"), "a/c");
        assert_eq!(path("/a%20b/%C3%A9.txt"), "a b/é.txt");
        assert!(decode("/dir/").unwrap().1.trailing_slash);
        assert!(!decode("/dir").unwrap().1.trailing_slash);
    }

    #[test]
    fn absolute_form() {
        assert_eq!(path("http://example.com/a/b"), "a/b");
        assert_eq!(path("HTTP://example.com:80"), "");
        assert_eq!(path("http://example.com?q"), "");
        assert_eq!(decode("ftp://x/a"), Err(Status::BadRequest));
        assert_eq!(decode("example.com:443"), Err(Status::BadRequest));
        assert_eq!(decode("*"), Err(Status::BadRequest));
    }

    #[test]
    fn traversal_never_escapes() {
        for t in [
            "/..",
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc/passwd",
            "/a/../../etc/passwd",
            "/a/%2e%2e/%2e%2e/x",
            "/..%2f..%2fetc",
        ] {
            assert_eq!(decode(t).map(|_| ()), Err(Status::BadRequest), "{t}");
        }
        assert_eq!(decode("/a%00.txt").map(|_| ()), Err(Status::BadRequest));
    }

    #[test]
    fn dot_segments_are_flagged() {
        assert!(decode("/.git/config").unwrap().1.has_dot_segment);
        assert!(decode("/a/.env").unwrap().1.has_dot_segment);
        assert!(!decode("/a/b.c").unwrap().1.has_dot_segment);
    }

    /// The copy of a plain path and the rooted form give what decoding
    /// gives, for any target built from these pieces.
    #[test]
    fn the_plain_copy_and_the_rooted_form_agree_with_decoding() {
        let alphabet = [
            "/", ".", "..", "a", "b/", ".x", "%41", "%2e", "?q", "c.txt", "\0",
        ];
        let mut seed = 987654u64;
        for _ in 0..20_000 {
            let mut t = String::from("/");
            for _ in 0..5 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                t.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let mut fast = Vec::new();
            let got = decode_path(&t, &mut fast);
            let raw = origin_path(&t).unwrap();
            let mut slow = Vec::new();
            let expected = decode_into(raw, &mut slow, 0).map(|dots| PathInfo {
                raw_path: raw,
                trailing_slash: raw.ends_with('/'),
                has_dot_segment: dots,
            });
            assert_eq!(got, expected, "{t}");
            let mut rooted = Vec::new();
            let rooted_info = decode_rooted(&t, &mut rooted);
            assert_eq!(rooted_info, expected, "{t}");
            if let Ok(info) = expected {
                assert_eq!(fast, slow, "{t}");
                let mut want = vec![b'/'];
                want.extend_from_slice(&slow);
                if info.trailing_slash && want.len() > 1 {
                    want.push(b'/');
                }
                assert_eq!(rooted, want, "{t}");
            }
        }
    }

    #[test]
    fn result_is_always_relative_and_clean() {
        // Any target that decodes must give a path without empty, `.` or
        // `..` segments and without a leading `/`.
        let alphabet = ["/", ".", "..", "a", "%2e", "%2f", "%2E%2e", "b/", "?"];
        let mut seed = 12345u64;
        for _ in 0..20_000 {
            let mut t = String::from("/");
            for _ in 0..6 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                t.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            if let Ok((p, _)) = decode(&t) {
                assert!(!p.starts_with('/'), "{t} -> {p}");
                for seg in p.split('/').filter(|_| !p.is_empty()) {
                    assert!(!seg.is_empty() && seg != "." && seg != "..", "{t} -> {p}");
                }
            }
        }
    }
}
