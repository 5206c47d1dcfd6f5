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
//! socket may still have data / room, and are cleared only by WouldBlock,
//! a short read or write (the kernel buffer is drained or full), or EOF.
//! The phase is settled once, at the end of a drive: a request answered
//! and sent within one drive takes an idle connection from Idle to Idle.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::close::CloseReason;
use crate::evict::Class;
use crate::http::session::{Expired, Phase, Respond, Session, Timeouts};
use crate::pool::{BufPool, Work};
use crate::serve::{BodySource, FileBody};
use crate::stream::Stream;
use crate::transport::{Handshake, Transport, close_reason, interrupted, would_block};

mod linger;

/// What happens to a connection after it moved bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// It stays: file its new deadline and eviction class.
    Open,
    /// Close it now, for this reason.
    Close(CloseReason),
}

pub struct Conn<T = Stream> {
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
        let mut session = Session::new(now);
        session.set_secure(transport.is_secure());
        Conn {
            transport,
            peer,
            session,
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

    /// Its eviction queue and the instant it joined it: idle since its
    /// last response, fresh since accept, partial head since the head
    /// began, stalled since the response's last write progress, lingering
    /// since the linger began (see [`crate::evict`] for who goes first).
    pub fn eviction_class(&self) -> (Class, Instant) {
        let s = &self.session;
        match s.phase() {
            Phase::Idle => (Class::Idle, s.since()),
            Phase::Reading if self.no_input() && s.requests() == 0 => {
                (Class::Fresh, s.head_started())
            }
            Phase::Reading => (Class::PartialHead, s.head_started()),
            Phase::Writing => (Class::Stalled, s.since()),
            Phase::Closing => (Class::Lingering, s.since()),
        }
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

    /// Gives the buffers back to the pool: whenever the connection has
    /// nothing in flight, starts lingering, or closes.
    pub fn release(&mut self, pool: &mut BufPool) {
        if let Some(work) = self.work.take() {
            pool.put_work(work);
        }
        self.transport.release();
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
            || self.transport.pending_output()
    }

    /// A handshake that finished since the last call (TLS), for the
    /// counters.
    pub fn take_handshake(&mut self) -> Option<Handshake> {
        self.transport.take_handshake()
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
        let ex = self.work.get_or_insert_with(|| pool.take_work()).exchange();
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
        match self.work.as_mut() {
            Some(work) => self
                .session
                .answer(work.exchange(), responder, self.peer, now),
            None => Ok(false),
        }
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
                Err(e) => return Err(close_reason(&e)),
            }
        }
    }

    /// Writes pending output: buffered bytes, then the file range, then
    /// (for a multipart body) the next part's head and range, and so on.
    fn flush(&mut self, now: Instant) -> Result<(), CloseReason> {
        // Records the transport made (TLS) go before anything new.
        if self.transport.pending_output() {
            match self.transport.flush_pending() {
                Ok(0) => {}
                Ok(_) => self.session.sent(now),
                Err(e) => return Err(close_reason(&e)),
            }
            if self.transport.pending_output() {
                self.writable = false;
                return Ok(());
            }
        }
        let Some(work) = self.work.as_mut() else {
            return Ok(());
        };
        // A file body is sent corked (TCP_CORK, nginx's tcp_nopush): only
        // full segments leave until it is done (sendfile would push a short
        // one at the end of every call), and the head shares the first.
        if work.file.is_some() && !work.corked {
            self.transport.cork(true);
            work.corked = true;
        }
        loop {
            while work.out_pos < work.output.len() {
                let chunk = &work.output[work.out_pos..];
                let wanted = chunk.len();
                let written = self.transport.write(chunk);
                let n = match progress(written, wanted, &mut self.writable, &mut self.session, now)?
                {
                    Wrote::Bytes(n) => n,
                    Wrote::Again => continue,
                    Wrote::Wait => return Ok(()),
                };
                work.out_pos += n;
                if n < wanted {
                    return Ok(());
                }
            }
            work.output.clear();
            work.out_pos = 0;
            let Some(body) = work.file.as_mut() else {
                break;
            };
            while body.remaining > 0 {
                let wanted = body.remaining.min(1 << 30) as usize;
                let sent = match &body.source {
                    BodySource::File(open) => {
                        self.transport.send_file(open.file(), body.offset, wanted)
                    }
                    // Compressed bytes: the cache's, shared, never copied
                    // whole into the output buffer.
                    BodySource::Memory(bytes) => {
                        let start = body.offset as usize;
                        match bytes.get(start..start + wanted) {
                            Some(range) => self.transport.write(range),
                            None => Ok(0),
                        }
                    }
                };
                if matches!(sent, Ok(0)) {
                    // The file shrank under us: the promised length cannot
                    // be sent, so the only honest end is a close.
                    log::warn!("{}: file shrank while sending; closing", self.peer);
                    return Err(CloseReason::Error);
                }
                let n = match progress(sent, wanted, &mut self.writable, &mut self.session, now)? {
                    Wrote::Bytes(n) => n,
                    Wrote::Again => continue,
                    Wrote::Wait => return Ok(()),
                };
                body.offset += n as u64;
                body.remaining -= n as u64;
                if n < wanted {
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

    /// Settles the session's phase after a drive, and lends back idle
    /// buffers.
    fn settle(&mut self, pool: &mut BufPool, now: Instant) {
        let input_empty = self.work.as_ref().is_none_or(|w| w.input.is_empty());
        // A handshake flight the socket did not take yet is not a
        // response: the connection stays under the header deadline, and
        // "fresh" for eviction.
        let has_output = self.has_output() && !self.transport.in_handshake();
        let discarding = self.discarding_body();
        self.session
            .settle(has_output, input_empty, discarding, now);
        // Nothing in flight: the buffers go back to the pool.
        if self.work.as_ref().is_some_and(|w| w.is_empty()) {
            self.release(pool);
        }
    }
}

/// What one write-like call did, for the loops in `flush`.
enum Wrote {
    /// Bytes went. Fewer than asked: the socket buffer is full, and the
    /// next EPOLLOUT edge says when to go on (which saves a call that
    /// would only say EAGAIN).
    Bytes(usize),
    /// EINTR: call again now.
    Again,
    /// EAGAIN: wait for the next EPOLLOUT edge.
    Wait,
}

/// Reads a write of `wanted` bytes: notes the progress in the session and
/// clears `writable` when the socket buffer is full.
fn progress(
    written: io::Result<usize>,
    wanted: usize,
    writable: &mut bool,
    session: &mut Session,
    now: Instant,
) -> Result<Wrote, CloseReason> {
    match written {
        Ok(n) => {
            session.sent(now);
            if n < wanted {
                *writable = false;
            }
            Ok(Wrote::Bytes(n))
        }
        Err(e) if interrupted(&e) => Ok(Wrote::Again),
        Err(e) if would_block(&e) => {
            *writable = false;
            Ok(Wrote::Wait)
        }
        Err(e) => Err(close_reason(&e)),
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
