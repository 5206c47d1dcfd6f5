//! The lingering close (RFC 9112 §9.6): once the last response is out,
//! shut the write side and drain what the client still sends until EOF or
//! `--linger-timeout`, so that closing does not turn unread input into a
//! reset that destroys the response in flight.

use std::time::Instant;

use super::{Conn, Next, Pool};
use crate::close::CloseReason;
use crate::transport::{Transport, interrupted, would_block};

/// The most bytes a lingering close discards per readiness event.
const LINGER_READ_BUDGET: usize = 256 * 1024;

impl<T: Transport> Conn<T> {
    /// The last response is out and said close: shut our write side (the
    /// client sees EOF after the response) and drain what the client still
    /// sends, so closing does not turn unread input into a RST that could
    /// destroy the response in flight (RFC 9112 §9.6).
    pub(super) fn start_lingering(
        &mut self,
        pool: &mut Pool,
        reason: CloseReason,
        now: Instant,
    ) -> Next {
        // As nginx does, skip the linger when nothing can be unread: a
        // plain ResponseClose (the client asked, HTTP/1.0, keep-alive off,
        // a refused `Expect`), every byte it sent consumed, and the last
        // read drained the socket. Lingering stays where the client may
        // still be sending: max-requests, protocol errors, timeouts,
        // shutdown.
        let nothing_unread = reason == CloseReason::ResponseClose
            && !self.readable
            && self.session.all_input_consumed();
        if let Some(exchange) = self.session.begin_closing(reason, now) {
            pool.put(exchange);
        }
        self.transport.release();
        if self.peer_closed || nothing_unread {
            if !self.peer_closed {
                self.transport.notify_close();
            }
            return Next::Close(reason);
        }
        if let Err(e) = self.transport.shutdown_write() {
            log::debug!("{}: shutdown(write) failed: {e}", self.peer);
            return Next::Close(reason);
        }
        self.readable = true;
        self.drain_lingering()
    }

    pub(super) fn drain_lingering(&mut self) -> Next {
        let reason = self
            .session
            .close_after_output()
            .unwrap_or(CloseReason::ResponseClose);
        let mut scratch = [0u8; 4096];
        let mut budget = LINGER_READ_BUDGET;
        while self.readable && budget > 0 {
            match self.transport.read(&mut scratch) {
                Ok(0) => return Next::Close(reason),
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if would_block(&e) => self.readable = false,
                Err(e) if interrupted(&e) => {}
                Err(_) => return Next::Close(reason),
            }
        }
        Next::Open
    }
}
