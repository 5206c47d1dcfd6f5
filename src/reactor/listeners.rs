//! The sockets a reactor accepts on: TCP (plain or TLS) and unix-domain
//! listeners, bound here or passed by systemd, and what accepting one
//! gives.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::config::TcpKeepalive;
use crate::stream::Stream;
use crate::transport::{Tcp, Unix};

/// A listening socket: plain HTTP, or HTTPS with the shared TLS setup.
pub(super) struct Listener {
    pub socket: ListenSocket,
    /// Its TCP address; for a unix socket, [`UNIX_PEER`].
    pub local: SocketAddr,
    pub tls: bool,
}

/// What a listener accepts on.
pub(super) enum ListenSocket {
    Tcp(TcpListener),
    /// `--listen unix:PATH` (its path, removed at shutdown by worker 0), or
    /// a unix socket systemd passed (no path: systemd owns the file).
    Unix(UnixListener, Option<PathBuf>),
}

/// A connection just accepted.
pub(super) enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// The address logs and counters show for a unix-socket peer (it has no
/// IP address: the proxy in front knows who the client is).
pub const UNIX_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

impl Listener {
    /// What an upgrade's successor is told of it (its fd stays ours).
    pub fn record(&self, worker: usize) -> crate::upgrade::ListenerRecord {
        use std::os::fd::AsRawFd;
        let (fd, unix) = match &self.socket {
            ListenSocket::Tcp(l) => (l.as_raw_fd(), None),
            ListenSocket::Unix(l, path) => (l.as_raw_fd(), Some(path.clone())),
        };
        crate::upgrade::ListenerRecord {
            worker,
            fd,
            unix,
            tls: self.tls,
        }
    }

    /// Another fd for the same socket (for a second worker).
    pub fn try_clone(&self) -> io::Result<Listener> {
        use std::os::fd::{AsFd, OwnedFd};
        let socket = match &self.socket {
            ListenSocket::Tcp(l) => {
                let fd: OwnedFd = l.as_fd().try_clone_to_owned()?;
                ListenSocket::Tcp(TcpListener::from_std(fd.into()))
            }
            ListenSocket::Unix(l, path) => {
                let fd: OwnedFd = l.as_fd().try_clone_to_owned()?;
                ListenSocket::Unix(UnixListener::from_std(fd.into()), path.clone())
            }
        };
        Ok(Listener {
            socket,
            local: self.local,
            tls: self.tls,
        })
    }
}

impl ListenSocket {
    pub fn accept(&self) -> io::Result<(Accepted, SocketAddr)> {
        match self {
            ListenSocket::Tcp(l) => l.accept().map(|(s, peer)| (Accepted::Tcp(s), peer)),
            ListenSocket::Unix(l, _) => l.accept().map(|(s, _)| (Accepted::Unix(s), UNIX_PEER)),
        }
    }

    pub fn source(&mut self) -> &mut dyn Source {
        match self {
            ListenSocket::Tcp(l) => l,
            ListenSocket::Unix(l, _) => l,
        }
    }
}

/// Binds and listens on a unix socket at `path`. A socket file left by a
/// server that is gone (nothing accepts on it) is replaced; one a live
/// server accepts on is an error (EADDRINUSE), as is any other file.
pub(super) fn bind_unix(path: &std::path::Path, backlog: i32) -> io::Result<socket2::Socket> {
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

/// Binds and listens on a TCP address, with the options every accepted
/// socket inherits.
pub(super) fn bind_listener(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
    keepalive: Option<TcpKeepalive>,
    defer_accept: Duration,
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
    if !defer_accept.is_zero() {
        set_defer_accept(&socket, defer_accept)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// TCP_DEFER_ACCEPT (tcp(7)): the kernel keeps a connection off the
/// accept queue until data arrives, retransmitting its SYN-ACK for about
/// `after` (rounded up to whole retransmissions) before it accepts a
/// silent one anyway. socket2 has no call for it.
fn set_defer_accept(socket: &socket2::Socket, after: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let secs = libc::c_int::try_from(after.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket fd, and a pointer to a c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&secs).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Accepted {
    /// The connection as a plain (not TLS) transport.
    pub fn plain(self) -> Stream {
        match self {
            Accepted::Tcp(s) => Stream::Tcp(Tcp::new(s)),
            Accepted::Unix(s) => Stream::Unix(Unix::new(s)),
        }
    }
}
