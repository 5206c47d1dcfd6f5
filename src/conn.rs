//! One connection: a [`Session`] (its HTTP state, sans-IO) over a
//! [`Transport`] (its socket), with an exchange (buffers and the request
//! in flight) from the [`ExchangePool`] while it works.
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
use crate::http::session::{Expired, Out, Parked, Phase, Respond, Session, Timeouts};
use crate::pool::ExchangePool;
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
    /// Its PROXY header named the client, now its peer, in place of the
    /// socket's peer (given): count the client, then drive it again.
    Proxied(SocketAddr),
}

/// The pool of exchanges a reactor lends its connections.
pub type Pool = ExchangePool<FileBody>;

pub struct Conn<T = Stream> {
    transport: T,
    peer: SocketAddr,
    /// The HTTP state, one value: its phase, deadlines, requests, and
    /// (while working) its exchange lent by the pool.
    session: Session<FileBody>,
    /// What the socket said: EOF seen, and whether it may still have
    /// data or room (edge-triggered readiness, see the module docs).
    peer_closed: bool,
    readable: bool,
    writable: bool,
    /// An event said the peer shut its side (EPOLLRDHUP, nginx's
    /// `pending_eof`): a short read no longer means the socket is
    /// drained, since the EOF behind the data brings no new edge.
    fin_pending: bool,
    /// A PROXY protocol header must come first (`--proxy-protocol` and a
    /// trusted peer); nothing else is read until it did.
    awaits_proxy_header: bool,
    /// Its peer is counted in the per-client table (the reactor's to say:
    /// a trusted proxy is not, and the trusted list may change on reload
    /// before the connection closes).
    counted: bool,
}

impl<T> fmt::Debug for Conn<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.peer, self.session)
    }
}

impl<T: Transport> Conn<T> {
    pub fn new(transport: T, peer: SocketAddr, now: Instant) -> Conn<T> {
        let session = Session::new(now, transport.is_secure());
        Conn {
            transport,
            peer,
            session,
            peer_closed: false,
            readable: false,
            writable: true,
            fin_pending: false,
            awaits_proxy_header: false,
            counted: false,
        }
    }

    /// A connection another process handed over (a binary upgrade), in
    /// the state it was parked in there.
    pub fn from_parked(transport: T, peer: SocketAddr, parked: Parked, now: Instant) -> Conn<T> {
        let session = Session::from_parked(parked, transport.is_secure(), now);
        Conn {
            transport,
            peer,
            session,
            peer_closed: false,
            readable: true,
            writable: true,
            fin_pending: false,
            awaits_proxy_header: false,
            counted: false,
        }
    }

    /// Its state, if it may be handed to another process now: nothing in
    /// flight, not TLS, the peer still there, its PROXY header (if it
    /// owes one) read.
    pub fn parked(&self, now: Instant) -> Option<Parked> {
        if self.transport.is_secure()
            || self.peer_closed
            || self.transport.pending_output()
            || self.awaits_proxy_header
        {
            return None;
        }
        self.session.parked(now)
    }
}

/// What the reactor reads of a connection: its transport's facts, its
/// peer, its phase and counters, its eviction class.
impl<T: Transport> Conn<T> {
    /// It is TLS.
    pub fn is_secure(&self) -> bool {
        self.transport.is_secure()
    }

    /// The server name its TLS handshake asked for (SNI), if any.
    pub fn server_name(&self) -> Option<&str> {
        self.transport.server_name()
    }

    /// The transport, for what only the reactor does with a socket
    /// (registering it, handing it over).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Its first bytes must be a PROXY protocol header, which names its
    /// client (see [`crate::proxy_header`]).
    pub fn expect_proxy_header(&mut self) {
        self.awaits_proxy_header = true;
    }

    /// Its peer is counted as a client (see [`crate::clients`]), or not.
    pub fn set_counted(&mut self, counted: bool) {
        self.counted = counted;
    }

    pub fn is_counted(&self) -> bool {
        self.counted
    }

    pub fn phase(&self) -> Phase {
        self.session.phase()
    }

    pub fn requests(&self) -> u32 {
        self.session.requests()
    }

    /// The request line being answered, escaped for a log line ("-" when
    /// there is none).
    pub fn request_line(&self) -> String {
        match self.session.request_line() {
            Some(line) => line.escape_ascii().to_string(),
            None => "-".into(),
        }
    }

    /// Its eviction queue and the instant it joined it: idle since its
    /// last response, fresh since accept, partial head since the head
    /// began, stalled since the response's last write progress, lingering
    /// since the linger began (see [`crate::evict`] for who goes first).
    pub fn eviction_class(&self) -> (Class, Instant) {
        let s = &self.session;
        let class = match s.phase() {
            Phase::Idle => Class::Idle,
            Phase::Reading if s.has_no_input() && s.requests() == 0 => Class::Fresh,
            Phase::Reading => Class::PartialHead,
            Phase::Writing => Class::Stalled,
            Phase::Closing => Class::Lingering,
        };
        (class, s.since())
    }
}

/// Moving a connection: readiness, deadlines, and driving its session
/// over its transport.
impl<T: Transport> Conn<T> {
    /// Records readiness from an event; `read_closed`: it said the peer
    /// shut its side.
    pub fn ready(&mut self, readable: bool, writable: bool, read_closed: bool) {
        self.fin_pending |= read_closed;
        self.readable |= readable;
        self.writable |= writable;
    }

    /// The instant this connection's current phase times out.
    pub fn deadline(&self, timeouts: &Timeouts) -> Instant {
        self.session.deadline(timeouts)
    }

    /// Makes the coming close abortive (see [`Transport::abort_on_close`]).
    pub fn abort_on_close(&mut self) {
        self.transport.abort_on_close();
    }

    /// The connection is closing: its exchange goes back to the pool, the
    /// transport's buffers to theirs; dropping it then closes the socket.
    pub fn release(self, pool: &mut Pool) {
        let Conn {
            mut transport,
            session,
            ..
        } = self;
        if let Some(exchange) = session.into_exchange() {
            pool.put(exchange);
        }
        transport.release();
    }

    /// Graceful shutdown: a connection with nothing in flight can go now.
    pub fn can_close_now(&self) -> bool {
        self.session.can_close_now()
    }

    fn has_output(&mut self) -> bool {
        self.session.out().is_some_and(|out| !out.is_empty()) || self.transport.pending_output()
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
        pool: &mut Pool,
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
        pool: &mut Pool,
        now: Instant,
    ) -> Result<Next, CloseReason> {
        if self.awaits_proxy_header {
            match self.read_proxy_header()? {
                Some(next) => return Ok(next),
                None if self.awaits_proxy_header => return Ok(Next::Open),
                None => {}
            }
        }
        loop {
            if self.has_output() && self.writable {
                self.flush(now)?;
            }
            if !self.transport.pending_output()
                && let Some(reason) = self.session.ready_to_close()
            {
                return Ok(self.start_lingering(pool, reason, now));
            }
            if self.session.answer(responder, self.peer, now)? {
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
        pool: &mut Pool,
        now: Instant,
    ) -> Next {
        match self
            .session
            .on_deadline(timeouts, responder, self.peer, now)
        {
            Expired::NotYet => Next::Open, // moved meanwhile; the reactor reschedules
            Expired::Close(reason) => Next::Close(reason),
            Expired::Answered => {
                self.writable = true;
                self.drive(responder, pool, now)
            }
        }
    }

    /// Reads the PROXY header once it is all there: peeks at what the
    /// socket holds, and takes exactly the header, so that what follows
    /// it (a request, a ClientHello) is read by the transport as if it
    /// came first. Returns `Proxied` if it named a client; `None` while
    /// it is incomplete, or once it named none (the socket's peer stands).
    fn read_proxy_header(&mut self) -> Result<Option<Next>, CloseReason> {
        use crate::proxy_header::{Header, MAX_HEADER, parse};
        if !self.readable {
            return Ok(None);
        }
        let mut buf = [0u8; MAX_HEADER];
        let seen = loop {
            match self.transport.read_socket(&mut buf, true) {
                Ok(0) => return Err(CloseReason::Client),
                Ok(n) => break n,
                Err(e) if interrupted(&e) => {}
                Err(e) if would_block(&e) => {
                    self.readable = false;
                    return Ok(None);
                }
                Err(e) => return Err(close_reason(&e)),
            }
        };
        let (len, source) = match parse(&buf[..seen]) {
            Header::Complete { len, source } => (len, source),
            Header::Incomplete if seen < MAX_HEADER => {
                // The rest brings a new edge (the peeked bytes stay).
                self.readable = false;
                return Ok(None);
            }
            // (A header fits MAX_HEADER: incomplete at the bound is not
            // one, as `fuzzing::proxy_header` checks.)
            Header::Incomplete => {
                log::info!(
                    "{}: PROXY header longer than {MAX_HEADER} bytes; closing",
                    self.peer
                );
                return Err(CloseReason::ProtocolError);
            }
            Header::Invalid(why) => {
                log::info!("{}: {why}; closing", self.peer);
                return Err(CloseReason::ProtocolError);
            }
        };
        match self.transport.read_socket(&mut buf[..len], false) {
            Ok(n) if n == len => {}
            // What was peeked is queued: only an error takes it away.
            Ok(_) => return Err(CloseReason::Error),
            Err(e) => return Err(close_reason(&e)),
        }
        self.awaits_proxy_header = false;
        Ok(match source {
            Some(client) if client != self.peer => {
                log::trace!("{}: PROXY header names {client}", self.peer);
                Some(Next::Proxied(std::mem::replace(&mut self.peer, client)))
            }
            _ => None,
        })
    }

    /// Reads once if there may be data and the session wants it. Returns
    /// whether bytes arrived.
    fn read_more(&mut self, pool: &mut Pool, now: Instant) -> Result<bool, CloseReason> {
        if !self.readable || self.peer_closed {
            return Ok(false);
        }
        let Some(spare) = self.session.input_room(|| pool.take(), now) else {
            return Ok(false);
        };
        let room = spare.len();
        if room == 0 {
            return Ok(false);
        }
        // With the peer's FIN known to be queued, one more read after a
        // short one (or after the transport's own WouldBlock: TLS stops
        // at a short read too) finds the EOF.
        let mut one_more = self.fin_pending;
        loop {
            match self.transport.read(spare) {
                Ok(0) => {
                    self.peer_closed = true;
                    self.readable = false;
                    return Ok(false);
                }
                Ok(n) => {
                    // A short read drained the socket; the next arrival
                    // brings a new edge. Saves a read that says WouldBlock.
                    if n < room && !self.fin_pending {
                        self.readable = false;
                    }
                    self.session.received(n, now);
                    return Ok(true);
                }
                Err(e) if would_block(&e) && one_more => one_more = false,
                Err(e) if would_block(&e) => {
                    self.readable = false;
                    return Ok(false);
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(close_reason(&e)),
            }
        }
    }

    /// Writes pending output: the transport's own bytes, then buffered
    /// answers, then the file range, then (for a multipart body) the next
    /// part's head and range, and so on.
    fn flush(&mut self, now: Instant) -> Result<(), CloseReason> {
        // Records the transport made (TLS) go before anything new.
        if self.transport.pending_output() {
            match self.transport.flush_pending() {
                Ok(0) => {}
                Ok(_) => self.session.progressed(now),
                Err(e) => return Err(close_reason(&e)),
            }
            if self.transport.pending_output() {
                self.writable = false;
                return Ok(());
            }
        }
        let Some(out) = self.session.out() else {
            return Ok(());
        };
        let mut moved = false;
        let result = send_out(
            &mut self.transport,
            out,
            &mut self.writable,
            &mut moved,
            self.peer,
        );
        if moved {
            out.last_progress = now;
        }
        result
    }

    /// Settles the session's phase after a drive, and lends back idle
    /// buffers.
    fn settle(&mut self, pool: &mut Pool, now: Instant) {
        // A handshake flight the socket did not take yet is not a
        // response: the connection stays under the header deadline, and
        // "fresh" for eviction.
        let pending = self.transport.pending_output() && !self.transport.in_handshake();
        if let Some(exchange) = self.session.settle(pending, now) {
            // Nothing in flight: the buffers go back to the pool.
            pool.put(exchange);
            self.transport.release();
        }
    }
}

/// Sends what `out` holds until the socket is full or it is all out;
/// `moved` says whether any byte went.
fn send_out<T: Transport>(
    transport: &mut T,
    out: &mut Out<FileBody>,
    writable: &mut bool,
    moved: &mut bool,
    peer: SocketAddr,
) -> Result<(), CloseReason> {
    // When a file body follows the bytes in `buf`, they go with MSG_MORE so
    // that the head shares the body's first segment. No TCP_CORK around
    // the body (nginx's tcp_nopush): sendfile holds back all but its last
    // page itself, and the cork cost two setsockopt calls per response
    // and, on loopback, most of a large response's CPU (README,
    // Performance).
    loop {
        while out.pos < out.buf.len() {
            let chunk = &out.buf[out.pos..];
            let wanted = chunk.len();
            let written = if out.file.is_some() {
                transport.write_more(chunk)
            } else {
                transport.write(chunk)
            };
            let n = match progress(written, wanted, writable, moved)? {
                Wrote::Bytes(n) => n,
                Wrote::Again => continue,
                Wrote::Wait => return Ok(()),
            };
            out.pos += n;
            if n < wanted {
                return Ok(());
            }
        }
        out.clear_sent();
        let Some(body) = out.file.as_mut() else {
            break;
        };
        while body.remaining > 0 {
            let wanted = body.remaining.min(1 << 30) as usize;
            let sent = match &body.source {
                BodySource::File(open) => transport.send_file(open.file(), body.offset, wanted),
                // Compressed bytes: the cache's, shared, never copied
                // whole into the output buffer.
                BodySource::Bytes(bytes) => {
                    let start = body.offset as usize;
                    match bytes.get(start..start + wanted) {
                        Some(range) => transport.write(range),
                        None => Ok(0),
                    }
                }
            };
            if matches!(sent, Ok(0)) {
                // The file shrank under us: the promised length cannot
                // be sent, so the only honest end is a close.
                log::warn!("{peer}: file shrank while sending; closing");
                return Err(CloseReason::Error);
            }
            let n = match progress(sent, wanted, writable, moved)? {
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
        if !body.next_part(&mut out.buf) {
            out.file = None;
        }
    }
    Ok(())
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

/// Reads a write of `wanted` bytes: notes that bytes moved, and clears
/// `writable` when the socket buffer is full.
fn progress(
    written: io::Result<usize>,
    wanted: usize,
    writable: &mut bool,
    moved: &mut bool,
) -> Result<Wrote, CloseReason> {
    match written {
        Ok(n) => {
            *moved = true;
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
        assert!(size <= 96, "{size}");
    }
}
