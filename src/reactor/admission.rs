//! Letting connections in: accepting until the kernel's backlog is empty,
//! admitting each against the fd budget, evicting the least valuable
//! connection when the budget is full (see [`crate::evict`]), answering a
//! newcomer without a slot when nothing may go, and pausing on EMFILE
//! instead of spinning on a listener that stays readable.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::listeners::Accepted;
use super::{Server, Step};
use crate::close::CloseReason;
use crate::config::Config;
use crate::conn::{Conn, Next};
use crate::contain;
use crate::evict::{Class, EvictionQueues};
use crate::serve::Sni;
use crate::stream::Stream;
use crate::transport::Tcp;

/// After accept fails with EMFILE/ENFILE, wait this long before trying
/// again, rather than spin on a listener that stays readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Whether accepting waits, and since when.
#[derive(Debug, Default)]
pub(super) struct Admission {
    /// Accepting waits, since then: the fd budget is full and nothing can
    /// be evicted.
    blocked: Option<Instant>,
    /// Accepting waits until then: EMFILE/ENFILE.
    paused_until: Option<Instant>,
    last_emfile_warning: Option<Instant>,
    last_pause_warning: Option<Instant>,
}

impl Admission {
    /// When accepting should be tried again: the end of an EMFILE pause,
    /// or, while blocked, when a connection becomes evictable by age (an
    /// idle one past its grace, a stall) or newcomers turn to being
    /// answered without a slot.
    pub(super) fn resumes_at(&self, evict: &EvictionQueues, config: &Config) -> Option<Instant> {
        let blocked = self.blocked.map(|since| {
            let answer_from = since + config.live.admission_wait;
            evict
                .next_eligible(Some(since))
                .map_or(answer_from, |t| t.min(answer_from))
        });
        [self.paused_until, blocked].into_iter().flatten().min()
    }
}

impl Server {
    /// After a turn's events: an EMFILE pause that ended, or blocked
    /// admission that may have room now (a close, an unused cached fd or
    /// a connection come of age; edge-triggered readiness would not say
    /// so again).
    pub(super) fn resume_admission(&mut self, now: Instant) {
        if self.admission.paused_until.is_some_and(|t| now >= t) {
            self.admission.paused_until = None;
            self.accept_all(now);
        }
        if self.admission.blocked.is_some() {
            // accept() checks, and stays blocked (without a syscall) if
            // there is still no room.
            self.accept_all(now);
        }
    }

    /// The fd budget admits one more connection without evicting.
    pub(super) fn has_room(&self) -> bool {
        let open_files = self.responder.open_files();
        self.ledger.budget.admits(self.conns.len(), open_files)
    }

    /// Closes connection `key`, the least valuable one (see
    /// [`crate::evict`]), to make room.
    fn shed(&mut self, key: usize, class: Class) {
        self.ledger.stats.evictions[class] += 1;
        log::debug!("evicting a {} connection to make room", class.as_str());
        self.close(key, CloseReason::Evicted);
    }

    fn accept_all(&mut self, now: Instant) {
        for i in 0..self.listeners.len() {
            self.accept(i, now);
        }
    }

    /// Accepts until WouldBlock (edge-triggered: one event may stand for
    /// many queued connections), the connection limit, or EMFILE.
    pub(super) fn accept(&mut self, index: usize, now: Instant) {
        if self.admission.paused_until.is_some() || self.shutdown_deadline.is_some() {
            return;
        }
        self.accept_queued(index, now);
    }

    /// Accepts what listener `index` has queued (the shutdown's last
    /// look too, before its listeners close).
    pub(super) fn accept_queued(&mut self, index: usize, now: Instant) {
        loop {
            let mut full = !self.has_room();
            // A cached file fd that no response uses is the cheapest
            // thing to give up.
            while full && self.responder.release_unused_fd() {
                full = !self.has_room();
            }
            let victim = if full {
                // The client holding the most slots (past a quarter of
                // them) loses one first.
                let hog = self.clients.connections().hog(self.conns.len());
                let prefixes = &self.config.fixed.client_prefixes;
                let is_hogs = |key: usize| {
                    let conn = self.conns.get(key).filter(|c| c.is_counted());
                    hog.is_some() && conn.map(|c| prefixes.client(c.peer().ip())) == hog
                };
                self.evict
                    .victim_preferring(now, self.admission.blocked, is_hogs)
            } else {
                None
            };
            // Nothing may be evicted: newcomers wait in the kernel backlog
            // (the loop retries as soon as a connection closes or comes of
            // age: edge-triggered readiness would not tell us again), for
            // --admission-wait at most; then each is answered once without
            // a slot, so that a renewing storm cannot fill the backlog and
            // time every real client out in it.
            let overflow = full && victim.is_none();
            if overflow {
                let since = match self.admission.blocked {
                    Some(since) => since,
                    None => {
                        self.pause_accepting(now);
                        now
                    }
                };
                if now.saturating_duration_since(since) < self.config.live.admission_wait {
                    return;
                }
            }
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let tls = listener.tls;
            match listener.socket.accept() {
                Ok((_, peer)) if overflow && tls => {
                    // No answer without a handshake, and a handshake is
                    // not worth doing for one response: the socket closes.
                    self.ledger.stats.accepted += 1;
                    self.ledger.stats.count_close(CloseReason::Overflow);
                    log::debug!("{peer}: TLS newcomer closed without a slot");
                }
                Ok((stream, peer)) if overflow => {
                    self.ledger.stats.accepted += 1;
                    self.answer_without_slot(stream, peer, now);
                }
                Ok((stream, peer)) => {
                    self.ledger.stats.accepted += 1;
                    let Some(counted) = self.count_client(peer) else {
                        // Closed before it sent anything: there is no
                        // request to answer yet (as HAProxy's connection
                        // reject).
                        self.ledger.stats.count_close(CloseReason::ClientLimit);
                        log::debug!("{peer}: closed at accept (client_limit)");
                        continue;
                    };
                    self.admission.blocked = None;
                    // Evict only once a connection is really waiting: the
                    // new socket briefly uses the reserve's spare fd.
                    if let Some((key, class)) = victim {
                        self.shed(key, class);
                    }
                    self.admit(stream, peer, tls, counted, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.admission.blocked = None;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // The listener stays readable; retrying now would spin.
                    self.ledger.stats.accept_emfile += 1;
                    let a = &mut self.admission;
                    a.paused_until = Some(now + ACCEPT_PAUSE);
                    if a.last_emfile_warning
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                    {
                        a.last_emfile_warning = Some(now);
                        log::warn!(
                            "accept: {e}; pausing accept for {ACCEPT_PAUSE:?} ({} times so far)",
                            self.ledger.stats.accept_emfile
                        );
                    }
                    return;
                }
                // The peer gave up in the backlog, or a transient error
                // for this one connection: the next may be fine.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    log::warn!("accept: {e}");
                    return;
                }
            }
        }
    }

    /// A connection from `peer` must begin with a PROXY header: the
    /// protocol is on and `peer` is a trusted proxy.
    fn owes_proxy_header(&self, peer: SocketAddr) -> bool {
        self.config.live.proxy_protocol && self.is_trusted_proxy(peer.ip())
    }

    /// Starts a pause in admission: counted, and logged at most once a
    /// second (a storm starts and ends pauses many times a second).
    fn pause_accepting(&mut self, now: Instant) {
        let a = &mut self.admission;
        a.blocked = Some(now);
        self.ledger.stats.accept_pauses += 1;
        if a.last_pause_warning
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            a.last_pause_warning = Some(now);
            log::warn!(
                "fd budget full ({} connections, {} file fds) and nothing to evict: accepting paused, then answering newcomers without a slot ({} pauses so far)",
                self.conns.len(),
                self.responder.open_files(),
                self.ledger.stats.accept_pauses
            );
        }
    }

    /// A newcomer with the fd budget full and nothing to evict: read what
    /// it sent with its handshake, answer it with `Connection: close` if
    /// that needs no file body (a small or cached file, a redirect, an
    /// error; a large file gets 503 and `Retry-After`), and close. It
    /// never takes a slot: its fd (the reserve's spare) is gone before the
    /// next accept. A newcomer that sent nothing yet is closed unanswered.
    fn answer_without_slot(&mut self, stream: Accepted, peer: SocketAddr, now: Instant) {
        let mut conn = Conn::new(stream.plain(), peer, now);
        if self.owes_proxy_header(peer) {
            conn.expect_proxy_header();
        }
        conn.ready(true, true, false);
        let closing = Some(CloseReason::Overflow);
        // No slot, no key: a request deferred here is never answered
        // (the connection closes either way).
        let view = self
            .ledger
            .view(&self.wheel, closing, Sni::Absent, usize::MAX);
        let mut responder = (&mut self.responder, view);
        // Whatever it says next, the connection goes: it has no slot.
        let pool = &mut self.pool;
        // A PROXY header read, the request behind it is answered (for
        // the client it names, counted nowhere: it has no slot).
        let drove =
            contain::guarded(
                || {
                    while let Next::Proxied(_) = conn.drive(&mut responder, pool, now) {}
                },
            );
        let stats = &mut self.ledger.stats;
        if let Err(panic) = drove {
            stats.count_close(CloseReason::InternalError);
            log::error!(
                "{peer}: internal error answering without a slot \"{}\": {panic}",
                conn.request_line()
            );
            conn.abort_on_close();
            return;
        }
        stats.count_close(CloseReason::Overflow);
        stats.count_requests_per_connection(conn.requests());
        log::debug!(
            "{peer}: answered without a slot ({} requests)",
            conn.requests()
        );
        conn.release(&mut self.pool);
    }

    /// Files a newcomer from `peer` (`counted` for its client) in the
    /// slab, over TLS if its listener is.
    fn admit(
        &mut self,
        stream: Accepted,
        peer: SocketAddr,
        tls: bool,
        counted: bool,
        now: Instant,
    ) {
        // TCP_NODELAY and the keepalive probes were set on the listener:
        // Linux copies them to every accepted socket, which saves five
        // setsockopt calls per connection (tests/budget.rs reads them back
        // off an accepted socket).
        let owes_header = self.owes_proxy_header(peer);
        let transport = match (stream, &self.tls, tls) {
            (Accepted::Tcp(stream), Some(setup), true) => match setup.accept(Tcp::new(stream)) {
                Ok(tls) => Stream::Tls(Box::new(tls)),
                Err(e) => {
                    log::warn!("{peer}: cannot start TLS: {e}");
                    self.ledger.stats.count_close(CloseReason::TlsError);
                    self.release_client(peer, counted);
                    return;
                }
            },
            (stream, _, _) => stream.plain(),
        };
        self.ledger.stats.handled += 1;
        let mut conn = Conn::new(transport, peer, now);
        conn.set_counted(counted);
        if owes_header {
            conn.expect_proxy_header();
        }
        let key = self.conns.insert(conn);
        self.enroll(key, now);
    }

    /// Files a connection just put in the slab (accepted, or handed over
    /// by the process before an upgrade) with the wheel, the eviction
    /// queues and the phase gauges, drives it once at once, and only then
    /// registers what is left of it with epoll. Most clients send their
    /// request right behind the handshake (with `--defer-accept`, before
    /// accept even returns), and a handed-over one may have a request
    /// waiting: reading at once saves an epoll round trip, a connection
    /// answered and closed in that first drive never costs an
    /// `epoll_ctl` (as nginx's `deferred` listeners), and under a storm a
    /// real client is not evicted as "fresh" by the next connections of
    /// the same accept burst before it is read. Edge-triggered
    /// registration reports the readiness the socket already has, so
    /// nothing that arrives between the drive and the registration is
    /// missed.
    pub(super) fn enroll(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let deadline = conn.deadline(&self.timeouts);
        let (class, since) = conn.eviction_class();
        let phase = conn.phase();
        self.wheel.schedule(key, deadline);
        self.evict.set(key, Some(class), since);
        self.ledger.count(phase, 1);
        self.step(
            key,
            now,
            Step::Ready {
                readable: true,
                writable: true,
                read_closed: false,
            },
        );
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) =
            self.poll
                .registry()
                .register(conn.transport_mut().source(), Token(key), interest)
        {
            log::warn!("{}: cannot register: {e}", conn.peer());
            self.close(key, CloseReason::Error);
        }
    }
}
