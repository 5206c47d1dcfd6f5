//! Where each worker's listening sockets come from: bound here (one per
//! worker with SO_REUSEPORT), passed by systemd (socket activation), or
//! handed over by the process this one upgrades.

use std::net::SocketAddr;

use mio::net::{TcpListener, UnixListener};

use super::StartError;
use super::listeners::{ListenSocket, Listener, UNIX_PEER, bind_listener, bind_unix};
use crate::config::Config;
use crate::systemd::Passed;

/// Binds every `--listen` and `--tls-listen` address, once per worker
/// (SO_REUSEPORT when there are several), and every unix socket once
/// (each worker gets its own fd for it).
pub(super) fn bind_all(config: &Config, workers: usize) -> Result<Vec<Vec<Listener>>, StartError> {
    let fixed = &config.fixed;
    let mut sockets: Vec<Vec<Listener>> = (0..workers).map(|_| Vec::new()).collect();
    let addrs = fixed.listen.iter().map(|a| (*a, false));
    let tls_addrs = fixed.tls_listen.iter().map(|a| (*a, true));
    let reuse_port = workers > 1;
    let bind = |addr: SocketAddr| {
        bind_listener(
            addr,
            fixed.backlog,
            reuse_port,
            fixed.tcp_keepalive,
            fixed.defer_accept,
        )
        .map_err(|source| StartError::Listen { addr, source })
    };
    for (addr, tls) in addrs.chain(tls_addrs) {
        let first = bind(addr)?;
        // With port 0 the kernel picked a port: the other workers join it.
        let local = first.local_addr().unwrap_or(addr);
        sockets[0].push(Listener {
            socket: ListenSocket::Tcp(first),
            local,
            tls,
        });
        for worker_sockets in sockets.iter_mut().skip(1) {
            worker_sockets.push(Listener {
                socket: ListenSocket::Tcp(bind(local)?),
                local,
                tls,
            });
        }
    }
    for path in &fixed.listen_unix {
        let listen_error = |source| StartError::ListenUnix {
            path: path.clone(),
            source,
        };
        let socket = bind_unix(path, fixed.backlog).map_err(listen_error)?;
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
    Ok(sockets)
}

/// Sockets systemd passed (socket activation): every worker gets its own
/// fd for each.
pub(super) fn adopt_passed(
    passed: Vec<Passed>,
    sockets: &mut [Vec<Listener>],
) -> Result<(), StartError> {
    for Passed { fd, tls } in passed {
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
                    tls,
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
    Ok(())
}

/// Listeners a predecessor handed over (an upgrade). Each worker here
/// takes the sockets of the worker with its number there; with fewer
/// workers than before the extra sets are shared out too (none may close:
/// what is queued in a socket's backlog would be lost), with more the new
/// workers share the first ones.
pub(super) fn adopt_handed(
    handed: Vec<crate::upgrade::HandedListener>,
    sockets: &mut [Vec<Listener>],
) -> Result<(), StartError> {
    if handed.is_empty() {
        return Ok(());
    }
    let workers = sockets.len();
    let mut by_old: Vec<Vec<Listener>> = Vec::new();
    for h in handed {
        let socket = socket2::Socket::from(h.fd);
        let local = socket
            .local_addr()
            .map_err(StartError::reactor("read a handed-over socket's address"))?;
        let listener = match (h.unix, local.as_socket()) {
            (false, Some(addr)) => Listener {
                socket: ListenSocket::Tcp(TcpListener::from_std(socket.into())),
                local: addr,
                tls: h.tls,
            },
            _ => Listener {
                socket: ListenSocket::Unix(UnixListener::from_std(socket.into()), h.unix_path),
                local: UNIX_PEER,
                tls: false,
            },
        };
        if by_old.len() <= h.worker {
            by_old.resize_with(h.worker + 1, Vec::new);
        }
        by_old[h.worker].push(listener);
    }
    let old = by_old.len();
    for (i, set) in by_old.into_iter().enumerate() {
        sockets[i % workers].extend(set);
    }
    // More workers than before: the new ones share the first sets' sockets.
    for w in old..workers {
        let shared: Vec<Listener> = sockets[w % old]
            .iter()
            .map(|l| l.try_clone())
            .collect::<std::io::Result<_>>()
            .map_err(StartError::reactor("share a handed-over socket"))?;
        sockets[w].extend(shared);
    }
    Ok(())
}
