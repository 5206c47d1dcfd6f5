//! [`Tls`]: one connection's TLS records over its TCP socket, as a
//! [`Transport`], on rustls's unbuffered API: [`Records`] runs rustls in
//! buffers holdline owns ([`super::buffers`]); this file keeps the
//! contract the connection relies on.
//!
//! That contract holds as for plain TCP: a read or write that returns
//! fewer bytes than asked means the socket said EAGAIN (so an
//! edge-triggered readiness event will come), never only that a record
//! ended. Reads go on until the caller's buffer is full or the socket is
//! drained; writes and file bodies until the socket is full. Records not
//! yet sent are reported by [`Transport::pending_output`].
//!
//! File bodies cannot use sendfile: they are read with `pread` in 32 KiB
//! chunks (two full records, [`SEND_BUFFER_LIMIT`], the most one call
//! encrypts) into a stack buffer, encrypted, and sent with one `send`:
//! half the syscalls of a record at a time, and no more memory, since a
//! plain write may already hold that much encrypted.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;

use super::records::{Records, SEND_BUFFER_LIMIT, Stop};
use crate::transport::{Handshake, Tcp, Transport, interrupted, would_block};

/// Two records' worth of plaintext: the chunk a file body is read in.
const FILE_CHUNK: usize = SEND_BUFFER_LIMIT;

/// A TLS connection: its socket and its record state.
pub struct Tls {
    tcp: Tcp,
    records: Records,
}

impl Tls {
    /// `client_order`: the configuration for a client that lists
    /// ChaCha20 first, swapped in before rustls reads its hello.
    pub fn new(
        tcp: Tcp,
        conn: UnbufferedServerConnection,
        client_order: Arc<rustls::ServerConfig>,
    ) -> Tls {
        Tls {
            tcp,
            records: Records::new(conn, client_order),
        }
    }

    /// The socket beneath the records (to register it with epoll).
    pub fn socket(&mut self) -> &mut mio::net::TcpStream {
        self.tcp.socket()
    }
}

impl Transport for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        let mut drained = false;
        loop {
            filled += self.records.take_plain(&mut buf[filled..]);
            crate::fault::panic_at(crate::fault::Point::Tls, &buf[..filled]);
            if filled == buf.len() {
                return Ok(filled);
            }
            if self.records.peer_done() {
                // close_notify or EOF: what came before it, then 0.
                return Ok(filled);
            }
            // Records already buffered first, then the socket.
            let mut none = 0;
            self.records.process(&[], &mut none, &mut self.tcp)?;
            // Handshake flights, session tickets, alerts: out now if the
            // socket takes them, else they wait as pending output.
            self.records.flush(&mut self.tcp)?;
            if self.records.has_plain() || self.records.peer_done() {
                continue;
            }
            if drained {
                // The last read was short: the socket is empty, and
                // another read would only say EAGAIN.
                return match filled {
                    0 => Err(io::ErrorKind::WouldBlock.into()),
                    n => Ok(n),
                };
            }
            match self.records.read_socket(&mut self.tcp) {
                Ok((0, _)) => {
                    // TCP EOF without close_notify: an EOF like any other
                    // for HTTP/1.1, whose messages carry their own length.
                    self.records.set_peer_done();
                }
                Ok((_, short)) => drained = short,
                Err(e) if would_block(&e) && filled > 0 => return Ok(filled),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut accepted = 0;
        loop {
            if self.records.unsent() > 0 {
                self.records.flush(&mut self.tcp)?;
                if self.records.unsent() > 0 {
                    // The socket is full.
                    return match accepted {
                        0 => Err(io::ErrorKind::WouldBlock.into()),
                        n => Ok(n),
                    };
                }
            }
            if accepted == buf.len() {
                return Ok(accepted);
            }
            let mut taken = 0;
            match self
                .records
                .process(&buf[accepted..], &mut taken, &mut self.tcp)?
            {
                Stop::CanWrite if taken > 0 => accepted += taken,
                // Not writable now (the handshake is not done, or the
                // connection closed): nothing more to send.
                _ => {
                    return match accepted {
                        0 => Err(io::Error::new(
                            io::ErrorKind::NotConnected,
                            "TLS not writable",
                        )),
                        n => Ok(n),
                    };
                }
            }
        }
    }

    fn send_file(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize> {
        let mut chunk = [0u8; FILE_CHUNK];
        let mut sent = 0;
        loop {
            if self.records.unsent() > 0 {
                self.records.flush(&mut self.tcp)?;
                if self.records.unsent() > 0 {
                    return match sent {
                        0 => Err(io::ErrorKind::WouldBlock.into()),
                        n => Ok(n),
                    };
                }
            }
            if sent == count {
                return Ok(sent);
            }
            let want = (count - sent).min(FILE_CHUNK);
            let n = match file.read_at(&mut chunk[..want], offset + sent as u64) {
                Ok(0) if sent == 0 => return Ok(0),
                Ok(0) => {
                    // The file shrank mid-body: a short count would read
                    // as "socket full" and wait for an edge that never
                    // comes. Fail now; the connection closes.
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while sending",
                    ));
                }
                Ok(n) => n,
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e),
            };
            let mut taken = 0;
            match self
                .records
                .process(&chunk[..n], &mut taken, &mut self.tcp)?
            {
                Stop::CanWrite if taken > 0 => sent += taken,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "TLS not writable",
                    ));
                }
            }
        }
    }

    fn notify_close(&mut self) {
        // What this pass decrypts is not read any more: the connection
        // closes.
        let mut none = 0;
        if let Ok(Stop::CanWrite) = self.records.process(&[], &mut none, &mut self.tcp) {
            self.records.queue_close_notify();
        }
        let _ = self.records.flush(&mut self.tcp);
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.notify_close();
        self.tcp.shutdown_write()
    }

    fn abort_on_close(&mut self) {
        self.tcp.abort_on_close();
    }

    fn pending_output(&self) -> bool {
        self.records.unsent() > 0
    }

    fn flush_pending(&mut self) -> io::Result<usize> {
        self.records.flush(&mut self.tcp)
    }

    fn release(&mut self) {
        self.records.release();
    }

    fn read_socket(&mut self, buf: &mut [u8], peek: bool) -> io::Result<usize> {
        self.tcp.read_socket(buf, peek)
    }

    fn is_secure(&self) -> bool {
        true
    }

    fn server_name(&self) -> Option<&str> {
        self.records.server_name()
    }

    fn in_handshake(&self) -> bool {
        self.records.is_handshaking()
    }

    fn take_handshake(&mut self) -> Option<Handshake> {
        self.records.take_handshake()
    }
}
