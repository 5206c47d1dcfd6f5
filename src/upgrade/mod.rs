//! Binary upgrades without a lost request (SIGUSR2, as nginx's).
//!
//! The running process (the predecessor) starts the binary at the path it
//! was started from, with the same arguments and environment, and hands
//! it, over a [`Channel`]:
//!
//! 1. every listening socket of every worker (the same sockets, not new
//!    ones: nothing queued in a backlog is lost, and an SO_REUSEPORT group
//!    keeps its members), with what each is (TCP or unix, TLS or not);
//! 2. once the successor says it serves (`R`), every connection with no
//!    request in flight, plain TCP or unix (a TLS session's keys are not
//!    handed over: those are told to close), as its fd and its state
//!    ([`Parked`]: requests served, how long it has been idle), now and as
//!    busy ones finish. A request that arrives meanwhile waits in the
//!    socket's buffer for whichever process registers it next.
//!
//! The predecessor stops accepting once the successor is ready, and
//! exits when its last connection is handed over or closed (bounded by
//! `--shutdown-timeout`). If the successor fails to start, exits, or is
//! not ready within [`READY_TIMEOUT`], the predecessor kills it, says
//! why, and goes on serving everything: nothing was given up.
//!
//! Messages, one packet each (`channel.rs`):
//!
//! | from        | message                            | fds          |
//! | ----------- | ---------------------------------- | ------------ |
//! | predecessor | `L worker tcp tls`, `L worker unix PATH` | a listener |
//! | predecessor | `E` (the listeners are all sent)   |              |
//! | successor   | `R pid` (it serves)                |              |
//! | predecessor | `C requests idle_ms fresh peer`    | a connection |
//!
//! The successor finds its end in `HOLDLINE_UPGRADE_FD`.

mod channel;

pub use channel::Channel;

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use crate::http::session::Parked;

/// How long a successor has to say it serves.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

const ENV: &str = "HOLDLINE_UPGRADE_FD";

/// The command line this process was started with: what a successor is
/// started with.
static COMMAND: OnceLock<(PathBuf, Vec<OsString>)> = OnceLock::new();

/// Remembers the program and arguments: call from `main`, before anything
/// changes the working directory. The program is resolved now (a
/// relative path against the working directory, a bare name through
/// `PATH`), so that the successor is the binary now at that path: after
/// a package upgrade, the new one.
pub fn remember_command_line() {
    let mut args = std::env::args_os();
    let Some(program) = args.next() else {
        return;
    };
    let program = PathBuf::from(program);
    let resolved = if program.components().count() > 1 {
        std::path::absolute(&program).unwrap_or(program)
    } else {
        std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(&program))
                    .find(|candidate| candidate.is_file())
            })
            .unwrap_or(program)
    };
    let _ = COMMAND.set((resolved, args.collect()));
}

/// One listening socket as it travels.
#[derive(Debug)]
pub struct HandedListener {
    pub worker: usize,
    pub fd: OwnedFd,
    /// A unix socket's path (the successor removes it at exit); `None`:
    /// TCP, or a unix socket systemd owns.
    pub unix_path: Option<PathBuf>,
    pub unix: bool,
    pub tls: bool,
}

/// A listener to hand over, as the predecessor records it.
#[derive(Debug, Clone)]
pub struct ListenerRecord {
    pub worker: usize,
    pub fd: RawFd,
    pub unix: Option<Option<PathBuf>>,
    pub tls: bool,
}

/// How a parked connection travels.
trait Wire: Sized {
    fn encode(&self, peer: SocketAddr, unix: bool) -> String;
    fn decode(line: &str) -> Option<(Self, Option<SocketAddr>)>;
}

impl Wire for Parked {
    fn encode(&self, peer: SocketAddr, unix: bool) -> String {
        let peer = if unix {
            "unix".to_string()
        } else {
            peer.to_string()
        };
        format!(
            "C {} {} {} {peer}",
            self.requests,
            self.idle.as_millis(),
            u8::from(self.fresh)
        )
    }

    /// A `C` message: the state, the peer (`None`: a unix socket).
    fn decode(line: &str) -> Option<(Parked, Option<SocketAddr>)> {
        let mut words = line.strip_prefix("C ")?.split(' ');
        let requests = words.next()?.parse().ok()?;
        let idle = Duration::from_millis(words.next()?.parse().ok()?);
        let fresh = words.next()? == "1";
        let peer = match words.next()? {
            "unix" => None,
            addr => Some(addr.parse().ok()?),
        };
        Some((
            Parked {
                requests,
                idle,
                fresh,
            },
            peer,
        ))
    }
}

/// A successor being started: the child and our end of its channel.
pub struct Successor {
    pub child: std::process::Child,
    pub channel: Channel,
}

/// Starts the successor and hands it every listener of `listeners`.
pub fn spawn(listeners: &[ListenerRecord]) -> io::Result<Successor> {
    let (program, args) = COMMAND
        .get()
        .cloned()
        .ok_or_else(|| io::Error::other("the command line was not recorded"))?;
    let (channel, theirs) = Channel::pair()?;
    let child = std::process::Command::new(&program)
        .args(&args)
        .env(ENV, theirs.as_raw_fd().to_string())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
    drop(theirs);
    for listener in listeners {
        let message = match &listener.unix {
            None => format!("L {} tcp {}", listener.worker, u8::from(listener.tls)),
            Some(None) => format!("L {} unix -", listener.worker),
            Some(Some(path)) => format!("L {} unix {}", listener.worker, path.display()),
        };
        channel.send(message.as_bytes(), &[listener.fd])?;
    }
    channel.send(b"E", &[])?;
    Ok(Successor { child, channel })
}

/// The channel from a predecessor, if this process is a successor (the
/// variable is removed, so nothing started later takes it).
pub fn predecessor() -> Option<io::Result<Channel>> {
    let value = std::env::var(ENV).ok()?;
    // SAFETY: called from `reactor::start` before any thread of ours
    // exists (as `systemd::listen_fds`), so nothing reads the environment
    // meanwhile.
    unsafe { std::env::remove_var(ENV) };
    let fd: RawFd = match value.parse() {
        Ok(fd) if fd >= 0 => fd,
        _ => return Some(Err(io::Error::other(format!("{ENV}={value}: not an fd")))),
    };
    // SAFETY: fcntl on a number that may not be an fd is sound (EBADF).
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Some(Err(io::Error::other(format!("{ENV}={fd}: not open"))));
    }
    // SAFETY: our predecessor left this fd open for us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Some(Channel::from_fd(fd))
}

/// Receives the predecessor's listeners, blocking until its `E` (or a
/// timeout).
pub fn receive_listeners(channel: &Channel) -> io::Result<Vec<HandedListener>> {
    channel.set_read_timeout(Duration::from_secs(10))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let mut fds = Vec::new();
        let n = channel.recv(&mut buf, &mut fds)?;
        let line = std::str::from_utf8(&buf[..n]).unwrap_or("");
        if n == 0 && fds.is_empty() {
            return Err(io::Error::other("the predecessor went away"));
        }
        if line == "E" {
            return Ok(got);
        }
        let bad = || io::Error::other(format!("a hand-over message not understood: {line:?}"));
        let mut words = line.split(' ');
        let (Some("L"), Some(worker), Some(kind), Some(rest), Some(fd)) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            fds.pop(),
        ) else {
            return Err(bad());
        };
        let worker = worker.parse().map_err(|_| bad())?;
        let listener = match kind {
            "tcp" => HandedListener {
                worker,
                fd,
                unix_path: None,
                unix: false,
                tls: rest == "1",
            },
            "unix" => HandedListener {
                worker,
                fd,
                unix_path: (rest != "-").then(|| PathBuf::from(rest)),
                unix: true,
                tls: false,
            },
            _ => return Err(bad()),
        };
        got.push(listener);
    }
}

/// Tells the predecessor this process serves.
pub fn say_ready(channel: &Channel) -> io::Result<()> {
    channel.send(format!("R {}", std::process::id()).as_bytes(), &[])
}

/// What the predecessor reads from its successor.
#[derive(Debug, PartialEq, Eq)]
pub enum FromSuccessor {
    Ready(u32),
    /// Nothing more now.
    Nothing,
    /// It exited, or closed its end.
    Gone,
}

/// Reads what the successor sent, without blocking.
pub fn read_successor(channel: &Channel) -> FromSuccessor {
    let mut buf = [0u8; 64];
    let mut fds = Vec::new();
    match channel.recv(&mut buf, &mut fds) {
        Ok(0) => FromSuccessor::Gone,
        Ok(n) => match std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|l| l.strip_prefix("R "))
        {
            Some(pid) => FromSuccessor::Ready(pid.parse().unwrap_or(0)),
            None => FromSuccessor::Nothing,
        },
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => FromSuccessor::Nothing,
        Err(_) => FromSuccessor::Gone,
    }
}

/// Hands one parked connection (its socket `fd`) to the successor.
pub fn send_connection(
    channel: &Channel,
    fd: RawFd,
    parked: Parked,
    peer: SocketAddr,
    unix: bool,
) -> io::Result<()> {
    channel.send(parked.encode(peer, unix).as_bytes(), &[fd])
}

/// A connection the predecessor handed over.
pub struct HandedConnection {
    pub fd: OwnedFd,
    pub parked: Parked,
    /// `None`: a unix socket.
    pub peer: Option<SocketAddr>,
}

/// What the successor reads from its predecessor after it said ready.
pub enum FromPredecessor {
    Connection(HandedConnection),
    Nothing,
    /// The predecessor is done (it exited, or closed its end).
    Done,
}

/// Reads one handed-over connection, without blocking.
pub fn read_predecessor(channel: &Channel) -> FromPredecessor {
    let mut buf = [0u8; 128];
    let mut fds = Vec::new();
    match channel.recv(&mut buf, &mut fds) {
        Ok(0) if fds.is_empty() => FromPredecessor::Done,
        Ok(n) => {
            let line = std::str::from_utf8(&buf[..n]).unwrap_or("");
            match (Parked::decode(line), fds.pop()) {
                (Some((parked, peer)), Some(fd)) => {
                    FromPredecessor::Connection(HandedConnection { fd, parked, peer })
                }
                _ => {
                    log::warn!("upgrade: a hand-over message not understood: {line:?}");
                    FromPredecessor::Nothing
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => FromPredecessor::Nothing,
        Err(_) => FromPredecessor::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_connection_travels_as_one_line() {
        let parked = Parked {
            requests: 7,
            idle: Duration::from_millis(1234),
            fresh: false,
        };
        let peer: SocketAddr = "[::1]:4000".parse().unwrap();
        let line = parked.encode(peer, false);
        assert_eq!(line, "C 7 1234 0 [::1]:4000");
        assert_eq!(Parked::decode(&line), Some((parked, Some(peer))));
        let unix = parked.encode(peer, true);
        assert_eq!(Parked::decode(&unix), Some((parked, None)));
        assert_eq!(Parked::decode("C 1 x 0 unix"), None);
        assert_eq!(Parked::decode("L 0 tcp 1"), None);
    }
}
