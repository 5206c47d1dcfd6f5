//! Exchanges (a working connection's buffers and in-flight state) lent to
//! connections while they work and taken back when they go idle, so an
//! idle keep-alive connection holds no buffer at all and a busy server
//! does not allocate per request.

use crate::http::session::Exchange;

/// Input buffers have one fixed size (`--max-header-bytes`): a request
/// head must fit in one. Output buffers grow as needed; very large ones are
/// dropped instead of kept, so one big pipelined burst does not pin memory.
pub struct ExchangePool<B> {
    input_size: usize,
    // Boxed on purpose: a connection holds the Box, so lending and
    // returning moves one pointer, not the whole struct.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Exchange<B>>>,
    /// Most exchanges kept for reuse.
    keep: usize,
}

/// The largest output buffer returned to the pool.
const MAX_POOLED_OUTPUT: usize = 256 * 1024;

impl<B> ExchangePool<B> {
    pub fn new(input_size: usize, keep: usize) -> ExchangePool<B> {
        ExchangePool {
            input_size,
            spare: Vec::new(),
            keep,
        }
    }

    /// An exchange with empty buffers.
    pub fn take(&mut self) -> Box<Exchange<B>> {
        self.spare
            .pop()
            .unwrap_or_else(|| Box::new(Exchange::new(self.input_size)))
    }

    /// Takes an exchange back (emptied: whatever it held in flight is
    /// dropped, a file body's fd share included).
    pub fn put(&mut self, mut exchange: Box<Exchange<B>>) {
        if self.spare.len() < self.keep && exchange.output_capacity() <= MAX_POOLED_OUTPUT {
            exchange.reset();
            self.spare.push(exchange);
        }
    }

    /// Exchanges kept for reuse.
    pub fn spare(&self) -> usize {
        self.spare.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_at_most_keep_sets_and_no_big_outputs() {
        let mut pool = ExchangePool::<()>::new(8, 2);
        let taken: Vec<_> = (0..3).map(|_| pool.take()).collect();
        for exchange in taken {
            pool.put(exchange);
        }
        assert_eq!(pool.spare(), 2, "at most `keep`");
        let mut pool = ExchangePool::<()>::new(8, 2);
        let mut big = pool.take();
        big.out.buf.reserve(MAX_POOLED_OUTPUT + 1);
        pool.put(big);
        assert_eq!(pool.spare(), 0, "a grown output is dropped");
        let mut fits = pool.take();
        fits.out.buf.reserve(MAX_POOLED_OUTPUT / 2);
        pool.put(fits);
        assert_eq!(pool.spare(), 1);
    }

    #[test]
    fn a_new_exchange_has_the_pools_input_size() {
        let mut pool = ExchangePool::<()>::new(8192, 2);
        assert_eq!(pool.take().input_capacity(), 8192);
    }

    #[test]
    fn a_returned_exchange_comes_back_empty() {
        let mut pool = ExchangePool::<u8>::new(8, 4);
        let mut exchange = pool.take();
        exchange.out.buf.extend_from_slice(b"left over");
        exchange.out.pos = 4;
        exchange.out.file = Some(7);
        pool.put(exchange);
        let exchange = pool.take();
        assert!(exchange.out.is_empty(), "a lent exchange starts empty");
        assert!(exchange.out.buf.is_empty());
    }
}
