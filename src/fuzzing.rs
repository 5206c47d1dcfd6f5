//! What the fuzz targets check, callable from `cargo test` too: the
//! targets in `fuzz/` are one-line wrappers around these functions, and
//! `tests/fuzz_replay.rs` replays the committed seeds and every input that
//! once crashed a target, so a fix found by fuzzing cannot silently regress
//! on the stable toolchain.
//!
//! Each function panics when an invariant breaks, which is what a fuzzer
//! reports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use crate::close::CloseReason;
use crate::http::body::BodyDecoder;
use crate::http::persist::{self, PersistContext};
use crate::http::request::{RequestHead, Version};
use crate::http::response::{ResponseHead, encode_head};
use crate::http::session::{ConnFacts, Exchange, Reply, Respond, Session};
use crate::http::target::decode_path;
use crate::http::{HeadLimits, HeadOutcome, Status, parse_head};

/// Arbitrary bytes through the whole sans-IO request path: head parsing,
/// body framing, the persistence decision, target decoding and response
/// encoding. Nothing may panic, and the invariants asserted must hold.
pub fn request_head(data: &[u8]) {
    let limits = HeadLimits {
        max_header_bytes: 4096,
        max_uri_bytes: 1024,
    };
    let input = &data[..data.len().min(limits.max_header_bytes)];
    match parse_head(input, &limits) {
        HeadOutcome::Partial => {}
        HeadOutcome::Reject(r) => {
            assert!(r.status.code() >= 400);
            if let Some(n) = r.head_len {
                assert!(n <= input.len());
            }
        }
        HeadOutcome::Complete(head) => {
            assert!(head.head_len <= input.len());
            assert!(head.target.len() <= limits.max_uri_bytes);
            let _ = BodyDecoder::new(head.framing, 1 << 20);
            let mut path = Vec::new();
            if decode_path(head.target, &mut path).is_ok() {
                assert!(!path.starts_with(b"/"));
                assert!(!path.contains(&0));
                for segment in path.split(|&b| b == b'/') {
                    assert!(
                        path.is_empty()
                            || (segment != b".." && segment != b"." && !segment.is_empty())
                    );
                }
            }
            let persistence = persist::decide(
                head.version,
                head.connection,
                PersistContext {
                    keepalive_enabled: true,
                    keepalive_timeout_secs: 5,
                    max_requests: 3,
                    requests_before: u32::from(data.first().copied().unwrap_or(0) % 5),
                    must_close: false,
                    closing: None,
                },
            );
            let mut out = Vec::new();
            let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
            encode_head(&mut out, &ResponseHead::new(Status::Ok, date, persistence));
            assert!(out.ends_with(b"\r\n\r\n"));
        }
    }
}

/// A pipeline of arbitrary bytes, delivered in arbitrary pieces, through
/// the connection's real [`Session`]: heads, then bodies (Content-Length or
/// chunked), then the next head. What is answered must not depend on how
/// the bytes were split, and the session must always progress or stop
/// cleanly: no panic, no spin. The first four bytes choose the cuts.
pub fn pipeline(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (seed, input) = data.split_at(4);
    let cuts: Vec<usize> = seed
        .iter()
        .map(|&b| b as usize * input.len() / 256)
        .collect();
    split_independent(input, &cuts, &[]);
}

/// The pipeline again, with SIGHUP reloads at two points of the input:
/// the first changes `--max-uri-bytes` and `--max-body-bytes` (tightens
/// or loosens them), the second puts them back. Whatever is held across a
/// reload (a head waiting for its chunked body, a body being read, a
/// partial head) keeps the limits it was accepted under or is judged
/// afresh under the new ones: never a panic, never a spin, and the
/// answers still do not depend on how the bytes were split. Bytes 4 to 7
/// choose the reload points and the new limits.
pub fn pipeline_with_reloads(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let (seed, rest) = data.split_at(4);
    let (plan, input) = rest.split_at(4);
    let at = |b: u8| b as usize * input.len() / 256;
    let (first, second) = (at(plan[0]).min(at(plan[1])), at(plan[0]).max(at(plan[1])));
    let reloads = [
        Reload {
            at: first,
            max_uri_bytes: 16 + plan[2] as usize * 4,
            max_body_bytes: u64::from(plan[3]) * 64,
        },
        Reload {
            at: second,
            max_uri_bytes: LIMITS.max_uri_bytes,
            max_body_bytes: MAX_BODY_BYTES,
        },
    ];
    let cuts: Vec<usize> = seed
        .iter()
        .map(|&b| b as usize * input.len() / 256)
        .collect();
    split_independent(input, &cuts, &reloads);
}

/// Asserts that `input` is answered the same whole, cut at `cuts`, and
/// (when short) byte by byte, with the same reloads.
fn split_independent(input: &[u8], cuts: &[usize], reloads: &[Reload]) {
    let whole = answer_pieces(input, &[], reloads);
    assert_eq!(
        answer_pieces(input, cuts, reloads),
        whole,
        "splitting changed the answers"
    );
    if input.len() < 512 {
        let every_byte: Vec<usize> = (0..input.len()).collect();
        assert_eq!(
            answer_pieces(input, &every_byte, reloads),
            whole,
            "byte-by-byte changed the answers"
        );
    }
}

/// What the session did, in order.
#[derive(Debug, PartialEq)]
enum Event {
    /// A request answered: its target and whether the client asked to
    /// close.
    Answered { target: String, close: bool },
    /// An error answer, and the close it causes.
    Refused(u16, CloseReason),
    /// The session closed without an answer (broken body framing).
    Closed(CloseReason),
    /// A reload changed the limits: (`--max-uri-bytes`,
    /// `--max-body-bytes`).
    Reloaded(usize, u64),
}

/// A reload at an input offset: the limits from then on.
#[derive(Debug, Clone, Copy)]
struct Reload {
    at: usize,
    max_uri_bytes: usize,
    max_body_bytes: u64,
}

/// Records what the session asks of a responder, under limits a reload
/// may change.
struct Recorder {
    events: Vec<Event>,
    limits: HeadLimits,
    max_body_bytes: u64,
}

/// The limits the pipeline targets start under.
const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 2048,
    max_uri_bytes: 512,
};
const MAX_BODY_BYTES: u64 = 1 << 16;

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            events: Vec::new(),
            limits: LIMITS,
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

impl Respond for Recorder {
    type Body = ();

    fn limits(&self) -> HeadLimits {
        self.limits
    }

    fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    fn respond(&mut self, head: &RequestHead<'_>, _: ConnFacts, _: &mut Vec<u8>) -> Reply<()> {
        let close = head.connection.close;
        self.events.push(Event::Answered {
            target: head.target.to_string(),
            close,
        });
        Reply {
            status: Status::Ok,
            close: close.then_some(CloseReason::ResponseClose),
            body: None,
            defer: false,
        }
    }

    fn respond_error(
        &mut self,
        status: Status,
        _: Option<Version>,
        _: bool,
        reason: CloseReason,
        _: crate::http::session::ConnFacts,
        _: &mut Vec<u8>,
    ) {
        self.events.push(Event::Refused(status.code(), reason));
    }
}

/// Feeds `data`, cut at `cuts`, to a session as the connection would
/// (reading only while the session wants input), answering after every
/// piece and sending every answer at once; each reload is applied once
/// the bytes before its offset are in and answered.
fn answer_pieces(data: &[u8], cuts: &[usize], reloads: &[Reload]) -> Vec<Event> {
    let now = Instant::now();
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
    let mut session: Session<()> = Session::new(now, false);
    let mut recorder = Recorder::new();
    let lend = || Box::new(Exchange::new(LIMITS.max_header_bytes));
    let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(data.len())).collect();
    ends.extend(reloads.iter().map(|r| r.at.min(data.len())));
    ends.push(data.len());
    ends.sort_unstable();
    let mut pending = reloads.iter().peekable();
    let mut delivered = 0;
    for end in ends {
        while let Some(reload) = pending.next_if(|r| r.at <= delivered) {
            recorder.limits.max_uri_bytes = reload.max_uri_bytes;
            recorder.max_body_bytes = reload.max_body_bytes;
            let event = Event::Reloaded(reload.max_uri_bytes, reload.max_body_bytes);
            recorder.events.push(event);
        }
        while delivered < end {
            let Some(spare) = session.input_room(lend, now) else {
                return recorder.events;
            };
            let n = spare.len().min(end - delivered);
            // A full buffer is a head past the limit: the session must
            // have refused it (431) rather than wait for room.
            assert!(n > 0, "the input filled up and nothing refused it");
            spare[..n].copy_from_slice(&data[delivered..delivered + n]);
            delivered += n;
            session.received(n, now);
            let mut rounds = 0;
            loop {
                match session.answer(&mut recorder, peer, now) {
                    Ok(true) => {
                        if let Some(out) = session.out() {
                            out.clear_sent();
                        }
                    }
                    Ok(false) => break,
                    Err(reason) => {
                        recorder.events.push(Event::Closed(reason));
                        return recorder.events;
                    }
                }
                rounds += 1;
                assert!(rounds <= data.len() + 1, "the session spins");
            }
        }
    }
    recorder.events
}

/// Arbitrary bytes as the first bytes of a connection from a trusted
/// proxy: the PROXY header's parser. Nothing may panic; a header read
/// lies within the input and reads the same off exactly its bytes, and
/// every shorter prefix of it, like every prefix of an incomplete input,
/// waits for more (so the connection, which peeks at what has arrived, can
/// never take a header that more bytes would have changed); only an
/// input shorter than the bound is ever incomplete.
pub fn proxy_header(data: &[u8]) {
    use crate::proxy_header::{Header, MAX_HEADER, parse};
    let data = &data[..data.len().min(MAX_HEADER)];
    match parse(data) {
        Header::Complete { len, source } => {
            assert!(len <= data.len() && len >= 15, "{len}");
            assert_eq!(parse(&data[..len]), Header::Complete { len, source });
            for cut in 0..len {
                assert_eq!(
                    parse(&data[..cut]),
                    Header::Incomplete,
                    "cut at {cut} of {len}"
                );
            }
        }
        Header::Incomplete => {
            assert!(data.len() < MAX_HEADER);
            for cut in 0..data.len() {
                assert_eq!(parse(&data[..cut]), Header::Incomplete, "cut at {cut}");
            }
        }
        Header::Invalid(why) => assert!(!why.is_empty()),
    }
}

/// Arbitrary bytes through the sites' and rules' code over bytes: a
/// ClientHello's server name, the host table, path rules' matching and a
/// redirect's placeholders. Nothing may panic; a name read lies within
/// the input; a filled-in target has no byte that could break a header
/// line or start a query or another authority.
pub fn routing(data: &[u8]) {
    use crate::config::UnknownHost;
    use crate::serve::rules::{Rules, expand};
    use crate::serve::sites::Hosts;
    use crate::tls::hello::{Hello, server_name};
    if let Hello::Name(name) = server_name(data) {
        assert!(!name.is_empty() && name.len() <= data.len());
    }
    let text = String::from_utf8_lossy(data);
    let (host, target) = text.split_once('\n').unwrap_or((&text, "/"));
    let sites: Vec<Vec<String>> = vec![
        vec![],
        vec!["a.test".into(), "*.b.test".into()],
        vec!["[::1]".into()],
    ];
    for unknown in [UnknownHost::DefaultSite, UnknownHost::Misdirected] {
        let hosts = Hosts::new(sites.iter().map(|s| &s[..]), unknown);
        if let Some(site) = hosts.site_for(Some(host.as_bytes())) {
            assert!(site < sites.len());
        }
    }
    let rules: Vec<_> = [
        "/assets/** header X-A: 1",
        "*.html remove-header X-A",
        "/old/** redirect 301 /new/{rest}?p={path}",
        "/** deny 404",
    ]
    .iter()
    .filter_map(|r| crate::config::rules::parse(r).ok())
    .collect();
    let compiled = Rules::new(&rules);
    let (mut path, mut hits, mut out) = (Vec::new(), Vec::new(), Vec::new());
    compiled.matching(target, &mut path, &mut hits);
    if !hits.is_empty() {
        assert!(path.starts_with(b"/"));
        assert!(!path.windows(4).any(|w| w == b"/../"));
    }
    for &i in &hits {
        out.clear();
        expand("/new/{rest}{path}", compiled.rule(i), &path, &mut out);
        assert!(
            !out.iter()
                .any(|&b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#'),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert!(!out.starts_with(b"//"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pipeline_with_a_body_and_an_error_is_split_independent() {
        let mut data = b"\x10\x40\x80\xc0".to_vec();
        data.extend_from_slice(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
              POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
              GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
        );
        super::pipeline(&data);
        let events = super::answer_pieces(&data[4..], &[], &[]);
        assert_eq!(events.len(), 3, "{events:?}");
    }

    /// A chunked request whose head is held while its body trickles in,
    /// and a reload that tightens --max-uri-bytes below its target in
    /// between: it is answered under the limits it was accepted under
    /// (this was a panic, `unreachable!`, taking the worker down).
    #[test]
    fn a_held_head_keeps_its_limits_across_a_reload() {
        let target = format!("/{}", "a".repeat(100));
        let head =
            format!("POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        let mut input = head.into_bytes();
        let body_at = input.len() + 3;
        input.extend_from_slice(b"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        let tighter = super::Reload {
            at: body_at,
            max_uri_bytes: 16,
            max_body_bytes: 1 << 16,
        };
        let events = super::answer_pieces(&input, &[], &[tighter]);
        assert_eq!(
            events,
            [
                super::Event::Reloaded(16, 1 << 16),
                super::Event::Answered {
                    target,
                    close: false
                },
                // Parsed after the reload: judged under the new limit.
                super::Event::Answered {
                    target: "/next".into(),
                    close: false
                },
            ]
        );
        // And through the target's own entry, with cuts.
        let mut data = vec![0x10, 0x40, 0x80, 0xc0];
        let plan = [(body_at * 256 / input.len()) as u8 + 1, 255, 0, 255];
        data.extend_from_slice(&plan);
        data.extend_from_slice(&input);
        super::pipeline_with_reloads(&data);
    }
}
