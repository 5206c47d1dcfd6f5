//! [`Records`]: rustls's unbuffered state machine over one connection's
//! [record buffers](super::buffers): records read are processed (handshake
//! flights and alerts encoded, application data decrypted into `plain`),
//! plaintext is encrypted into `outgoing`, and a finished handshake is
//! noted for the counters.
//!
//! It owns no socket: the caller lends it one for the calls that move
//! bytes ([`Records::read_socket`], [`Records::flush`], and
//! [`Records::process`], which may answer a failed handshake at once), as
//! `impl Read` or `impl Write`, the way rustls's own `read_tls` and
//! `write_tls` take theirs.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use rustls::{HandshakeKind, ProtocolVersion};

use super::buffers::{Buffers, Bufs, RECORD_BYTES};
use super::hello::{self, Hello};
use crate::transport::{Handshake, interrupted, would_block};

/// The most plaintext encrypted in one call: two full records. Writes
/// encrypt only once the records before them are out, so a stalled reader
/// costs at most this much (encrypted) beside its socket buffer.
pub const SEND_BUFFER_LIMIT: usize = 32 * 1024;

/// The largest handshake message rustls accepts (64 KiB), with a record
/// header: the incoming buffer grows to this while one is joined.
const MAX_INCOMING: usize = 64 * 1024 + 2 * RECORD_BYTES;

/// What nginx answers a plain HTTP request sent to an HTTPS port with.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain\r\n\
Content-Length: 47\r\n\
Connection: close\r\n\
\r\n\
The plain HTTP request was sent to HTTPS port.\n";

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

/// Where processing the records stopped.
pub(super) enum Stop {
    /// More bytes from the peer are needed.
    NeedInput,
    /// Application data may be encrypted now.
    CanWrite,
    /// Both sides said close_notify.
    Closed,
}

/// One connection's TLS state: rustls's connection and the record buffers
/// it works in.
pub(super) struct Records {
    conn: UnbufferedServerConnection,
    /// The record buffers, from the pool while working.
    b: Bufs,
    /// The peer sent close_notify, or its TCP stream ended.
    peer_done: bool,
    /// The handshake finished and was not yet reported.
    finished: Option<Handshake>,
    reported: bool,
    /// The ClientHello's server name, once its record has come (rustls's
    /// unbuffered connection does not tell it).
    server_name: Option<Box<str>>,
    /// The first record was read for its server name.
    hello_read: bool,
    /// The configuration in the client's suite order, until the hello
    /// was read: taken then if the client lists ChaCha20 first.
    client_order: Option<Arc<ServerConfig>>,
}

impl Records {
    pub(super) fn new(
        conn: UnbufferedServerConnection,
        client_order: Arc<ServerConfig>,
    ) -> Records {
        Records {
            conn,
            b: Bufs::none(),
            peer_done: false,
            finished: None,
            reported: false,
            server_name: None,
            hello_read: false,
            client_order: Some(client_order),
        }
    }

    /// The server name the client's hello asked for (SNI), if any.
    pub(super) fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Reads the server name from the first record, before rustls
    /// consumes it (see [`super::hello`]); and, for a client that lists
    /// ChaCha20 first, starts rustls over in the client's suite order
    /// (nothing was processed yet: rustls waits for a whole record).
    fn read_hello(&mut self) {
        let first = &self.b.incoming[..self.b.in_len];
        match hello::server_name(first) {
            Hello::Incomplete => return,
            Hello::Name(name) => self.server_name = Some(name.into()),
            Hello::NoName => {}
        }
        self.hello_read = true;
        let client_order = self.client_order.take();
        if let Some(config) = client_order.filter(|_| hello::prefers_chacha(first)) {
            match UnbufferedServerConnection::new(config) {
                Ok(conn) => self.conn = conn,
                Err(e) => log::debug!("client-order TLS configuration: {e}"),
            }
        }
    }

    /// Record bytes encoded and not yet on the wire.
    pub(super) fn unsent(&self) -> usize {
        self.b.outgoing.len() - self.b.sent
    }

    /// Decrypted data is waiting to be read.
    pub(super) fn has_plain(&self) -> bool {
        self.b.plain_read < self.b.plain.len()
    }

    /// The peer said close_notify, or its TCP stream ended: nothing more
    /// will be decrypted.
    pub(super) fn peer_done(&self) -> bool {
        self.peer_done
    }

    /// The TCP stream ended (EOF without close_notify).
    pub(super) fn set_peer_done(&mut self) {
        self.peer_done = true;
    }

    pub(super) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The handshake that finished since the last call, once.
    pub(super) fn take_handshake(&mut self) -> Option<Handshake> {
        self.finished.take()
    }

    /// Gives the buffers back to their pool if they are empty.
    pub(super) fn release(&mut self) {
        self.b.release();
    }

    /// Sends pending records until `socket` is full. Returns the bytes it
    /// took; EAGAIN is not an error here.
    pub(super) fn flush(&mut self, socket: &mut impl Write) -> io::Result<usize> {
        if self.unsent() == 0 {
            return Ok(0);
        }
        let mut total = 0;
        while self.b.sent < self.b.outgoing.len() {
            match socket.write(&self.b.outgoing[self.b.sent..]) {
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
    /// handshake records to `outgoing`. A protocol error is answered on
    /// `socket` (see [`Records::fail`]).
    pub(super) fn process(
        &mut self,
        data: &[u8],
        taken: &mut usize,
        socket: &mut impl Write,
    ) -> io::Result<Stop> {
        if !self.hello_read {
            self.read_hello();
        }
        loop {
            let Records {
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
                    return Err(self.fail(e, plain_http, socket));
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

    /// Queues close_notify after the records already out; the caller
    /// flushes. Only once `process` said [`Stop::CanWrite`].
    pub(super) fn queue_close_notify(&mut self) {
        self.one_more_pass(|state, outgoing| {
            if let ConnectionState::WriteTraffic(mut writer) = state {
                append(outgoing, 64, |buf| Ok(writer.queue_close_notify(buf)?));
            }
        });
    }

    /// One more pass of rustls over the incoming records, for what a
    /// caller queued (an alert, close_notify): `act` gets the state it
    /// stops in and the outgoing records. The pass gets the same incoming
    /// bytes as every other (rustls keeps offsets into them while it joins
    /// a handshake message: another slice would be out of its bounds).
    fn one_more_pass(
        &mut self,
        act: impl FnOnce(ConnectionState<'_, '_, ServerConnectionData>, &mut Vec<u8>),
    ) {
        let Records { conn, b, .. } = self;
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

    /// A protocol error: its alert (or, for plain HTTP on this port, a
    /// plain 400) is sent on `socket` best effort; the connection closes
    /// as `tls_error`.
    fn fail(&mut self, e: rustls::Error, plain_http: bool, socket: &mut impl Write) -> io::Error {
        if plain_http {
            // The alert rustls queued would mean nothing to this client;
            // nginx answers in its own language.
            let _ = socket.write(PLAIN_HTTP_ANSWER);
        } else {
            // The alert is queued: one more pass encodes it.
            self.one_more_pass(|state, outgoing| {
                if let ConnectionState::EncodeTlsData(mut encoder) = state {
                    append(outgoing, 64, |buf| Ok(encoder.encode(buf)?));
                }
            });
            let _ = self.flush(socket);
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

    /// Reads from `socket` into `incoming` once: `Ok((n, drained))`,
    /// `drained` when the read was short (the socket has nothing more:
    /// its next arrival brings a new edge). `Ok((0, _))` is EOF.
    pub(super) fn read_socket(&mut self, socket: &mut impl Read) -> io::Result<(usize, bool)> {
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
        let n = socket.read(&mut self.b.incoming[in_len..])?;
        self.b.in_len += n;
        Ok((n, n < room))
    }

    /// Moves decrypted data to `buf`; returns how much.
    pub(super) fn take_plain(&mut self, buf: &mut [u8]) -> usize {
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
