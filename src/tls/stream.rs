//! [`Tls`]: one connection's TLS records over its TCP socket, as a
//! [`Transport`], on rustls's unbuffered API: the record bytes live in
//! buffers holdline owns, lent by a per-thread pool while the connection
//! works and given back when it goes idle ([`Transport::release`]), so an
//! idle TLS connection keeps rustls's state and nothing else.
//!
//! Three buffers, each taken from the pool when first needed:
//! - `incoming`: TLS bytes read and not yet processed (at most a record,
//!   or a handshake message being joined);
//! - `outgoing`: records encoded or encrypted and not yet sent (at most
//!   [`SEND_BUFFER_LIMIT`] of plaintext at a time);
//! - `plain`: decrypted application data the connection has not read yet.
//!
//! The contract the connection relies on holds as for plain TCP: a read
//! or write that returns fewer bytes than asked means the socket said
//! EAGAIN (so an edge-triggered readiness event will come), never only
//! that a record ended. Reads go on until the caller's buffer is full or
//! the socket is drained; writes and file bodies until the socket is full.
//! Records not yet sent are reported by [`Transport::pending_output`].
//!
//! File bodies cannot use sendfile: they are read with `pread` in 16 KiB
//! chunks (one full record) into a stack buffer, encrypted, and sent.
//!
//! [`SEND_BUFFER_LIMIT`]: super::SEND_BUFFER_LIMIT

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use rustls::{HandshakeKind, ProtocolVersion};

use super::SEND_BUFFER_LIMIT;
use crate::transport::{Handshake, Tcp, Transport, interrupted, would_block};

/// A record's worth of plaintext: the chunk a file body is read in.
const FILE_CHUNK: usize = 16 * 1024;

/// A full TLS record on the wire (16 KiB of data, its header, padding and
/// tag): what the incoming buffer holds at least.
const RECORD_BYTES: usize = 16 * 1024 + 256 + 5;

/// The largest handshake message rustls accepts (64 KiB), with a record
/// header: the incoming buffer grows to this while one is joined.
const MAX_INCOMING: usize = 64 * 1024 + 2 * RECORD_BYTES;

/// Buffers kept for reuse per reactor thread, at most.
const POOL_KEEP: usize = 256;

/// A connection's record buffers, one allocation lent whole by the pool
/// (so an idle connection's box holds one pointer for them).
struct Buffers {
    /// Initialized to its length (zeroed once, when first allocated), so
    /// reads need no zero-fill; `incoming[..in_len]` holds the bytes.
    incoming: Vec<u8>,
    in_len: usize,
    outgoing: Vec<u8>,
    /// `outgoing[..sent]` is on the wire.
    sent: usize,
    plain: Vec<u8>,
    /// `plain[..plain_read]` was given to the connection.
    plain_read: usize,
}

static NO_BUFFERS: Buffers = Buffers {
    incoming: Vec::new(),
    in_len: 0,
    outgoing: Vec::new(),
    sent: 0,
    plain: Vec::new(),
    plain_read: 0,
};

thread_local! {
    /// Buffers given back by connections gone idle, for the next one that
    /// works. Boxes, not values: a connection holds its buffers as a box,
    /// which moves in and out of the pool without a new allocation.
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Box<Buffers>>> = const { RefCell::new(Vec::new()) };
}

/// The buffers of a connection: none while idle (reading them sees empty
/// buffers), taken from the pool at the first mutable use.
struct Bufs(Option<Box<Buffers>>);

impl std::ops::Deref for Bufs {
    type Target = Buffers;
    fn deref(&self) -> &Buffers {
        self.0.as_deref().unwrap_or(&NO_BUFFERS)
    }
}

impl std::ops::DerefMut for Bufs {
    fn deref_mut(&mut self) -> &mut Buffers {
        self.0.get_or_insert_with(|| {
            POOL.with(|pool| pool.borrow_mut().pop())
                .unwrap_or_else(|| {
                    Box::new(Buffers {
                        incoming: Vec::new(),
                        in_len: 0,
                        outgoing: Vec::new(),
                        sent: 0,
                        plain: Vec::new(),
                        plain_read: 0,
                    })
                })
        })
    }
}

impl Bufs {
    /// Gives the buffers back to the pool if nothing is in them (grown
    /// ones are cut back to a record).
    fn release(&mut self) {
        let Some(b) = self.0.as_mut() else {
            return;
        };
        if b.in_len != 0 || b.sent != b.outgoing.len() || b.plain_read != b.plain.len() {
            return;
        }
        b.incoming.truncate(RECORD_BYTES);
        b.incoming.shrink_to(RECORD_BYTES);
        for buf in [&mut b.outgoing, &mut b.plain] {
            buf.clear();
            buf.shrink_to(RECORD_BYTES);
        }
        (b.sent, b.plain_read) = (0, 0);
        let Some(b) = self.0.take() else {
            return;
        };
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_KEEP {
                pool.push(b);
            }
        });
    }
}

/// How an encoder of records into a slice failed: the slice was too small
/// (try again with this much), or there is nothing (more) to write.
enum Short {
    Needs(usize),
    Done,
}

impl From<EncodeError> for Short {
    fn from(e: EncodeError) -> Short {
        match e {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Short::Needs(required_size)
            }
            _ => Short::Done,
        }
    }
}

impl From<EncryptError> for Short {
    fn from(e: EncryptError) -> Short {
        match e {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Short::Needs(required_size)
            }
            _ => Short::Done,
        }
    }
}

/// Appends to `outgoing` what `encode` writes into room at its end: first
/// `room` bytes, then as much as `encode` says it needs. False when it
/// wrote nothing (nothing to write, or it cannot: see its error).
impl Tls {
    /// One more pass of rustls over the incoming records, for what a
    /// caller queued (an alert, close_notify): `act` gets the state it
    /// stops in and the outgoing records. The pass gets the same incoming
    /// bytes as every other (rustls keeps offsets into them while it joins
    /// a handshake message: another slice would be out of its bounds).
    fn one_more_pass(
        &mut self,
        act: impl FnOnce(ConnectionState<'_, '_, rustls::server::ServerConnectionData>, &mut Vec<u8>),
    ) {
        let Tls { conn, b, .. } = self;
        let Buffers {
            incoming,
            in_len,
            outgoing,
            ..
        } = &mut **b;
        let status = conn.process_tls_records(&mut incoming[..*in_len]);
        if let Ok(state) = status.state {
            act(state, outgoing);
        }
    }
}

fn append(
    outgoing: &mut Vec<u8>,
    room: usize,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, Short>,
) -> bool {
    let filled = outgoing.len();
    if outgoing.capacity() == 0 {
        outgoing.reserve(RECORD_BYTES);
    }
    let mut room = room;
    loop {
        outgoing.resize(filled + room, 0);
        match encode(&mut outgoing[filled..]) {
            Ok(n) => {
                outgoing.truncate(filled + n);
                return true;
            }
            Err(Short::Needs(more)) => room = more,
            Err(Short::Done) => {
                outgoing.truncate(filled);
                return false;
            }
        }
    }
}

/// What nginx answers a plain HTTP request sent to an HTTPS port with.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain\r\n\
Content-Length: 47\r\n\
Connection: close\r\n\
\r\n\
The plain HTTP request was sent to HTTPS port.\n";

pub struct Tls {
    tcp: Tcp,
    conn: UnbufferedServerConnection,
    /// The record buffers, from the pool while working.
    b: Bufs,
    /// The peer sent close_notify, or its TCP stream ended.
    peer_done: bool,
    /// The handshake finished and was not yet reported.
    finished: Option<Handshake>,
    reported: bool,
}

/// Where processing the records stopped.
enum Stop {
    /// More bytes from the peer are needed.
    NeedInput,
    /// Application data may be encrypted now.
    CanWrite,
    /// Both sides said close_notify.
    Closed,
}

impl Tls {
    pub fn new(tcp: Tcp, conn: UnbufferedServerConnection) -> Tls {
        Tls {
            tcp,
            conn,
            b: Bufs(None),
            peer_done: false,
            finished: None,
            reported: false,
        }
    }

    fn unsent(&self) -> usize {
        self.b.outgoing.len() - self.b.sent
    }

    /// Sends pending records until the socket is full. Returns the bytes
    /// the socket took; EAGAIN is not an error here.
    fn flush_records(&mut self) -> io::Result<usize> {
        if self.unsent() == 0 {
            return Ok(0);
        }
        let mut total = 0;
        while self.b.sent < self.b.outgoing.len() {
            match Write::write(&mut self.tcp, &self.b.outgoing[self.b.sent..]) {
                Ok(n) => {
                    self.b.sent += n;
                    total += n;
                }
                Err(e) if would_block(&e) => return Ok(total),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.b.outgoing.clear();
        self.b.sent = 0;
        Ok(total)
    }

    /// Runs rustls over the incoming bytes until it needs something from
    /// outside: more input, or application data to encrypt (`data`, which
    /// is then encrypted: the count of its bytes taken is returned in the
    /// `CanWrite` case through `taken`). Decrypted data goes to `plain`,
    /// handshake records to `outgoing`.
    fn process(&mut self, data: &[u8], taken: &mut usize) -> io::Result<Stop> {
        loop {
            let Tls {
                conn, b, peer_done, ..
            } = self;
            let Buffers {
                incoming,
                in_len,
                outgoing,
                plain,
                ..
            } = &mut **b;
            let status = conn.process_tls_records(&mut incoming[..*in_len]);
            let discard = status.discard;
            let state = match status.state {
                Ok(state) => state,
                Err(e) => {
                    let plain_http = matches!(
                        e,
                        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
                    ) && self.conn.is_handshaking();
                    return Err(self.fail(e, plain_http));
                }
            };
            let mut stop = None;
            match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record =
                            record.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        if plain.capacity() == 0 {
                            plain.reserve(RECORD_BYTES);
                        }
                        plain.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::ReadEarlyData(mut records) => {
                    // 0-RTT is off (max_early_data_size 0): none comes.
                    while let Some(record) = records.next_record() {
                        record.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    }
                }
                ConnectionState::EncodeTlsData(mut encoder) => {
                    append(outgoing, 0, |buf| Ok(encoder.encode(buf)?));
                }
                // The records are in `outgoing`, ours to send when the
                // socket takes them.
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::BlockedHandshake => stop = Some(Stop::NeedInput),
                ConnectionState::PeerClosed => *peer_done = true,
                ConnectionState::Closed => {
                    *peer_done = true;
                    stop = Some(Stop::Closed);
                }
                ConnectionState::WriteTraffic(mut writer) => {
                    if !data.is_empty() {
                        let chunk = &data[..data.len().min(SEND_BUFFER_LIMIT)];
                        if !append(outgoing, chunk.len() + 1024, |buf| {
                            Ok(writer.encrypt(chunk, buf)?)
                        }) {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "TLS sequence numbers exhausted",
                            ));
                        }
                        *taken = chunk.len();
                    }
                    stop = Some(Stop::CanWrite);
                }
                // A state a later rustls adds: wait for input, as for a
                // blocked handshake.
                _ => stop = Some(Stop::NeedInput),
            }
            if discard > 0 {
                let in_len = self.b.in_len;
                self.b.incoming.copy_within(discard..in_len, 0);
                self.b.in_len -= discard;
            }
            self.note_handshake();
            if let Some(stop) = stop {
                return Ok(stop);
            }
        }
    }

    /// A protocol error: its alert (or, for plain HTTP on this port, a
    /// plain 400) is sent best effort; the connection closes as
    /// `tls_error`.
    fn fail(&mut self, e: rustls::Error, plain_http: bool) -> io::Error {
        if plain_http {
            // The alert rustls queued would mean nothing to this client;
            // nginx answers in its own language.
            let _ = Write::write(&mut self.tcp, PLAIN_HTTP_ANSWER);
        } else {
            // The alert is queued: one more pass encodes it.
            self.one_more_pass(|state, outgoing| {
                if let ConnectionState::EncodeTlsData(mut encoder) = state {
                    append(outgoing, 64, |buf| Ok(encoder.encode(buf)?));
                }
            });
            let _ = self.flush_records();
        }
        log::debug!("tls: {e}");
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    fn note_handshake(&mut self) {
        if !self.reported && !self.conn.is_handshaking() {
            self.reported = true;
            self.finished = Some(Handshake {
                resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
                tls13: self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3),
            });
        }
    }

    /// Reads from the socket into `incoming` once: `Ok((n, drained))`,
    /// `drained` when the read was short (the socket has nothing more:
    /// its next arrival brings a new edge). `Ok((0, _))` is EOF.
    fn read_socket(&mut self) -> io::Result<(usize, bool)> {
        if self.b.incoming.is_empty() {
            self.b.incoming.resize(RECORD_BYTES, 0);
        }
        if self.b.in_len == self.b.incoming.len() {
            // A handshake message longer than a record is being joined.
            if self.b.in_len >= MAX_INCOMING {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS message too large",
                ));
            }
            let in_len = self.b.in_len;
            self.b.incoming.resize(in_len + RECORD_BYTES, 0);
        }
        let room = self.b.incoming.len() - self.b.in_len;
        let in_len = self.b.in_len;
        let n = Read::read(&mut self.tcp, &mut self.b.incoming[in_len..])?;
        self.b.in_len += n;
        Ok((n, n < room))
    }

    /// Moves decrypted data to `buf`; returns how much.
    fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let available = &self.b.plain[self.b.plain_read..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.b.plain_read += n;
        if self.b.plain_read == self.b.plain.len() {
            self.b.plain.clear();
            self.b.plain_read = 0;
        }
        n
    }
}

impl Transport for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        let mut drained = false;
        loop {
            filled += self.take_plain(&mut buf[filled..]);
            if filled == buf.len() {
                return Ok(filled);
            }
            if self.peer_done {
                // close_notify or EOF: what came before it, then 0.
                return Ok(filled);
            }
            // Records already buffered first, then the socket.
            let mut none = 0;
            self.process(&[], &mut none)?;
            // Handshake flights, session tickets, alerts: out now if the
            // socket takes them, else they wait as pending output.
            self.flush_records()?;
            if self.b.plain_read < self.b.plain.len() || self.peer_done {
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
            match self.read_socket() {
                Ok((0, _)) => {
                    // TCP EOF without close_notify: an EOF like any other
                    // for HTTP/1.1, whose messages carry their own length.
                    self.peer_done = true;
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
            if self.unsent() > 0 {
                self.flush_records()?;
                if self.unsent() > 0 {
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
            match self.process(&buf[accepted..], &mut taken)? {
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
            if self.unsent() > 0 {
                self.flush_records()?;
                if self.unsent() > 0 {
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
            match self.process(&chunk[..n], &mut taken)? {
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

    fn cork(&mut self, on: bool) {
        self.tcp.cork(on);
    }

    fn notify_close(&mut self) {
        // The same incoming bytes as every other pass (see `one_more_pass`); what
        // the pass decrypts is not read any more: the connection closes.
        let mut none = 0;
        if let Ok(Stop::CanWrite) = self.process(&[], &mut none) {
            self.one_more_pass(|state, outgoing| {
                if let ConnectionState::WriteTraffic(mut writer) = state {
                    append(outgoing, 64, |buf| Ok(writer.queue_close_notify(buf)?));
                }
            });
        }
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
        self.unsent() > 0
    }

    fn flush_pending(&mut self) -> io::Result<usize> {
        self.flush_records()
    }

    fn release(&mut self) {
        self.b.release();
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
