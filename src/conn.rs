//! One connection's state machine.
//!
//! ```text
//!            accept
//!              │
//!              ▼
//!   ┌──────▶ Reading ──(head complete: respond)──▶ Writing
//!   │          ▲                                    │
//!   │          └──(pipelined bytes already here)────┤ output sent
//!   │                                               ▼
//!   └────────(first byte of the next head)────── Idle  (keep-alive, no buffers)
//!
//!   any state ──(response said close, output sent)──▶ Closing (linger) ──▶ gone
//! ```
//!
//! The connection owns its socket and (only while working) an input and an
//! output buffer from the [`BufPool`]. [`Conn::drive`] is called after every
//! readiness event: it writes what is pending, answers every complete
//! request already buffered (pipelining: answers are appended to one output
//! buffer and go out together), and reads more only when there is room,
//! so a client that pipelines without reading cannot make the server
//! buffer without bound. Each phase has exactly one deadline
//! ([`Conn::deadline`]); the reactor keeps it in the timer wheel.
//!
//! Readiness is edge-triggered: `readable`/`writable` remember whether the
//! socket may still have data / room, and are cleared only by WouldBlock
//! (or a short read, which means the kernel buffer was drained).

use std::fmt;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use crate::config::Config;
use crate::evict::Class;
use crate::http::body::BodyDecoder;
use crate::http::request::Method;
use crate::http::{HeadOutcome, Status, parse_head};
use crate::pool::{BufPool, InBuf};
use crate::serve::{ConnFacts, Ctx, FileBody};

/// What a working connection borrows from the pool: its input and output
/// buffers and the state of the exchange in flight. An idle connection
/// holds none of it (RSS per idle connection is the point).
pub struct Work {
    pub input: InBuf,
    /// Answers not yet written, from `out_pos` on.
    pub output: Vec<u8>,
    pub out_pos: usize,
    /// A file body to send with sendfile after `output`.
    pub file: Option<FileBody>,
    /// A request body being discarded.
    pub body: Option<BodyDecoder>,
    /// TCP_CORK is on while a file body is sent.
    pub corked: bool,
}

impl Work {
    pub fn new(input: InBuf) -> Work {
        Work {
            input,
            output: Vec::with_capacity(4096),
            out_pos: 0,
            file: None,
            body: None,
            corked: false,
        }
    }

    fn is_quiet(&self) -> bool {
        self.input.is_empty()
            && self.out_pos >= self.output.len()
            && self.file.is_none()
            && self.body.is_none()
    }
}
use crate::stats::CloseReason;

/// Stop answering pipelined requests (and reading) while this much output
/// is buffered: with one more answer, the most a connection's output holds.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// The most bytes a lingering close discards per readiness event.
const LINGER_READ_BUDGET: usize = 256 * 1024;

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

pub struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    phase: Phase,
    /// When the current phase began, moved forward by every write
    /// progress: for Writing that is the send timeout's base, and for
    /// Idle it is when the last response finished, even when a whole
    /// request-response happened inside one `drive` (Idle -> Idle).
    since: Instant,
    /// When the head being received began (accept, or its first byte).
    head_started: Instant,
    /// Last read progress, for the body-discard deadline.
    last_read: Instant,
    /// Buffers and in-flight state, lent by the pool while working;
    /// `None` while idle, so an idle connection costs only this struct.
    work: Option<Box<Work>>,
    /// Requests answered on this connection.
    requests: u32,
    /// The last response said close; close (lingering) once it is sent.
    close_after_output: Option<CloseReason>,
    peer_closed: bool,
    readable: bool,
    writable: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr, now: Instant) -> Conn {
        Conn {
            stream,
            peer,
            phase: Phase::Reading,
            since: now,
            head_started: now,
            last_read: now,
            work: None,
            requests: 0,
            close_after_output: None,
            peer_closed: false,
            readable: false,
            writable: true,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// Holds a file body (a second fd) right now.
    pub fn holds_file(&self) -> bool {
        self.work.as_ref().is_some_and(|w| w.file.is_some())
    }

    fn discarding_body(&self) -> bool {
        self.work.as_ref().is_some_and(|w| w.body.is_some())
    }

    /// Its eviction queue and the instant it joined it: idle since, fresh
    /// since accept, partial head since the head began, stalled since the
    /// response's last write progress, lingering since the linger began
    /// (see [`crate::evict`] for who goes first).
    pub fn eviction_class(&self) -> Option<(Class, Instant)> {
        let no_input = self
            .work
            .as_ref()
            .is_none_or(|w| w.input.is_empty() && w.body.is_none());
        match self.phase {
            Phase::Idle => Some((Class::Idle, self.since)),
            Phase::Reading if no_input && self.requests == 0 => {
                Some((Class::Fresh, self.head_started))
            }
            Phase::Reading => Some((Class::PartialHead, self.head_started)),
            Phase::Writing => Some((Class::Stalled, self.since)),
            Phase::Closing => Some((Class::Lingering, self.since)),
        }
    }

    /// Records readiness from an event.
    pub fn ready(&mut self, readable: bool, writable: bool) {
        self.readable |= readable;
        self.writable |= writable;
    }

    /// The instant this connection's current phase times out.
    pub fn deadline(&self, config: &Config) -> Instant {
        match self.phase {
            Phase::Reading if self.discarding_body() => self.last_read + config.header_timeout,
            Phase::Reading => self.head_started + config.header_timeout,
            Phase::Writing => self.since + config.send_timeout,
            Phase::Idle => self.since + config.keepalive_timeout,
            Phase::Closing => self.since + config.linger_timeout,
        }
    }

    /// Makes the coming close abortive (SO_LINGER 0: an RST, not a FIN
    /// behind unsent data): a client that stopped reading would otherwise
    /// keep the kernel holding its unsent response, as an orphaned socket,
    /// for minutes after we let go (nginx's `reset_timedout_connection`).
    pub fn abort_on_close(&self) {
        if let Err(e) = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO)) {
            log::debug!("{}: SO_LINGER 0: {e}", self.peer);
        }
    }

    /// Gives the buffers back; called when the connection is dropped.
    pub fn release(&mut self, pool: &mut BufPool) {
        if let Some(work) = self.work.take() {
            pool.put_work(work);
        }
    }

    fn has_output(&self) -> bool {
        self.work
            .as_ref()
            .is_some_and(|w| w.file.is_some() || w.out_pos < w.output.len())
    }

    /// Bytes in the output buffer, sent or not (see `answer_buffered`).
    fn buffered_output(&self) -> usize {
        self.work.as_ref().map_or(0, |w| w.output.len())
    }

    /// Moves bytes after a readiness event. `Err` means: close now, for
    /// this reason.
    pub fn drive(
        &mut self,
        ctx: &mut Ctx,
        pool: &mut BufPool,
        now: Instant,
    ) -> Result<(), CloseReason> {
        if self.phase == Phase::Closing {
            return self.drain_lingering();
        }
        loop {
            if self.has_output() && self.writable {
                self.flush(now)?;
            }
            if !self.has_output()
                && let Some(reason) = self.close_after_output
            {
                return self.start_lingering(pool, reason, now);
            }
            if self.answer_buffered(ctx, now)? {
                continue;
            }
            if !self.read_more(pool, now)? {
                break;
            }
        }
        if self.peer_closed && !self.has_output() {
            // EOF with nothing (complete) left to answer.
            return Err(CloseReason::Client);
        }
        self.settle(pool, now);
        Ok(())
    }

    /// The connection's deadline passed (the reactor checked it is due).
    pub fn on_deadline(
        &mut self,
        ctx: &mut Ctx,
        pool: &mut BufPool,
        now: Instant,
    ) -> Result<(), CloseReason> {
        if now < self.deadline(&ctx.config) {
            return Ok(()); // moved meanwhile; the reactor reschedules
        }
        match self.phase {
            Phase::Idle => Err(CloseReason::IdleTimeout),
            Phase::Writing => Err(CloseReason::SendTimeout),
            Phase::Closing => Err(CloseReason::LingerTimeout),
            Phase::Reading => {
                let started = self.work.as_ref().is_some_and(|w| !w.input.is_empty());
                if !started || self.discarding_body() {
                    // Nothing of a request arrived (a preconnect, a silent
                    // client): close without a word, as nginx does.
                    return Err(CloseReason::HeaderTimeout);
                }
                // RFC 9110 §15.5.9: 408, and the connection closes.
                let work = self.work.get_or_insert_with(|| pool.take_work());
                ctx.respond_error(
                    Status::RequestTimeout,
                    None,
                    false,
                    &mut work.output,
                    self.peer,
                );
                self.close_after_output = Some(CloseReason::HeaderTimeout);
                self.writable = true;
                self.drive(ctx, pool, now)
            }
        }
    }

    /// Graceful shutdown: a connection with nothing in flight can go now.
    pub fn is_quiet(&self) -> bool {
        match self.phase {
            Phase::Idle => true,
            Phase::Reading => self
                .work
                .as_ref()
                .is_none_or(|w| w.input.is_empty() && w.body.is_none()),
            Phase::Writing | Phase::Closing => false,
        }
    }

    /// Answers every complete request in the input, in order, appending the
    /// answers to one output buffer. Returns whether anything happened.
    fn answer_buffered(&mut self, ctx: &mut Ctx, now: Instant) -> Result<bool, CloseReason> {
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
        let mut progressed = false;
        loop {
            // `output.len()`, not what is unsent: the sent prefix is only
            // dropped once all of it is out, so a client that reads just
            // enough to keep the unsent part small could otherwise grow
            // the buffer for ever.
            let blocked =
                self.close_after_output.is_some() || file.is_some() || output.len() >= OUTPUT_CAP;
            if blocked {
                break;
            }
            if let Some(decoder) = body.as_mut() {
                let used = decoder
                    .consume(input.bytes())
                    .map_err(|_| CloseReason::ProtocolError)?;
                input.consume(used);
                progressed |= used > 0;
                if !decoder.is_done() {
                    break;
                }
                *body = None;
                self.head_started = now;
                continue;
            }
            if input.is_empty() {
                break;
            }
            let out = &mut *output;
            match parse_head(input.bytes(), &ctx.limits) {
                HeadOutcome::Partial => break,
                HeadOutcome::Complete(head) => {
                    let head_len = head.head_len;
                    let is_head = head.method == Method::Head;
                    let reply = match BodyDecoder::new(head.framing, ctx.config.max_body_bytes) {
                        Err(_) => {
                            // Refused without reading the body: what follows
                            // in the input is body, not a request.
                            self.close_after_output = Some(CloseReason::ProtocolError);
                            ctx.respond_error(
                                Status::ContentTooLarge,
                                Some(head.version),
                                is_head,
                                out,
                                self.peer,
                            )
                        }
                        Ok(decoder) => {
                            let facts = ConnFacts {
                                requests_before: self.requests,
                                has_body: decoder.is_some(),
                                peer: self.peer,
                            };
                            *body = decoder;
                            ctx.respond(&head, facts, out)
                        }
                    };
                    input.consume(head_len);
                    self.requests += 1;
                    self.head_started = now;
                    *file = reply.file;
                    if reply.close && self.close_after_output.is_none() {
                        self.close_after_output = Some(close_reason(ctx, self.requests));
                    }
                }
                HeadOutcome::Reject(rejection) => {
                    ctx.respond_error(rejection.status, rejection.version, false, out, self.peer);
                    self.requests += 1;
                    self.close_after_output = Some(CloseReason::ProtocolError);
                }
            }
            progressed = true;
        }
        Ok(progressed)
    }

    /// Reads once if there may be data and there is room. Returns whether
    /// bytes arrived.
    fn read_more(&mut self, pool: &mut BufPool, now: Instant) -> Result<bool, CloseReason> {
        let room_for_more = self.close_after_output.is_none()
            && !self.holds_file()
            && self.buffered_output() < OUTPUT_CAP;
        if !self.readable || self.peer_closed || !room_for_more {
            return Ok(false);
        }
        let discarding = self.discarding_body();
        let input = &mut self.work.get_or_insert_with(|| pool.take_work()).input;
        let was_empty = input.is_empty();
        let spare = input.spare();
        let room = spare.len();
        if room == 0 {
            return Ok(false);
        }
        loop {
            match self.stream.read(spare) {
                Ok(0) => {
                    self.peer_closed = true;
                    self.readable = false;
                    return Ok(false);
                }
                Ok(n) => {
                    input.filled(n);
                    // A short read drained the socket; the next arrival
                    // brings a new edge. Saves a read that says WouldBlock.
                    if n < room {
                        self.readable = false;
                    }
                    self.last_read = now;
                    if was_empty && !discarding && self.requests > 0 {
                        self.head_started = now;
                    }
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(socket_error(&e)),
            }
        }
    }

    /// Writes pending output: buffered bytes, then the file with sendfile.
    fn flush(&mut self, now: Instant) -> Result<(), CloseReason> {
        let fd = self.stream.as_raw_fd();
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
            set_cork(fd, true);
            work.corked = true;
        }
        loop {
            let out = &mut work.output;
            while work.out_pos < out.len() {
                let chunk = &out[work.out_pos..];
                // SAFETY: `chunk` is valid for reads of its length.
                let rc = unsafe {
                    libc::send(fd, chunk.as_ptr().cast(), chunk.len(), libc::MSG_NOSIGNAL)
                };
                let rc = match written(rc) {
                    Written::Bytes(n) => n,
                    Written::Interrupted => continue,
                    Written::Blocked => {
                        self.writable = false;
                        return Ok(());
                    }
                    Written::Failed(e) => return Err(socket_error(&e)),
                };
                work.out_pos += rc;
                self.since = now;
                if rc < chunk.len() {
                    // A short write filled the socket buffer: the next
                    // EPOLLOUT edge says when to go on. Saves a send that
                    // would only say EAGAIN.
                    self.writable = false;
                    return Ok(());
                }
            }
            out.clear();
            work.out_pos = 0;
            let Some(body) = work.file.as_mut() else {
                break;
            };
            while body.remaining > 0 {
                let mut offset = body.offset as libc::off_t;
                let count = body.remaining.min(1 << 30) as usize;
                let file_fd = body.file.file().as_raw_fd();
                // SAFETY: both fds are open; `offset` is a valid pointer.
                let rc = unsafe { libc::sendfile(fd, file_fd, &mut offset, count) };
                let rc = match written(rc) {
                    Written::Bytes(n) => n,
                    Written::Interrupted => continue,
                    Written::Blocked => {
                        self.writable = false;
                        return Ok(());
                    }
                    Written::Failed(e) => return Err(socket_error(&e)),
                };
                if rc == 0 {
                    // The file shrank under us: the promised length cannot
                    // be sent, so the only honest end is a close.
                    log::warn!("{}: file shrank while sending; closing", self.peer);
                    return Err(CloseReason::Error);
                }
                body.offset += rc as u64;
                body.remaining -= rc as u64;
                self.since = now;
                if rc < count {
                    // Short: the socket buffer is full (as for send above).
                    self.writable = false;
                    return Ok(());
                }
            }
            // The range is out: a multipart body puts the next part's head
            // (or its closing delimiter) in the output, sent next turn.
            if !body.next_part(out) {
                work.file = None;
            }
        }
        if work.corked {
            // The body is out: let the last partial segment go now.
            set_cork(fd, false);
            work.corked = false;
        }
        Ok(())
    }

    /// The last response is out and said close: shut our write side (the
    /// client sees EOF after the response) and drain what the client still
    /// sends, so closing does not turn unread input into a RST that could
    /// destroy the response in flight (RFC 9112 §9.6).
    fn start_lingering(
        &mut self,
        pool: &mut BufPool,
        reason: CloseReason,
        now: Instant,
    ) -> Result<(), CloseReason> {
        // As nginx does, skip the linger when nothing can be unread: the
        // client asked for the close (or HTTP/1.0), every byte it sent was
        // consumed, and the last read drained the socket. Lingering stays
        // for the cases that need it: max-requests and errors (the client
        // may be pipelining), and shutdown.
        let nothing_unread = reason == CloseReason::ResponseClose
            && !self.readable
            && self
                .work
                .as_ref()
                .is_none_or(|w| w.input.is_empty() && w.body.is_none());
        self.release(pool);
        if self.peer_closed || nothing_unread {
            return Err(reason);
        }
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            log::debug!("{}: shutdown(write) failed: {e}", self.peer);
            return Err(reason);
        }
        self.enter(Phase::Closing, now);
        self.close_after_output = Some(reason);
        self.readable = true;
        self.drain_lingering()
    }

    fn drain_lingering(&mut self) -> Result<(), CloseReason> {
        let reason = self
            .close_after_output
            .unwrap_or(CloseReason::ResponseClose);
        let mut scratch = [0u8; 4096];
        let mut budget = LINGER_READ_BUDGET;
        while self.readable && budget > 0 {
            match self.stream.read(&mut scratch) {
                Ok(0) => return Err(reason),
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(reason),
            }
        }
        Ok(())
    }

    /// Chooses the phase after `drive`, and lends back idle buffers.
    fn settle(&mut self, pool: &mut BufPool, now: Instant) {
        let input_empty = self.work.as_ref().is_none_or(|w| w.input.is_empty());
        let next = if self.has_output() {
            Phase::Writing
        } else if !input_empty || self.discarding_body() || self.requests == 0 {
            Phase::Reading
        } else {
            Phase::Idle
        };
        // Nothing in flight: the buffers go back to the pool.
        if self.work.as_ref().is_some_and(|w| w.is_quiet()) {
            self.release(pool);
        }
        if next != self.phase {
            self.enter(next, now);
        }
    }

    fn enter(&mut self, next: Phase, now: Instant) {
        log::trace!("{}: {} -> {}", self.peer, self.phase, next);
        self.phase = next;
        self.since = now;
    }
}

/// Why a response that said close closes the connection.
fn close_reason(ctx: &Ctx, requests: u32) -> CloseReason {
    if ctx.shutting_down {
        CloseReason::Shutdown
    } else if ctx.overflow {
        CloseReason::Overflow
    } else if ctx.config.max_requests != 0 && requests >= ctx.config.max_requests {
        CloseReason::MaxRequests
    } else {
        CloseReason::ResponseClose
    }
}

/// What a write-like syscall's return value means.
enum Written {
    Bytes(usize),
    Interrupted,
    /// EAGAIN: wait for the next EPOLLOUT edge.
    Blocked,
    Failed(io::Error),
}

fn written(rc: isize) -> Written {
    if rc >= 0 {
        return Written::Bytes(rc as usize);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::Interrupted => Written::Interrupted,
        io::ErrorKind::WouldBlock => Written::Blocked,
        _ => Written::Failed(e),
    }
}

fn set_cork(fd: libc::c_int, on: bool) {
    let value: libc::c_int = on.into();
    // SAFETY: `value` is a valid c_int for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!("TCP_CORK {on}: {}", io::Error::last_os_error());
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
        assert!(
            std::mem::size_of::<super::Conn>() <= 128,
            "{}",
            std::mem::size_of::<super::Conn>()
        );
    }
}
