//! The writer thread: it owns the file and does the blocking writes of
//! what the workers hand over, reopens the file on SIGUSR1, moves it on a
//! reload, and logs a failing disk once per episode.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{BUF_CAPACITY, BUF_KEEP, SLOTS};
use crate::contain;

/// What the writer thread is told besides lines, through
/// [`Queue::control`].
enum Control {
    /// SIGUSR1: open the same name again.
    Reopen,
    /// A reload named another file (`None`: logging was turned off).
    Open(Option<PathBuf>),
}

/// Where lines go: standard output, or a file opened for appending.
enum Output {
    Off,
    Stdout,
    File(PathBuf, File),
}

impl Output {
    fn open(path: Option<&Path>) -> io::Result<Output> {
        match path {
            None => Ok(Output::Off),
            Some(p) if p == Path::new("-") => Ok(Output::Stdout),
            Some(p) => {
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o644)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(p)?;
                Ok(Output::File(p.to_path_buf(), file))
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Output::Off => "off".into(),
            Output::Stdout => "standard output".into(),
            Output::File(path, _) => path.display().to_string(),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::Off => Ok(()),
            Output::Stdout => io::stdout().lock().write_all(bytes),
            Output::File(_, file) => file.write_all(bytes),
        }
    }
}

/// What the workers and the writer thread share.
#[derive(Default)]
struct Queue {
    /// Empty buffers, for the workers to swap for full ones.
    free: Mutex<Vec<Vec<u8>>>,
    /// Buffers in existence besides the workers' own: at most [`SLOTS`].
    made: AtomicUsize,
    /// Bytes of lines dropped because the queue was full.
    dropped: AtomicU64,
    /// Reopen and open requests, taken by the writer after each buffer.
    control: Mutex<Vec<Control>>,
    /// The writer thread is gone: said once, then lines are dropped and
    /// counted like those of a full queue.
    dead: AtomicBool,
}

/// The writer thread, as the workers hold it. One per server; when the
/// last worker lets go of it (at exit), what was handed over is written
/// and the thread ends.
pub struct Sink {
    /// A bounded channel: its slots are allocated once, so handing a
    /// buffer over allocates nothing, and a full one never blocks.
    sender: Mutex<Option<SyncSender<Vec<u8>>>>,
    queue: Arc<Queue>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Sink {
    /// Takes a worker's full buffer of lines for the writer and gives an
    /// empty one back; when every buffer already waits for the writer (a
    /// slow or stuck disk), the lines are dropped and counted instead, and
    /// the same buffer comes back cleared.
    pub(super) fn hand_over(&self, mut full: Vec<u8>) -> Vec<u8> {
        let queue = &self.queue;
        let spare = lock(&queue.free).pop().or_else(|| {
            let made = queue.made.fetch_add(1, Ordering::Relaxed);
            if made < SLOTS {
                Some(Vec::with_capacity(BUF_CAPACITY))
            } else {
                queue.made.fetch_sub(1, Ordering::Relaxed);
                None
            }
        });
        let Some(empty) = spare else {
            queue
                .dropped
                .fetch_add(full.len() as u64, Ordering::Relaxed);
            full.clear();
            return full;
        };
        if let Err(mut back) = self.send(full) {
            // The writer is gone: the server is stopping, or the thread
            // ended (which is said once).
            if !queue.dead.swap(true, Ordering::Relaxed) && lock(&self.thread).is_some() {
                log::error!(
                    "access log: the writer thread is gone; lines are dropped (and counted) from now on"
                );
            }
            queue
                .dropped
                .fetch_add(back.len() as u64, Ordering::Relaxed);
            back.clear();
            lock(&queue.free).push(back);
        }
        empty
    }

    /// Opens `path` (`-`: standard output; `None`: nothing yet, a reload
    /// may name a file) and starts the writer thread.
    pub fn start(path: Option<&Path>) -> io::Result<Arc<Sink>> {
        let output = Output::open(path)?;
        let (sender, receiver) = mpsc::sync_channel(SLOTS);
        let queue = Arc::new(Queue::default());
        if path.is_some() {
            // Every buffer now: the workers then never allocate one. (A
            // reload that turns logging on makes them as they are needed.)
            let buffers = (0..SLOTS).map(|_| Vec::with_capacity(BUF_CAPACITY));
            lock(&queue.free).extend(buffers);
            queue.made.store(SLOTS, Ordering::Relaxed);
        }
        let shared = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("holdline-log".into())
            .spawn(move || write_loop(&shared, output, receiver))?;
        Ok(Arc::new(Sink {
            sender: Mutex::new(Some(sender)),
            queue,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Hands `lines` to the writer, or gives them back if its channel is
    /// full or closed.
    fn send(&self, lines: Vec<u8>) -> Result<(), Vec<u8>> {
        let sender = lock(&self.sender);
        let Some(sender) = sender.as_ref() else {
            return Err(lines);
        };
        sender.try_send(lines).map_err(|e| match e {
            TrySendError::Full(lines) | TrySendError::Disconnected(lines) => lines,
        })
    }

    fn control(&self, control: Control) {
        lock(&self.queue.control).push(control);
        // Wakes the writer if it waits; if the channel is full, it looks
        // at the controls after the buffer it is writing.
        let _ = self.send(Vec::new());
    }

    /// SIGUSR1: reopen the file by its name.
    pub fn reopen(&self) {
        self.control(Control::Reopen);
    }

    /// A reload named another file, or none.
    pub fn open(&self, path: Option<PathBuf>) {
        self.control(Control::Open(path));
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        lock(&self.sender).take();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: writes what the workers hand over, in order, until
/// every sender is gone.
fn write_loop(queue: &Queue, mut output: Output, receiver: Receiver<Vec<u8>>) {
    let mut failing = false;
    let mut dropped_told = 0;
    while let Ok(lines) = receiver.recv() {
        // A panic here loses this buffer's lines, not the writer.
        let turn = contain::guarded(|| {
            write_turn(queue, &mut output, lines, &mut failing, &mut dropped_told)
        });
        if let Err(panic) = turn {
            log::error!("access log: {panic}; a buffer of lines is lost");
        }
    }
}

/// Writes one buffer of lines, then acts on the reopen and open requests
/// that came meanwhile.
fn write_turn(
    queue: &Queue,
    output: &mut Output,
    mut lines: Vec<u8>,
    failing: &mut bool,
    dropped_told: &mut u64,
) {
    {
        if !lines.is_empty() {
            match output.write_all(&lines) {
                Ok(()) if *failing => {
                    log::warn!("access log {}: writing again", output.name());
                    *failing = false;
                }
                Ok(()) => {}
                Err(e) if !*failing => {
                    log::error!(
                        "access log {}: {e}; lines are lost until a write succeeds",
                        output.name()
                    );
                    *failing = true;
                }
                Err(_) => {}
            }
            lines.clear();
            if lines.capacity() <= BUF_KEEP {
                lock(&queue.free).push(lines);
            } else {
                queue.made.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let controls = std::mem::take(&mut *lock(&queue.control));
        for control in controls {
            match control {
                Control::Reopen => {
                    let Output::File(path, _) = &*output else {
                        continue;
                    };
                    match Output::open(Some(path)) {
                        Ok(reopened) => {
                            log::info!("SIGUSR1: reopened the access log {}", path.display());
                            *output = reopened;
                            *failing = false;
                        }
                        Err(e) => log::error!(
                            "SIGUSR1: cannot reopen the access log {}: {e}; still writing to the old file",
                            path.display()
                        ),
                    }
                }
                Control::Open(path) => match Output::open(path.as_deref()) {
                    Ok(opened) => {
                        *output = opened;
                        *failing = false;
                    }
                    Err(e) => log::error!(
                        "access log {}: {e}; still writing to {}",
                        path.unwrap_or_default().display(),
                        output.name()
                    ),
                },
            }
        }
        let dropped = queue.dropped.load(Ordering::Relaxed);
        if dropped != *dropped_told {
            log::warn!(
                "access log {}: {} bytes of lines dropped: the disk is slower than the requests",
                output.name(),
                dropped - *dropped_told
            );
            *dropped_told = dropped;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::super::line::tests::{TIMES, entry, line};
    use super::super::{AccessLog, Entry, FLUSH_AT, LogFormat};
    use super::*;
    use std::time::Duration;

    /// The writer thread: lines reach the file in order; SIGUSR1's reopen
    /// starts a new file under the name after a rename; a reload's open
    /// moves the log; letting go of the sink writes what was handed over.
    #[test]
    fn the_writer_writes_reopens_moves_and_finishes() {
        let dir = std::env::temp_dir().join(format!("holdline-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, rotated, moved) = (dir.join("a.log"), dir.join("a.log.1"), dir.join("b.log"));
        let lines = |p: &Path, n: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                if text.lines().count() >= n || std::time::Instant::now() > deadline {
                    return text;
                }
                std::thread::yield_now();
            }
        };
        let sink = Sink::start(Some(&path)).unwrap();
        let mut log = AccessLog::new(Some(LogFormat::Common), Arc::clone(&sink));
        let with = |target| Entry { target, ..entry() };
        log.log(&with("/1"), TIMES);
        log.flush();
        assert!(lines(&path, 1).contains("GET /1 HTTP"));
        std::fs::rename(&path, &rotated).unwrap();
        sink.reopen();
        log.log(&with("/2"), TIMES);
        log.flush();
        assert!(lines(&path, 1).contains("GET /2 HTTP"));
        sink.open(Some(moved.clone()));
        log.log(&with("/3"), TIMES);
        log.flush();
        log.log(&with("/4"), TIMES);
        drop(log);
        drop(sink);
        // The thread is joined: everything is on disk now.
        let count = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!((count(&rotated), count(&path), count(&moved)), (1, 1, 2));
        assert!(
            std::fs::read_to_string(&moved)
                .unwrap()
                .contains("GET /4 HTTP")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A sink whose writer never writes, and the receiving end.
    fn stuck_sink() -> (Arc<Sink>, Receiver<Vec<u8>>) {
        let (sender, receiver) = mpsc::sync_channel(SLOTS);
        let sink = Arc::new(Sink {
            sender: Mutex::new(Some(sender)),
            queue: Arc::new(Queue::default()),
            thread: Mutex::new(None),
        });
        (sink, receiver)
    }

    #[test]
    fn a_reload_turns_the_log_off_and_on() {
        let (sink, receiver) = stuck_sink();
        let mut log = AccessLog::new(None, sink);
        assert!(!log.enabled());
        log.log(&entry(), TIMES);
        assert!(log.buf.is_empty());
        log.set_format(Some(LogFormat::Json));
        assert!(log.enabled());
        log.log(&entry(), TIMES);
        log.flush();
        let sent = receiver.try_recv().unwrap();
        assert!(sent.starts_with(b"{\"time\""));
    }

    #[test]
    fn a_buffer_is_handed_over_once_it_holds_a_flush_worth() {
        let (sink, receiver) = stuck_sink();
        let mut log = AccessLog::new(Some(LogFormat::Combined), sink);
        let one = line(LogFormat::Combined, &entry()).len();
        for _ in 0..(FLUSH_AT / one + 1) {
            log.log(&entry(), TIMES);
            assert!(log.buf.len() < FLUSH_AT);
        }
        // Handed over without a flush from the loop, whole lines only.
        let sent = receiver.try_recv().unwrap();
        assert!(sent.len() >= FLUSH_AT && sent.len() % one == 0);
    }

    #[test]
    fn a_full_queue_drops_lines_instead_of_growing() {
        // No writer thread: nothing is ever written, so the channel fills.
        let (sink, receiver) = stuck_sink();
        let mut log = AccessLog::new(Some(LogFormat::Combined), Arc::clone(&sink));
        let mut lines = 0;
        while sink.queue.dropped.load(Ordering::Relaxed) == 0 {
            log.log(&entry(), TIMES);
            log.flush();
            lines += 1;
            assert!(lines < 1_000_000);
        }
        assert_eq!(lines, SLOTS + 1);
        // What waits is SLOTS buffers, made as they were needed; then the
        // worker's own buffer is reused, and nothing more is made.
        assert_eq!(sink.queue.made.load(Ordering::Relaxed), SLOTS);
        assert_eq!(receiver.try_iter().count(), SLOTS);
        assert!(log.buf.is_empty() && log.buf.capacity() > 0);
        drop(log);
        // The writer's side is gone: lines are dropped, not queued.
        let mut log = AccessLog::new(Some(LogFormat::Json), sink);
        log.log(&entry(), TIMES);
        log.flush();
        assert!(log.buf.is_empty());
    }
}
