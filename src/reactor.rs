//! The reactor: one thread, one `mio::Poll`, everything else is data.
//!
//! It owns the listeners, the slab of connections, the timer wheel and the
//! counters, and it is the only code that waits on readiness. One turn of
//! the loop:
//!
//! 1. sleep in `epoll_wait` until an event, the next due wheel tick, or
//!    the time blocked admission may resume; then set the responder's
//!    clock;
//! 2. for each event: accept (listener), drive a connection, or take a
//!    signal; each connection driven files its new deadline in the wheel
//!    and its eviction class at once (`Server::step`);
//! 3. advance the wheel and hand each expired connection its deadline
//!    (through the same `step`);
//! 4. housekeeping: retry blocked admission, sweep unused cached file fds,
//!    publish counters for other workers, follow a graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::accesslog::Sink;
use crate::budget::{self, Budget, BudgetError, Reserve};
use crate::close::CloseReason;
use crate::config::{Config, TcpKeepalive};
use crate::conn::{Conn, Next};
use crate::evict::{Class, EvictionQueues};
use crate::files::Root;
use crate::http::session::{Phase, Timeouts};
use crate::memory::MemoryBound;
use crate::pool::BufPool;
use crate::serve::{Answerer, Responder, ServerView};
use crate::signals::SignalFd;
use crate::stats::{CompressOutcome, Shared, Shutdown};
use crate::stats::{Gauges, Stats};
use crate::stream::Stream;
use crate::systemd::Passed;
use crate::tls::TlsSetup;
use crate::transport::{Tcp, Unix};
use crate::wheel::TimerWheel;
use std::path::PathBuf;

/// The wheel's tick: deadlines fire at most this late.
pub const TIMER_TICK: Duration = Duration::from_millis(100);

/// After accept fails with EMFILE/ENFILE, wait this long before trying
/// again, rather than spin on a listener that stays readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

const SIGNAL: Token = Token(usize::MAX);
const WAKE: Token = Token(usize::MAX - 1);
const LISTENER_BASE: usize = usize::MAX - 1024;

/// Why the server could not start; `Display` gives it as one line.
#[derive(Debug)]
pub enum StartError {
    /// The fd limits asked for cannot be met.
    Budget(BudgetError),
    /// RLIMIT_NOFILE could not be read, or set to this.
    Rlimit {
        set_to: Option<u64>,
        source: io::Error,
    },
    /// ROOT is not a readable directory.
    Root { path: PathBuf, source: io::Error },
    /// An address could not be bound and listened on.
    Listen { addr: SocketAddr, source: io::Error },
    /// The reactor's own machinery: epoll, a registration, a waker.
    Reactor { what: String, source: io::Error },
    /// A unix socket could not be bound and listened on.
    ListenUnix { path: PathBuf, source: io::Error },
    /// A TLS certificate or key could not be loaded.
    Tls(crate::tls::CertError),
    /// `--user` could not be applied.
    User(crate::privileges::DropError),
    /// The `--access-log` file could not be opened.
    AccessLog { path: PathBuf, source: io::Error },
}

impl StartError {
    fn reactor(what: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
        let what = what.into();
        move |source| StartError::Reactor { what, source }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Budget(e) => write!(f, "{e}"),
            StartError::Rlimit {
                set_to: None,
                source,
            } => write!(f, "cannot read RLIMIT_NOFILE: {source}"),
            StartError::Rlimit {
                set_to: Some(n),
                source,
            } => write!(f, "cannot set RLIMIT_NOFILE to {n}: {source}"),
            StartError::Root { path, source } => {
                write!(f, "cannot serve {}: {source}", path.display())
            }
            StartError::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Reactor { what, source } => write!(f, "cannot {what}: {source}"),
            StartError::ListenUnix { path, source } => {
                write!(f, "cannot listen on unix:{}: {source}", path.display())
            }
            StartError::Tls(e) => write!(f, "cannot load TLS certificates: {e}"),
            StartError::User(e) => write!(f, "{e}"),
            StartError::AccessLog { path, source } => {
                write!(f, "cannot open the access log {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Budget(e) => Some(e),
            StartError::Tls(e) => Some(e),
            StartError::User(e) => Some(e),
            StartError::Rlimit { source, .. }
            | StartError::Root { source, .. }
            | StartError::Listen { source, .. }
            | StartError::ListenUnix { source, .. }
            | StartError::AccessLog { source, .. }
            | StartError::Reactor { source, .. } => Some(source),
        }
    }
}

/// A listening socket: plain HTTP, or HTTPS with the shared TLS setup.
struct Listener {
    socket: ListenSocket,
    /// Its TCP address; for a unix socket, [`UNIX_PEER`].
    local: SocketAddr,
    tls: bool,
}

/// What a listener accepts on.
enum ListenSocket {
    Tcp(TcpListener),
    /// `--listen unix:PATH` (its path, removed at shutdown by worker 0), or
    /// a unix socket systemd passed (no path: systemd owns the file).
    Unix(UnixListener, Option<PathBuf>),
}

/// A connection just accepted.
enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// The address logs and counters show for a unix-socket peer (it has no
/// IP address: the proxy in front knows who the client is).
pub const UNIX_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

impl ListenSocket {
    fn accept(&self) -> io::Result<(Accepted, SocketAddr)> {
        match self {
            ListenSocket::Tcp(l) => l.accept().map(|(s, peer)| (Accepted::Tcp(s), peer)),
            ListenSocket::Unix(l, _) => l.accept().map(|(s, _)| (Accepted::Unix(s), UNIX_PEER)),
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match self {
            ListenSocket::Tcp(l) => l,
            ListenSocket::Unix(l, _) => l,
        }
    }
}

impl Accepted {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Accepted::Tcp(s) => s,
            Accepted::Unix(s) => s,
        }
    }
}

pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Option<SignalFd>,
    conns: Slab<Conn>,
    /// Certificates and rustls configuration, when a listener is TLS.
    tls: Option<TlsSetup>,
    wheel: TimerWheel,
    /// What answers requests (configuration, ROOT, caches, scratch).
    responder: Responder,
    /// One deadline per phase, from the configuration.
    timeouts: Timeouts,
    /// What was accepted, served and closed, and why.
    stats: Stats,
    /// Connections by phase, kept as they move.
    gauges: Gauges,
    /// This worker's share of the fd budget.
    budget: Budget,
    /// Graceful shutdown has begun: every response says close.
    shutting_down: bool,
    pool: BufPool,
    expired: Vec<usize>,
    evict: EvictionQueues,
    /// Accepting waits, since then: the fd budget is full and nothing can
    /// be evicted.
    accept_blocked: Option<Instant>,
    /// Accepting waits until then: EMFILE/ENFILE.
    accept_paused_until: Option<Instant>,
    last_emfile_warning: Option<Instant>,
    last_pause_warning: Option<Instant>,
    /// When cached file fds that nobody uses are next closed.
    next_sweep: Instant,
    shutdown_deadline: Option<Instant>,
    /// This reactor's index among `--workers`.
    worker: usize,
    /// Counters published by every worker, and the shutdown state.
    shared: Arc<Shared>,
    /// The other workers' wakers (worker 0, which takes the signals,
    /// wakes them to shut down or reload); empty for the others.
    peers: Vec<Arc<Waker>>,
    /// Configurations published by SIGHUP reloads.
    reconfig: Arc<Reconfig>,
    /// The reload this worker last applied (0: none).
    config_generation: u64,
}

/// What a SIGHUP reload hands every worker: worker 0 reads the file,
/// publishes the merged configuration here and wakes the others, which
/// pick it up on their next turn.
struct Reconfig {
    /// The configuration as parsed at start, before bound ports or passed
    /// sockets filled it in: what "needs a restart" compares with.
    started: Config,
    /// Connections admitted at most, by every worker: what the memory
    /// bound is computed for.
    max_connections: usize,
    generation: AtomicU64,
    latest: Mutex<Option<Arc<Config>>>,
}

impl Reconfig {
    fn publish(&self, config: Arc<Config>) -> u64 {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        *latest = Some(config);
        self.generation.fetch_add(1, Ordering::Release) + 1
    }

    /// The latest configuration, if newer than `seen`.
    fn since(&self, seen: u64) -> Option<(u64, Arc<Config>)> {
        if self.generation.load(Ordering::Acquire) == seen {
            return None;
        }
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.generation.load(Ordering::Acquire);
        latest.clone().map(|config| (generation, config))
    }
}

/// What one worker's reactor is built from.
struct Parts {
    worker: usize,
    poll: Poll,
    sockets: Vec<Listener>,
    tls: Option<TlsSetup>,
    signals: Option<SignalFd>,
    budget: Budget,
    shared: Arc<Shared>,
    peers: Vec<Arc<Waker>>,
    reconfig: Arc<Reconfig>,
    access_log: Arc<Sink>,
    /// This worker's own waker (its compressor wakes it).
    waker: Arc<Waker>,
}

impl Server {
    /// One reactor with one worker: [`start`] with `--workers 1`.
    pub fn bind(mut config: Config) -> Result<Server, StartError> {
        config.workers = 1;
        let mut servers = start(config)?;
        Ok(servers.remove(0))
    }

    /// A worker's reactor over already-bound listeners.
    fn new(config: Config, parts: Parts) -> Result<Server, StartError> {
        let Parts {
            worker,
            poll,
            sockets,
            tls,
            signals,
            budget,
            shared,
            peers,
            reconfig,
            access_log,
            waker,
        } = parts;
        let root = Root::open(&config.root, config.follow_symlinks).map_err(|source| {
            StartError::Root {
                path: config.root.clone(),
                source,
            }
        })?;
        let mut listeners = Vec::new();
        for (i, mut listener) in sockets.into_iter().enumerate() {
            poll.registry()
                .register(
                    listener.socket.source(),
                    Token(LISTENER_BASE + i),
                    Interest::READABLE,
                )
                .map_err(StartError::reactor(format!("register {}", listener.local)))?;
            listeners.push(listener);
        }
        if let Some(signals) = &signals {
            poll.registry()
                .register(
                    &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(signals)),
                    SIGNAL,
                    Interest::READABLE,
                )
                .map_err(StartError::reactor("register the signalfd"))?;
        }
        let now = Instant::now();
        let timeouts = Timeouts {
            header: config.header_timeout,
            send: config.send_timeout,
            keepalive: config.keepalive_timeout,
            linger: config.linger_timeout,
        };
        let pool = BufPool::new(config.max_header_bytes, 1024);
        let evict =
            EvictionQueues::with_capacity(budget.max_connections, config.evict_stalled_after);
        Ok(Server {
            poll,
            listeners,
            signals,
            // Sized for the budget up front: the memory is only reserved,
            // and pages are touched as connections arrive, so RSS grows
            // per connection without the doubling copies of a growing Vec.
            conns: Slab::with_capacity(budget.max_connections),
            tls,
            wheel: TimerWheel::with_capacity(now, TIMER_TICK, budget.max_connections),
            responder: Responder::new(
                config,
                root,
                access_log,
                now,
                SystemTime::now(),
                Some(waker),
            ),
            timeouts,
            stats: Stats::default(),
            gauges: Gauges::default(),
            budget,
            shutting_down: false,
            pool,
            expired: Vec::new(),
            evict,
            accept_blocked: None,
            accept_paused_until: None,
            last_emfile_warning: None,
            last_pause_warning: None,
            next_sweep: now,
            shutdown_deadline: None,
            worker,
            shared,
            peers,
            reconfig,
            config_generation: 0,
        })
    }

    fn config(&self) -> &Config {
        &self.responder.config
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

            for event in events.iter() {
                match event.token() {
                    SIGNAL => {
                        let taken = self.signals.as_ref().map(SignalFd::drain);
                        let taken = taken.unwrap_or_default();
                        let count = taken.stop;
                        if taken.reopen > 0 {
                            self.responder.access_log_sink().reopen();
                        }
                        if taken.reload > 0 {
                            self.reload();
                        }
                        if count > 0 {
                            let level = if self.shutdown_deadline.is_some() {
                                Shutdown::Immediate
                            } else {
                                Shutdown::Graceful
                            };
                            self.shared.request_shutdown(level);
                            for peer in &self.peers {
                                let _ = peer.wake();
                            }
                        }
                        if self.follow_shutdown(now) {
                            return Ok(());
                        }
                    }
                    WAKE => {
                        self.follow_reload();
                        let done = self.responder.take_compressed() as u64;
                        self.stats
                            .count_compression(CompressOutcome::Compressed, done);
                        if self.follow_shutdown(now) {
                            return Ok(());
                        }
                    }
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE, now),
                    Token(key) => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        let writable =
                            event.is_writable() || event.is_write_closed() || event.is_error();
                        self.step(key, now, Step::Ready { readable, writable });
                    }
                }
            }

            self.expire(now);

            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.accept_all(now);
            }
            if self.accept_blocked.is_some() {
                // A close, an unused cached fd or a connection come of age
                // may have made room; accept() checks and stays blocked
                // (without a syscall) if not.
                self.accept_all(now);
            }
            self.responder.flush_access_log();
            if now >= self.next_sweep {
                self.responder.sweep_open_files();
                self.next_sweep = now + self.config().file_cache_valid.max(TIMER_TICK);
            }
            if self.shared.workers() > 1 {
                let gauges = Gauges {
                    open_files: self.responder.open_files.count(),
                    ..self.gauges
                };
                self.shared.publish(self.worker, &self.stats, &gauges);
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() {
                    log::info!("shutdown complete");
                    return Ok(());
                }
                if now >= deadline {
                    log::info!("shutdown timeout: closing {} connections", self.conns.len());
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for key in keys {
                        self.close(key, CloseReason::Shutdown);
                    }
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        [
            self.wheel.timeout(now),
            self.accept_paused_until
                .map(|t| t.saturating_duration_since(now)),
            self.shutdown_deadline
                .map(|t| t.saturating_duration_since(now)),
            // Blocked admission resumes when a connection becomes
            // evictable by age (an idle one past its grace, a stall), or
            // turns to answering without a slot.
            self.accept_blocked
                .map(|since| {
                    let answer_from = since + self.config().admission_wait;
                    self.evict
                        .next_eligible(Some(since))
                        .map_or(answer_from, |t| t.min(answer_from))
                })
                .map(|t| t.saturating_duration_since(now)),
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
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let before = conn.phase();
        let mut answerer = Answerer {
            responder: &mut self.responder,
            server: ServerView {
                stats: &mut self.stats,
                gauges: self.gauges,
                budget: &self.budget,
                shared: &self.shared,
                worker: self.worker,
                wheel: &self.wheel,
                closing: self.shutting_down.then_some(CloseReason::Shutdown),
            },
        };
        let next = match step {
            Step::Ready { readable, writable } => {
                conn.ready(readable, writable);
                conn.drive(&mut answerer, &mut self.pool, now)
            }
            Step::Deadline => conn.on_deadline(&self.timeouts, &mut answerer, &mut self.pool, now),
        };
        if let Some(handshake) = conn.take_handshake() {
            self.stats.count_handshake(handshake);
        }
        let after = conn.phase();
        let deadline = conn.deadline(&self.timeouts);
        let class = conn.eviction_class();
        if before != after {
            self.count(before, -1);
            self.count(after, 1);
        }
        match next {
            Next::Close(reason) => self.close(key, reason),
            Next::Open if self.shutting_down && after == Phase::Idle => {
                self.close(key, CloseReason::Shutdown)
            }
            Next::Open => {
                self.wheel.schedule(key, deadline);
                let (class, since) = class;
                self.evict.set(key, Some(class), since);
            }
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

    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if conn.phase() == Phase::Writing
            && matches!(reason, CloseReason::SendTimeout | CloseReason::Evicted)
        {
            conn.abort_on_close();
        }
        self.count(conn.phase(), -1);
        self.wheel.cancel(key);
        self.evict.remove(key);
        conn.release(&mut self.pool);
        self.stats.count_close(reason);
        self.stats.count_requests_per_connection(conn.requests());
        log::debug!(
            "{}: closed ({reason}) while {} after {} requests",
            conn.peer(),
            conn.phase(),
            conn.requests()
        );
        // Dropping the stream closes the fd, which also removes it from
        // the epoll set: no EPOLL_CTL_DEL syscall needed.
    }

    /// The fd budget admits one more connection without evicting.
    fn has_room(&self) -> bool {
        self.budget
            .admits(self.conns.len(), self.responder.open_files.count())
    }

    /// Closes connection `key`, the least valuable one (see
    /// [`crate::evict`]), to make room.
    fn shed(&mut self, key: usize, class: Class) {
        self.stats.evictions[class] += 1;
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
    fn accept(&mut self, index: usize, now: Instant) {
        if self.accept_paused_until.is_some() || self.shutdown_deadline.is_some() {
            return;
        }
        loop {
            let mut full = !self.has_room();
            // A cached file fd that no response uses is the cheapest
            // thing to give up.
            while full && self.responder.release_unused_fd() {
                full = !self.has_room();
            }
            let victim = if full {
                self.evict.victim(now, self.accept_blocked)
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
                let since = match self.accept_blocked {
                    Some(since) => since,
                    None => {
                        self.pause_accepting(now);
                        now
                    }
                };
                if now.saturating_duration_since(since) < self.config().admission_wait {
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
                    self.stats.accepted += 1;
                    self.stats.count_close(CloseReason::Overflow);
                    log::debug!("{peer}: TLS newcomer closed without a slot");
                }
                Ok((stream, peer)) if overflow => {
                    self.stats.accepted += 1;
                    self.answer_without_slot(stream, peer, now);
                }
                Ok((stream, peer)) => {
                    self.accept_blocked = None;
                    self.stats.accepted += 1;
                    // Evict only once a connection is really waiting: the
                    // new socket briefly uses the reserve's spare fd.
                    if let Some((key, class)) = victim {
                        self.shed(key, class);
                    }
                    self.admit(stream, peer, tls, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_blocked = None;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // The listener stays readable; retrying now would spin.
                    self.stats.accept_emfile += 1;
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    if self
                        .last_emfile_warning
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                    {
                        self.last_emfile_warning = Some(now);
                        log::warn!(
                            "accept: {e}; pausing accept for {ACCEPT_PAUSE:?} ({} times so far)",
                            self.stats.accept_emfile
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

    /// Starts a pause in admission: counted, and logged at most once a
    /// second (a storm starts and ends pauses many times a second).
    fn pause_accepting(&mut self, now: Instant) {
        self.accept_blocked = Some(now);
        self.stats.accept_pauses += 1;
        if self
            .last_pause_warning
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_pause_warning = Some(now);
            log::warn!(
                "fd budget full ({} connections, {} file fds) and nothing to evict: accepting paused, then answering newcomers without a slot ({} pauses so far)",
                self.conns.len(),
                self.responder.open_files.count(),
                self.stats.accept_pauses
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
        let transport = match stream {
            Accepted::Tcp(s) => Stream::Tcp(Tcp::new(s)),
            Accepted::Unix(s) => Stream::Unix(Unix::new(s)),
        };
        let mut conn = Conn::new(transport, peer, now);
        conn.ready(true, true);
        let mut answerer = Answerer {
            responder: &mut self.responder,
            server: ServerView {
                stats: &mut self.stats,
                gauges: self.gauges,
                budget: &self.budget,
                shared: &self.shared,
                worker: self.worker,
                wheel: &self.wheel,
                closing: Some(CloseReason::Overflow),
            },
        };
        // Whatever it says next, the connection goes: it has no slot.
        let _ = conn.drive(&mut answerer, &mut self.pool, now);
        conn.release(&mut self.pool);
        self.stats.count_close(CloseReason::Overflow);
        self.stats.count_requests_per_connection(conn.requests());
        log::debug!(
            "{peer}: answered without a slot ({} requests)",
            conn.requests()
        );
    }

    fn admit(&mut self, mut stream: Accepted, peer: SocketAddr, tls: bool, now: Instant) {
        // TCP_NODELAY and the keepalive probes were set on the listener:
        // Linux copies them to every accepted socket, which saves five
        // setsockopt calls per connection (tests/budget.rs reads them back
        // off an accepted socket).
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            stream.source(),
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("{peer}: cannot register: {e}");
            return;
        }
        let transport = match (stream, &self.tls, tls) {
            (Accepted::Tcp(stream), Some(setup), true) => match setup.accept(Tcp::new(stream)) {
                Ok(tls) => Stream::Tls(Box::new(tls)),
                Err(e) => {
                    log::warn!("{peer}: cannot start TLS: {e}");
                    self.stats.count_close(CloseReason::TlsError);
                    return;
                }
            },
            (Accepted::Tcp(stream), _, _) => Stream::Tcp(Tcp::new(stream)),
            (Accepted::Unix(stream), _, _) => Stream::Unix(Unix::new(stream)),
        };
        self.stats.handled += 1;
        let conn = entry.insert(Conn::new(transport, peer, now));
        let deadline = conn.deadline(&self.timeouts);
        let snapshot = conn.phase();
        self.wheel.schedule(key, deadline);
        self.evict.set(key, Some(Class::Fresh), now);
        self.count(snapshot, 1);
        // Most clients send their request right behind the handshake:
        // read it now. This saves an epoll round trip, and under a storm
        // it keeps a real client from being evicted as "fresh" by the
        // next connections of the same accept burst before it is read.
        self.step(
            key,
            now,
            Step::Ready {
                readable: true,
                writable: true,
            },
        );
    }

    /// Acts on the shared shutdown state; true means: exit now.
    fn follow_shutdown(&mut self, now: Instant) -> bool {
        match self.shared.shutdown_level() {
            Shutdown::Running => false,
            Shutdown::Graceful => {
                self.begin_shutdown(now);
                false
            }
            Shutdown::Immediate => {
                log::info!(
                    "second signal: exiting at once with {} connections open",
                    self.conns.len()
                );
                true
            }
        }
    }

    /// SIGHUP: reads the `--config` file again (under the same command
    /// line) and applies what may change live, in every worker; then the
    /// certificates and keys. New handshakes use them (every worker shares
    /// the resolver), open connections keep theirs. A file that fails
    /// keeps the running configuration (or certificates): the server never
    /// stops on a reload.
    fn reload(&mut self) {
        crate::systemd::notify("RELOADING=1");
        if let Some(file) = self.config().config_file.clone() {
            match crate::config::reload(self.config()) {
                Err(e) => log::error!("SIGHUP: {e}; keeping the running configuration"),
                Ok(new) => {
                    let running = self.config();
                    let update = running.live_update(&self.reconfig.started, new);
                    let values = |flag: &str| {
                        let spec = crate::config::option(flag).expect("a flag from OPTIONS");
                        let (old, new) = ((spec.show)(running), (spec.show)(&update.config));
                        format!("{} {old} -> {new}", spec.key())
                    };
                    let mut changed: Vec<String> =
                        update.changed.iter().map(|f| values(f)).collect();
                    // Headers and the log change the formula's terms.
                    let connections = self.reconfig.max_connections;
                    let bound = |c: &Config| MemoryBound::compute(c, connections).total();
                    let (old_bound, new_bound) = (bound(running), bound(&update.config));
                    if old_bound != new_bound {
                        const MIB: f64 = 1024.0 * 1024.0;
                        changed.push(format!(
                            "heap bound {:.1} MiB -> {:.1} MiB",
                            old_bound as f64 / MIB,
                            new_bound as f64 / MIB
                        ));
                    }
                    let restart: Vec<&str> = update.need_restart.iter().map(|f| &f[2..]).collect();
                    log::info!(
                        "SIGHUP: reloaded {}: {}{}",
                        file.display(),
                        if changed.is_empty() {
                            "nothing changed".to_string()
                        } else {
                            format!("changed {}", changed.join(", "))
                        },
                        if restart.is_empty() {
                            String::new()
                        } else {
                            format!("; needs a restart: {}", restart.join(", "))
                        }
                    );
                    if update.config.access_log != running.access_log {
                        let sink = self.responder.access_log_sink();
                        sink.open(update.config.access_log.clone());
                    }
                    let config = Arc::new(update.config);
                    self.config_generation = self.reconfig.publish(Arc::clone(&config));
                    self.reconfigure(&config);
                    for peer in &self.peers {
                        let _ = peer.wake();
                    }
                }
            }
        }
        match &self.tls {
            None if self.config().config_file.is_none() => {
                log::info!("SIGHUP: nothing to reload (no --config file, no TLS listener)")
            }
            None => {}
            Some(tls) => match tls.reload() {
                Ok(n) => log::info!("SIGHUP: reloaded {n} TLS certificate{}", plural(n)),
                Err(e) => {
                    log::error!("SIGHUP: TLS reload failed, keeping the old certificates: {e}")
                }
            },
        }
        crate::systemd::notify("READY=1");
    }

    /// A worker woken by worker 0: takes a configuration it published.
    fn follow_reload(&mut self) {
        if let Some((generation, config)) = self.reconfig.since(self.config_generation) {
            self.config_generation = generation;
            self.reconfigure(&config);
        }
    }

    /// Applies a reloaded configuration (its restart-only options are the
    /// running ones): deadlines of connections from now on, and what
    /// answers requests. Open connections stay open.
    fn reconfigure(&mut self, config: &Config) {
        self.timeouts = Timeouts {
            header: config.header_timeout,
            send: config.send_timeout,
            keepalive: config.keepalive_timeout,
            linger: config.linger_timeout,
        };
        self.evict.set_stall_grace(config.evict_stalled_after);
        self.responder.reconfigure(config.clone());
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        if self.worker == 0 {
            crate::systemd::notify("STOPPING=1");
        }
        log::info!(
            "signal: shutting down gracefully ({} connections, up to {:?})",
            self.conns.len(),
            self.config().shutdown_timeout
        );
        self.shutting_down = true;
        self.shutdown_deadline = Some(now + self.config().shutdown_timeout);
        // Closing the listeners makes new connections fail at once
        // instead of waiting in a backlog nobody will accept from.
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(listener.socket.source());
            if let (ListenSocket::Unix(_, Some(path)), 0) = (&listener.socket, self.worker) {
                // As nginx does: the socket file goes with the server.
                let _ = std::fs::remove_file(path);
            }
        }
        let quiet: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.can_close_now())
            .map(|(k, _)| k)
            .collect();
        for key in quiet {
            self.close(key, CloseReason::Shutdown);
        }
    }
}

/// Computes the fd budget, binds every listener (one socket per worker
/// with SO_REUSEPORT when `--workers` > 1, so the kernel spreads new
/// connections across them), takes the signals, and builds one reactor per
/// worker. Logs where it listens and what it serves.
pub fn start(mut config: Config) -> Result<Vec<Server>, StartError> {
    let started = config.clone();
    let workers = config.workers.max(1);
    // Socket activation: systemd bound the listeners; ours are not used.
    let passed = crate::systemd::listen_fds();
    if !passed.is_empty() {
        log::info!(
            "socket activation: {} listener{} passed by systemd (--listen and --tls-listen are not bound)",
            passed.len(),
            plural(passed.len())
        );
        config.listen.clear();
        config.listen_unix.clear();
        config.tls_listen.clear();
    }
    let budget = setup_fd_budget(&config, passed.len())?;
    let passed_tls = passed.iter().any(|p| p.tls);
    if passed_tls && config.tls_certs.is_empty() {
        return Err(StartError::Tls(crate::tls::CertError {
            path: PathBuf::new(),
            reason: "systemd passed a TLS socket, but no --tls-cert and --tls-key".into(),
        }));
    }
    let tls = if config.tls_listen.is_empty() && !passed_tls {
        None
    } else {
        Some(
            TlsSetup::load(
                &config.tls_certs,
                config.tls_session_cache,
                config.tls_tickets,
            )
            .map_err(StartError::Tls)?,
        )
    };
    let mut sockets: Vec<Vec<Listener>> = (0..workers).map(|_| Vec::new()).collect();
    let addrs = config.listen.iter().map(|a| (*a, false));
    let tls_addrs = config.tls_listen.iter().map(|a| (*a, true));
    for (addr, is_tls) in addrs.chain(tls_addrs) {
        let addr = &addr;
        let reuse_port = workers > 1;
        let first = bind_listener(*addr, config.backlog, reuse_port, config.tcp_keepalive)
            .map_err(|source| StartError::Listen {
                addr: *addr,
                source,
            })?;
        // With port 0 the kernel picked a port: the other workers join it.
        let local = first.local_addr().unwrap_or(*addr);
        sockets[0].push(Listener {
            socket: ListenSocket::Tcp(first),
            local,
            tls: is_tls,
        });
        for worker_sockets in sockets.iter_mut().skip(1) {
            let more = bind_listener(local, config.backlog, reuse_port, config.tcp_keepalive)
                .map_err(|source| StartError::Listen {
                    addr: local,
                    source,
                })?;
            worker_sockets.push(Listener {
                socket: ListenSocket::Tcp(more),
                local,
                tls: is_tls,
            });
        }
    }
    for Passed { fd, tls: is_tls } in passed {
        let socket = socket2::Socket::from(fd);
        let reactor_error = StartError::reactor("use a socket passed by systemd");
        socket.set_nonblocking(true).map_err(reactor_error)?;
        let local = socket
            .local_addr()
            .map_err(StartError::reactor("read a passed socket's address"))?;
        for worker_sockets in sockets.iter_mut() {
            let fd = socket
                .try_clone()
                .map_err(StartError::reactor("dup a passed socket"))?;
            let listener = match local.as_socket() {
                Some(addr) => Listener {
                    socket: ListenSocket::Tcp(TcpListener::from_std(fd.into())),
                    local: addr,
                    tls: is_tls,
                },
                None => Listener {
                    socket: ListenSocket::Unix(UnixListener::from_std(fd.into()), None),
                    local: UNIX_PEER,
                    tls: false,
                },
            };
            worker_sockets.push(listener);
        }
    }
    for path in &config.listen_unix {
        let listen_error = |source| StartError::ListenUnix {
            path: path.clone(),
            source,
        };
        let socket = bind_unix(path, config.backlog).map_err(listen_error)?;
        // One socket, shared by every worker (no SO_REUSEPORT for unix
        // sockets): each gets its own fd for it.
        for worker_sockets in sockets.iter_mut() {
            let fd = socket.try_clone().map_err(listen_error)?;
            worker_sockets.push(Listener {
                socket: ListenSocket::Unix(UnixListener::from_std(fd.into()), Some(path.clone())),
                local: UNIX_PEER,
                tls: false,
            });
        }
    }
    // Blocks SIGINT/SIGTERM in this thread; the worker threads spawned
    // from it inherit the mask, so only the signalfd ever sees them.
    let mut signals = match SignalFd::new() {
        Ok(signals) => Some(signals),
        Err(e) => {
            log::warn!("no signalfd ({e}): SIGTERM will not shut down gracefully");
            None
        }
    };
    // The addresses as bound (a port 0 became a real one): the responder
    // names the TLS port in --redirect-to-https's Location.
    let bound: Vec<SocketAddr> = sockets[0]
        .iter()
        .filter(|l| l.tls)
        .map(|l| l.local)
        .collect();
    config.tls_listen = bound;
    let share = budget.share(workers);
    // Every worker's epoll and waker first: worker 0 (which takes the
    // signals) gets the others' wakers when it is built; each worker's
    // own is also its compressor's.
    let polls = (0..workers)
        .map(|_| Poll::new().map_err(StartError::reactor("create epoll")))
        .collect::<Result<Vec<Poll>, StartError>>()?;
    let wakers = polls
        .iter()
        .map(|poll| {
            Waker::new(poll.registry(), WAKE)
                .map(Arc::new)
                .map_err(StartError::reactor("create a waker"))
        })
        .collect::<Result<Vec<Arc<Waker>>, StartError>>()?;
    let shared = Arc::new(Shared::new(workers));
    let reconfig = Arc::new(Reconfig {
        started,
        max_connections: budget.max_connections,
        generation: AtomicU64::new(0),
        latest: Mutex::new(None),
    });
    // Opened before privileges are dropped, as nginx's master opens its
    // logs; the writer thread starts here.
    let access_log = Sink::start(config.access_log.as_deref()).map_err(|source| {
        let path = config.access_log.clone().unwrap_or_default();
        StartError::AccessLog { path, source }
    })?;
    let mut servers = Vec::with_capacity(workers);
    for (worker, (poll, worker_sockets)) in polls.into_iter().zip(sockets).enumerate() {
        let parts = Parts {
            worker,
            poll,
            sockets: worker_sockets,
            tls: tls.clone(),
            signals: if worker == 0 { signals.take() } else { None },
            budget: share,
            shared: Arc::clone(&shared),
            peers: if worker == 0 {
                wakers[1..].to_vec()
            } else {
                Vec::new()
            },
            reconfig: Arc::clone(&reconfig),
            access_log: Arc::clone(&access_log),
            waker: Arc::clone(&wakers[worker]),
        };
        servers.push(Server::new(config.clone(), parts)?);
    }
    // Everything that may need root is done: listeners, ROOT, keys. The
    // "listening" line below then means: serving, as the final user.
    crate::privileges::drop_to(config.user.as_deref()).map_err(StartError::User)?;
    let addrs: Vec<String> = servers[0]
        .listeners
        .iter()
        .map(|l| match (&l.socket, l.tls) {
            (ListenSocket::Unix(_, Some(path)), _) => format!("unix:{}", path.display()),
            (ListenSocket::Unix(_, None), _) => "unix:(passed by systemd)".to_string(),
            (_, true) => format!("https://{}/", l.local),
            (_, false) => format!("http://{}/", l.local),
        })
        .collect();
    log::info!(
        "holdline {} listening on {} serving {} with {} worker{} (keep-alive {:?}, max {} requests per connection)",
        env!("CARGO_PKG_VERSION"),
        addrs.join(" "),
        servers[0].responder.root_path().display(),
        workers,
        plural(workers),
        config.keepalive_timeout,
        config.max_requests,
    );
    crate::systemd::notify("READY=1");
    Ok(servers)
}

/// Runs every worker: the first on this thread, the others on their own,
/// and waits for all of them.
pub fn run_workers(servers: Vec<Server>) -> io::Result<()> {
    let mut servers = servers.into_iter();
    let Some(mut first) = servers.next() else {
        return Ok(());
    };
    let mut handles = Vec::new();
    for mut server in servers {
        let name = format!("holdline-w{}", server.worker);
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || server.run())?;
        handles.push(handle);
    }
    let mut result = first.run();
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = result.and(Err(e)),
            Err(_) => result = result.and(Err(io::Error::other("a worker panicked"))),
        }
    }
    result
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

enum Step {
    Ready { readable: bool, writable: bool },
    Deadline,
}

/// Reads RLIMIT_NOFILE, raises the soft limit, computes the budget, and
/// logs the figures in one line.
fn setup_fd_budget(config: &Config, passed: usize) -> Result<Budget, StartError> {
    let (soft, hard) = budget::nofile_limit().map_err(|source| StartError::Rlimit {
        set_to: None,
        source,
    })?;
    let budget = Budget::compute(
        soft,
        hard,
        config.max_fds,
        config.max_connections,
        Reserve::new(
            config.listen.len() + config.tls_listen.len() + config.listen_unix.len() + passed,
            config.workers,
        ),
    )
    .map_err(StartError::Budget)?;
    if budget.limit != soft {
        budget::set_soft_nofile(budget.limit, hard).map_err(|e| StartError::Rlimit {
            set_to: Some(budget.limit),
            source: e,
        })?;
    }
    log::info!(
        "fd limit {} -> {} (hard {}), reserve {}, file headroom {}, max connections {}",
        budget.limit_before,
        budget.limit,
        budget.hard_limit,
        budget.reserve,
        budget.file_headroom,
        budget.max_connections
    );
    let memory = MemoryBound::compute(config, budget.max_connections);
    const MIB: f64 = 1024.0 * 1024.0;
    let tls = if memory.tls_per_connection > 0 {
        format!(
            " (TLS: {:.0} KiB of it per connection, + sessions {:.0} MiB)",
            memory.tls_per_connection as f64 / 1024.0,
            memory.tls_sessions as f64 / MIB
        )
    } else {
        String::new()
    };
    log::info!(
        "heap bound {:.0} MiB: {} connections x {:.0} KiB working{tls} + file cache {:.0} MiB + scratch {:.1} MiB + compression {:.0} MiB{}",
        memory.total() as f64 / MIB,
        memory.connections,
        (memory.tables_per_connection + memory.work_per_connection + memory.tls_per_connection)
            as f64
            / 1024.0,
        memory.file_cache as f64 / MIB,
        memory.fixed as f64 / MIB,
        (memory.compress_cache + memory.compressors) as f64 / MIB,
        if memory.access_log > 0 {
            format!(" + access log {:.1} MiB", memory.access_log as f64 / MIB)
        } else {
            String::new()
        },
    );
    Ok(budget)
}

/// Binds and listens on a unix socket at `path`. A socket file left by a
/// server that is gone (nothing accepts on it) is replaced; one a live
/// server accepts on is an error (EADDRINUSE), as is any other file.
fn bind_unix(path: &std::path::Path, backlog: i32) -> io::Result<socket2::Socket> {
    use socket2::{Domain, SockAddr, Socket, Type};
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let live = std::os::unix::net::UnixStream::connect(path).is_ok();
        if !meta.file_type().is_socket() || live {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        log::info!("removing the stale socket file {}", path.display());
        std::fs::remove_file(path)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog)?;
    Ok(socket)
}

fn bind_listener(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
    keepalive: Option<TcpKeepalive>,
) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Inherited by accepted sockets. Responses are written whole: Nagle
    // would only delay the last segment of each.
    socket.set_tcp_nodelay(true)?;
    if let Some(ka) = keepalive {
        socket.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(ka.time)
                .with_interval(ka.interval)
                .with_retries(ka.probes),
        )?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}
