//! Why a connection closed: [`CloseReason`], exactly one per close.
//!
//! The reason is decided where the close is (the session, persistence,
//! the transport, the reactor's admission), then logged, counted
//! ([`crate::stats`]) and exported by [`crate::status`]. It has a file of
//! its own so that the sans-IO HTTP core, which decides most closes, does
//! not depend on the counters.

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
    /// An error response after which framing could not continue, or a
    /// PROXY protocol header owed and not sent (closed unanswered).
    ProtocolError,
    /// A socket error other than a reset.
    Error,
    /// Graceful shutdown closed it.
    Shutdown,
    /// Closed to make room under the fd budget.
    Evicted,
    /// Accepted with the fd budget full and nothing to evict: answered
    /// once (if its request was there and needed no file body) and closed,
    /// without taking a slot.
    Overflow,
    /// Its client had `--max-client-connections` open already: closed at
    /// accept, before it sent anything (or, behind a proxy that sends the
    /// PROXY protocol, once its header named the client).
    ClientLimit,
    /// TLS failed: a bad or unsupported ClientHello, a bad record, a
    /// non-TLS client on a TLS port.
    TlsError,
    /// A panic while driving this connection was contained.
    InternalError,
    /// Handed, open, to the new binary of an upgrade (SIGUSR2): closed
    /// here only.
    HandedOver,
}

impl CloseReason {
    /// Every reason, in the order the status formats list them.
    pub const ALL: [CloseReason; 16] = [
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
        CloseReason::Overflow,
        CloseReason::ClientLimit,
        CloseReason::TlsError,
        CloseReason::InternalError,
        CloseReason::HandedOver,
    ];

    /// The name logs, Prometheus's `reason` label, the JSON's `closes`
    /// keys and the live page give it.
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
            CloseReason::Overflow => "overflow",
            CloseReason::ClientLimit => "client_limit",
            CloseReason::TlsError => "tls_error",
            CloseReason::InternalError => "internal_error",
            CloseReason::HandedOver => "handed_over",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_once_in_declaration_order() {
        for (i, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{reason}");
        }
        let mut names: Vec<&str> = CloseReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CloseReason::ALL.len());
    }
}
