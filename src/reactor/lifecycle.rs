//! What happens to a running reactor besides connections: signals, the
//! SIGHUP reload (worker 0 reads the file, every worker applies its live
//! half), and graceful shutdown (listeners closed, quiet connections
//! closed, the rest given until `--shutdown-timeout`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::listeners::ListenSocket;
use super::{Server, plural};
use crate::close::CloseReason;
use crate::config::{Config, Live, LiveUpdate};
use crate::memory::MemoryBound;
use crate::signals::SignalFd;
use crate::stats::Shutdown;
use crate::wake::Wake;

/// What a SIGHUP reload hands every worker: worker 0 reads the file,
/// publishes its live half here and wakes the others, which pick it up
/// on their next turn. Only a [`Live`] crosses: what needs a restart
/// cannot be handed over by mistake.
pub(super) struct Reconfig {
    /// The configuration as parsed at start, before bound ports or passed
    /// sockets filled it in: what "needs a restart" compares with.
    pub started: Config,
    /// Connections admitted at most, by every worker: what the memory
    /// bound is computed for.
    pub max_connections: usize,
    generation: AtomicU64,
    latest: Mutex<Option<Arc<Live>>>,
}

impl Reconfig {
    pub fn new(started: Config, max_connections: usize) -> Reconfig {
        Reconfig {
            started,
            max_connections,
            generation: AtomicU64::new(0),
            latest: Mutex::new(None),
        }
    }

    fn publish(&self, live: Arc<Live>) -> u64 {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        *latest = Some(live);
        self.generation.fetch_add(1, Ordering::Release) + 1
    }

    /// The latest live options, if newer than `seen`.
    fn since(&self, seen: u64) -> Option<(u64, Arc<Live>)> {
        if self.generation.load(Ordering::Acquire) == seen {
            return None;
        }
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.generation.load(Ordering::Acquire);
        latest.clone().map(|live| (generation, live))
    }
}

impl Server {
    /// The signalfd is readable: SIGUSR1 reopens the access log, SIGHUP
    /// reloads, SIGTERM/SIGINT shut down (a second one at once). True
    /// means: exit now.
    pub(super) fn take_signals(&mut self, now: Instant) -> bool {
        let taken = self.signals.as_ref().map(SignalFd::drain);
        let taken = taken.unwrap_or_default();
        if taken.reopen > 0 {
            self.responder.access_log_sink().reopen();
        }
        if taken.reload > 0 {
            self.reload();
        }
        if taken.upgrade > 0 {
            self.start_upgrade(now);
        }
        if taken.stop > 0 {
            let level = if self.shutdown_deadline.is_some() || self.drain_until.is_some() {
                Shutdown::Immediate
            } else if self.config.live.drain_delay.is_zero() {
                Shutdown::Graceful
            } else {
                Shutdown::Draining
            };
            self.ledger.shared.request_shutdown(level);
            for peer in &self.peers {
                peer.wake(Wake::Shutdown);
            }
        }
        self.follow_shutdown(now)
    }

    /// Acts on the shared shutdown state; true means: exit now.
    pub(super) fn follow_shutdown(&mut self, now: Instant) -> bool {
        match self.ledger.shared.shutdown_level() {
            Shutdown::Running => false,
            Shutdown::Draining => {
                self.begin_drain(now);
                false
            }
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
    /// line) and applies its live options in every worker; then the
    /// certificates and keys. New handshakes use them (every worker shares
    /// the resolver), open connections keep theirs. A file that fails
    /// keeps the running configuration (or certificates): the server never
    /// stops on a reload.
    fn reload(&mut self) {
        crate::systemd::notify("RELOADING=1");
        // A deploy that flipped ROOT is seen at once.
        self.responder.follow_root();
        if let Some(file) = self.config.source.file.clone() {
            match crate::config::reload(&self.config) {
                Err(e) => log::error!("SIGHUP: {e}; keeping the running configuration"),
                Ok(new) => {
                    let update = self.config.live_update(&self.reconfig.started, new);
                    let described = self.describe(&update);
                    let old_log = self.config.live.access_log.clone();
                    // `holdline check`'s checks first (every ROOT, every
                    // certificate, every site's rules); then this worker
                    // opens the sites' ROOTs: a failure keeps the running
                    // configuration everywhere.
                    let problems = crate::check::problems(&update.config);
                    let live = Arc::new(update.config.live);
                    let checked = match problems.is_empty() {
                        true => self.reconfigure(&live),
                        false => Err(problems.join("; ")),
                    };
                    match checked {
                        Err(e) => log::error!("SIGHUP: {e}; keeping the running configuration"),
                        Ok(()) => {
                            log::info!("SIGHUP: reloaded {}: {described}", file.display());
                            if live.access_log != old_log {
                                let sink = self.responder.access_log_sink();
                                sink.open(live.access_log.clone());
                            }
                            if let Some(acme) = &self.acme {
                                acme.set_sites(live.acme_sites());
                            }
                            self.config_generation = self.reconfig.publish(live);
                        }
                    }
                }
            }
        }
        // The other workers follow ROOT, and take what was published.
        for peer in &self.peers {
            peer.wake(Wake::Reload);
        }
        match &self.tls {
            None if self.config.source.file.is_none() => {
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

    /// What a reload changes, as its log line says it: each option
    /// applied with its old and new value, the heap bound when a term of
    /// it moved, and what waits for a restart.
    fn describe(&self, update: &LiveUpdate) -> String {
        let running = &self.config;
        let values = |flag: &str| match crate::config::option(flag) {
            Some(spec) => {
                let (old, new) = (spec.shown(running), spec.shown(&update.config));
                format!("{} {old} -> {new}", spec.key())
            }
            None => flag.to_string(),
        };
        let mut changed: Vec<String> = update.changed.iter().map(|f| values(f)).collect();
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
        let changed = match changed.is_empty() {
            true => "nothing changed".to_string(),
            false => format!("changed {}", changed.join(", ")),
        };
        match restart.is_empty() {
            true => changed,
            false => format!("{changed}; needs a restart: {}", restart.join(", ")),
        }
    }

    /// A worker woken by worker 0's reload: looks at ROOT again, and
    /// takes the live options it published.
    pub(super) fn follow_reload(&mut self) {
        self.responder.follow_root();
        if let Some((generation, live)) = self.reconfig.since(self.config_generation) {
            self.config_generation = generation;
            if let Err(e) = self.reconfigure(&live) {
                log::error!(
                    "SIGHUP: worker {}: {e}; keeping its running configuration",
                    self.ledger.worker
                );
            }
        }
    }

    /// Applies reloaded live options: what answers requests, and the
    /// timeouts of every deadline filed from now on (a connection's, at its
    /// next step; an idle one whose keep-alive was shortened keeps its
    /// longer deadline until the wheel reaches it, then is judged by the
    /// new timeout). Open connections stay open; a request already parsed
    /// keeps the limits it was parsed under (a chunked body's held head, a
    /// body's `--max-body-bytes`), a head still arriving is judged, when
    /// complete, under the live limits then in force (`--max-uri-bytes`;
    /// `--max-header-bytes` is fixed, it sizes the input buffers).
    ///
    /// A site's ROOT that cannot be opened changes nothing (the error
    /// says which).
    fn reconfigure(&mut self, live: &Live) -> Result<(), String> {
        let mut config = self.config.clone();
        config.live = live.clone();
        self.responder.reconfigure(&config)?;
        self.config = config;
        self.timeouts = live.timeouts();
        self.evict.set_stall_grace(live.evict_stalled_after);
        self.clients
            .connections()
            .set_max(live.max_client_connections);
        Ok(())
    }

    /// The first SIGTERM with a `--drain-delay`: go on serving and
    /// accepting for that long, the health check answering 503 and every
    /// response saying close, so that a load balancer takes this instance
    /// out of its pool before its listeners close; then the graceful
    /// shutdown ([`Server::drain_done`]).
    fn begin_drain(&mut self, now: Instant) {
        if self.drain_until.is_some() || self.shutdown_deadline.is_some() {
            return;
        }
        if self.ledger.worker == 0 {
            crate::systemd::notify("STOPPING=1");
        }
        let delay = self.config.live.drain_delay;
        log::info!(
            "signal: draining for {delay:?} (health check failing, still serving {} connections), then shutting down",
            self.conns.len()
        );
        self.drain_until = Some(now + delay);
    }

    /// At the end of a turn: a drain whose time is up becomes the graceful
    /// shutdown.
    pub(super) fn drain_done(&mut self, now: Instant) {
        if self.drain_until.is_some_and(|until| now >= until) {
            self.begin_shutdown(now);
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        if self.ledger.worker == 0 && self.drain_until.is_none() {
            crate::systemd::notify("STOPPING=1");
        }
        let timeout = self.config.live.shutdown_timeout;
        log::info!(
            "signal: shutting down gracefully ({} connections, up to {timeout:?})",
            self.conns.len(),
        );
        // What the kernel already queued is taken first: closing a
        // listener resets the connections in its backlog (with
        // SO_REUSEPORT, each worker's socket has a backlog of its own),
        // and these clients connected while the server still served.
        // They are answered, with `Connection: close`.
        self.shutdown_deadline = Some(now + timeout);
        for i in 0..self.listeners.len() {
            self.accept_queued(i, now);
        }
        // Closing the listeners makes new connections fail at once
        // instead of waiting in a backlog nobody will accept from.
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(listener.socket.source());
            if let (ListenSocket::Unix(_, Some(path)), 0) = (&listener.socket, self.ledger.worker) {
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

    /// At the end of a turn: a graceful shutdown is done when the last
    /// connection is gone, or when its time is up (the rest are closed).
    /// True means: exit now.
    pub(super) fn shutdown_done(&mut self, now: Instant) -> bool {
        let Some(deadline) = self.shutdown_deadline else {
            return false;
        };
        if self.conns.is_empty() {
            log::info!("shutdown complete");
            return true;
        }
        if now >= deadline {
            log::info!("shutdown timeout: closing {} connections", self.conns.len());
            let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.close(key, CloseReason::Shutdown);
            }
            return true;
        }
        false
    }
}
