//! A pipeline of arbitrary bytes, delivered in arbitrary pieces, framed as
//! the connection frames it: heads, then bodies (Content-Length or
//! chunked), then the next head. The sequence of framing events must not
//! depend on how the bytes were split, and framing must always progress
//! or stop cleanly: no panic, no spin.
#![no_main]

use holdline::http::body::BodyDecoder;
use holdline::http::{HeadLimits, HeadOutcome, parse_head};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Event {
    Request { head_len: usize, keep_alive: bool },
    BodyDone,
    Reject(u16),
    BodyError,
}

/// Frames `data` delivered in pieces cut at `cuts`; returns the events
/// and the bytes left unframed (0 after a terminal error: the
/// connection closes there, whatever follows).
fn frame(data: &[u8], cuts: &[usize]) -> (Vec<Event>, usize) {
    let limits = HeadLimits {
        max_header_bytes: 2048,
        max_uri_bytes: 512,
    };
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut body: Option<BodyDecoder> = None;
    let mut delivered = 0;
    let mut boundaries: Vec<usize> = cuts.iter().map(|&c| c.min(data.len())).collect();
    boundaries.push(data.len());
    boundaries.sort_unstable();
    for end in boundaries {
        if end <= delivered {
            continue;
        }
        buf.extend_from_slice(&data[delivered..end]);
        delivered = end;
        // The connection's loop: each turn must consume bytes or stop.
        loop {
            if let Some(decoder) = body.as_mut() {
                match decoder.consume(&buf) {
                    Ok(n) => {
                        buf.drain(..n);
                        if decoder.is_done() {
                            body = None;
                            events.push(Event::BodyDone);
                            continue;
                        }
                        break;
                    }
                    Err(_) => {
                        events.push(Event::BodyError);
                        return (events, 0);
                    }
                }
            }
            if buf.is_empty() {
                break;
            }
            let window = &buf[..buf.len().min(limits.max_header_bytes)];
            match parse_head(window, &limits) {
                HeadOutcome::Partial => break,
                HeadOutcome::Reject(r) => {
                    events.push(Event::Reject(r.status.code()));
                    return (events, 0);
                }
                HeadOutcome::Complete(head) => {
                    let head_len = head.head_len;
                    assert!(head_len > 0, "a complete head consumes bytes");
                    events.push(Event::Request {
                        head_len,
                        keep_alive: !head.connection.close,
                    });
                    match BodyDecoder::new(head.framing, 1 << 16) {
                        Ok(decoder) => body = decoder,
                        Err(_) => {
                            events.push(Event::BodyError);
                            return (events, 0);
                        }
                    }
                    buf.drain(..head_len);
                }
            }
        }
    }
    (events, buf.len())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // The first four bytes choose where to cut the rest.
    let (seed, input) = data.split_at(4);
    let cuts: Vec<usize> = seed.iter().map(|&b| b as usize * input.len() / 256).collect();
    let every_byte: Vec<usize> = (0..input.len()).collect();
    let whole = frame(input, &[]);
    assert_eq!(frame(input, &cuts), whole, "splitting changed the framing");
    if input.len() < 512 {
        assert_eq!(frame(input, &every_byte), whole, "byte-by-byte changed the framing");
    }
});
