//! Buffers lent to connections while they work and taken back when they
//! go idle, so an idle keep-alive connection holds no buffer at all and a
//! busy server does not allocate per request.

use crate::http::body::BodyDecoder;
use crate::http::input::InBuf;
use crate::http::session::Exchange;
use crate::serve::FileBody;

/// What a working connection borrows from the pool: its input and output
/// buffers and the state of the exchange in flight. An idle connection
/// holds none of it (RSS per idle connection is the point).
pub struct Work {
    pub input: InBuf,
    /// Answers not yet written, from `out_pos` on.
    pub output: Vec<u8>,
    pub out_pos: usize,
    /// A file body to send after `output`.
    pub file: Option<FileBody>,
    /// A request body being discarded.
    pub body: Option<BodyDecoder>,
    /// TCP_CORK is on while a file body is sent.
    pub corked: bool,
    /// A request head held while its chunked body is read.
    pub held_head: Vec<u8>,
}

impl Work {
    fn new(input_size: usize) -> Work {
        Work {
            input: InBuf::new(input_size),
            output: Vec::with_capacity(4096),
            out_pos: 0,
            file: None,
            body: None,
            corked: false,
            held_head: Vec::new(),
        }
    }

    /// Back to the state [`Work::new`] gives, keeping the allocations.
    fn reset(&mut self) {
        self.input.clear();
        self.output.clear();
        self.out_pos = 0;
        self.file = None;
        self.body = None;
        self.corked = false;
        self.held_head.clear();
    }

    /// Lends the buffers and in-flight state to the HTTP session.
    pub fn exchange(&mut self) -> Exchange<'_, FileBody> {
        Exchange {
            input: &mut self.input,
            output: &mut self.output,
            body: &mut self.body,
            file: &mut self.file,
            held: &mut self.held_head,
        }
    }

    /// Nothing in flight: no input, no output, no file, no body.
    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
            && self.out_pos >= self.output.len()
            && self.file.is_none()
            && self.body.is_none()
    }
}

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
        self.works
            .pop()
            .unwrap_or_else(|| Box::new(Work::new(self.input_size)))
    }

    pub fn put_work(&mut self, mut work: Box<Work>) {
        if self.works.len() < self.keep && work.output.capacity() <= MAX_POOLED_OUTPUT {
            work.reset();
            self.works.push(work);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_is_empty_only_with_nothing_in_flight() {
        let mut pool = BufPool::new(64, 4);
        let mut work = pool.take_work();
        assert!(work.is_empty());
        work.input.spare()[..1].copy_from_slice(b"G");
        work.input.filled(1);
        assert!(!work.is_empty(), "a byte of a request");
        work.input.consume(1);
        work.output.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert!(!work.is_empty(), "output unsent");
        work.out_pos = work.output.len();
        assert!(work.is_empty(), "output all sent");
        work.body =
            crate::http::body::BodyDecoder::new(crate::http::body::Framing::Length(3), 10).unwrap();
        assert!(!work.is_empty(), "a body being discarded");
        work.body = None;
        let file = std::fs::File::open("Cargo.toml").unwrap();
        let open = crate::files::OpenFiles::default().adopt(file);
        work.file = Some(crate::serve::FileBody::whole(open, 0, 1));
        assert!(!work.is_empty(), "a file body to send");
    }

    #[test]
    fn the_pool_keeps_at_most_keep_sets_and_no_big_outputs() {
        let mut pool = BufPool::new(8, 2);
        let works: Vec<_> = (0..3).map(|_| pool.take_work()).collect();
        for work in works {
            pool.put_work(work);
        }
        assert_eq!(pool.works.len(), 2, "at most `keep`");
        let mut pool = BufPool::new(8, 2);
        let mut big = pool.take_work();
        big.output.reserve(MAX_POOLED_OUTPUT + 1);
        pool.put_work(big);
        assert_eq!(pool.works.len(), 0, "a grown output is dropped");
        let mut fits = pool.take_work();
        fits.output.reserve(MAX_POOLED_OUTPUT / 2);
        pool.put_work(fits);
        assert_eq!(pool.works.len(), 1);
    }

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
        work.output.extend_from_slice(b"left over");
        work.out_pos = 4;
        pool.put_work(work);
        assert_eq!(pool.works.len(), 1);
        let mut work = pool.take_work();
        assert!(work.is_empty(), "a lent Work starts empty");
        // Returned with unread input, it comes back empty all the same.
        work.input.spare()[..3].copy_from_slice(b"GET");
        work.input.filled(3);
        pool.put_work(work);
        assert!(pool.take_work().input.is_empty());
    }
}
