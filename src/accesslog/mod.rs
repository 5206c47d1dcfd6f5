//! The access log: one line per request, formatted on the reactor into a
//! buffer of its own, written to disk by one writer thread.
//!
//! The reactor never waits for the disk. Each worker appends lines to its
//! [`AccessLog`] buffer (reused: no allocation per request once it has
//! grown) and, at the end of each turn of its loop, hands the buffer to the
//! [`Sink`]'s writer thread through a channel, taking an empty one back
//! from a free list. The writer thread owns the file and does the blocking
//! `write`s. What may wait for it is bounded ([`SLOTS`] buffers):
//! past that, a slow or stuck disk costs lines (counted and logged once),
//! never memory and never the reactor's time. A failing write (a full
//! disk, `/dev/full`) is logged once, and once more when writes succeed
//! again; it is never fatal.
//!
//! SIGUSR1 asks the writer to reopen the file by its name (logrotate's
//! convention, as nginx's USR1): lines already handed over go to the old
//! file, later ones to the new. The file is opened at start before
//! privileges are dropped; a reopen or a reload that names another file
//! opens it with the server's user (a failure keeps the old file).
//!
//! [`format_line`] is plain code over bytes, tested without a thread.

//!
//! The folder: `line.rs` formats a line (plain code over bytes, tested
//! without a thread); `writer.rs` is the writer thread and the queue the
//! workers hand buffers to; this file is a worker's side, its buffer.

use std::sync::Arc;

mod line;
mod writer;

pub use line::{Entry, Times, body_bytes, format_line};
pub use writer::Sink;

/// A worker hands its buffer over once it holds this much, even in the
/// middle of a turn of the loop.
pub const FLUSH_AT: usize = 32 << 10;

/// Buffers are made with room for a flush's worth and a long line more.
const BUF_CAPACITY: usize = FLUSH_AT + (8 << 10);

/// Buffers that travel between the workers and the writer, at most (so at
/// most 2 MiB of lines wait for the disk): when every one is waiting to be
/// written, lines are dropped. Made at start, so handing lines over never
/// allocates.
pub const SLOTS: usize = 64;

/// A buffer that grew past this (a line of hostile length) is not reused.
pub const BUF_KEEP: usize = 2 * FLUSH_AT;

/// The access log's line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// nginx's `combined`: common, then the Referer and User-Agent.
    Combined,
    /// The Common Log Format.
    Common,
    /// One JSON object per line, with the keep-alive fields.
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Combined => "combined",
            LogFormat::Common => "common",
            LogFormat::Json => "json",
        }
    }

    pub fn from_name(name: &str) -> Option<LogFormat> {
        [LogFormat::Combined, LogFormat::Common, LogFormat::Json]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

/// One worker's side of the access log: the format and the buffer lines
/// are formatted into.
pub struct AccessLog {
    /// `None`: not logging.
    format: Option<LogFormat>,
    buf: Vec<u8>,
    sink: Arc<Sink>,
}

impl AccessLog {
    pub fn new(format: Option<LogFormat>, sink: Arc<Sink>) -> AccessLog {
        let buf = match format {
            Some(_) => Vec::with_capacity(BUF_CAPACITY),
            None => Vec::new(),
        };
        AccessLog { format, buf, sink }
    }

    pub fn enabled(&self) -> bool {
        self.format.is_some()
    }

    /// A reload changed the format, or turned logging on or off.
    pub fn set_format(&mut self, format: Option<LogFormat>) {
        self.format = format;
    }

    pub fn sink(&self) -> &Arc<Sink> {
        &self.sink
    }

    /// Formats one request's line into the buffer.
    pub fn log(&mut self, entry: &Entry<'_>, times: Times<'_>) {
        let Some(format) = self.format else {
            return;
        };
        format_line(&mut self.buf, format, entry, times);
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Hands the buffered lines to the writer thread, or drops them if
    /// every buffer already waits for it. Called at the end of each turn
    /// of the reactor's loop.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let full = std::mem::take(&mut self.buf);
        self.buf = self.sink.hand_over(full);
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name() {
        for f in [LogFormat::Combined, LogFormat::Common, LogFormat::Json] {
            assert_eq!(LogFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(LogFormat::from_name("Combined"), None);
    }
}
