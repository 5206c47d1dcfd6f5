//! A TLS connection's record buffers, and the per-thread pool that lends
//! them: taken when the connection first needs one, given back when it
//! goes idle ([`Transport::release`]), so an idle TLS connection keeps
//! rustls's state and nothing else.
//!
//! Three buffers, lent as one allocation:
//! - `incoming`: TLS bytes read and not yet processed (at most a record,
//!   or a handshake message being joined);
//! - `outgoing`: records encoded or encrypted and not yet sent (at most
//!   [`SEND_BUFFER_LIMIT`] of plaintext at a time);
//! - `plain`: decrypted application data the connection has not read yet.
//!
//! [`Transport::release`]: crate::transport::Transport::release
//! [`SEND_BUFFER_LIMIT`]: super::records::SEND_BUFFER_LIMIT

use std::cell::RefCell;

/// A full TLS record on the wire (16 KiB of data, its header, padding and
/// tag): what the incoming buffer holds at least.
pub(super) const RECORD_BYTES: usize = 16 * 1024 + 256 + 5;

/// Buffers kept for reuse per reactor thread, at most.
const POOL_KEEP: usize = 256;

/// A connection's record buffers, one allocation lent whole by the pool
/// (so an idle connection's box holds one pointer for them).
pub(super) struct Buffers {
    /// Initialized to its length (zeroed once, when first allocated), so
    /// reads need no zero-fill; `incoming[..in_len]` holds the bytes.
    pub(super) incoming: Vec<u8>,
    pub(super) in_len: usize,
    pub(super) outgoing: Vec<u8>,
    /// `outgoing[..sent]` is on the wire.
    pub(super) sent: usize,
    pub(super) plain: Vec<u8>,
    /// `plain[..plain_read]` was given to the connection.
    pub(super) plain_read: usize,
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
pub(super) struct Bufs(Option<Box<Buffers>>);

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
    /// No buffers yet: the pool lends them at the first mutable use.
    pub(super) fn none() -> Bufs {
        Bufs(None)
    }

    /// Gives the buffers back to the pool if nothing is in them (grown
    /// ones are cut back to a record).
    pub(super) fn release(&mut self) {
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
