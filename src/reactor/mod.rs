//! The reactor: one thread, one `mio::Poll`, everything else is data.
//!
//! It owns the listeners, the slab of connections, the timer wheel and the
//! counters, and it is the only code that waits on readiness. One turn of
//! the loop ([`Server::run`], this file):
//!
//! 1. sleep in `epoll_wait` until an event, the next due wheel tick, or
//!    the time blocked admission may resume; then set the responder's
//!    clock;
//! 2. the events: first signals and wake-ups (`lifecycle.rs`,
//!    `handover.rs`), so that a shutdown or a reload that came with
//!    connection events applies to them; then accept (a listener:
//!    `admission.rs`) and drive each connection; each connection driven
//!    files its new deadline in the wheel and its eviction class at once
//!    (`Server::step`);
//! 3. advance the wheel and hand each expired connection its deadline
//!    (through the same `step`);
//! 4. housekeeping: retry blocked admission, hand the access-log lines to
//!    the writer, once per `--file-cache-valid` look at ROOT's path again
//!    (a deploy may have flipped it) and sweep unused cached file fds,
//!    publish counters for other workers, follow a graceful shutdown.
//!
//! The folder: this file is the loop; `admission.rs` lets connections in
//! (accept, the fd budget, eviction, answering without a slot);
//! `lifecycle.rs` is SIGHUP reloads and graceful shutdown; `handover.rs`
//! a binary upgrade (SIGUSR2), from either side; `startup.rs` builds the
//! reactors ([`start`], [`run_workers`]) and `start_error.rs` says why it
//! could not; `sockets.rs` is where the listening sockets come from
//! (bound, passed by systemd, handed over); `listeners.rs` is the sockets
//! accepted on.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Poll, Token};
use slab::Slab;

use crate::budget::Budget;
use crate::close::CloseReason;
use crate::config::Config;
use crate::conn::{Conn, Next, Pool};
use crate::contain;
use crate::evict::EvictionQueues;
use crate::http::session::{Phase, Timeouts};
use crate::serve::{Responder, ServerView, Sni};
use crate::signals::SignalFd;
use crate::stats::{CompressOutcome, Gauges, Shared, Stats};
use crate::tls::TlsSetup;
use crate::wake::{Alarm, Wake};
use crate::wheel::TimerWheel;

mod admission;
mod handover;
mod lifecycle;
mod listeners;
mod sockets;
mod start_error;
mod startup;

use admission::Admission;
use handover::{HandoverSlot, Upgrade};
use lifecycle::Reconfig;
pub use listeners::UNIX_PEER;
use listeners::{ListenSocket, Listener};
pub use start_error::StartError;
pub use startup::{run_workers, start};

/// The wheel's tick: deadlines fire at most this late.
pub const TIMER_TICK: Duration = Duration::from_millis(100);

/// The signalfd's token: SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2.
const SIGNAL: Token = Token(usize::MAX);
/// The alarm's token: another thread woke this reactor (see [`Wake`]).
const WAKE: Token = Token(usize::MAX - 1);
/// The upgrade channel's token (worker 0, during a binary upgrade).
const UPGRADE: Token = Token(usize::MAX - 2);
/// Listener `i` is `Token(LISTENER_BASE + i)`; connections are their slab
/// keys, below it.
const LISTENER_BASE: usize = usize::MAX - 1024;

/// One worker's reactor (see the module docs).
pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    /// The signalfd: worker 0's only (it wakes the others).
    signals: Option<SignalFd>,
    conns: Slab<Conn>,
    /// Certificates and rustls configuration, when a listener is TLS.
    tls: Option<TlsSetup>,
    wheel: TimerWheel,
    /// What answers requests (settings, ROOT, caches, scratch).
    responder: Responder,
    /// The running configuration: its live half replaced by reloads.
    config: Config,
    /// One deadline per phase, from the configuration.
    timeouts: Timeouts,
    /// What is counted, and what may be spent.
    ledger: Ledger,
    pool: Pool,
    expired: Vec<usize>,
    evict: EvictionQueues,
    admission: Admission,
    /// Open connections per client (`--max-client-connections`), in the
    /// tables every worker shares.
    clients: Arc<crate::clients::Tables>,
    /// Connections to drive again once their credentials are verified
    /// (kept for its capacity).
    redrive: Vec<usize>,
    /// When cached file fds that nobody uses are next closed.
    next_sweep: Instant,
    /// A `--drain-delay` has begun and ends then: still serving and
    /// accepting, the health check failing, every response saying close.
    drain_until: Option<Instant>,
    /// Graceful shutdown has begun and ends by then: every response says
    /// close, listeners are closed.
    shutdown_deadline: Option<Instant>,
    /// This worker's alarm (its compressor and worker 0 wake it).
    alarm: Arc<Alarm>,
    /// The other workers' alarms (worker 0, which takes the signals,
    /// wakes them to shut down or reload); empty for the others.
    peers: Vec<Arc<Alarm>>,
    /// Configurations published by SIGHUP reloads.
    reconfig: Arc<Reconfig>,
    /// A binary upgrade under way (SIGUSR2).
    upgrade: Option<Upgrade>,
    /// Where worker 0 leaves the channel to the successor for the others.
    handover: HandoverSlot,
    /// Every worker's listeners, for worker 0 to hand to a successor
    /// (their fds stay owned by their workers); empty for the others.
    listener_records: Vec<crate::upgrade::ListenerRecord>,
    /// The ACME manager (worker 0, when a site has `--acme`): told of
    /// the sites after a reload.
    acme: Option<crate::acme::Manager>,
    /// The reload this worker last applied (0: none).
    config_generation: u64,
}

/// What a reactor counts and what it may spend: the part of its state a
/// response may see, lent through [`Ledger::view`].
struct Ledger {
    /// What was accepted, served and closed, and why.
    stats: Stats,
    /// Connections by phase, kept as they move.
    gauges: Gauges,
    /// This worker's share of the fd budget.
    budget: Budget,
    /// Counters published by every worker, and the shutdown state.
    shared: Arc<Shared>,
    /// This reactor's index among `--workers`.
    worker: usize,
}

impl Ledger {
    /// The view a response gets of the reactor: the one place it is made.
    fn view<'a>(
        &'a mut self,
        wheel: &'a TimerWheel,
        closing: Option<CloseReason>,
        sni: Sni,
        conn: usize,
    ) -> ServerView<'a> {
        ServerView {
            sni,
            conn,
            stats: &mut self.stats,
            gauges: self.gauges,
            budget: &self.budget,
            shared: &self.shared,
            worker: self.worker,
            wheel,
            closing,
        }
    }

    /// Adds (`delta` 1) or removes (-1) a connection's phase to or from
    /// the gauges.
    fn count(&mut self, phase: Phase, delta: isize) {
        let g = &mut self.gauges;
        let slot = match phase {
            Phase::Reading => &mut g.reading,
            Phase::Writing => &mut g.writing,
            Phase::Idle => &mut g.idle,
            Phase::Closing => &mut g.closing,
        };
        *slot = slot.wrapping_add_signed(delta);
    }
}

/// What moves a connection: readiness, or its deadline.
enum Step {
    Ready {
        readable: bool,
        writable: bool,
        /// The peer shut its side (EPOLLRDHUP).
        read_closed: bool,
    },
    Deadline,
}

impl Server {
    /// One reactor with one worker: [`start`] with `--workers 1`.
    pub fn bind(mut config: Config) -> Result<Server, StartError> {
        config.fixed.workers = 1;
        let mut servers = start(config)?;
        Ok(servers.remove(0))
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| matches!(l.socket, ListenSocket::Tcp(_)))
            .map(|l| l.local)
            .collect()
    }

    /// Runs until a graceful shutdown completes or a second signal.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            self.responder.set_clock(now, SystemTime::now());

            // Signals and wake-ups first: a shutdown or a reload that came
            // with connection events applies to them too (a response in
            // the same batch as SIGTERM already says close).
            let control = |t: Token| matches!(t, SIGNAL | UPGRADE | WAKE);
            for event in events.iter().filter(|e| control(e.token())) {
                let exit = match event.token() {
                    SIGNAL => self.take_signals(now),
                    UPGRADE => {
                        self.upgrade_event(now);
                        false
                    }
                    _ => self.wake_event(now),
                };
                if exit {
                    return Ok(());
                }
            }
            for event in events.iter().filter(|e| !control(e.token())) {
                match event.token() {
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE, now),
                    Token(key) => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        let writable =
                            event.is_writable() || event.is_write_closed() || event.is_error();
                        let read_closed = event.is_read_closed();
                        let ready = Step::Ready {
                            readable,
                            writable,
                            read_closed,
                        };
                        self.step(key, now, ready);
                    }
                }
            }

            crate::fault::worker_fault();
            self.expire(now);
            self.resume_admission(now);
            self.responder.flush_access_log();
            if now >= self.next_sweep {
                // Once per --file-cache-valid: a deploy that flipped ROOT
                // is seen within that time, as a changed file is.
                self.responder.follow_root();
                self.responder.sweep_open_files();
                self.next_sweep = now + self.config.fixed.file_cache_valid.max(TIMER_TICK);
            }
            let ledger = &self.ledger;
            if ledger.shared.workers() > 1 {
                let gauges = Gauges {
                    open_files: self.responder.open_files(),
                    ..ledger.gauges
                };
                ledger.shared.publish(ledger.worker, &ledger.stats, &gauges);
            }
            self.drain_done(now);
            if self.shutdown_done(now) || self.upgrade_turn(now) {
                return Ok(());
            }
        }
    }

    /// What the alarm was rung for (a reload, compressed files, a
    /// hand-over, a shutdown); true when the reactor is done.
    fn wake_event(&mut self, now: Instant) -> bool {
        let reasons = self.alarm.take();
        if reasons.has(Wake::Reload) {
            self.follow_reload();
        }
        if reasons.has(Wake::Compressed) {
            let done = self.responder.take_compressed() as u64;
            let stats = &mut self.ledger.stats;
            stats.count_compression(CompressOutcome::Compressed, done);
        }
        if reasons.has(Wake::Verified) {
            let mut redrive = std::mem::take(&mut self.redrive);
            self.responder.take_verified(&mut redrive);
            for key in redrive.drain(..) {
                let ready = Step::Ready {
                    readable: true,
                    writable: true,
                    read_closed: false,
                };
                // A key whose connection closed meanwhile (or was reused:
                // a spurious drive reads nothing) is harmless.
                if self.conns.contains(key) {
                    self.step(key, now, ready);
                }
            }
            self.redrive = redrive;
        }
        if reasons.has(Wake::Handover) {
            self.follow_handover(now);
        }
        reasons.has(Wake::Shutdown) && self.follow_shutdown(now)
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let until = |t: Instant| t.saturating_duration_since(now);
        [
            self.wheel.timeout(now),
            self.admission
                .resumes_at(&self.evict, &self.config)
                .map(until),
            self.shutdown_deadline.map(until),
            self.drain_until.map(until),
            self.upgrade_deadline().map(until),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn expire(&mut self, now: Instant) {
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.advance(now, &mut expired);
        for &key in &expired {
            self.step(key, now, Step::Deadline);
        }
        expired.clear();
        self.expired = expired;
    }

    /// Lets connection `key` move bytes (or meet its deadline), then
    /// files what changed: the gauges, its eviction queue, its deadline,
    /// or its close.
    fn step(&mut self, key: usize, now: Instant, step: Step) {
        let handing_over = self.handing_over();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let before = conn.phase();
        // Shutting down, or a TLS connection during an upgrade (its
        // session cannot go to the successor): one at rest closes.
        let close_idle = self.shutdown_deadline.is_some() || (handing_over && conn.is_secure());
        // Those and a drain: responses say close (a draining server
        // closes no idle connection: its clients' next request is
        // answered, and says close).
        let stopping = close_idle || self.drain_until.is_some();
        let closing = stopping.then_some(CloseReason::Shutdown);
        let sni = self.responder.sni(conn.server_name());
        let view = self.ledger.view(&self.wheel, closing, sni, key);
        let mut responder = (&mut self.responder, view);
        let (pool, timeouts) = (&mut self.pool, &self.timeouts);
        // A panic while this connection moves closes this connection only
        // (see crate::contain): nothing of the reactor's is updated until
        // the drive returned.
        let moved = contain::guarded(|| match step {
            Step::Ready {
                readable,
                writable,
                read_closed,
            } => {
                conn.ready(readable, writable, read_closed);
                conn.drive(&mut responder, pool, now)
            }
            Step::Deadline => conn.on_deadline(timeouts, &mut responder, pool, now),
        });
        let next = match moved {
            Ok(next) => next,
            Err(panic) => return self.contained(key, before, panic),
        };
        if let Some(handshake) = conn.take_handshake() {
            self.ledger.stats.count_handshake(handshake);
        }
        let after = conn.phase();
        let deadline = conn.deadline(&self.timeouts);
        let (class, since) = conn.eviction_class();
        if before != after {
            self.ledger.count(before, -1);
            self.ledger.count(after, 1);
        }
        match next {
            Next::Close(reason) => self.close(key, reason),
            Next::Proxied(was) => self.proxied(key, was, now),
            Next::Open if close_idle && after == Phase::Idle => {
                self.close(key, CloseReason::Shutdown)
            }
            // During an upgrade, a connection that comes to rest goes to
            // the successor.
            Next::Open if self.handing_over() && self.hand_over_or_close(key, now) => {}
            Next::Open => {
                self.wheel.schedule(key, deadline);
                self.evict.set(key, Some(class), since);
            }
        }
    }

    /// Connection `key` panicked while it moved (it was `before`, as the
    /// gauges still count it): it closes, abortively (what it was sending
    /// may be cut short), as `internal_error`, and goes without being
    /// driven again or lending its buffers back; the tables read as if it
    /// had closed normally. One log line says what and where.
    fn contained(&mut self, key: usize, before: Phase, panic: contain::Panic) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        self.release_client(conn.peer(), conn.is_counted());
        self.ledger.count(before, -1);
        self.wheel.cancel(key);
        self.evict.remove(key);
        let stats = &mut self.ledger.stats;
        stats.count_close(CloseReason::InternalError);
        stats.count_requests_per_connection(conn.requests());
        log::error!(
            "{}: internal error, connection closed (internal_error) while answering \"{}\": {panic}",
            conn.peer(),
            conn.request_line()
        );
        conn.abort_on_close();
    }

    /// The client a connection from `peer` counts for; `None` for a
    /// unix-socket peer (no address: no per-client limit) and for a
    /// trusted proxy (its connections carry many clients).
    fn client_of(&self, peer: std::net::SocketAddr) -> Option<crate::clients::Client> {
        let ip = peer.ip();
        let uncounted = ip.is_unspecified() || self.is_trusted_proxy(ip);
        (!uncounted).then(|| self.config.fixed.client_prefixes.client(ip))
    }

    fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.config
            .live
            .trusted_proxies
            .iter()
            .any(|r| r.contains(ip))
    }

    /// Counts a connection from `peer` for its client: `None` if that
    /// client has its `--max-client-connections` already, else whether
    /// it was counted.
    fn count_client(&mut self, peer: std::net::SocketAddr) -> Option<bool> {
        match self.client_of(peer) {
            Some(client) => self.clients.connections().admit(client).then_some(true),
            None => Some(false),
        }
    }

    /// A connection from `peer` is gone: its client has one fewer, if it
    /// was `counted` (whatever the trusted proxies are by now).
    fn release_client(&mut self, peer: std::net::SocketAddr, counted: bool) {
        if counted {
            let client = self.config.fixed.client_prefixes.client(peer.ip());
            self.clients.connections().release(client);
        }
    }

    /// Connection `key`'s PROXY header named its client, now its peer, in
    /// place of `was` (the proxy's address): it counts for that client
    /// from now on, or closes if that client has its fill. Then it moves
    /// on with what followed the header.
    fn proxied(&mut self, key: usize, was: std::net::SocketAddr, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let (peer, counted) = (conn.peer(), conn.is_counted());
        conn.set_counted(false);
        self.release_client(was, counted);
        match self.count_client(peer) {
            None => {
                log::debug!("{peer} (by {was}): closed after its PROXY header (client_limit)");
                self.close(key, CloseReason::ClientLimit);
            }
            Some(counted) => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.set_counted(counted);
                }
                let step = Step::Ready {
                    readable: false,
                    writable: false,
                    read_closed: false,
                };
                self.step(key, now, step);
            }
        }
    }

    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        self.release_client(conn.peer(), conn.is_counted());
        if conn.phase() == Phase::Writing
            && matches!(reason, CloseReason::SendTimeout | CloseReason::Evicted)
        {
            conn.abort_on_close();
        }
        self.ledger.count(conn.phase(), -1);
        self.wheel.cancel(key);
        self.evict.remove(key);
        self.ledger.stats.count_close(reason);
        self.ledger
            .stats
            .count_requests_per_connection(conn.requests());
        log::debug!(
            "{}: closed ({reason}) while {} after {} requests",
            conn.peer(),
            conn.phase(),
            conn.requests()
        );
        // Dropping the stream closes the fd, which also removes it from
        // the epoll set: no EPOLL_CTL_DEL syscall needed.
        conn.release(&mut self.pool);
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
