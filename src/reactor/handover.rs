//! A binary upgrade, as a reactor takes part in it (see [`crate::upgrade`]
//! for the protocol): worker 0 of the running process starts the
//! successor on SIGUSR2 and waits for it to serve; then every worker
//! stops accepting and hands its parked connections over, now and as
//! busy ones finish, and exits when it has none left. Worker 0 of the
//! successor takes the connections up.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use mio::Interest;
use mio::unix::SourceFd;

use super::{Server, UPGRADE};
use crate::close::CloseReason;
use crate::conn::Conn;
use crate::http::session::Phase;
use crate::stream::Stream;
use crate::transport::{Tcp, Unix};
use crate::upgrade::{self, Channel, FromPredecessor, FromSuccessor, Successor};
use crate::wake::Wake;

/// Where this reactor is in an upgrade.
pub(super) enum Upgrade {
    /// Worker 0 of the running process: the successor is starting.
    Starting {
        successor: Successor,
        /// It must say it serves by then.
        deadline: Instant,
    },
    /// The successor serves: listeners are gone, parked connections go to
    /// it, this reactor exits when it has none (or at the deadline).
    HandingOver {
        channel: Arc<Channel>,
        deadline: Instant,
        /// Connections handed over by this worker.
        handed: usize,
    },
    /// Worker 0 of the successor: the predecessor's connections arrive.
    Receiving { channel: Channel, taken: usize },
}

/// The channel the other workers hand their connections over on, once
/// worker 0 says so.
pub(super) type HandoverSlot = Arc<Mutex<Option<Arc<Channel>>>>;

/// The predecessor's side: starting the successor, handing over,
/// giving up on a successor that fails.
impl Server {
    /// SIGUSR2 (worker 0): starts the successor, hands it the listeners,
    /// and goes on serving until it says it serves.
    pub(super) fn start_upgrade(&mut self, now: Instant) {
        if self.upgrade.is_some() || self.shutdown_deadline.is_some() || self.drain_until.is_some()
        {
            log::warn!("SIGUSR2: an upgrade or a shutdown is under way; ignored");
            return;
        }
        let successor = match upgrade::spawn(&self.listener_records) {
            Ok(successor) => successor,
            Err(e) => {
                log::error!("SIGUSR2: cannot start the new binary: {e}; still serving");
                return;
            }
        };
        let registered = successor.channel.set_nonblocking(true).and_then(|()| {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&successor.channel);
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), UPGRADE, Interest::READABLE)
        });
        let pid = successor.child.id();
        if let Err(e) = registered {
            log::error!("SIGUSR2: cannot watch the new process: {e}; still serving");
            self.abandon(successor, "could not be watched");
            return;
        }
        log::info!(
            "SIGUSR2: started the new binary (pid {pid}); serving until it says it serves (at most {:?})",
            upgrade::READY_TIMEOUT
        );
        self.upgrade = Some(Upgrade::Starting {
            successor,
            deadline: now + upgrade::READY_TIMEOUT,
        });
    }

    /// The upgrade channel is readable.
    pub(super) fn upgrade_event(&mut self, now: Instant) {
        match self.upgrade.take() {
            Some(Upgrade::Starting {
                successor,
                deadline,
            }) => match upgrade::read_successor(&successor.channel) {
                FromSuccessor::Nothing => {
                    self.upgrade = Some(Upgrade::Starting {
                        successor,
                        deadline,
                    })
                }
                FromSuccessor::Gone => self.abandon(successor, "exited before it served"),
                FromSuccessor::Ready(pid) => {
                    log::info!("upgrade: pid {pid} serves; handing over the connections");
                    let Successor { child, channel } = successor;
                    // The successor outlives us; nothing waits for it here.
                    drop(child);
                    let channel = Arc::new(channel);
                    *self.handover.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(Arc::clone(&channel));
                    for peer in &self.peers {
                        peer.wake(Wake::Handover);
                    }
                    self.begin_handover(channel, now);
                }
            },
            Some(Upgrade::Receiving { channel, mut taken }) => loop {
                match upgrade::read_predecessor(&channel) {
                    FromPredecessor::Connection(handed) => {
                        taken += 1;
                        self.take_up(handed, now);
                    }
                    FromPredecessor::Nothing => {
                        self.upgrade = Some(Upgrade::Receiving { channel, taken });
                        return;
                    }
                    FromPredecessor::Done => {
                        let fd = std::os::fd::AsRawFd::as_raw_fd(&channel);
                        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
                        log::info!("upgrade: done, {taken} connections taken over");
                        return;
                    }
                }
            },
            other => self.upgrade = other,
        }
    }

    /// Once per turn: a successor that missed its deadline is given up;
    /// while handing over, parked connections go, and the reactor is done
    /// when none is left (true: exit now).
    pub(super) fn upgrade_turn(&mut self, now: Instant) -> bool {
        match &self.upgrade {
            Some(Upgrade::Starting { deadline, .. }) if now >= *deadline => {
                if let Some(Upgrade::Starting { successor, .. }) = self.upgrade.take() {
                    self.abandon(successor, "did not say it serves in time");
                }
                false
            }
            Some(Upgrade::HandingOver { deadline, .. }) => {
                let deadline = *deadline;
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.hand_over_or_close(key, now);
                }
                if self.conns.is_empty() {
                    if let Some(Upgrade::HandingOver { handed, .. }) = &self.upgrade {
                        log::info!("upgrade: {handed} connections handed over; exiting");
                    }
                    return true;
                }
                if now >= deadline {
                    log::info!(
                        "upgrade: closing {} connections still busy at --shutdown-timeout",
                        self.conns.len()
                    );
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for key in keys {
                        self.close(key, CloseReason::Shutdown);
                    }
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// When the reactor must look at the upgrade again.
    pub(super) fn upgrade_deadline(&self) -> Option<Instant> {
        match &self.upgrade {
            Some(Upgrade::Starting { deadline, .. } | Upgrade::HandingOver { deadline, .. }) => {
                Some(*deadline)
            }
            _ => None,
        }
    }

    /// A worker woken by worker 0: the successor serves.
    pub(super) fn follow_handover(&mut self, now: Instant) {
        if matches!(self.upgrade, Some(Upgrade::HandingOver { .. })) {
            return;
        }
        let channel = self
            .handover
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(channel) = channel {
            self.begin_handover(channel, now);
        }
    }

    /// Every response this reactor gives while handing over says close on
    /// a TLS connection (its session cannot be handed over); a plain one
    /// goes on, to be handed over once parked.
    pub(super) fn handing_over(&self) -> bool {
        matches!(self.upgrade, Some(Upgrade::HandingOver { .. }))
    }

    /// Stops accepting (the listeners are the successor's now) and hands
    /// over what is parked; TLS connections with nothing in flight close.
    fn begin_handover(&mut self, channel: Arc<Channel>, now: Instant) {
        // The sockets live on in the successor: closing our fds loses
        // nothing queued, and a unix socket's file stays (it is its now).
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(listener.socket.source());
        }
        self.upgrade = Some(Upgrade::HandingOver {
            channel,
            deadline: now + self.config.live.shutdown_timeout,
            handed: 0,
        });
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.hand_over_or_close(key, now);
        }
    }

    /// Connection `key`, if parked: handed over (plain) or closed (TLS).
    /// Returns whether it is gone.
    pub(super) fn hand_over_or_close(&mut self, key: usize, now: Instant) -> bool {
        let Some(Upgrade::HandingOver { channel, .. }) = &self.upgrade else {
            return false;
        };
        let channel = Arc::clone(channel);
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if conn.is_secure() {
            if conn.can_close_now() {
                self.close(key, CloseReason::Shutdown);
                return true;
            }
            return false;
        }
        let Some(parked) = conn.parked(now) else {
            return false;
        };
        let (peer, phase) = (conn.peer(), conn.phase());
        let unix = conn.transport_mut().is_unix();
        let Some((fd, source)) = conn.transport_mut().plain_socket() else {
            return false;
        };
        // Out of our epoll first: from here on, what arrives waits in the
        // socket for the successor.
        if self.poll.registry().deregister(source).is_err() {
            return false;
        }
        match upgrade::send_connection(&channel, fd, parked, peer, unix) {
            Ok(()) => {
                let conn = self.conns.remove(key);
                self.release_client(conn.peer(), conn.is_counted());
                self.ledger.count(phase, -1);
                self.wheel.cancel(key);
                self.evict.remove(key);
                self.ledger.stats.count_close(CloseReason::HandedOver);
                if let Some(Upgrade::HandingOver { handed, .. }) = &mut self.upgrade {
                    *handed += 1;
                }
                true
            }
            Err(e) => {
                // The channel is full (the successor reads as fast as it
                // can): again next turn. Registering again reports what
                // arrived meanwhile.
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    log::debug!("upgrade: cannot hand over {peer}: {e}");
                }
                if let Some(conn) = self.conns.get_mut(key)
                    && let Some((_, source)) = conn.transport_mut().plain_socket()
                {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    let _ = self
                        .poll
                        .registry()
                        .register(source, mio::Token(key), interest);
                }
                false
            }
        }
    }

    /// Gives up on a successor: kills it if it still runs, says why, and
    /// goes on serving (nothing was handed over yet).
    fn abandon(&mut self, mut successor: Successor, why: &str) {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&successor.channel);
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        let pid = successor.child.id();
        // One that is exiting still gives its own status (a kill does not
        // change it); one that hangs is killed.
        let status = match successor.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            _ => {
                let _ = successor.child.kill();
                match successor.child.wait() {
                    Ok(status) => status.to_string(),
                    Err(e) => e.to_string(),
                }
            }
        };
        log::error!("upgrade: the new binary (pid {pid}) {why}: {status}; still serving");
        self.upgrade = None;
    }
}

/// The successor's side: worker 0 takes up what the predecessor hands
/// over (its messages arrive through `upgrade_event`).
impl Server {
    /// The successor's worker 0, once it serves: listens for the
    /// predecessor's connections.
    pub fn receive_handover(&mut self, channel: Channel) {
        let watched = channel.set_nonblocking(true).and_then(|()| {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&channel);
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), UPGRADE, Interest::READABLE)
        });
        match watched {
            Ok(()) => self.upgrade = Some(Upgrade::Receiving { channel, taken: 0 }),
            Err(e) => log::error!("upgrade: cannot take connections over: {e}"),
        }
    }

    /// Takes up a connection the predecessor handed over, in the state it
    /// was parked in there, and reads what it may have sent meanwhile.
    fn take_up(&mut self, handed: upgrade::HandedConnection, now: Instant) {
        let upgrade::HandedConnection { fd, parked, peer } = handed;
        if !self.has_room() {
            // The fd budget is full here: this one closes (as a newcomer
            // would wait), which is rare right after start.
            log::warn!("upgrade: no room for a connection handed over; closing it");
            self.ledger.stats.count_close(CloseReason::Overflow);
            return;
        }
        let (transport, peer) = match peer {
            Some(peer) => {
                let socket = std::net::TcpStream::from(fd);
                (
                    Stream::Tcp(Tcp::new(mio::net::TcpStream::from_std(socket))),
                    peer,
                )
            }
            None => {
                let socket = std::os::unix::net::UnixStream::from(fd);
                let socket = mio::net::UnixStream::from_std(socket);
                (Stream::Unix(Unix::new(socket)), super::UNIX_PEER)
            }
        };
        let client = self.client_of(peer);
        self.ledger.stats.handled += 1;
        let key = self
            .conns
            .insert(Conn::from_parked(transport, peer, parked, now));
        let conn = &mut self.conns[key];
        debug_assert!(matches!(conn.phase(), Phase::Idle | Phase::Reading));
        if let Some(client) = client {
            conn.set_counted(true);
            self.clients.connections().adopt(client);
        }
        self.enroll(key, now);
    }
}
