//! What a connection holds while a request is under way: its buffers and
//! the exchange in flight, each side in its own state, as hyper keeps
//! `Reading` and `Writing` apart (a body can still be arriving while its
//! answer leaves, so neither side is "the" phase).
//!
//! An [`Exchange`] is lent by the pool when a connection has bytes to
//! read, and given back when it has nothing in flight: an idle keep-alive
//! connection holds none of it.

use std::time::Instant;

use super::super::body::BodyDecoder;
use super::super::input::InBuf;
use super::super::request::HeadLimits;
use crate::close::CloseReason;

/// The buffers and in-flight state of one working connection.
pub struct Exchange<B> {
    /// Received and not yet consumed: at most one head's worth.
    pub(super) input: InBuf,
    pub(super) reading: Reading,
    /// What leaves: the connection moves it to the socket.
    pub out: Out<B>,
}

/// The reading side: what the next input bytes are.
#[derive(Debug)]
pub(super) enum Reading {
    /// A request head, begun at `started` (accept, its first byte, or
    /// the end of the request before it when it was already buffered).
    Head { started: Instant },
    /// The body of a request answered at its head (Content-Length, or
    /// `Expect: 100-continue`), read to be discarded; its deadline runs
    /// from the last byte.
    Body {
        decoder: BodyDecoder,
        /// When its head was parsed (eviction's age of the request).
        began: Instant,
        last_read: Instant,
    },
    /// A chunked body, read before its request is answered (a body past
    /// `--max-body-bytes` gets 413 however it trickles). The head is held
    /// with the limits it was parsed under: a reload that tightens a limit
    /// meanwhile does not change what this request was accepted as.
    HeldBody {
        decoder: BodyDecoder,
        head: HeldHead,
        /// When its head was parsed (eviction's age of the request).
        began: Instant,
        last_read: Instant,
    },
    /// An answer said close: nothing more is read as a request.
    /// `body_unread`: its request's body was not read (the client may
    /// still be sending it).
    Done {
        reason: CloseReason,
        body_unread: bool,
    },
}

/// A request head kept while its chunked body is read.
#[derive(Debug)]
pub(super) struct HeldHead {
    pub bytes: Vec<u8>,
    pub limits: HeadLimits,
    /// When the head began: the request's time runs from it.
    pub started: Instant,
    /// Requests answered on the connection before it (it is counted when
    /// held).
    pub requests_before: u32,
}

/// The writing side: bytes not yet sent, then a body that leaves after
/// them (a file range, with sendfile).
pub struct Out<B> {
    /// Answers written and not all sent: `buf[pos..]` is unsent. The sent
    /// prefix is dropped only once all of it is out (see
    /// [`OUTPUT_CAP`](super::OUTPUT_CAP)).
    pub buf: Vec<u8>,
    pub pos: usize,
    /// A body to send after `buf`.
    pub file: Option<B>,
    /// The last write progress (or when the first unsent answer was
    /// written): what the send timeout runs from.
    pub last_progress: Instant,
    /// The transport still holds bytes of what was sent (TLS records the
    /// socket did not take): the response is not out yet.
    pub(super) transport_pending: bool,
}

impl<B> Out<B> {
    /// Nothing to send: every byte out, no body to follow.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len() && self.file.is_none()
    }

    /// The bytes written and not yet sent.
    pub fn unsent(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Every buffered byte is sent: the buffer starts again.
    pub fn clear_sent(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }
}

impl<B> Exchange<B> {
    /// Buffers for a connection whose heads may be `input_size` bytes.
    pub fn new(input_size: usize) -> Exchange<B> {
        let now = Instant::now();
        Exchange {
            input: InBuf::new(input_size),
            reading: Reading::Head { started: now },
            out: Out {
                buf: Vec::with_capacity(4096),
                pos: 0,
                file: None,
                last_progress: now,
                transport_pending: false,
            },
        }
    }

    /// Back to the state [`Exchange::new`] gives, keeping the allocations
    /// (the pool does this before lending it again).
    pub fn reset(&mut self) {
        self.input.clear();
        self.reading = Reading::Head {
            started: self.out.last_progress,
        };
        self.out.clear_sent();
        self.out.file = None;
        self.out.transport_pending = false;
    }

    /// The size of the input buffer (`--max-header-bytes`' room).
    pub fn input_capacity(&self) -> usize {
        self.input.capacity()
    }

    /// The capacity of the output buffer (the pool drops grown ones).
    pub fn output_capacity(&self) -> usize {
        self.out.buf.capacity()
    }

    /// Nothing in flight: no input, nothing to send, no body being read,
    /// no close pending.
    pub(super) fn is_quiet(&self) -> bool {
        self.input.is_empty()
            && self.out.is_empty()
            && !self.out.transport_pending
            && matches!(self.reading, Reading::Head { .. })
    }

    /// A response is on its way: bytes or a body to send, or bytes the
    /// transport still holds.
    pub(super) fn is_writing(&self) -> bool {
        !self.out.is_empty() || self.out.transport_pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exchange_is_quiet_only_with_nothing_in_flight() {
        let mut ex = Exchange::<u8>::new(64);
        assert!(ex.is_quiet());
        ex.input.spare()[..1].copy_from_slice(b"G");
        ex.input.filled(1);
        assert!(!ex.is_quiet(), "a byte of a request");
        ex.input.consume(1);
        ex.out.buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert!(!ex.is_quiet() && ex.is_writing(), "output unsent");
        ex.out.pos = ex.out.buf.len();
        assert!(ex.is_quiet(), "output all sent");
        ex.out.transport_pending = true;
        assert!(
            !ex.is_quiet() && ex.is_writing(),
            "the transport holds some"
        );
        ex.out.transport_pending = false;
        let decoder = BodyDecoder::new(crate::http::body::Framing::Length(3), 10);
        ex.reading = Reading::Body {
            decoder: decoder.unwrap().unwrap(),
            began: Instant::now(),
            last_read: Instant::now(),
        };
        assert!(!ex.is_quiet() && !ex.is_writing(), "a body being read");
        ex.reading = Reading::Done {
            reason: CloseReason::ResponseClose,
            body_unread: false,
        };
        assert!(!ex.is_quiet(), "a close pending");
        ex.reading = Reading::Head {
            started: Instant::now(),
        };
        ex.out.file = Some(1);
        assert!(!ex.is_quiet() && ex.is_writing(), "a file body to send");
    }
}
