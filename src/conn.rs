//! One connection: a [`Session`] (its HTTP state, sans-IO) over a
//! [`Transport`] (its socket), with buffers from the [`BufPool`] while it
//! works.
//!
//! [`Conn::drive`] is called after every readiness event. It runs the
//! session's events in the order that keeps a connection moving: write
//! what is pending, close (lingering) if the last answer said so and is
//! out, answer every complete request already buffered (pipelining:
//! answers go out together), and read more only when the session wants
//! input, so a client that pipelines without reading cannot make the
//! server buffer without bound. Then the session settles into its next
//! phase, and the reactor files its deadline and eviction class.
//!
//! Readiness is edge-triggered: `readable`/`writable` remember whether the
//! socket may still have data / room, and are cleared only by WouldBlock
//! (or a short read or write, which means the kernel buffer is drained or
//! full).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::evict::Class;
use crate::http::session::{Exchange, Expired, Phase, Respond, Session, Timeouts};
use crate::pool::{BufPool, Work};
use crate::serve::FileBody;
use crate::stats::CloseReason;
use crate::transport::{Tcp, Transport, interrupted, would_block};

/// The most bytes a lingering close discards per readiness event.
const LINGER_READ_BUDGET: usize = 256 * 1024;

/// What happens to a connection after it moved bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// It stays: file its new deadline and eviction class.
    Open,
    /// Close it now, for this reason.
    Close(CloseReason),
}

pub struct Conn<T = Tcp> {
    transport: T,
    peer: SocketAddr,
    session: Session,
    /// Buffers and in-flight state, lent by the pool while working;
    /// `None` while idle, so an idle connection costs only this struct.
    work: Option<Box<Work>>,
    peer_closed: bool,
    readable: bool,
    writable: bool,
}

impl<T> fmt::Debug for Conn<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.peer, self.session)?;
        if let Some(work) = &self.work {
            let unsent = work.output.len() - work.out_pos.min(work.output.len());
            write!(f, ", {} bytes in, {unsent} out", work.input.bytes().len())?;
            if let Some(file) = &work.file {
                write!(f, ", file {} left", file.remaining)?;
            }
        }
        Ok(())
    }
}

impl<T: Transport> Conn<T> {
    pub fn new(transport: T, peer: SocketAddr, now: Instant) -> Conn<T> {
        Conn {
            transport,
            peer,
            session: Session::new(now),
            work: None,
            peer_closed: false,
            readable: false,
            writable: true,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn phase(&self) -> Phase {
        self.session.phase()
    }

    pub fn requests(&self) -> u32 {
        self.session.requests()
    }

    fn sending_file(&self) -> bool {
        self.work.as_ref().is_some_and(|w| w.file.is_some())
    }

    fn discarding_body(&self) -> bool {
        self.work.as_ref().is_some_and(|w| w.body.is_some())
    }

    fn no_input(&self) -> bool {
        self.work
            .as_ref()
            .is_none_or(|w| w.input.is_empty() && w.body.is_none())
    }

    /// Its eviction queue and the instant it joined it: idle since, fresh
    /// since accept, partial head since the head began, stalled since the
    /// response's last write progress, lingering since the linger began
    /// (see [`crate::evict`] for who goes first).
    pub fn eviction_class(&self) -> Option<(Class, Instant)> {
        let s = &self.session;
        Some(match s.phase() {
            Phase::Idle => (Class::Idle, s.since()),
            Phase::Reading if self.no_input() && s.requests() == 0 => {
                (Class::Fresh, s.head_started())
            }
            Phase::Reading => (Class::PartialHead, s.head_started()),
            Phase::Writing => (Class::Stalled, s.since()),
            Phase::Closing => (Class::Lingering, s.since()),
        })
    }

    /// Records readiness from an event.
    pub fn ready(&mut self, readable: bool, writable: bool) {
        self.readable |= readable;
        self.writable |= writable;
    }

    /// The instant this connection's current phase times out.
    pub fn deadline(&self, timeouts: &Timeouts) -> Instant {
        self.session.deadline(timeouts, self.discarding_body())
    }

    /// Makes the coming close abortive (see [`Transport::abort_on_close`]).
    pub fn abort_on_close(&mut self) {
        self.transport.abort_on_close();
    }

    /// Gives the buffers back; called when the connection is dropped.
    pub fn release(&mut self, pool: &mut BufPool) {
        if let Some(work) = self.work.take() {
            pool.put_work(work);
        }
    }

    /// Graceful shutdown: a connection with nothing in flight can go now.
    pub fn can_close_now(&self) -> bool {
        match self.phase() {
            Phase::Idle => true,
            Phase::Reading => self.no_input(),
            Phase::Writing | Phase::Closing => false,
        }
    }

    fn has_output(&self) -> bool {
        self.work
            .as_ref()
            .is_some_and(|w| w.file.is_some() || w.out_pos < w.output.len())
    }

    /// Moves bytes after a readiness event.
    pub fn drive<R: Respond<Body = FileBody>>(
        &mut self,
        responder: &mut R,
        pool: &mut BufPool,
        now: Instant,
    ) -> Next {
        let before = self.phase();
        if before == Phase::Closing {
            return self.drain_lingering();
        }
        let next = match self.drive_exchange(responder, pool, now) {
            Ok(Next::Open) => {
                self.settle(pool, now);
                Next::Open
            }
            Ok(close) => close,
            Err(reason) => Next::Close(reason),
        };
        if self.phase() != before {
            log::trace!("{}: {before} -> {}", self.peer, self.phase());
        }
        next
    }

    fn drive_exchange<R: Respond<Body = FileBody>>(
        &mut self,
        responder: &mut R,
        pool: &mut BufPool,
        now: Instant,
    ) -> Result<Next, CloseReason> {
        loop {
            if self.has_output() && self.writable {
                self.flush(now)?;
            }
            if !self.has_output()
                && let Some(reason) = self.session.close_after_output()
            {
                return Ok(self.start_lingering(pool, reason, now));
            }
            if self.answer(responder, now)? {
                continue;
            }
            if !self.read_more(pool, now)? {
                break;
            }
        }
        if self.peer_closed && !self.has_output() {
            // EOF with nothing (complete) left to answer.
            return Ok(Next::Close(CloseReason::Client));
        }
        Ok(Next::Open)
    }

    /// The connection's deadline may have passed (the reactor's wheel
    /// says it is due).
    pub fn on_deadline<R: Respond<Body = FileBody>>(
        &mut self,
        timeouts: &Timeouts,
        responder: &mut R,
        pool: &mut BufPool,
        now: Instant,
    ) -> Next {
        let work = &mut **self.work.get_or_insert_with(|| pool.take_work());
        let ex = Exchange {
            input: &mut work.input,
            output: &mut work.output,
            body: &mut work.body,
            file: &mut work.file,
        };
        match self
            .session
            .on_deadline(timeouts, ex, responder, self.peer, now)
        {
            Expired::NotYet => Next::Open, // moved meanwhile; the reactor reschedules
            Expired::Close(reason) => Next::Close(reason),
            Expired::Answered => {
                self.writable = true;
                self.drive(responder, pool, now)
            }
        }
    }

    /// Lets the session answer what is buffered. Returns whether anything
    /// happened.
    fn answer<R: Respond<Body = FileBody>>(
        &mut self,
        responder: &mut R,
        now: Instant,
    ) -> Result<bool, CloseReason> {
        let Some(work) = self.work.as_mut() else {
            return Ok(false);
        };
        let Work {
            input,
            output,
            file,
            body,
            ..
        } = &mut **work;
        let ex = Exchange {
            input,
            output,
            body,
            file,
        };
        self.session.answer(ex, responder, self.peer, now)
    }

    /// Reads once if there may be data and the session wants it. Returns
    /// whether bytes arrived.
    fn read_more(&mut self, pool: &mut BufPool, now: Instant) -> Result<bool, CloseReason> {
        let buffered = self.work.as_ref().map_or(0, |w| w.output.len());
        if !self.readable
            || self.peer_closed
            || !self.session.wants_input(buffered, self.sending_file())
        {
            return Ok(false);
        }
        let work = self.work.get_or_insert_with(|| pool.take_work());
        let discarding = work.body.is_some();
        let was_empty = work.input.is_empty();
        let spare = work.input.spare();
        let room = spare.len();
        if room == 0 {
            return Ok(false);
        }
        loop {
            match self.transport.read(spare) {
                Ok(0) => {
                    self.peer_closed = true;
                    self.readable = false;
                    return Ok(false);
                }
                Ok(n) => {
                    work.input.filled(n);
                    // A short read drained the socket; the next arrival
                    // brings a new edge. Saves a read that says WouldBlock.
                    if n < room {
                        self.readable = false;
                    }
                    self.session.received(was_empty, discarding, now);
                    return Ok(true);
                }
                Err(e) if would_block(&e) => {
                    self.readable = false;
                    return Ok(false);
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(socket_error(&e)),
            }
        }
    }

    /// Writes pending output: buffered bytes, then the file range, then
    /// (for a multipart body) the next part's head and range, and so on.
    fn flush(&mut self, now: Instant) -> Result<(), CloseReason> {
        let Some(work) = self.work.as_mut() else {
            return Ok(());
        };
        // A file body is sent corked (TCP_CORK, nginx's tcp_nopush): only
        // full segments leave until it is done, where sendfile would
        // otherwise push a short segment at the end of every call. The
        // head shares the first segment. Measured on 1 MiB files against
        // nginx (wrk -c10, 4 x 5 s each): 0.96x without the cork, 0.98x
        // with it, within run-to-run noise of parity.
        if work.file.is_some() && !work.corked {
            self.transport.cork(true);
            work.corked = true;
        }
        loop {
            while work.out_pos < work.output.len() {
                let chunk = &work.output[work.out_pos..];
                let n = match self.transport.write(chunk) {
                    Ok(n) => n,
                    Err(e) if interrupted(&e) => continue,
                    Err(e) if would_block(&e) => {
                        self.writable = false;
                        return Ok(());
                    }
                    Err(e) => return Err(socket_error(&e)),
                };
                work.out_pos += n;
                self.session.sent(now);
                if n < chunk.len() {
                    // A short write filled the socket buffer: the next
                    // EPOLLOUT edge says when to go on. Saves a send that
                    // would only say EAGAIN.
                    self.writable = false;
                    return Ok(());
                }
            }
            work.output.clear();
            work.out_pos = 0;
            let Some(body) = work.file.as_mut() else {
                break;
            };
            while body.remaining > 0 {
                let count = body.remaining.min(1 << 30) as usize;
                let n = match self
                    .transport
                    .send_file(body.file.file(), body.offset, count)
                {
                    Ok(0) => {
                        // The file shrank under us: the promised length
                        // cannot be sent, so the only honest end is a close.
                        log::warn!("{}: file shrank while sending; closing", self.peer);
                        return Err(CloseReason::Error);
                    }
                    Ok(n) => n,
                    Err(e) if interrupted(&e) => continue,
                    Err(e) if would_block(&e) => {
                        self.writable = false;
                        return Ok(());
                    }
                    Err(e) => return Err(socket_error(&e)),
                };
                body.offset += n as u64;
                body.remaining -= n as u64;
                self.session.sent(now);
                if n < count {
                    // Short: the socket buffer is full (as for send above).
                    self.writable = false;
                    return Ok(());
                }
            }
            // The range is out: a multipart body puts the next part's head
            // (or its closing delimiter) in the output, sent next turn.
            if !body.next_part(&mut work.output) {
                work.file = None;
            }
        }
        if work.corked {
            // The body is out: let the last partial segment go now.
            self.transport.cork(false);
            work.corked = false;
        }
        Ok(())
    }

    /// The last response is out and said close: shut our write side (the
    /// client sees EOF after the response) and drain what the client still
    /// sends, so closing does not turn unread input into a RST that could
    /// destroy the response in flight (RFC 9112 §9.6).
    fn start_lingering(&mut self, pool: &mut BufPool, reason: CloseReason, now: Instant) -> Next {
        // As nginx does, skip the linger when nothing can be unread: the
        // client asked for the close (or HTTP/1.0), every byte it sent was
        // consumed, and the last read drained the socket. Lingering stays
        // for the cases that need it: max-requests and errors (the client
        // may be pipelining), and shutdown.
        let nothing_unread =
            reason == CloseReason::ResponseClose && !self.readable && self.no_input();
        self.release(pool);
        if self.peer_closed || nothing_unread {
            return Next::Close(reason);
        }
        if let Err(e) = self.transport.shutdown_write() {
            log::debug!("{}: shutdown(write) failed: {e}", self.peer);
            return Next::Close(reason);
        }
        self.session.begin_closing(now);
        self.readable = true;
        self.drain_lingering()
    }

    fn drain_lingering(&mut self) -> Next {
        let reason = self
            .session
            .close_after_output()
            .unwrap_or(CloseReason::ResponseClose);
        let mut scratch = [0u8; 4096];
        let mut budget = LINGER_READ_BUDGET;
        while self.readable && budget > 0 {
            match self.transport.read(&mut scratch) {
                Ok(0) => return Next::Close(reason),
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if would_block(&e) => self.readable = false,
                Err(e) if interrupted(&e) => {}
                Err(_) => return Next::Close(reason),
            }
        }
        Next::Open
    }

    /// Settles the session's phase after a drive, and lends back idle
    /// buffers.
    fn settle(&mut self, pool: &mut BufPool, now: Instant) {
        let input_empty = self.work.as_ref().is_none_or(|w| w.input.is_empty());
        let (has_output, discarding) = (self.has_output(), self.discarding_body());
        self.session
            .settle(has_output, input_empty, discarding, now);
        // Nothing in flight: the buffers go back to the pool.
        if self.work.as_ref().is_some_and(|w| w.is_empty()) {
            self.release(pool);
        }
    }
}

fn socket_error(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => CloseReason::Client,
        _ => {
            log::debug!("socket error: {e}");
            CloseReason::Error
        }
    }
}

#[cfg(test)]
mod tests {
    /// An idle connection is this struct and nothing else (its buffers are
    /// in the pool); README's RSS-per-idle-connection figure depends on it.
    #[test]
    fn an_idle_connection_stays_small() {
        let size = std::mem::size_of::<super::Conn>();
        assert!(size <= 128, "{size}");
    }
}
