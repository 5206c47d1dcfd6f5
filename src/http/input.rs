//! The connection's input buffer.

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

impl InBuf {
    /// An empty buffer of `size` bytes: a request head must fit in it.
    pub fn new(size: usize) -> InBuf {
        InBuf {
            data: vec![0; size].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Its size: the longest head it holds.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Forgets every byte.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::InBuf;

    #[test]
    fn input_compacts_and_clears() {
        let mut buf = InBuf::new(8);
        buf.spare()[..8].copy_from_slice(b"abcdefgh");
        buf.filled(8);
        buf.consume(5);
        assert_eq!(buf.bytes(), b"fgh");
        assert_eq!(buf.spare().len(), 5, "the unread bytes moved to the front");
        assert_eq!(buf.bytes(), b"fgh");
        buf.consume(3);
        assert!(buf.is_empty());
        assert_eq!(buf.spare().len(), 8);
        buf.spare()[..3].copy_from_slice(b"GET");
        buf.filled(3);
        buf.clear();
        assert!(buf.is_empty());
        assert_eq!(buf.spare().len(), 8);
    }
}
