//! The seam between a connection and its socket: how bytes move.
//!
//! A connection ([`crate::conn::Conn`]) reads and writes only through the
//! [`Transport`] trait, so a second transport (TLS: records in and out of
//! pooled buffers, file bodies read in bounded chunks and encrypted) can
//! sit between the socket and the HTTP session without touching the
//! session, the reactor's admission or the timer wheel. [`Tcp`] is the
//! plain one: `recv`/`send`, `sendfile(2)` for file bodies behind a head
//! sent with MSG_MORE; [`crate::tls::Tls`] carries TLS records; [`Unix`]
//! is a unix-domain socket. [`crate::stream::Stream`] is any of them, as
//! the reactor's slab holds them.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::net::{TcpStream, UnixStream};

use crate::close::CloseReason;

/// A finished TLS handshake, as [`Transport::take_handshake`] reports it
/// for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// An abbreviated handshake: the client resumed an earlier session
    /// (a ticket or a session id).
    pub resumed: bool,
    /// TLS 1.3 (else TLS 1.2).
    pub tls13: bool,
}

/// Moves bytes for one connection. Every call is non-blocking: it does
/// what it can now and says `WouldBlock` when it can do nothing.
pub trait Transport {
    /// Reads into `buf`; `Ok(0)` is the peer's EOF.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes from `buf`; a short count means the socket buffer is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Writes bytes that a file body follows at once (a head, a part's
    /// header): plain TCP says MSG_MORE, so that they leave in the body's
    /// first full segment rather than in a short one of their own.
    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf)
    }
    /// Sends `count` bytes of `file` from `offset`; a short count means the
    /// socket buffer is full, `Ok(0)` that the file is shorter than that.
    fn send_file(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize>;
    /// Shuts the write side: the peer sees EOF after what was sent.
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// Makes the coming close abortive: an RST, not a FIN behind unsent
    /// data.
    fn abort_on_close(&mut self);
    /// Says goodbye at the transport's level before a close (TLS
    /// close_notify); best effort.
    fn notify_close(&mut self) {}
    /// Bytes the transport made (TLS records) that the socket has not
    /// taken yet: output to flush like any other.
    fn pending_output(&self) -> bool {
        false
    }
    /// Sends pending transport bytes until the socket is full; returns how
    /// many went.
    fn flush_pending(&mut self) -> io::Result<usize> {
        Ok(0)
    }
    /// The connection has nothing in flight: give buffers the transport
    /// holds back to their pool (TLS record buffers).
    fn release(&mut self) {}
    /// The bytes are encrypted (TLS): what `https` URLs promise.
    fn is_secure(&self) -> bool {
        false
    }
    /// The server name a TLS client asked for (SNI); `None` for plain
    /// transports and handshakes without one.
    fn server_name(&self) -> Option<&str> {
        None
    }
    /// The transport's own handshake is still running: no request yet.
    fn in_handshake(&self) -> bool {
        false
    }
    /// A handshake that finished since the last call, for the counters.
    fn take_handshake(&mut self) -> Option<Handshake> {
        None
    }
    /// Reads the socket itself, beneath any TLS, for what comes before
    /// the transport's own bytes (the PROXY protocol's header): `peek`
    /// leaves the bytes queued. Transports without a TCP socket say
    /// `Unsupported`.
    fn read_socket(&mut self, _buf: &mut [u8], _peek: bool) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// The socket said: try again after the next readiness event.
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the call: retry it now.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// The close reason for a failed socket call: the peer's doing (reset,
/// gone) or an error worth a debug line.
pub fn close_reason(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => CloseReason::Client,
        // Only TLS says this: a bad record, a failed handshake, plain
        // HTTP on a TLS port (the transport logged it).
        io::ErrorKind::InvalidData => CloseReason::TlsError,
        _ => {
            log::debug!("socket error: {e}");
            CloseReason::Error
        }
    }
}

/// Plain TCP.
#[derive(Debug)]
pub struct Tcp {
    stream: TcpStream,
}

impl Tcp {
    pub fn new(stream: TcpStream) -> Tcp {
        Tcp { stream }
    }

    /// The socket (to register it, or hand it to another process).
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

/// What a read or write syscall's return value means.
fn written(rc: isize) -> io::Result<usize> {
    if rc >= 0 {
        Ok(rc as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// rustls reads records through this.
impl Read for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

/// `send(2)` on a connected socket. MSG_NOSIGNAL: a peer gone is an
/// EPIPE to handle, not a SIGPIPE to die of.
fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    send_flags(fd, buf, libc::MSG_NOSIGNAL)
}

/// `send(2)` with `flags`, which callers give MSG_NOSIGNAL among.
fn send_flags(fd: RawFd, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    let rc = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
    written(rc)
}

/// `sendfile(2)` of `count` bytes of `file` from `offset` to socket `fd`.
fn send_file(fd: RawFd, file: &File, offset: u64, count: usize) -> io::Result<usize> {
    let mut offset = offset as libc::off_t;
    // SAFETY: both fds are open; `offset` is a valid pointer.
    let rc = unsafe { libc::sendfile(fd, file.as_raw_fd(), &mut offset, count) };
    written(rc)
}

/// rustls writes records through this: one `sendmsg` for all the records
/// it has queued.
impl Write for Tcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.stream.as_raw_fd(), buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: a zeroed msghdr is valid; IoSlice is ABI-compatible with
        // iovec and `bufs` outlives the call.
        let rc = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
            libc::sendmsg(self.stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
        };
        written(rc)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Write::write(self, buf)
    }

    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_flags(
            self.stream.as_raw_fd(),
            buf,
            libc::MSG_NOSIGNAL | libc::MSG_MORE,
        )
    }

    fn send_file(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize> {
        send_file(self.stream.as_raw_fd(), file, offset, count)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    fn read_socket(&mut self, buf: &mut [u8], peek: bool) -> io::Result<usize> {
        let flags = if peek { libc::MSG_PEEK } else { 0 };
        // SAFETY: `buf` is valid for writes of its length.
        let rc = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        written(rc)
    }

    fn abort_on_close(&mut self) {
        // A client that stopped reading would otherwise keep the kernel
        // holding its unsent response, as an orphaned socket, for minutes
        // after we let go (nginx's `reset_timedout_connection`).
        if let Err(e) = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO)) {
            log::debug!("SO_LINGER 0: {e}");
        }
    }
}

/// A unix-domain stream socket (`--listen unix:PATH`), as behind a
/// reverse proxy on the same host: the same calls as TCP, without
/// MSG_MORE (no segments to hold back) or resets.
#[derive(Debug)]
pub struct Unix {
    stream: UnixStream,
}

impl Unix {
    pub fn new(stream: UnixStream) -> Unix {
        Unix { stream }
    }

    /// The socket (to register it, or hand it to another process).
    pub fn socket(&mut self) -> &mut UnixStream {
        &mut self.stream
    }
}

impl Transport for Unix {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.stream.as_raw_fd(), buf)
    }

    fn send_file(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize> {
        send_file(self.stream.as_raw_fd(), file, offset, count)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    fn abort_on_close(&mut self) {}
}
