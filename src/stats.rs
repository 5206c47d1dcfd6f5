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
}

impl CloseReason {
    pub const ALL: [CloseReason; 10] = [
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
}

impl Stats {
    pub fn count_close(&mut self, reason: CloseReason) {
        self.closes[reason.index()] += 1;
    }

    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closes[reason.index()]
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
