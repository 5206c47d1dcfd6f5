//! The HTTP side of one connection, without its socket: which phase it is
//! in, when that phase times out, which buffered requests to answer and in
//! what order, and when and why it closes.
//!
//! ```text
//!            accept
//!              │
//!              ▼
//!            Fresh ◀──(nothing read yet: a TLS handshake's reads, an
//!              │       empty read; buffers back to the pool)──┐
//!              │ (room to read: an exchange is lent)          │
//!              ▼                                              │
//!   ┌──────▶ Busy(Exchange): reading a head or a body │ writing answers
//!   │          │                      (both at once when a body arrives
//!   │          │                       while its answer leaves)
//!   │          └──(nothing in flight: buffers back to the pool)──▶ Idle
//!   └───────────────────────────(room to read again)──────────────── Idle
//!
//!   Busy ──(an answer said close, its output sent)──▶ Closing (linger) ──▶ gone
//! ```
//!
//! An exchange is lent when the connection is given room to read, before
//! any byte arrives; a read that brings none of a request (a TLS
//! handshake runs inside the transport's reads) gives it back, and the
//! connection is Fresh again, still under the header deadline that ran
//! from accept.
//!
//! The whole state is one value, a [`Session`]: its state carries
//! what each phase needs and nothing else. A connection without a request
//! in flight (Fresh, Idle, Closing) holds an `Instant` and no buffer; a
//! working one holds an [`Exchange`] lent by the pool, whose reading side
//! ([`exchange`]: a head, a body being discarded, a chunked body with its
//! held head and the limits it was parsed under, or done) and writing
//! side (unsent bytes, then a file body) are typed apart. The phase the
//! counters and deadlines use ([`Phase`]) is derived from that state, in
//! one function, never stored beside it.
//!
//! A session is driven with events, each carrying the time as an
//! `Instant` (smoltcp's sockets are the model): room to read into
//! ([`input_room`]) and bytes [`received`], [`answer`] what is buffered,
//! output [`progressed`], [`settle`] once the connection moved what it
//! could, the [`deadline`] [passed](Session::on_deadline). The connection (`crate::conn`) moves the
//! bytes between the socket and the exchange and reports what happened;
//! the session never sees a socket, so its tests run on made-up time and
//! the pipeline fuzz target drives this very code.
//!
//! [`input_room`]: Session::input_room
//! [`received`]: Session::received
//! [`answer`]: Session::answer
//! [`progressed`]: Session::progressed
//! [`settle`]: Session::settle
//! [`deadline`]: Session::deadline

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::request::{HeadLimits, RequestHead, Version};
use super::status::Status;
use crate::close::CloseReason;

mod answer;
pub mod exchange;

use exchange::Reading;
pub use exchange::{Exchange, Out};

/// Stop answering pipelined requests (and reading) while this much output
/// is buffered: with one more answer, the most a connection's output holds.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// The phase as the counters, the deadlines and eviction see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (the rest of) a request head, or discarding a body.
    Reading,
    /// A response is being sent.
    Writing,
    /// Keep-alive: between requests, holding no buffers.
    Idle,
    /// Write side shut; draining input until EOF or the linger deadline.
    Closing,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Reading => "Reading",
            Phase::Writing => "Writing",
            Phase::Idle => "Idle",
            Phase::Closing => "Closing",
        })
    }
}

/// One deadline per phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Reading: a head from its first byte (or accept); a body being
    /// discarded, from its last byte.
    pub header: Duration,
    /// Writing: from the last write progress.
    pub send: Duration,
    /// Idle: from the end of the last response.
    pub keepalive: Duration,
    /// Closing: from the start of the lingering close.
    pub linger: Duration,
}

/// Facts about the connection that bear on one reply.
#[derive(Debug, Clone, Copy)]
pub struct ConnFacts {
    /// Requests answered on this connection before this one.
    pub requests_before: u32,
    /// The request has a body still to be read and discarded.
    pub has_body: bool,
    pub peer: SocketAddr,
    /// The connection is TLS.
    pub secure: bool,
    /// When the request's first byte arrived (or the previous request
    /// ended, for one already waiting in the input).
    pub started: Instant,
}

/// What the connection must do after the bytes a reply wrote.
#[derive(Debug)]
pub struct Reply<B> {
    pub status: Status,
    /// The response said `Connection: close`: close once it is out, for
    /// this reason.
    pub close: Option<CloseReason>,
    /// A body sent after the bytes written (a file, with sendfile).
    pub body: Option<B>,
    /// Not answered yet (nothing was written): the request stays at the
    /// front of the input, and is asked again when the connection is
    /// next driven (its credentials are being verified off the reactor).
    pub defer: bool,
}

/// What answers requests: the server's responder, or a test's. The one
/// seam between the session and everything that knows about files.
pub trait Respond {
    /// A body that leaves after the written bytes (a file range).
    type Body;
    /// The limits a head is parsed under now.
    fn limits(&self) -> HeadLimits;
    /// The largest request body accepted now.
    fn max_body_bytes(&self) -> u64;
    /// Answers one complete request, appending its bytes to `out`.
    fn respond(
        &mut self,
        head: &RequestHead<'_>,
        facts: ConnFacts,
        out: &mut Vec<u8>,
    ) -> Reply<Self::Body>;
    /// Answers a request that could not be parsed or framed, or timed
    /// out: always `Connection: close`, for `reason`.
    fn respond_error(
        &mut self,
        status: Status,
        version: Option<Version>,
        is_head: bool,
        reason: CloseReason,
        facts: ConnFacts,
        out: &mut Vec<u8>,
    );
}

/// What to do once a deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// It moved meanwhile: nothing to do but reschedule.
    NotYet,
    /// Close now, for this reason.
    Close(CloseReason),
    /// A 408 was written to the output: send it, then close.
    Answered,
}

/// A connection with nothing in flight, as it travels: what the
/// successor needs to go on with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parked {
    /// Requests answered on it so far (`--max-requests` counts on).
    pub requests: u32,
    /// How long it has been idle (or, fresh, since accept): its deadline
    /// goes on from there.
    pub idle: Duration,
    /// It has not sent a request yet (the header deadline applies).
    pub fresh: bool,
}

/// Where a connection is, with what that place needs.
enum State<B> {
    /// Accepted, nothing received yet, no buffers: the header deadline
    /// runs from `accepted`.
    Fresh { accepted: Instant },
    /// Between requests, no buffers: the keep-alive deadline runs from
    /// when the last response was out.
    Idle { since: Instant },
    /// A request under way: the exchange, lent by the pool.
    Busy(Box<Exchange<B>>),
    /// The last answer is out and said close: the write side is shut and
    /// what the client still sends is drained (RFC 9112 §9.6) until EOF or
    /// the linger deadline.
    Closing { since: Instant, reason: CloseReason },
}

/// The HTTP state of one connection (see the module docs).
pub struct Session<B> {
    state: State<B>,
    /// Requests answered on this connection.
    requests: u32,
    /// The connection is TLS (for `--redirect-to-https`).
    secure: bool,
}

impl<B> fmt::Debug for Session<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} after {} requests", self.phase(), self.requests)?;
        if let State::Busy(ex) = &self.state {
            let unsent = ex.out.unsent().len();
            write!(f, ", {} bytes in, {unsent} out", ex.input.bytes().len())?;
            if ex.out.file.is_some() {
                f.write_str(", a body to send")?;
            }
        }
        if let Some(reason) = self.close_after_output() {
            write!(f, ", closing ({reason})")?;
        }
        Ok(())
    }
}

impl<B> Session<B> {
    /// A connection just accepted: Fresh, its header deadline running.
    pub fn new(now: Instant, secure: bool) -> Session<B> {
        Session {
            state: State::Fresh { accepted: now },
            requests: 0,
            secure,
        }
    }

    /// The phase, derived from the state.
    pub fn phase(&self) -> Phase {
        match &self.state {
            State::Fresh { .. } => Phase::Reading,
            State::Idle { .. } => Phase::Idle,
            State::Closing { .. } => Phase::Closing,
            State::Busy(ex) if ex.is_writing() => Phase::Writing,
            State::Busy(_) => Phase::Reading,
        }
    }

    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// When the current phase began or last made progress: accept or the
    /// head's first byte while reading a head, the end of its head while
    /// reading a body, the last write progress while writing, the end of
    /// the last response while idle, the start of the linger while
    /// closing.
    pub fn since(&self) -> Instant {
        match &self.state {
            State::Fresh { accepted } => *accepted,
            State::Idle { since } | State::Closing { since, .. } => *since,
            State::Busy(ex) if ex.is_writing() => ex.out.last_progress,
            State::Busy(ex) => match &ex.reading {
                Reading::Head { started } => *started,
                Reading::Body { began, .. } | Reading::HeldBody { began, .. } => *began,
                Reading::Done { .. } => ex.out.last_progress,
            },
        }
    }

    /// Nothing of a request has arrived: no byte buffered, no body being
    /// read (what a connection that never spoke looks like).
    pub fn has_no_input(&self) -> bool {
        match &self.state {
            State::Busy(ex) => ex.input.is_empty() && matches!(ex.reading, Reading::Head { .. }),
            _ => true,
        }
    }

    /// Every byte the client sent so far was consumed: nothing buffered,
    /// no body left unread behind an answer that said close.
    pub fn all_input_consumed(&self) -> bool {
        match &self.state {
            State::Busy(ex) => {
                ex.input.is_empty()
                    && !matches!(
                        ex.reading,
                        Reading::Done {
                            body_unread: true,
                            ..
                        } | Reading::Body { .. }
                            | Reading::HeldBody { .. }
                    )
            }
            _ => true,
        }
    }

    /// The request line of what is being answered, as it came (at most
    /// 256 bytes): the held head's, or the front of the input (a request
    /// is consumed only once it is answered). For logging what a
    /// contained panic interrupted.
    pub fn request_line(&self) -> Option<&[u8]> {
        let State::Busy(ex) = &self.state else {
            return None;
        };
        let bytes = match &ex.reading {
            Reading::HeldBody { head, .. } => &head.bytes[..],
            _ => ex.input.bytes(),
        };
        let end = bytes
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(bytes.len())
            .min(256);
        (end > 0).then(|| &bytes[..end])
    }

    /// The answer that said close, once its output is sent.
    pub fn close_after_output(&self) -> Option<CloseReason> {
        match &self.state {
            State::Busy(ex) => match ex.reading {
                Reading::Done { reason, .. } => Some(reason),
                _ => None,
            },
            State::Closing { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// An answer said close and everything it wrote is out (the
    /// transport's own bytes aside): time to linger.
    pub fn ready_to_close(&self) -> Option<CloseReason> {
        match &self.state {
            State::Busy(ex) if ex.out.is_empty() => match ex.reading {
                Reading::Done { reason, .. } => Some(reason),
                _ => None,
            },
            _ => None,
        }
    }

    /// Room in the input to read into, when the session wants input now;
    /// a connection without buffers takes an exchange from `lend` first.
    /// Not once an answer said close, nor while a file body or
    /// [`OUTPUT_CAP`] bytes of output wait: a client that pipelines
    /// without reading cannot make us buffer more.
    pub fn input_room(
        &mut self,
        lend: impl FnOnce() -> Box<Exchange<B>>,
        now: Instant,
    ) -> Option<&mut [u8]> {
        let started = match self.state {
            State::Fresh { accepted } => accepted,
            State::Idle { .. } => now,
            State::Closing { .. } => return None,
            State::Busy(_) => now, // unused
        };
        if !matches!(self.state, State::Busy(_)) {
            let mut ex = lend();
            ex.reading = Reading::Head { started };
            ex.out.last_progress = now;
            self.state = State::Busy(ex);
        }
        let State::Busy(ex) = &mut self.state else {
            return None;
        };
        let wants = !matches!(ex.reading, Reading::Done { .. })
            && ex.out.file.is_none()
            && ex.out.buf.len() < OUTPUT_CAP;
        wants.then(|| ex.input.spare())
    }

    /// `n` bytes arrived in the room [`Session::input_room`] gave. A head
    /// that begins with them begins now; a body being read made progress.
    pub fn received(&mut self, n: usize, now: Instant) {
        let State::Busy(ex) = &mut self.state else {
            debug_assert!(n == 0, "bytes received without an exchange");
            return;
        };
        let was_empty = ex.input.is_empty();
        ex.input.filled(n);
        match &mut ex.reading {
            Reading::Head { started } if was_empty && self.requests > 0 => *started = now,
            Reading::Body { last_read, .. } | Reading::HeldBody { last_read, .. } => {
                *last_read = now
            }
            _ => {}
        }
    }

    /// What leaves, when a request is under way.
    pub fn out(&mut self) -> Option<&mut Out<B>> {
        match &mut self.state {
            State::Busy(ex) => Some(&mut ex.out),
            _ => None,
        }
    }

    /// Output left the transport: the send timeout (or, for the
    /// transport's own bytes between requests, the keep-alive one) starts
    /// again.
    pub fn progressed(&mut self, now: Instant) {
        match &mut self.state {
            State::Busy(ex) => ex.out.last_progress = now,
            State::Idle { since } => *since = now,
            _ => {}
        }
    }

    /// Settles the state once the connection has moved what it could:
    /// an exchange with nothing in flight goes back to the pool (the
    /// returned box) and the connection is Idle, or Fresh again if it has
    /// not spoken yet. `transport_pending`: the transport still holds
    /// bytes of a response (TLS records the socket did not take), so the
    /// response is not out.
    pub fn settle(&mut self, transport_pending: bool, now: Instant) -> Option<Box<Exchange<B>>> {
        let State::Busy(ex) = &mut self.state else {
            return None;
        };
        ex.out.transport_pending = transport_pending;
        if !ex.is_quiet() {
            return None;
        }
        let next = match (self.requests, &ex.reading) {
            (0, Reading::Head { started }) => State::Fresh { accepted: *started },
            _ => State::Idle { since: now },
        };
        match std::mem::replace(&mut self.state, next) {
            State::Busy(ex) => Some(ex),
            _ => None,
        }
    }

    /// The last answer is out and said close (`reason`); the write side is
    /// shut and what the client still sends is drained (RFC 9112 §9.6).
    /// Returns the exchange for the pool.
    pub fn begin_closing(&mut self, reason: CloseReason, now: Instant) -> Option<Box<Exchange<B>>> {
        let closing = State::Closing { since: now, reason };
        match std::mem::replace(&mut self.state, closing) {
            State::Busy(ex) => Some(ex),
            _ => None,
        }
    }

    /// The connection is going: its exchange, for the pool.
    pub fn into_exchange(self) -> Option<Box<Exchange<B>>> {
        match self.state {
            State::Busy(ex) => Some(ex),
            _ => None,
        }
    }

    /// The state to hand this connection to another process with (a
    /// binary upgrade): Fresh or Idle, with no buffer, only; `None` while
    /// a request is under way or the close has begun.
    pub fn parked(&self, now: Instant) -> Option<Parked> {
        let (since, fresh) = match self.state {
            State::Fresh { accepted } => (accepted, true),
            State::Idle { since } => (since, false),
            State::Busy(_) | State::Closing { .. } => return None,
        };
        Some(Parked {
            requests: self.requests,
            idle: now.saturating_duration_since(since),
            fresh,
        })
    }

    /// A connection another process handed over in `parked`'s state: its
    /// deadline goes on where it was.
    pub fn from_parked(parked: Parked, secure: bool, now: Instant) -> Session<B> {
        let since = now.checked_sub(parked.idle).unwrap_or(now);
        let state = match parked.fresh {
            true => State::Fresh { accepted: since },
            false => State::Idle { since },
        };
        Session {
            state,
            requests: parked.requests,
            secure,
        }
    }

    /// Graceful shutdown: a connection with nothing in flight can go now.
    pub fn can_close_now(&self) -> bool {
        match self.phase() {
            Phase::Idle => true,
            Phase::Reading => self.has_no_input(),
            Phase::Writing | Phase::Closing => false,
        }
    }

    /// What a reply may need to know of this connection.
    fn facts(&self, peer: SocketAddr, requests_before: u32, has_body: bool) -> ConnFacts {
        let started = match &self.state {
            State::Busy(ex) => match ex.reading {
                Reading::Head { started } => started,
                _ => ex.out.last_progress,
            },
            _ => self.since(),
        };
        ConnFacts {
            requests_before,
            has_body,
            peer,
            secure: self.secure,
            started,
        }
    }
}

/// Deadlines: one per state, and what happens when it passes.
impl<B> Session<B> {
    /// The instant the current state times out.
    pub fn deadline(&self, t: &Timeouts) -> Instant {
        match &self.state {
            State::Fresh { accepted } => *accepted + t.header,
            State::Idle { since } => *since + t.keepalive,
            State::Closing { since, .. } => *since + t.linger,
            State::Busy(ex) if ex.is_writing() => ex.out.last_progress + t.send,
            State::Busy(ex) => match &ex.reading {
                Reading::Head { started } => *started + t.header,
                Reading::Body { last_read, .. } | Reading::HeldBody { last_read, .. } => {
                    *last_read + t.header
                }
                Reading::Done { .. } => ex.out.last_progress + t.send,
            },
        }
    }

    /// The deadline may have passed. A partial head gets 408 (RFC 9110
    /// §15.5.9) written to the output; a connection that sent nothing of a
    /// request is closed without a word, as nginx does.
    pub fn on_deadline<R: Respond<Body = B>>(
        &mut self,
        t: &Timeouts,
        responder: &mut R,
        peer: SocketAddr,
        now: Instant,
    ) -> Expired {
        if now < self.deadline(t) {
            return Expired::NotYet;
        }
        let facts = self.facts(peer, self.requests, false);
        match &mut self.state {
            State::Fresh { .. } => Expired::Close(CloseReason::HeaderTimeout),
            State::Idle { .. } => Expired::Close(CloseReason::IdleTimeout),
            State::Closing { .. } => Expired::Close(CloseReason::LingerTimeout),
            State::Busy(ex) if ex.is_writing() => Expired::Close(CloseReason::SendTimeout),
            State::Busy(ex) => match ex.reading {
                Reading::Head { .. } if !ex.input.is_empty() => {
                    let reason = CloseReason::HeaderTimeout;
                    let status = Status::RequestTimeout;
                    responder.respond_error(status, None, false, reason, facts, &mut ex.out.buf);
                    ex.out.last_progress = now;
                    ex.reading = Reading::Done {
                        reason,
                        body_unread: false,
                    };
                    Expired::Answered
                }
                Reading::Done { .. } => Expired::Close(CloseReason::SendTimeout),
                _ => Expired::Close(CloseReason::HeaderTimeout),
            },
        }
    }
}

#[cfg(test)]
mod tests;
