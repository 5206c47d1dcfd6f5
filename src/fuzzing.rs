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
use crate::http::input::InBuf;
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
    let whole = answer_pieces(input, &[]);
    assert_eq!(
        answer_pieces(input, &cuts),
        whole,
        "splitting changed the answers"
    );
    if input.len() < 512 {
        let every_byte: Vec<usize> = (0..input.len()).collect();
        assert_eq!(
            answer_pieces(input, &every_byte),
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
}

/// Records what the session asks of a responder.
struct Recorder {
    events: Vec<Event>,
}

impl Respond for Recorder {
    type Body = ();

    fn limits(&self) -> HeadLimits {
        HeadLimits {
            max_header_bytes: 2048,
            max_uri_bytes: 512,
        }
    }

    fn max_body_bytes(&self) -> u64 {
        1 << 16
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
/// piece and sending every answer at once.
fn answer_pieces(data: &[u8], cuts: &[usize]) -> Vec<Event> {
    let now = Instant::now();
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
    let mut session = Session::new(now);
    let mut recorder = Recorder { events: Vec::new() };
    let mut input = InBuf::new(2048);
    let mut output = Vec::new();
    let mut body = None;
    let mut file = None;
    let mut held = Vec::new();
    let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(data.len())).collect();
    ends.push(data.len());
    ends.sort_unstable();
    let mut delivered = 0;
    for end in ends {
        while delivered < end {
            if !session.wants_input(output.len(), false) {
                return recorder.events;
            }
            let spare = input.spare();
            let n = spare.len().min(end - delivered);
            // A full buffer is a head past the limit: the session must
            // have refused it (431) rather than wait for room.
            assert!(n > 0, "the input filled up and nothing refused it");
            spare[..n].copy_from_slice(&data[delivered..delivered + n]);
            let was_empty = input.is_empty();
            input.filled(n);
            delivered += n;
            session.received(was_empty, body.is_some(), now);
            let mut rounds = 0;
            loop {
                let ex = Exchange {
                    input: &mut input,
                    output: &mut output,
                    body: &mut body,
                    file: &mut file,
                    held: &mut held,
                };
                match session.answer(ex, &mut recorder, peer, now) {
                    Ok(true) => output.clear(),
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
        let events = super::answer_pieces(&data[4..], &[]);
        assert_eq!(events.len(), 3, "{events:?}");
    }
}
