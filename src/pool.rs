//! Buffers lent to connections while they work and taken back when they
//! go idle, so an idle keep-alive connection holds no buffer at all and a
//! busy server does not allocate per request.

/// Input buffers have one fixed size (`--max-header-bytes`): a request
/// head must fit in one. Output buffers grow as needed; very large ones are
/// dropped instead of kept, so one big pipelined burst does not pin memory.
pub struct BufPool {
    input_size: usize,
    inputs: Vec<InBuf>,
    outputs: Vec<Vec<u8>>,
    /// Most buffers of each kind kept for reuse.
    keep: usize,
}

/// The largest output buffer returned to the pool.
const MAX_POOLED_OUTPUT: usize = 256 * 1024;

impl BufPool {
    pub fn new(input_size: usize, keep: usize) -> BufPool {
        BufPool {
            input_size,
            inputs: Vec::new(),
            outputs: Vec::new(),
            keep,
        }
    }

    pub fn take_input(&mut self) -> InBuf {
        self.inputs.pop().unwrap_or_else(|| InBuf {
            data: vec![0; self.input_size].into_boxed_slice(),
            start: 0,
            end: 0,
        })
    }

    pub fn put_input(&mut self, mut buf: InBuf) {
        if self.inputs.len() < self.keep {
            buf.start = 0;
            buf.end = 0;
            self.inputs.push(buf);
        }
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        self.outputs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(4096))
    }

    pub fn put_output(&mut self, mut buf: Vec<u8>) {
        if self.outputs.len() < self.keep && buf.capacity() <= MAX_POOLED_OUTPUT {
            buf.clear();
            self.outputs.push(buf);
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
        let mut buf = pool.take_input();
        buf.spare()[..8].copy_from_slice(b"abcdefgh");
        buf.filled(8);
        buf.consume(5);
        assert_eq!(buf.bytes(), b"fgh");
        assert_eq!(buf.spare().len(), 5);
        assert_eq!(buf.bytes(), b"fgh");
        buf.consume(3);
        assert!(buf.is_empty());
        assert_eq!(buf.spare().len(), 8);
        pool.put_input(buf);
        assert_eq!(pool.inputs.len(), 1);
    }
}
