//! The compressor: one background thread per worker that compresses
//! files for the reactor, so the reactor never spends milliseconds on it
//! (why: [`super::compress`]).
//!
//! The reactor submits a job (the file's bytes or its shared fd, its
//! validators, a coding) without waiting: the job queue is bounded, and a
//! job that does not fit is simply not submitted (the request is answered
//! uncompressed, as it would be anyway, and a later one submits again).
//! A key already in the queue is not submitted twice. The thread sends
//! each result back on a small bounded channel and wakes the reactor
//! through its reactor's [`Alarm`]; the reactor then puts the result in its
//! cache. The thread runs under SCHED_IDLE: a reactor that wakes takes
//! the CPU from it at once, so on a busy machine compression waits and
//! clients do not. (Measured with the test
//! `compressing_a_file_at_the_limit_does_not_pause_other_clients`: at
//! nice 10 instead, two runs in seven had one small request wait 100 ms.)
//!
//! The thread ends when its reactor drops the compressor (the job channel
//! closes), finishing at most the job at hand.
//!
//! Panics: the one allocation a file sizes (its bytes, read whole) is at
//! most `--compress-max-bytes` (1 GiB at most, the parser checks), and a
//! job runs inside [`contain::guarded`]: a panic would cost that file its
//! compression, not the thread.

use std::collections::HashSet;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use crate::contain;
use crate::wake::{Alarm, Wake};

use super::body::FileMeta;
use crate::files::OpenFile;

/// A content coding holdline produces (RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Brotli (RFC 7932), quality 11.
    Br,
    /// gzip (RFC 1952), level 9.
    Gzip,
}

impl Coding {
    /// In the order offered: brotli is smaller.
    pub const PREFERRED: [Coding; 2] = [Coding::Br, Coding::Gzip];

    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }
}

/// Jobs waiting for the thread at most: enough for a page's worth of
/// scripts and styles at once; the rest are answered uncompressed and
/// submitted again by a later request.
pub const MAX_QUEUED_JOBS: usize = 32;

/// Results the thread may have sent that the reactor has not taken yet;
/// then it waits (each is up to `--compress-max-bytes`).
const MAX_WAITING_RESULTS: usize = 2;

/// Where a job's bytes come from: the file cache's copy of a small file,
/// or a shared fd (read with pread, so it serves any number of responses
/// meanwhile).
pub enum Input {
    Bytes(Arc<[u8]>),
    File(Arc<OpenFile>),
}

struct Job {
    key: Box<[u8]>,
    meta: FileMeta,
    coding: Coding,
    input: Input,
}

/// A finished job.
pub struct Done {
    pub key: Box<[u8]>,
    /// The file version compressed.
    pub meta: FileMeta,
    /// The compressed bytes; `None` when they were not smaller, or the
    /// file could not be read whole as that version.
    pub body: Option<Arc<[u8]>>,
    /// The compression's own time, for the debug log.
    pub took: Duration,
}

pub struct Compressor {
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    /// Keys submitted and not done yet.
    pending: HashSet<Box<[u8]>>,
    /// The thread is gone (it ended outside a job): compression is off,
    /// said once.
    gone: bool,
}

impl Compressor {
    /// Starts the thread; `alarm` wakes the reactor when a result is ready.
    pub fn start(alarm: Arc<Alarm>) -> io::Result<Compressor> {
        let (jobs, queued) = std::sync::mpsc::sync_channel::<Job>(MAX_QUEUED_JOBS);
        let (finished, done) = std::sync::mpsc::sync_channel::<Done>(MAX_WAITING_RESULTS);
        std::thread::Builder::new()
            .name("holdline-compress".into())
            .spawn(move || {
                lower_priority();
                for job in queued {
                    // A job that panics is dropped, its file left
                    // uncompressed for this version (as one not worth
                    // compressing): the thread goes on with the next.
                    let (key, meta) = (job.key.clone(), job.meta);
                    let result = contain::guarded(|| run(job)).unwrap_or_else(|panic| {
                        let name = String::from_utf8_lossy(&key).into_owned();
                        log::error!("compressor: {panic}; {name:?} stays uncompressed");
                        Done {
                            key,
                            meta,
                            body: None,
                            took: Duration::ZERO,
                        }
                    });
                    if finished.send(result).is_err() {
                        break;
                    }
                    alarm.wake(Wake::Compressed);
                }
            })?;
        Ok(Compressor {
            jobs,
            done,
            pending: HashSet::new(),
            gone: false,
        })
    }

    /// The thread is gone: nothing more will be compressed.
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    fn lost(&mut self) {
        if !self.gone {
            self.gone = true;
            log::error!(
                "compressor: its thread is gone; files are served uncompressed from now on"
            );
        }
    }

    /// Whether `key` is queued or being compressed.
    pub fn is_pending(&self, key: &[u8]) -> bool {
        self.pending.contains(key)
    }

    /// Queues a job unless the queue is full; returns whether it was.
    pub fn submit(&mut self, key: &[u8], meta: FileMeta, coding: Coding, input: Input) -> bool {
        let job = Job {
            key: key.into(),
            meta,
            coding,
            input,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.pending.insert(key.into());
                true
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                self.lost();
                false
            }
        }
    }

    /// A finished job, if one is waiting.
    pub fn take_done(&mut self) -> Option<Done> {
        match self.done.try_recv() {
            Ok(done) => {
                self.pending.remove(&done.key);
                Some(done)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.lost();
                None
            }
        }
    }
}

/// SCHED_IDLE for this thread: it runs only on CPU time nothing else
/// wants, and a reactor that wakes preempts it at once (Linux applies
/// scheduling policies per thread).
fn lower_priority() {
    // SAFETY: a zeroed sched_param is valid (priority 0, as SCHED_IDLE
    // requires); pid 0 is the calling thread.
    let rc = unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param)
    };
    if rc != 0 {
        log::debug!(
            "compressor: cannot lower its priority: {}",
            io::Error::last_os_error()
        );
    }
}

fn run(job: Job) -> Done {
    crate::fault::panic_at(crate::fault::Point::Compress, &job.key);
    let started = Instant::now();
    let body = read(&job).and_then(|bytes| {
        let compressed = compress(&bytes, job.coding);
        // Not smaller: sending it would only cost the client a decode.
        (compressed.len() < bytes.len()).then(|| Arc::from(compressed))
    });
    Done {
        key: job.key,
        meta: job.meta,
        body,
        took: started.elapsed(),
    }
}

/// The job's file, whole, as the version its validators name: a file
/// that changed meanwhile gives nothing (a later request compresses the
/// new version).
fn read(job: &Job) -> Option<std::borrow::Cow<'_, [u8]>> {
    match &job.input {
        Input::Bytes(bytes) => Some(std::borrow::Cow::Borrowed(bytes)),
        Input::File(open) => {
            let file = open.file();
            let mut bytes = vec![0u8; job.meta.len as usize];
            let read = file.read_exact_at(&mut bytes, 0);
            let same = file
                .metadata()
                .is_ok_and(|m| FileMeta::from(&m) == job.meta);
            match (read, same) {
                (Ok(()), true) => Some(std::borrow::Cow::Owned(bytes)),
                (Err(e), _) => {
                    log::debug!("compressor: reading the file failed: {e}");
                    None
                }
                (Ok(()), false) => None,
            }
        }
    }
}

/// `bytes` in `coding`, at the level holdline serves: brotli quality 11
/// (a window fitted to the input), gzip level 9. Deterministic: the same
/// bytes give the same output, which the strong ETag relies on.
pub fn compress(bytes: &[u8], coding: Coding) -> Vec<u8> {
    match coding {
        Coding::Gzip => {
            let out = Vec::with_capacity(bytes.len() + OUTPUT_SLACK_BYTES);
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::best());
            // Writing to a Vec cannot fail.
            let _ = encoder.write_all(bytes);
            encoder.finish().unwrap_or_default()
        }
        Coding::Br => {
            let mut out = Vec::with_capacity(bytes.len() + OUTPUT_SLACK_BYTES);
            let params = brotli::enc::BrotliEncoderParams {
                quality: 11,
                lgwin: brotli_window_bits(bytes.len()),
                size_hint: bytes.len(),
                ..Default::default()
            };
            let _ = brotli::BrotliCompress(&mut &bytes[..], &mut out, &params);
            out
        }
    }
}

/// Bytes of brotli's encoder state at quality 11 per byte of window
/// (its binary-tree match finder and ring buffer), and the fixed part.
/// Measured with `/usr/bin/time -v` on the compression of a 28 KiB and a
/// 1 MiB JavaScript file: 2.8 MiB at a 64 KiB window, 26 MiB at 2 MiB.
const BROTLI_BYTES_PER_WINDOW_BYTE: usize = 12;
const BROTLI_FIXED_BYTES: usize = 2 << 20;

/// The most heap one compressor holds at work: the file being compressed
/// (read whole) and its output buffer (sized once: a little more than the
/// input), the results (each smaller than its input: the one being made
/// and those waiting for the reactor), brotli's state, and the small
/// files its queue holds (the file cache's bytes, kept alive by a job).
/// Saturating, as the memory bound it is a term of.
pub fn working_bytes(max_bytes: u64, small_file_bytes: u64) -> usize {
    let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let small = usize::try_from(small_file_bytes).unwrap_or(usize::MAX);
    let window = 1usize << brotli_window_bits(max);
    [
        max,
        max.saturating_add(OUTPUT_SLACK_BYTES),
        max.saturating_mul(MAX_WAITING_RESULTS + 1),
        BROTLI_BYTES_PER_WINDOW_BYTE * window + BROTLI_FIXED_BYTES,
        small.saturating_mul(MAX_QUEUED_JOBS),
    ]
    .into_iter()
    .fold(0, usize::saturating_add)
}

/// What an output buffer has beyond its input's length, so that it never
/// grows (doubling) even for input that does not compress: more than
/// brotli's and gzip's worst-case expansion of a few bytes per block.
const OUTPUT_SLACK_BYTES: usize = 1024;

/// The brotli window for an input of `len` bytes: just large enough to
/// reach back to its start (the encoder's memory grows with it), within
/// brotli's 10..=22.
pub fn brotli_window_bits(len: usize) -> i32 {
    (usize::BITS - len.leading_zeros()).clamp(10, 22) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn text() -> Vec<u8> {
        (0..2000)
            .map(|i| format!("function f{i}(a) {{ return a * {i} + 1; }}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn both_codings_decode_to_the_input_and_are_deterministic() {
        let input = text();
        let gz = compress(&input, Coding::Gzip);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, input);
        let br = compress(&input, Coding::Br);
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, input);
        assert!(br.len() < gz.len() && gz.len() < input.len() / 4);
        assert_eq!(compress(&input, Coding::Br), br);
        assert_eq!(compress(&input, Coding::Gzip), gz);
    }

    #[test]
    fn the_window_fits_the_input() {
        assert_eq!(brotli_window_bits(0), 10);
        assert_eq!(brotli_window_bits(28 * 1024), 15);
        assert_eq!(brotli_window_bits(1 << 20), 21);
        assert_eq!(brotli_window_bits(usize::MAX), 22);
    }

    #[test]
    fn a_job_comes_back_through_the_waker() {
        let mut poll = mio::Poll::new().unwrap();
        let alarm = Arc::new(Alarm::new(poll.registry(), mio::Token(7)).unwrap());
        let mut compressor = Compressor::start(alarm).unwrap();
        let meta = FileMeta {
            ino: 1,
            len: 4,
            mtime: 0,
            mtime_nsec: 0,
        };
        let input = Input::Bytes(Arc::from(&text()[..]));
        assert!(compressor.submit(b"k", meta, Coding::Gzip, input));
        assert!(compressor.is_pending(b"k"));
        let mut events = mio::Events::with_capacity(4);
        let done = loop {
            poll.poll(&mut events, Some(Duration::from_secs(10)))
                .unwrap();
            assert!(!events.is_empty(), "no wake within 10 s");
            if let Some(done) = compressor.take_done() {
                break done;
            }
        };
        assert!(!compressor.is_pending(b"k"));
        assert_eq!((&*done.key, done.meta), (&b"k"[..], meta));
        assert!(done.body.is_some_and(|b| b.len() < text().len()));
        // Not smaller: nothing to serve.
        let tiny = Input::Bytes(Arc::from(&b"ab"[..]));
        assert!(compressor.submit(b"t", meta, Coding::Br, tiny));
        let done = loop {
            poll.poll(&mut events, Some(Duration::from_secs(10)))
                .unwrap();
            if let Some(done) = compressor.take_done() {
                break done;
            }
        };
        assert!(done.body.is_none());
    }
}
