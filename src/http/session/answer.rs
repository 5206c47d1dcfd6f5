//! Answering what is buffered: every complete request in the input, in
//! order (pipelining: the answers go out together), and the bodies
//! between them.
//!
//! Panics: `ex.input.bytes()[..head.head_len]` takes a head that
//! `parse_head` found complete within those very bytes.

use std::net::SocketAddr;
use std::time::Instant;

use super::super::body::{BodyDecoder, BodyError, Framing};
use super::super::request::{HeadOutcome, Method, parse_head};
use super::super::status::Status;
use super::exchange::{Exchange, HeldHead, Reading};
use super::{ConnFacts, OUTPUT_CAP, Respond, Session, State};
use crate::close::CloseReason;

impl<B> Session<B> {
    /// Answers every complete request in the input, in order, appending
    /// the answers to the output. Returns whether anything happened; `Err`
    /// when a body's framing is broken (close now).
    pub fn answer<R: Respond<Body = B>>(
        &mut self,
        responder: &mut R,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<bool, CloseReason> {
        let State::Busy(ex) = &mut self.state else {
            return Ok(false);
        };
        let mut answering = Answering {
            ex,
            requests: &mut self.requests,
            secure: self.secure,
            peer,
            now,
        };
        answering.run(responder)
    }
}

/// One call of [`Session::answer`]: the exchange and the counters it
/// moves.
struct Answering<'a, B> {
    ex: &'a mut Exchange<B>,
    requests: &'a mut u32,
    secure: bool,
    peer: SocketAddr,
    now: Instant,
}

impl<B> Answering<'_, B> {
    fn run<R: Respond<Body = B>>(&mut self, responder: &mut R) -> Result<bool, CloseReason> {
        let mut progressed = false;
        loop {
            let ex = &mut *self.ex;
            // `buf.len()`, not what is unsent: the sent prefix is only
            // dropped once all of it is out, so a client that reads just
            // enough to keep the unsent part small could otherwise grow
            // the buffer for ever.
            if ex.out.file.is_some() || ex.out.buf.len() >= OUTPUT_CAP {
                break;
            }
            match &mut ex.reading {
                Reading::Done { .. } => break,
                Reading::Body { decoder, .. } | Reading::HeldBody { decoder, .. } => {
                    let failed = match decoder.consume(ex.input.bytes()) {
                        Ok(used) => {
                            ex.input.consume(used);
                            progressed |= used > 0;
                            if !decoder.is_done() {
                                break;
                            }
                            None
                        }
                        Err(e) => Some(e),
                    };
                    let next = Reading::Head { started: self.now };
                    match std::mem::replace(&mut ex.reading, next) {
                        // Its request was answered at its head (a
                        // Content-Length body, which cannot fail, or one
                        // the client was told to send): nothing more to
                        // say.
                        Reading::Body { .. } if failed.is_some() => {
                            return Err(CloseReason::ProtocolError);
                        }
                        Reading::Body { .. } => {}
                        // The body of a held request is in (or broke):
                        // answer it now.
                        Reading::HeldBody { head, .. } => {
                            self.answer_held(head, failed, responder);
                            progressed = true;
                        }
                        Reading::Head { .. } | Reading::Done { .. } => {}
                    }
                }
                Reading::Head { started } => {
                    let started = *started;
                    if ex.input.is_empty() || !self.next_head(started, responder) {
                        break;
                    }
                    progressed = true;
                }
            }
        }
        Ok(progressed)
    }

    fn facts(&self, requests_before: u32, has_body: bool, started: Instant) -> ConnFacts {
        ConnFacts {
            requests_before,
            has_body,
            peer: self.peer,
            secure: self.secure,
            started,
        }
    }

    /// An answer was just written: if nothing was waiting before it
    /// (`was_writing`), the send timeout runs from now.
    fn wrote(&mut self, was_writing: bool) {
        if !was_writing && self.ex.is_writing() {
            self.ex.out.last_progress = self.now;
        }
    }

    /// Parses the head at the front of the input and answers it (or holds
    /// it for its chunked body). Returns false when it is not complete, or
    /// its answer is deferred (it stays in the input).
    fn next_head<R: Respond<Body = B>>(&mut self, started: Instant, responder: &mut R) -> bool {
        let limits = responder.limits();
        let requests = *self.requests;
        let was_writing = self.ex.is_writing();
        let ex = &mut *self.ex;
        let (consumed, reading) = match parse_head(ex.input.bytes(), &limits) {
            HeadOutcome::Partial => return false,
            HeadOutcome::Complete(head) => {
                crate::fault::panic_at(crate::fault::Point::Session, head.target.as_bytes());
                let facts = |has_body| ConnFacts {
                    requests_before: requests,
                    has_body,
                    peer: self.peer,
                    secure: self.secure,
                    started,
                };
                let reading = match BodyDecoder::new(head.framing, responder.max_body_bytes()) {
                    Err(_) => {
                        // Refused without reading the body: what follows
                        // in the input is body, not a request.
                        let is_head = head.method == Method::Head;
                        let reason = CloseReason::ProtocolError;
                        let status = Status::ContentTooLarge;
                        let version = Some(head.version);
                        let out = &mut ex.out.buf;
                        responder.respond_error(
                            status,
                            version,
                            is_head,
                            reason,
                            facts(false),
                            out,
                        );
                        Reading::Done {
                            reason,
                            body_unread: true,
                        }
                    }
                    // A chunked body has no length to check up front: hold
                    // the head and answer once the body is in, so that a
                    // body past the limit gets its 413 whether it comes in
                    // one write or trickles (with `Expect: 100-continue`
                    // the client waits for us: answer at once).
                    Ok(Some(decoder))
                        if head.framing == Framing::Chunked && !head.expect_continue =>
                    {
                        let bytes = ex.input.bytes()[..head.head_len].to_vec();
                        Reading::HeldBody {
                            decoder,
                            head: HeldHead {
                                bytes,
                                limits,
                                started,
                                requests_before: requests,
                            },
                            began: self.now,
                            last_read: self.now,
                        }
                    }
                    Ok(decoder) => {
                        let has_body = decoder.is_some();
                        let reply = responder.respond(&head, facts(has_body), &mut ex.out.buf);
                        if reply.defer {
                            // Asked again at the next drive: nothing of it
                            // is consumed or counted.
                            return false;
                        }
                        ex.out.file = reply.body;
                        match (reply.close, decoder) {
                            (Some(reason), decoder) => Reading::Done {
                                reason,
                                body_unread: decoder.is_some(),
                            },
                            (None, Some(decoder)) => Reading::Body {
                                decoder,
                                began: self.now,
                                last_read: self.now,
                            },
                            (None, None) => Reading::Head { started: self.now },
                        }
                    }
                };
                (head.head_len, reading)
            }
            HeadOutcome::Reject(rejection) => {
                let reason = CloseReason::ProtocolError;
                let (status, version) = (rejection.status, rejection.version);
                let facts = ConnFacts {
                    requests_before: requests,
                    has_body: false,
                    peer: self.peer,
                    secure: self.secure,
                    started,
                };
                responder.respond_error(status, version, false, reason, facts, &mut ex.out.buf);
                (
                    0,
                    Reading::Done {
                        reason,
                        body_unread: false,
                    },
                )
            }
        };
        ex.input.consume(consumed);
        ex.reading = reading;
        // Saturating: with `--max-requests 0` a client may send more than
        // u32::MAX requests on one connection.
        *self.requests = self.requests.saturating_add(1);
        self.wrote(was_writing);
        true
    }

    /// Answers the request whose head was held while its chunked body was
    /// read: normally, or with 413 (too large) or 400 (malformed chunks)
    /// and a close, since what follows the broken body is unframed. The
    /// head is parsed again under the limits it was first parsed under.
    fn answer_held<R: Respond<Body = B>>(
        &mut self,
        held: HeldHead,
        failed: Option<BodyError>,
        responder: &mut R,
    ) {
        let was_writing = self.ex.is_writing();
        let facts = self.facts(held.requests_before, false, held.started);
        let out = &mut self.ex.out;
        let head = match parse_head(&held.bytes, &held.limits) {
            HeadOutcome::Complete(head) => head,
            // Cannot happen (the same bytes under the same limits parsed
            // once already); if it does, the request is refused, not the
            // worker brought down.
            _ => {
                log::error!("{}: a held request head no longer parses", self.peer);
                let reason = CloseReason::ProtocolError;
                responder.respond_error(
                    Status::BadRequest,
                    None,
                    false,
                    reason,
                    facts,
                    &mut out.buf,
                );
                self.ex.reading = Reading::Done {
                    reason,
                    body_unread: false,
                };
                self.wrote(was_writing);
                return;
            }
        };
        match failed {
            None => {
                let reply = responder.respond(&head, facts, &mut out.buf);
                if reply.defer {
                    // A held head's bytes are out of the input: it cannot
                    // wait there. Refused (a chunked request body under
                    // an auth rule: rare for static files), and closed.
                    let reason = CloseReason::ProtocolError;
                    let status = Status::ServiceUnavailable;
                    let version = Some(head.version);
                    let is_head = head.method == Method::Head;
                    responder.respond_error(status, version, is_head, reason, facts, &mut out.buf);
                    self.ex.reading = Reading::Done {
                        reason,
                        body_unread: false,
                    };
                    self.wrote(was_writing);
                    return;
                }
                out.file = reply.body;
                if let Some(reason) = reply.close {
                    self.ex.reading = Reading::Done {
                        reason,
                        body_unread: false,
                    };
                }
            }
            Some(error) => {
                let status = match error {
                    BodyError::TooLarge => Status::ContentTooLarge,
                    BodyError::Malformed => Status::BadRequest,
                };
                let reason = CloseReason::ProtocolError;
                let is_head = head.method == Method::Head;
                let version = Some(head.version);
                responder.respond_error(status, version, is_head, reason, facts, &mut out.buf);
                self.ex.reading = Reading::Done {
                    reason,
                    body_unread: false,
                };
            }
        }
        self.wrote(was_writing);
    }
}
