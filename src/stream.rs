//! [`Stream`]: a connection's transport as the reactor's slab holds it,
//! one type for plain TCP, a unix socket or TLS, itself a [`Transport`]
//! that hands each call to the one it holds.
//!
//! It sits apart from [`crate::transport`] because it names every
//! transport, TLS included, while TLS is built on the plain ones: the
//! trait and TCP below, TLS above them, this enum on top.

use std::fs::File;
use std::io;

use crate::tls::Tls;
use crate::transport::{Handshake, Tcp, Transport, Unix};

/// A connection's transport as the reactor's slab holds it: plain TCP, a
/// unix socket, or TLS (boxed: rustls's state is large, and an idle plain
/// connection should not pay for it).
pub enum Stream {
    Tcp(Tcp),
    Unix(Unix),
    Tls(Box<Tls>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
            Stream::Tls($s) => $e,
        }
    };
}

impl Stream {
    /// A plain socket's fd and mio source (to hand the connection to
    /// another process); `None` for TLS, whose session keys stay here.
    pub fn plain_socket(&mut self) -> Option<(std::os::fd::RawFd, &mut dyn mio::event::Source)> {
        use std::os::fd::AsRawFd;
        match self {
            Stream::Tcp(s) => {
                let socket = s.socket();
                Some((socket.as_raw_fd(), socket))
            }
            Stream::Unix(s) => {
                let socket = s.socket();
                Some((socket.as_raw_fd(), socket))
            }
            Stream::Tls(_) => None,
        }
    }

    /// The socket's mio source, beneath TLS if there is TLS: what the
    /// reactor registers.
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s.socket(),
            Stream::Unix(s) => s.socket(),
            Stream::Tls(s) => s.socket(),
        }
    }

    /// A unix-socket connection (its peer has no address).
    pub fn is_unix(&self) -> bool {
        matches!(self, Stream::Unix(_))
    }
}

impl Transport for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => Transport::read(s, buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => Transport::write(s, buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn send_file(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize> {
        each!(self, s => s.send_file(file, offset, count))
    }
    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        each!(self, s => s.write_more(buf))
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        each!(self, s => s.shutdown_write())
    }
    fn abort_on_close(&mut self) {
        each!(self, s => s.abort_on_close())
    }
    fn notify_close(&mut self) {
        each!(self, s => s.notify_close())
    }
    fn pending_output(&self) -> bool {
        each!(self, s => s.pending_output())
    }
    fn flush_pending(&mut self) -> io::Result<usize> {
        each!(self, s => s.flush_pending())
    }
    fn release(&mut self) {
        each!(self, s => s.release())
    }
    fn is_secure(&self) -> bool {
        each!(self, s => s.is_secure())
    }
    fn server_name(&self) -> Option<&str> {
        each!(self, s => s.server_name())
    }
    fn in_handshake(&self) -> bool {
        each!(self, s => s.in_handshake())
    }
    fn take_handshake(&mut self) -> Option<Handshake> {
        each!(self, s => s.take_handshake())
    }
    fn read_socket(&mut self, buf: &mut [u8], peek: bool) -> io::Result<usize> {
        each!(self, s => s.read_socket(buf, peek))
    }
}
