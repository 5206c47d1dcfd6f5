//! The persistence decision (RFC 9112 §9.3): after this response, does the
//! connection stay open? One function, so everyone can find it.

use super::request::{ConnectionTokens, Version};
use crate::close::CloseReason;

/// What the response announces and what the connection does after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// `Connection: close`; the server closes once the response is out,
    /// and counts the close under this reason (decided here, once).
    Close(CloseReason),
    /// `Connection: keep-alive` and `Keep-Alive: timeout=T[, max=R]`.
    KeepAlive {
        /// Announced idle timeout, whole seconds.
        timeout_secs: u64,
        /// Requests still allowed on this connection after this one;
        /// `None` when `--max-requests 0` (unlimited).
        requests_left: Option<u32>,
    },
}

/// Everything besides the request that bears on persistence.
#[derive(Debug, Clone, Copy)]
pub struct PersistContext {
    /// `--keepalive-timeout` is not zero.
    pub keepalive_enabled: bool,
    pub keepalive_timeout_secs: u64,
    /// `--max-requests`; 0 is unlimited.
    pub max_requests: u32,
    /// Requests answered on this connection before this one.
    pub requests_before: u32,
    /// The server must close after this response: an error after which
    /// it will not read on (framing lost, a refused `Expect`).
    pub must_close: bool,
    /// The server is closing every connection, for this reason (graceful
    /// shutdown; a newcomer answered without a slot).
    pub closing: Option<CloseReason>,
}

/// Decides whether the connection persists after answering a request of
/// `version` with these `Connection` tokens.
///
/// - HTTP/1.1 persists unless a `close` token was sent (§9.3).
/// - HTTP/1.0 persists only if `keep-alive` was sent (§C.2.2), and then the
///   response must say `Connection: keep-alive`.
/// - The last request `--max-requests` allows is answered with close, so
///   the client learns it in band instead of racing our close.
///
/// The cause of a close: the server's own (`closing`) first; then
/// `MaxRequests` if this is the last request allowed, even if something
/// else asked for the close too; `ResponseClose` for every other cause
/// (the client asked, HTTP/1.0 without keep-alive, keep-alive off,
/// `must_close`).
pub fn decide(version: Version, tokens: ConnectionTokens, ctx: PersistContext) -> Persistence {
    if let Some(reason) = ctx.closing {
        return Persistence::Close(reason);
    }
    let served_after_this = ctx.requests_before.saturating_add(1);
    let requests_left = match ctx.max_requests {
        0 => None,
        max => Some(max.saturating_sub(served_after_this)),
    };
    if requests_left == Some(0) {
        return Persistence::Close(CloseReason::MaxRequests);
    }
    let client_wants = match version {
        Version::Http11 => !tokens.close,
        Version::Http10 => tokens.keep_alive && !tokens.close,
    };
    if ctx.must_close || !ctx.keepalive_enabled || !client_wants {
        return Persistence::Close(CloseReason::ResponseClose);
    }
    Persistence::KeepAlive {
        timeout_secs: ctx.keepalive_timeout_secs,
        requests_left,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: PersistContext = PersistContext {
        keepalive_enabled: true,
        keepalive_timeout_secs: 5,
        max_requests: 100,
        requests_before: 0,
        must_close: false,
        closing: None,
    };
    const CLOSED: Persistence = Persistence::Close(CloseReason::ResponseClose);
    const LAST: Persistence = Persistence::Close(CloseReason::MaxRequests);
    const NONE: ConnectionTokens = ConnectionTokens {
        close: false,
        keep_alive: false,
    };
    const CLOSE: ConnectionTokens = ConnectionTokens {
        close: true,
        keep_alive: false,
    };
    const KEEP: ConnectionTokens = ConnectionTokens {
        close: false,
        keep_alive: true,
    };

    fn ka(left: Option<u32>) -> Persistence {
        Persistence::KeepAlive {
            timeout_secs: 5,
            requests_left: left,
        }
    }

    #[test]
    fn http11_persists_by_default() {
        assert_eq!(decide(Version::Http11, NONE, CTX), ka(Some(99)));
        assert_eq!(decide(Version::Http11, CLOSE, CTX), CLOSED);
    }

    #[test]
    fn http10_needs_keep_alive() {
        assert_eq!(decide(Version::Http10, NONE, CTX), CLOSED);
        assert_eq!(decide(Version::Http10, KEEP, CTX), ka(Some(99)));
    }

    #[test]
    fn max_requests_counts_down_then_closes() {
        let mut ctx = CTX;
        ctx.max_requests = 3;
        let answers: Vec<_> = (0..4)
            .map(|before| {
                ctx.requests_before = before;
                decide(Version::Http11, NONE, ctx)
            })
            .collect();
        assert_eq!(answers, [ka(Some(2)), ka(Some(1)), LAST, LAST]);
        ctx.max_requests = 0;
        ctx.requests_before = 1_000_000;
        assert_eq!(decide(Version::Http11, NONE, ctx), ka(None));
    }

    #[test]
    fn disabled_or_forced_close() {
        let mut ctx = CTX;
        ctx.keepalive_enabled = false;
        assert_eq!(decide(Version::Http11, NONE, ctx), CLOSED);
        let mut ctx = CTX;
        ctx.must_close = true;
        assert_eq!(decide(Version::Http10, KEEP, ctx), CLOSED);
        // The last request allowed is a MaxRequests close, whoever else
        // asked for the close; the server's own reason comes first.
        ctx.max_requests = 1;
        assert_eq!(decide(Version::Http11, CLOSE, ctx), LAST);
        ctx.closing = Some(CloseReason::Shutdown);
        assert_eq!(
            decide(Version::Http11, NONE, ctx),
            Persistence::Close(CloseReason::Shutdown)
        );
    }
}
