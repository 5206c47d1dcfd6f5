//! Counters the reactor keeps: what was accepted, served and closed, and
//! why. Plain integers owned by the one reactor thread; nothing here is
//! shared or atomic.

use std::fmt;

/// Why a connection was closed. Every close carries exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed (EOF) or reset the connection.
    Client,
    /// Idle in keep-alive past `--keepalive-timeout`.
    IdleTimeout,
    /// No complete request head within `--header-timeout`.
    HeaderTimeout,
    /// No write progress within `--send-timeout`.
    SendTimeout,
    /// The lingering close ran out its `--linger-timeout`.
    LingerTimeout,
    /// The response said `Connection: close` (client asked, HTTP/1.0,
    /// keep-alive disabled) and is complete.
    ResponseClose,
    /// `--max-requests` reached.
    MaxRequests,
    /// An error response after which framing could not continue.
    ProtocolError,
    /// A socket error other than a reset.
    Error,
    /// Graceful shutdown closed it.
    Shutdown,
    /// Closed to make room under the fd budget.
    Evicted,
}

impl CloseReason {
    pub const ALL: [CloseReason; 11] = [
        CloseReason::Client,
        CloseReason::IdleTimeout,
        CloseReason::HeaderTimeout,
        CloseReason::SendTimeout,
        CloseReason::LingerTimeout,
        CloseReason::ResponseClose,
        CloseReason::MaxRequests,
        CloseReason::ProtocolError,
        CloseReason::Error,
        CloseReason::Shutdown,
        CloseReason::Evicted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::SendTimeout => "send_timeout",
            CloseReason::LingerTimeout => "linger_timeout",
            CloseReason::ResponseClose => "response_close",
            CloseReason::MaxRequests => "max_requests",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::Error => "error",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Evicted => "evicted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Connections accepted from the kernel.
    pub accepted: u64,
    /// Connections kept (accepted and not refused at once).
    pub handled: u64,
    /// Requests answered (error responses included).
    pub requests: u64,
    closes: [u64; CloseReason::ALL.len()],
    /// accept(2) failed with EMFILE/ENFILE.
    pub accept_emfile: u64,
    /// File opens that failed with EMFILE/ENFILE, or found no fd room (503).
    pub open_emfile: u64,
    /// Times accepting stopped because nothing could be evicted.
    pub accept_pauses: u64,
    /// Evictions by the class of the victim: idle, fresh, partial head.
    pub evictions: [u64; 3],
    /// Requests per closed connection, bucketed by [`REQUESTS_BUCKETS`].
    pub requests_per_connection: [u64; REQUESTS_BUCKETS.len() + 1],
    pub requests_per_connection_sum: u64,
}

/// Upper bounds of the requests-per-connection histogram buckets.
pub const REQUESTS_BUCKETS: [u32; 8] = [0, 1, 2, 5, 10, 20, 50, 100];

/// Connections by phase and file bodies open, as the reactor counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    pub reading: usize,
    pub writing: usize,
    pub idle: usize,
    pub closing: usize,
    pub open_files: usize,
}

impl Gauges {
    pub fn connections(&self) -> usize {
        self.reading + self.writing + self.idle + self.closing
    }
}

impl Stats {
    pub fn count_close(&mut self, reason: CloseReason) {
        self.closes[reason.index()] += 1;
    }

    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closes[reason.index()]
    }

    pub fn count_requests_per_connection(&mut self, requests: u32) {
        let bucket = REQUESTS_BUCKETS
            .iter()
            .position(|&le| requests <= le)
            .unwrap_or(REQUESTS_BUCKETS.len());
        self.requests_per_connection[bucket] += 1;
        self.requests_per_connection_sum += u64::from(requests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_counter() {
        let mut stats = Stats::default();
        for (i, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
            stats.count_close(*reason);
        }
        stats.count_close(CloseReason::IdleTimeout);
        assert_eq!(stats.closes(CloseReason::IdleTimeout), 2);
        assert_eq!(stats.closes(CloseReason::Client), 1);
    }
}
