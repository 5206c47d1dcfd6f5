//! Buffers lent to connections while they work and taken back when they
//! go idle, so an idle keep-alive connection holds no buffer at all and a
//! busy server does not allocate per request.

use crate::conn::Work;

/// Input buffers have one fixed size (`--max-header-bytes`): a request
/// head must fit in one. Output buffers grow as needed; very large ones are
/// dropped instead of kept, so one big pipelined burst does not pin memory.
pub struct BufPool {
    input_size: usize,
    // Boxed on purpose: a connection holds the Box, so lending and
    // returning moves one pointer, not the whole struct.
    #[allow(clippy::vec_box)]
    works: Vec<Box<Work>>,
    /// Most sets kept for reuse.
    keep: usize,
}

/// The largest output buffer returned to the pool.
const MAX_POOLED_OUTPUT: usize = 256 * 1024;

impl BufPool {
    pub fn new(input_size: usize, keep: usize) -> BufPool {
        BufPool {
            input_size,
            works: Vec::new(),
            keep,
        }
    }

    pub fn take_work(&mut self) -> Box<Work> {
        self.works.pop().unwrap_or_else(|| {
            Box::new(Work::new(InBuf {
                data: vec![0; self.input_size].into_boxed_slice(),
                start: 0,
                end: 0,
            }))
        })
    }

    pub fn put_work(&mut self, mut work: Box<Work>) {
        if self.works.len() < self.keep && work.output.capacity() <= MAX_POOLED_OUTPUT {
            work.input.start = 0;
            work.input.end = 0;
            work.output.clear();
            work.out_pos = 0;
            work.file = None;
            work.body = None;
            work.corked = false;
            self.works.push(work);
        }
    }
}

/// A fixed-size input buffer: bytes `start..end` are received and not yet
/// consumed.
pub struct InBuf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl InBuf {
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into, after moving unconsumed bytes to the front when
    /// that makes room.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.data[self.end..]
    }

    pub fn filled(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.data.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_compacts_and_resets() {
        let mut pool = BufPool::new(8, 4);
        let mut work = pool.take_work();
        let buf = &mut work.input;
        buf.spare()[..8].copy_from_slice(b"abcdefgh");
        buf.filled(8);
        buf.consume(5);
        assert_eq!(buf.bytes(), b"fgh");
        assert_eq!(buf.spare().len(), 5);
        assert_eq!(buf.bytes(), b"fgh");
        buf.consume(3);
        assert!(buf.is_empty());
        assert_eq!(buf.spare().len(), 8);
        pool.put_work(work);
        assert_eq!(pool.works.len(), 1);
    }
}
