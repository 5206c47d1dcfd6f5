//! [`Tls`]: one connection's TLS records over its TCP socket, as a
//! [`Transport`].
//!
//! The contract the connection relies on holds as for plain TCP: a read
//! or write that returns fewer bytes than asked means the socket said
//! EAGAIN (so an edge-triggered readiness event will come), never only
//! that a record ended. Reads therefore go on until the caller's buffer is
//! full or the socket is drained; writes and file bodies go on until the
//! socket is full. Records rustls has encrypted but the socket did not
//! take wait in rustls (at most [`SEND_BUFFER_LIMIT`] of plaintext) and
//! are reported by [`Transport::pending_output`], which the connection
//! counts as output to flush.
//!
//! File bodies cannot use sendfile: they are read with `pread` in 16 KiB
//! chunks (one full record) into a stack buffer, encrypted, and sent.
//!
//! [`SEND_BUFFER_LIMIT`]: super::SEND_BUFFER_LIMIT

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use rustls::{HandshakeKind, ProtocolVersion, ServerConnection};

use crate::transport::{Tcp, Transport, interrupted, would_block};

/// A record's worth of plaintext: the chunk a file body is read in.
const FILE_CHUNK: usize = 16 * 1024;

/// What nginx answers a plain HTTP request sent to an HTTPS port with.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain\r\n\
Content-Length: 47\r\n\
Connection: close\r\n\
\r\n\
The plain HTTP request was sent to HTTPS port.\n";

/// A finished handshake, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub resumed: bool,
    pub tls13: bool,
}

pub struct Tls {
    tcp: Tcp,
    conn: ServerConnection,
    /// The handshake finished and was not yet reported.
    finished: Option<Handshake>,
    reported: bool,
}

impl Tls {
    pub fn new(tcp: Tcp, conn: ServerConnection) -> Tls {
        Tls {
            tcp,
            conn,
            finished: None,
            reported: false,
        }
    }

    /// Sends what rustls has encrypted until the socket is full. Returns
    /// the bytes the socket took; EAGAIN is not an error here (the records
    /// stay pending).
    fn flush_records(&mut self) -> io::Result<usize> {
        let mut total = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.tcp) {
                Ok(n) => total += n,
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Feeds what was read to rustls. A protocol error sends its alert (or,
    /// for plain HTTP on this port, a plain 400) and becomes `InvalidData`,
    /// which the connection closes as `tls_error`.
    fn process(&mut self) -> io::Result<()> {
        if let Err(e) = self.conn.process_new_packets() {
            let plain_http = self.conn.is_handshaking()
                && matches!(
                    e,
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
                );
            if plain_http {
                // The alert rustls queued would mean nothing to this
                // client; nginx answers in its own language.
                let _ = Write::write(&mut self.tcp, PLAIN_HTTP_ANSWER);
            } else {
                let _ = self.flush_records();
            }
            log::debug!("tls: {e}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if !self.reported && !self.conn.is_handshaking() {
            self.reported = true;
            self.finished = Some(Handshake {
                resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
                tls13: self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3),
            });
        }
        // Handshake flights, session tickets, alerts: out now if the
        // socket takes them, else they wait as pending output.
        self.flush_records()?;
        Ok(())
    }

    /// Plaintext rustls already decrypted, into `buf`.
    fn plaintext(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.conn.reader().read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if would_block(&e) => Ok(None),
            // The TCP stream ended without close_notify: an EOF like any
            // other for HTTP/1.1, whose messages carry their own length.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }
}

impl Transport for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                return Ok(filled);
            }
            match self.plaintext(&mut buf[filled..])? {
                Some(0) => return Ok(filled), // EOF (0) or what came before it
                Some(n) => {
                    filled += n;
                    continue;
                }
                None => {}
            }
            match self.conn.read_tls(&mut self.tcp) {
                Ok(0) => {
                    // EOF: what rustls still holds is decrypted below and
                    // returned; then reads say 0.
                    self.process()?;
                    return match self.plaintext(&mut buf[filled..])? {
                        Some(n) => Ok(filled + n),
                        None => Ok(filled),
                    };
                }
                Ok(_) => self.process()?,
                Err(e) if would_block(&e) && filled > 0 => return Ok(filled),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut accepted = 0;
        loop {
            if self.conn.wants_write() {
                self.flush_records()?;
                if self.conn.wants_write() {
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
            let n = self.conn.writer().write(&buf[accepted..])?;
            if n == 0 {
                return Ok(accepted);
            }
            accepted += n;
        }
    }

    fn send_file(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize> {
        let mut chunk = [0u8; FILE_CHUNK];
        let mut sent = 0;
        loop {
            if self.conn.wants_write() {
                self.flush_records()?;
                if self.conn.wants_write() {
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
            // The send buffer is empty here, and holds more than a chunk:
            // rustls takes all of it.
            let taken = self.conn.writer().write(&chunk[..n])?;
            sent += taken;
        }
    }

    fn cork(&mut self, on: bool) {
        self.tcp.cork(on);
    }

    fn notify_close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush_records();
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.notify_close();
        self.tcp.shutdown_write()
    }

    fn abort_on_close(&mut self) {
        self.tcp.abort_on_close();
    }

    fn pending_output(&self) -> bool {
        self.conn.wants_write()
    }

    fn flush_pending(&mut self) -> io::Result<usize> {
        self.flush_records()
    }

    fn is_secure(&self) -> bool {
        true
    }

    fn in_handshake(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn take_handshake(&mut self) -> Option<Handshake> {
        self.finished.take()
    }
}
