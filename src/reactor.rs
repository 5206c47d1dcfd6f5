//! The reactor: one thread, one `mio::Poll`, everything else is data.
//!
//! It owns the listeners, the slab of connections, the timer wheel and the
//! counters, and it is the only code that waits on readiness. One turn of
//! the loop:
//!
//! 1. sleep in `epoll_wait` until an event or the next due wheel tick;
//! 2. for each event: accept (listener), drive a connection, or take a
//!    signal;
//! 3. advance the wheel and hand each expired connection its deadline;
//! 4. give each touched connection its new deadline in the wheel.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::config::Config;
use crate::conn::{Conn, Phase};
use crate::files::Root;
use crate::pool::BufPool;
use crate::serve::Ctx;
use crate::signals::SignalFd;
use crate::stats::CloseReason;
use crate::wheel::TimerWheel;

/// The wheel's tick: deadlines fire at most this late.
pub const TIMER_TICK: Duration = Duration::from_millis(100);

/// After accept fails with EMFILE/ENFILE, wait this long before trying
/// again, rather than spin on a listener that stays readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

const SIGNAL: Token = Token(usize::MAX);
const LISTENER_BASE: usize = usize::MAX - 1024;

/// Why the server could not start. Printed as one line.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

pub struct Server {
    poll: Poll,
    listeners: Vec<(TcpListener, SocketAddr)>,
    signals: Option<SignalFd>,
    conns: Slab<Conn>,
    wheel: TimerWheel,
    ctx: Ctx,
    pool: BufPool,
    expired: Vec<usize>,
    /// Accepting waits: the connection limit is reached.
    accept_blocked: bool,
    /// Accepting waits until then: EMFILE/ENFILE.
    accept_paused_until: Option<Instant>,
    last_emfile_warning: Option<Instant>,
    shutdown_deadline: Option<Instant>,
}

impl Server {
    /// Opens ROOT, binds every listener and prepares the reactor; logs one
    /// line saying where it listens and what it serves.
    pub fn bind(config: Config) -> Result<Server, StartError> {
        let root = Root::open(&config.root)
            .map_err(|e| StartError(format!("cannot serve {}: {e}", config.root.display())))?;
        let poll = Poll::new().map_err(|e| StartError(format!("cannot create epoll: {e}")))?;
        let mut listeners = Vec::new();
        for (i, addr) in config.listen.iter().enumerate() {
            let mut listener = bind_listener(*addr, config.backlog)
                .map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?;
            let local = listener.local_addr().unwrap_or(*addr);
            poll.registry()
                .register(&mut listener, Token(LISTENER_BASE + i), Interest::READABLE)
                .map_err(|e| StartError(format!("cannot register {addr}: {e}")))?;
            listeners.push((listener, local));
        }
        let signals = match SignalFd::new() {
            Ok(signals) => {
                poll.registry()
                    .register(
                        &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&signals)),
                        SIGNAL,
                        Interest::READABLE,
                    )
                    .map_err(|e| StartError(format!("cannot register the signalfd: {e}")))?;
                Some(signals)
            }
            Err(e) => {
                log::warn!("no signalfd ({e}): SIGTERM will not shut down gracefully");
                None
            }
        };
        let addrs: Vec<String> = listeners
            .iter()
            .map(|(_, a)| format!("http://{a}/"))
            .collect();
        log::info!(
            "holdline {} listening on {} serving {} (keep-alive {:?}, max {} requests per connection)",
            env!("CARGO_PKG_VERSION"),
            addrs.join(" "),
            root.path().display(),
            config.keepalive_timeout,
            config.max_requests,
        );
        let now = Instant::now();
        let pool = BufPool::new(config.max_header_bytes, 1024);
        Ok(Server {
            poll,
            listeners,
            signals,
            conns: Slab::with_capacity(1024),
            wheel: TimerWheel::new(now, TIMER_TICK),
            ctx: Ctx::new(config, root),
            pool,
            expired: Vec::new(),
            accept_blocked: false,
            accept_paused_until: None,
            last_emfile_warning: None,
            shutdown_deadline: None,
        })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, a)| *a).collect()
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
            self.ctx.date.refresh(SystemTime::now());

            for event in events.iter() {
                match event.token() {
                    SIGNAL => {
                        let count = self.signals.as_ref().map_or(0, SignalFd::drain);
                        if count > 0 && self.on_signal(now) {
                            log::info!(
                                "second signal: exiting at once with {} connections open",
                                self.conns.len()
                            );
                            return Ok(());
                        }
                    }
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE, now),
                    Token(key) => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        let writable =
                            event.is_writable() || event.is_write_closed() || event.is_error();
                        let Some(conn) = self.conns.get_mut(key) else {
                            continue;
                        };
                        conn.ready(readable, writable);
                        let result = conn.drive(&mut self.ctx, &mut self.pool, now);
                        self.settle(key, result);
                    }
                }
            }

            self.expire(now);

            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.accept_all(now);
            }
            if self.accept_blocked && !self.at_connection_limit() {
                self.accept_blocked = false;
                self.accept_all(now);
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
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn expire(&mut self, now: Instant) {
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.advance(now, &mut expired);
        for &key in &expired {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let result = conn.on_deadline(&mut self.ctx, &mut self.pool, now);
            self.settle(key, result);
        }
        expired.clear();
        self.expired = expired;
    }

    /// After a connection moved: close it, or file its next deadline.
    fn settle(&mut self, key: usize, result: Result<(), CloseReason>) {
        match result {
            Err(reason) => self.close(key, reason),
            Ok(()) => {
                let Some(conn) = self.conns.get(key) else {
                    return;
                };
                if self.ctx.shutting_down && conn.phase() == Phase::Idle {
                    self.close(key, CloseReason::Shutdown);
                    return;
                }
                let deadline = conn.deadline(&self.ctx.config);
                self.wheel.schedule(key, deadline);
            }
        }
    }

    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        self.wheel.cancel(key);
        conn.release(&mut self.pool);
        self.ctx.stats.count_close(reason);
        log::debug!(
            "{}: closed ({reason}) while {} after {} requests",
            conn.peer(),
            conn.phase(),
            conn.requests()
        );
        // Dropping the stream closes the fd, which also removes it from
        // the epoll set: no EPOLL_CTL_DEL syscall needed.
    }

    fn at_connection_limit(&self) -> bool {
        self.ctx
            .config
            .max_connections
            .is_some_and(|max| self.conns.len() >= max)
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
            if self.at_connection_limit() {
                // Stop; new connections wait in the kernel backlog. The
                // loop retries once a connection closes.
                self.accept_blocked = true;
                return;
            }
            let Some((listener, _)) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.ctx.stats.accepted += 1;
                    self.admit(stream, peer, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // The listener stays readable; retrying now would spin.
                    self.ctx.stats.accept_emfile += 1;
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    if self
                        .last_emfile_warning
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                    {
                        self.last_emfile_warning = Some(now);
                        log::warn!(
                            "accept: {e}; pausing accept for {ACCEPT_PAUSE:?} ({} times so far)",
                            self.ctx.stats.accept_emfile
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

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        // Responses are written whole; Nagle would only delay the last
        // segment of each.
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("{peer}: TCP_NODELAY: {e}");
        }
        if let Some(ka) = self.ctx.config.tcp_keepalive {
            let params = socket2::TcpKeepalive::new()
                .with_time(ka.time)
                .with_interval(ka.interval)
                .with_retries(ka.probes);
            if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&params) {
                log::debug!("{peer}: TCP keepalive: {e}");
            }
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("{peer}: cannot register: {e}");
            return;
        }
        self.ctx.stats.handled += 1;
        let conn = entry.insert(Conn::new(stream, peer, now));
        let deadline = conn.deadline(&self.ctx.config);
        self.wheel.schedule(key, deadline);
    }

    /// Returns true when this is the second signal: exit at once.
    fn on_signal(&mut self, now: Instant) -> bool {
        if self.shutdown_deadline.is_some() {
            return true;
        }
        log::info!(
            "signal: shutting down gracefully ({} connections, up to {:?})",
            self.conns.len(),
            self.ctx.config.shutdown_timeout
        );
        self.ctx.shutting_down = true;
        self.shutdown_deadline = Some(now + self.ctx.config.shutdown_timeout);
        // Closing the listeners makes new connections fail at once
        // instead of waiting in a backlog nobody will accept from.
        for (mut listener, _) in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let quiet: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_quiet())
            .map(|(k, _)| k)
            .collect();
        for key in quiet {
            self.close(key, CloseReason::Shutdown);
        }
        false
    }
}

fn bind_listener(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}
