//! The HTTP side of one connection, without its socket: which phase it is
//! in, when that phase times out, which buffered requests to answer and in
//! what order, and when and why it closes.
//!
//! ```text
//!            accept
//!              │
//!              ▼
//!   ┌──────▶ Reading ──(head complete: answer)──▶ Writing
//!   │          ▲                                    │
//!   │          └──(pipelined bytes already here)────┤ output sent
//!   │                                               ▼
//!   └────────(first byte of the next head)────── Idle  (keep-alive, no buffers)
//!
//!   any phase ──(an answer said close, output sent)──▶ Closing (linger) ──▶ gone
//! ```
//!
//! A [`Session`] is driven with events, each carrying the time as an
//! `Instant` (smoltcp's sockets are the model): bytes [`received`], bytes
//! [`sent`], [`answer`] what is buffered, [`settle`] into the next phase,
//! a [`deadline`] passed. The connection (`crate::conn`) moves the bytes
//! between the socket and the buffers and reports what happened; the
//! session never sees a socket, so its tests run on made-up time and the
//! pipeline fuzz target drives this very code.
//!
//! [`received`]: Session::received
//! [`sent`]: Session::sent
//! [`answer`]: Session::answer
//! [`settle`]: Session::settle
//! [`deadline`]: Session::on_deadline

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::body::{BodyDecoder, BodyError, Framing};
use super::input::InBuf;
use super::request::{HeadLimits, HeadOutcome, Method, RequestHead, Version, parse_head};
use super::status::Status;
use crate::close::CloseReason;

/// Stop answering pipelined requests (and reading) while this much output
/// is buffered: with one more answer, the most a connection's output holds.
pub const OUTPUT_CAP: usize = 64 * 1024;

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
}

/// What answers requests: the server's responder, or a test's.
pub trait Respond {
    /// A body that leaves after the written bytes (a file range).
    type Body;
    fn limits(&self) -> HeadLimits;
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

/// What a working connection lends the session for one call: its buffers
/// and the state of the exchange in flight.
pub struct Exchange<'a, B> {
    pub input: &'a mut InBuf,
    /// Everything written and not yet sent (sent bytes included until the
    /// buffer is cleared: see [`OUTPUT_CAP`]).
    pub output: &'a mut Vec<u8>,
    pub body: &'a mut Option<BodyDecoder>,
    pub file: &'a mut Option<B>,
    /// The head of a request whose chunked body is being read, held to be
    /// answered once the body is in (at most `--max-header-bytes`).
    pub held: &'a mut Vec<u8>,
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

/// The HTTP state of one connection (see the module docs).
pub struct Session {
    phase: Phase,
    /// When the current phase began, moved forward by every write
    /// progress: for Writing that is the send timeout's base, and for
    /// Idle it is when the last response finished, even when a whole
    /// request-response happened inside one drive (Idle -> Idle).
    since: Instant,
    /// When the head being received began (accept, or its first byte).
    head_started: Instant,
    /// Last read progress, for the body-discard deadline.
    last_read: Instant,
    /// Requests answered on this connection.
    requests: u32,
    /// An answer said close: close (lingering) once the output is sent.
    close_after_output: Option<CloseReason>,
    /// The connection is TLS (for `--redirect-to-https`).
    secure: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} after {} requests", self.phase, self.requests)?;
        if let Some(reason) = self.close_after_output {
            write!(f, ", closing ({reason})")?;
        }
        Ok(())
    }
}

impl Session {
    /// A connection just accepted: Reading, its header deadline running.
    pub fn new(now: Instant) -> Session {
        Session {
            phase: Phase::Reading,
            since: now,
            head_started: now,
            last_read: now,
            requests: 0,
            close_after_output: None,
            secure: false,
        }
    }

    /// Marks the connection as TLS: its requests say so to the responder.
    pub fn set_secure(&mut self, secure: bool) {
        self.secure = secure;
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// When the current phase began or last made write progress.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// When the head being received began.
    pub fn head_started(&self) -> Instant {
        self.head_started
    }

    /// The answer that said close, once its output is sent.
    pub fn close_after_output(&self) -> Option<CloseReason> {
        self.close_after_output
    }

    /// Bytes arrived. `input_was_empty`: none were buffered before, so a
    /// new head begins now (unless a body is being discarded).
    pub fn received(&mut self, input_was_empty: bool, discarding_body: bool, now: Instant) {
        self.last_read = now;
        if input_was_empty && !discarding_body && self.requests > 0 {
            self.head_started = now;
        }
    }

    /// Output left: the send timeout starts again.
    pub fn sent(&mut self, now: Instant) {
        self.since = now;
    }

    /// May the connection read more now? Not once an answer said close,
    /// nor while a file body or [`OUTPUT_CAP`] bytes of output wait: a
    /// client that pipelines without reading cannot make us buffer more.
    pub fn wants_input(&self, buffered_output: usize, sending_file: bool) -> bool {
        self.close_after_output.is_none() && !sending_file && buffered_output < OUTPUT_CAP
    }

    /// What a reply may need to know of this connection.
    fn facts(&self, peer: SocketAddr, requests_before: u32, has_body: bool) -> ConnFacts {
        ConnFacts {
            requests_before,
            has_body,
            peer,
            secure: self.secure,
            started: self.head_started,
        }
    }

    /// Answers every complete request in the input, in order, appending
    /// the answers to the output. Returns whether anything happened; `Err`
    /// when a body's framing is broken (close now).
    pub fn answer<R: Respond>(
        &mut self,
        ex: Exchange<'_, R::Body>,
        responder: &mut R,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<bool, CloseReason> {
        let Exchange {
            input,
            output,
            body,
            file,
            held,
        } = ex;
        let mut progressed = false;
        // `output.len()`, not what is unsent: the sent prefix is only
        // dropped once all of it is out, so a client that reads just
        // enough to keep the unsent part small could otherwise grow the
        // buffer for ever.
        while self.close_after_output.is_none() && file.is_none() && output.len() < OUTPUT_CAP {
            if let Some(decoder) = body.as_mut() {
                let failed = match decoder.consume(input.bytes()) {
                    Ok(used) => {
                        input.consume(used);
                        progressed |= used > 0;
                        if !decoder.is_done() {
                            break;
                        }
                        None
                    }
                    Err(e) => Some(e),
                };
                *body = None;
                self.head_started = now;
                if held.is_empty() {
                    // Its request was answered at its head (a Content-Length
                    // body, which cannot fail): nothing more to say.
                    if failed.is_some() {
                        return Err(CloseReason::ProtocolError);
                    }
                    continue;
                }
                // The body of a held request is in (or broke): answer it now.
                self.answer_held(held, failed, output, file, responder, peer);
                progressed = true;
                continue;
            }
            if input.is_empty() {
                break;
            }
            match parse_head(input.bytes(), &responder.limits()) {
                HeadOutcome::Partial => break,
                HeadOutcome::Complete(head) => {
                    let head_len = head.head_len;
                    match BodyDecoder::new(head.framing, responder.max_body_bytes()) {
                        Err(_) => {
                            // Refused without reading the body: what follows
                            // in the input is body, not a request.
                            let is_head = head.method == Method::Head;
                            let version = Some(head.version);
                            let reason = CloseReason::ProtocolError;
                            let status = Status::ContentTooLarge;
                            let facts = self.facts(peer, self.requests, false);
                            responder
                                .respond_error(status, version, is_head, reason, facts, output);
                            self.close_after_output = Some(reason);
                        }
                        // A chunked body has no length to check up front: hold
                        // the head and answer once the body is in, so that a
                        // body past the limit gets its 413 whether it comes in
                        // one write or trickles (with `Expect: 100-continue`
                        // the client waits for us: answer at once).
                        Ok(Some(decoder))
                            if head.framing == Framing::Chunked && !head.expect_continue =>
                        {
                            held.clear();
                            held.extend_from_slice(&input.bytes()[..head_len]);
                            *body = Some(decoder);
                        }
                        Ok(decoder) => {
                            let facts = self.facts(peer, self.requests, decoder.is_some());
                            *body = decoder;
                            let reply = responder.respond(&head, facts, output);
                            *file = reply.body;
                            self.close_after_output = reply.close;
                        }
                    }
                    input.consume(head_len);
                    self.requests += 1;
                    self.head_started = now;
                }
                HeadOutcome::Reject(rejection) => {
                    let reason = CloseReason::ProtocolError;
                    let (status, version) = (rejection.status, rejection.version);
                    let facts = self.facts(peer, self.requests, false);
                    responder.respond_error(status, version, false, reason, facts, output);
                    self.requests += 1;
                    self.close_after_output = Some(reason);
                }
            }
            progressed = true;
        }
        Ok(progressed)
    }

    /// Answers the request whose head was held while its chunked body was
    /// read: normally, or with 413 (too large) or 400 (malformed chunks)
    /// and a close, since what follows the broken body is unframed.
    fn answer_held<R: Respond>(
        &mut self,
        held: &mut Vec<u8>,
        failed: Option<BodyError>,
        output: &mut Vec<u8>,
        file: &mut Option<R::Body>,
        responder: &mut R,
        peer: SocketAddr,
    ) {
        let HeadOutcome::Complete(head) = parse_head(held, &responder.limits()) else {
            unreachable!("a held head parsed once already");
        };
        match failed {
            None => {
                // Counted when it was held.
                let facts = self.facts(peer, self.requests - 1, false);
                let reply = responder.respond(&head, facts, output);
                *file = reply.body;
                self.close_after_output = reply.close;
            }
            Some(error) => {
                let status = match error {
                    BodyError::TooLarge => Status::ContentTooLarge,
                    BodyError::Malformed => Status::BadRequest,
                };
                let reason = CloseReason::ProtocolError;
                let is_head = head.method == Method::Head;
                let facts = self.facts(peer, self.requests - 1, false);
                responder.respond_error(status, Some(head.version), is_head, reason, facts, output);
                self.close_after_output = Some(reason);
            }
        }
        held.clear();
    }

    /// Chooses the phase once the connection has moved what it could:
    /// Writing while output waits, Reading while a head or body is under
    /// way (or none has come yet), Idle otherwise. Closing is final.
    pub fn settle(
        &mut self,
        has_output: bool,
        input_empty: bool,
        discarding_body: bool,
        now: Instant,
    ) {
        let next = if self.phase == Phase::Closing {
            return;
        } else if has_output {
            Phase::Writing
        } else if !input_empty || discarding_body || self.requests == 0 {
            Phase::Reading
        } else {
            Phase::Idle
        };
        if next != self.phase {
            self.enter(next, now);
        }
    }

    /// The last answer is out and said close; the write side is shut and
    /// what the client still sends is drained (RFC 9112 §9.6).
    pub fn begin_closing(&mut self, now: Instant) {
        self.enter(Phase::Closing, now);
    }

    /// The instant the current phase times out.
    pub fn deadline(&self, t: &Timeouts, discarding_body: bool) -> Instant {
        match self.phase {
            Phase::Reading if discarding_body => self.last_read + t.header,
            Phase::Reading => self.head_started + t.header,
            Phase::Writing => self.since + t.send,
            Phase::Idle => self.since + t.keepalive,
            Phase::Closing => self.since + t.linger,
        }
    }

    /// The deadline may have passed. A partial head gets 408 (RFC 9110
    /// §15.5.9) written to the output; a connection that sent nothing of a
    /// request is closed without a word, as nginx does.
    pub fn on_deadline<R: Respond>(
        &mut self,
        t: &Timeouts,
        ex: Exchange<'_, R::Body>,
        responder: &mut R,
        peer: SocketAddr,
        now: Instant,
    ) -> Expired {
        let discarding_body = ex.body.is_some();
        if now < self.deadline(t, discarding_body) {
            return Expired::NotYet;
        }
        let head_begun = !ex.input.is_empty();
        match self.phase {
            Phase::Idle => Expired::Close(CloseReason::IdleTimeout),
            Phase::Writing => Expired::Close(CloseReason::SendTimeout),
            Phase::Closing => Expired::Close(CloseReason::LingerTimeout),
            Phase::Reading if !head_begun || discarding_body => {
                Expired::Close(CloseReason::HeaderTimeout)
            }
            Phase::Reading => {
                let reason = CloseReason::HeaderTimeout;
                let status = Status::RequestTimeout;
                let facts = self.facts(peer, self.requests, false);
                responder.respond_error(status, None, false, reason, facts, ex.output);
                self.close_after_output = Some(reason);
                Expired::Answered
            }
        }
    }

    fn enter(&mut self, next: Phase, now: Instant) {
        self.phase = next;
        self.since = now;
    }
}

#[cfg(test)]
mod tests {
    //! One test per transition, named by phase and event, on made-up time.

    use super::*;
    use crate::http::body::BodyDecoder;
    use std::fmt::Write as _;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        send: Duration::from_secs(30),
        keepalive: Duration::from_secs(5),
        linger: Duration::from_secs(2),
    };

    /// Answers `200` with the target as the body; `close` in the target
    /// asks for a close; `/file` sends a body of type `u64` afterwards.
    struct Echo {
        answered: Vec<String>,
        /// `requests_before` of each answered request.
        befores: Vec<u32>,
    }

    impl Respond for Echo {
        type Body = u64;
        fn limits(&self) -> HeadLimits {
            HeadLimits {
                max_header_bytes: 256,
                max_uri_bytes: 32,
            }
        }
        fn max_body_bytes(&self) -> u64 {
            10
        }
        fn respond(
            &mut self,
            head: &RequestHead<'_>,
            facts: ConnFacts,
            out: &mut Vec<u8>,
        ) -> Reply<u64> {
            self.answered.push(head.target.to_string());
            self.befores.push(facts.requests_before);
            let _ = write!(out_string(out), "200 {};", head.target);
            Reply {
                status: Status::Ok,
                close: head
                    .target
                    .contains("close")
                    .then_some(CloseReason::ResponseClose),
                body: (head.target == "/file").then_some(7),
            }
        }
        fn respond_error(
            &mut self,
            status: Status,
            _: Option<Version>,
            is_head: bool,
            reason: CloseReason,
            _: ConnFacts,
            out: &mut Vec<u8>,
        ) {
            let head = if is_head { " (head)" } else { "" };
            let _ = write!(out_string(out), "{} {reason}{head};", status.code());
        }
    }

    /// `write!` into a byte buffer.
    fn out_string(out: &mut Vec<u8>) -> impl fmt::Write + '_ {
        struct W<'a>(&'a mut Vec<u8>);
        impl fmt::Write for W<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
        W(out)
    }

    /// A session with its buffers, driven like the connection drives it.
    struct Harness {
        s: Session,
        input: InBuf,
        output: Vec<u8>,
        body: Option<BodyDecoder>,
        file: Option<u64>,
        held: Vec<u8>,
        echo: Echo,
        t0: Instant,
    }

    const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

    impl Harness {
        fn new() -> Harness {
            let t0 = Instant::now();
            Harness {
                s: Session::new(t0),
                input: InBuf::new(256),
                output: Vec::new(),
                body: None,
                file: None,
                held: Vec::new(),
                echo: Echo {
                    answered: Vec::new(),
                    befores: Vec::new(),
                },
                t0,
            }
        }

        fn at(&self, secs: f64) -> Instant {
            self.t0 + Duration::from_secs_f64(secs)
        }

        /// Bytes arrive at `secs`; everything buffered is answered and the
        /// phase settles (nothing is sent yet).
        fn recv(&mut self, bytes: &[u8], secs: f64) -> String {
            let now = self.at(secs);
            let was_empty = self.input.is_empty();
            self.input.spare()[..bytes.len()].copy_from_slice(bytes);
            self.input.filled(bytes.len());
            self.s.received(was_empty, self.body.is_some(), now);
            self.answer(now)
        }

        fn answer(&mut self, now: Instant) -> String {
            let ex = Exchange {
                input: &mut self.input,
                output: &mut self.output,
                body: &mut self.body,
                file: &mut self.file,
                held: &mut self.held,
            };
            let result = self.s.answer(ex, &mut self.echo, PEER, now);
            assert!(result.is_ok(), "{result:?}");
            self.settle(now);
            String::from_utf8_lossy(&self.output).into_owned()
        }

        fn settle(&mut self, now: Instant) {
            let has_output = !self.output.is_empty() || self.file.is_some();
            let (empty, discarding) = (self.input.is_empty(), self.body.is_some());
            self.s.settle(has_output, empty, discarding, now);
        }

        /// All output (and the file body) leaves at `secs`.
        fn drain(&mut self, secs: f64) {
            let now = self.at(secs);
            self.output.clear();
            self.file = None;
            self.s.sent(now);
            self.answer(now);
        }

        fn deadline(&mut self) -> f64 {
            let d = self.s.deadline(&T, self.body.is_some());
            d.duration_since(self.t0).as_secs_f64()
        }

        fn expire(&mut self, secs: f64) -> Expired {
            let now = self.at(secs);
            let ex = Exchange {
                input: &mut self.input,
                output: &mut self.output,
                body: &mut self.body,
                file: &mut self.file,
                held: &mut self.held,
            };
            self.s.on_deadline(&T, ex, &mut self.echo, PEER, now)
        }
    }

    #[test]
    fn reading_then_complete_head_answers_and_writes() {
        let mut h = Harness::new();
        assert_eq!(h.s.phase(), Phase::Reading);
        assert_eq!(
            h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0),
            "200 /a;"
        );
        assert_eq!(h.s.phase(), Phase::Writing);
        assert_eq!(h.deadline(), 31.0, "send timeout from the answer");
    }

    #[test]
    fn writing_then_progress_pushes_the_send_deadline() {
        let mut h = Harness::new();
        h.recv(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
        h.s.sent(h.at(20.0));
        assert_eq!(h.deadline(), 50.0, "from the last progress, not the start");
        assert_eq!(h.expire(49.9), Expired::NotYet);
        assert_eq!(h.expire(50.0), Expired::Close(CloseReason::SendTimeout));
    }

    #[test]
    fn writing_then_drained_goes_idle_with_the_keepalive_deadline() {
        let mut h = Harness::new();
        h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
        h.drain(2.0);
        assert_eq!(h.s.phase(), Phase::Idle);
        assert_eq!(h.deadline(), 7.0);
        assert_eq!(h.expire(7.0), Expired::Close(CloseReason::IdleTimeout));
    }

    #[test]
    fn reading_silent_then_deadline_closes_without_a_word() {
        let mut h = Harness::new();
        assert_eq!(h.deadline(), 10.0);
        assert_eq!(h.expire(10.0), Expired::Close(CloseReason::HeaderTimeout));
        assert!(h.output.is_empty());
    }

    #[test]
    fn idle_then_partial_head_then_deadline_answers_408() {
        let mut h = Harness::new();
        h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
        h.drain(1.5);
        h.recv(b"GET /b HT", 3.0);
        assert_eq!(h.s.phase(), Phase::Reading);
        // The head's deadline runs from its first byte, whatever trickles.
        h.recv(b"TP/1.1\r\nHost: x\r\n", 12.0);
        assert_eq!(h.deadline(), 13.0);
        assert_eq!(h.expire(13.0), Expired::Answered);
        assert_eq!(String::from_utf8_lossy(&h.output), "408 header_timeout;");
        assert_eq!(h.s.close_after_output(), Some(CloseReason::HeaderTimeout));
    }

    #[test]
    fn reading_body_then_silence_times_out_from_the_last_byte() {
        let mut h = Harness::new();
        h.recv(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n1234",
            1.0,
        );
        assert!(h.body.is_some());
        h.drain(1.0);
        assert_eq!(h.s.phase(), Phase::Reading, "still discarding the body");
        h.recv(b"56", 8.0);
        assert_eq!(h.deadline(), 18.0, "from the last body byte");
        assert_eq!(h.expire(18.0), Expired::Close(CloseReason::HeaderTimeout));
    }

    #[test]
    fn reading_body_then_rest_then_next_head_answers_it() {
        let mut h = Harness::new();
        h.recv(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n12",
            1.0,
        );
        assert_eq!(
            h.recv(b"34GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 2.0),
            "200 /a;200 /b;"
        );
        assert_eq!(h.echo.answered, ["/a", "/b"]);
        assert!(h.body.is_none());
    }

    #[test]
    fn reading_pipelined_heads_answers_in_order_into_one_buffer() {
        let mut h = Harness::new();
        let out = h.recv(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3",
            1.0,
        );
        assert_eq!(out, "200 /1;200 /2;");
        assert_eq!(h.s.requests(), 2);
        assert_eq!(h.s.phase(), Phase::Writing);
    }

    #[test]
    fn writing_a_file_body_stops_answering_until_it_is_sent() {
        let mut h = Harness::new();
        let out = h.recv(
            b"GET /file HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
            1.0,
        );
        assert_eq!(out, "200 /file;");
        assert_eq!(h.file, Some(7));
        assert!(!h.s.wants_input(h.output.len(), h.file.is_some()));
        h.drain(2.0);
        assert_eq!(String::from_utf8_lossy(&h.output), "200 /2;");
    }

    #[test]
    fn writing_at_the_output_cap_stops_answering_and_reading() {
        let mut h = Harness::new();
        h.output.resize(OUTPUT_CAP, b'x');
        h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
        assert!(h.echo.answered.is_empty(), "the cap counts sent bytes too");
        assert!(!h.s.wants_input(h.output.len(), false));
        assert!(h.s.wants_input(OUTPUT_CAP - 1, false));
    }

    #[test]
    fn reading_an_answer_that_says_close_stops_everything_after_it() {
        let mut h = Harness::new();
        let out = h.recv(
            b"GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
            1.0,
        );
        assert_eq!(out, "200 /close;");
        assert_eq!(h.s.close_after_output(), Some(CloseReason::ResponseClose));
        assert!(!h.s.wants_input(0, false));
        h.s.begin_closing(h.at(2.0));
        assert_eq!(h.s.phase(), Phase::Closing);
        h.settle(h.at(2.5));
        assert_eq!(h.s.phase(), Phase::Closing, "nothing leads out of Closing");
        assert_eq!(h.deadline(), 4.0);
        assert_eq!(h.expire(4.0), Expired::Close(CloseReason::LingerTimeout));
    }

    #[test]
    fn reading_a_bad_head_answers_400_and_closes() {
        let mut h = Harness::new();
        let out = h.recv(
            b"GET /a HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            1.0,
        );
        assert_eq!(out, "400 protocol_error;");
        assert_eq!(h.s.close_after_output(), Some(CloseReason::ProtocolError));
        assert_eq!(h.s.requests(), 1);
    }

    #[test]
    fn reading_a_head_request_past_the_limit_answers_413_without_a_body() {
        let mut h = Harness::new();
        let out = h.recv(
            b"HEAD /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
            1.0,
        );
        assert_eq!(out, "413 protocol_error (head);");
    }

    #[test]
    fn reading_a_body_past_the_limit_answers_413_and_closes() {
        let mut h = Harness::new();
        let out = h.recv(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
            1.0,
        );
        assert_eq!(out, "413 protocol_error;");
        assert_eq!(h.s.close_after_output(), Some(CloseReason::ProtocolError));
    }

    #[test]
    fn reading_a_chunked_body_holds_the_answer_until_it_is_in() {
        let mut h = Harness::new();
        let head = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(h.recv(head, 1.0), "", "no answer before the body");
        assert_eq!(h.s.phase(), Phase::Reading);
        assert_eq!(h.recv(b"3\r\nabc\r\n", 2.0), "");
        assert_eq!(
            h.deadline(),
            12.0,
            "the discard deadline runs from the last byte"
        );
        assert_eq!(
            h.recv(b"0\r\n\r\nGET /n HTTP/1.1\r\nHost: x\r\n\r\n", 3.0),
            "200 /c;200 /n;"
        );
        assert_eq!(h.s.requests(), 2);
        assert_eq!(
            h.echo.befores,
            [0, 1],
            "the held request is still the first"
        );
        assert!(h.held.is_empty());
    }

    #[test]
    fn reading_a_chunked_head_request_past_the_limit_answers_413_without_a_body() {
        let mut h = Harness::new();
        let out = h.recv(
            b"HEAD /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n0123456789a\r\n",
            1.0,
        );
        assert_eq!(out, "413 protocol_error (head);");
    }

    #[test]
    fn reading_a_chunked_body_past_the_limit_in_one_write_answers_413() {
        let mut h = Harness::new();
        let out = h.recv(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n0123456789a\r\n0\r\n\r\n",
            1.0,
        );
        assert_eq!(out, "413 protocol_error;");
        assert_eq!(h.s.close_after_output(), Some(CloseReason::ProtocolError));
        assert!(
            h.echo.answered.is_empty(),
            "the request itself is not served"
        );
    }

    #[test]
    fn reading_a_trickled_chunked_body_past_the_limit_answers_413() {
        let mut h = Harness::new();
        h.recv(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            1.0,
        );
        assert_eq!(h.recv(b"6\r\nabcdef\r\n", 2.0), "");
        assert_eq!(h.recv(b"6\r\nghijkl\r\n", 3.0), "413 protocol_error;");
        assert_eq!(h.s.close_after_output(), Some(CloseReason::ProtocolError));
    }

    #[test]
    fn reading_malformed_chunks_answers_400() {
        let mut h = Harness::new();
        let out = h.recv(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            1.0,
        );
        assert_eq!(out, "400 protocol_error;");
    }

    #[test]
    fn reading_the_first_head_times_out_from_accept() {
        let mut h = Harness::new();
        h.recv(b"GET /a HT", 5.0);
        assert_eq!(
            h.deadline(),
            10.0,
            "not from the first byte, for a new connection"
        );
    }

    #[test]
    fn reading_a_content_length_body_answers_at_the_head() {
        let mut h = Harness::new();
        let out = h.recv(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n12",
            1.0,
        );
        assert_eq!(
            out, "200 /a;",
            "its length is known: no need to wait for it"
        );
        assert!(h.held.is_empty());
    }

    #[test]
    fn reading_body_bytes_is_progress() {
        let mut h = Harness::new();
        h.recv(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n",
            1.0,
        );
        h.drain(1.0);
        let now = h.at(2.0);
        h.input.spare()[..3].copy_from_slice(b"123");
        h.input.filled(3);
        h.s.received(false, true, now);
        let ex = Exchange {
            input: &mut h.input,
            output: &mut h.output,
            body: &mut h.body,
            file: &mut h.file,
            held: &mut h.held,
        };
        assert_eq!(h.s.answer(ex, &mut h.echo, PEER, now), Ok(true));
        assert!(h.input.is_empty());
    }

    #[test]
    fn writing_below_the_output_cap_keeps_answering() {
        let mut h = Harness::new();
        assert_eq!(OUTPUT_CAP, 64 * 1024);
        h.output.resize(2000, b'x');
        h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
        assert_eq!(h.echo.answered, ["/a"]);
    }

    #[test]
    fn idle_then_first_byte_starts_the_head_deadline() {
        let mut h = Harness::new();
        h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
        h.drain(1.0);
        h.recv(b"G", 4.0);
        assert_eq!(h.s.phase(), Phase::Reading);
        assert_eq!(h.deadline(), 14.0);
    }
}
