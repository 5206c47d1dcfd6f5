//! Which response a request gets: a [`Route`], whose variant carries what
//! its response needs (borrowed from the request or from the rules'
//! buffers routing was lent, never left in a scratch buffer for a later
//! step to find). The routing itself is [`super::routing`].

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use super::body::FileRoute;
use crate::config::rules::Rule;
use crate::http::Status;
use crate::http::request::RequestHead;
use crate::status;

/// What answers a request.
// Lives on the stack for one request; boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
pub enum Route<'t> {
    /// A file beneath ROOT (or its cached bytes, or a compressed
    /// representation of it).
    File(FileRoute),
    /// An HTML listing of this directory (`--listing`).
    Listing(File),
    /// A directory asked for without its trailing slash: 301 to `path`
    /// with one, the `query` kept (RFC 9110 §15.4.2).
    AddSlash { path: &'t str, query: &'t str },
    /// `--clean-urls`: 308 to `path` (the asked path without `.html`,
    /// `index.html` or a file's trailing slash), the `query` kept.
    Clean { path: &'t str, query: &'t str },
    /// `--redirect-to-https`: 308 to the same target over TLS.
    Https(HttpsUrl<'t>),
    /// A `--rule`'s redirect: its status, and its Location's template
    /// with what fills its placeholders.
    Redirect {
        status: Status,
        rule: &'t Rule,
        /// The decoded path the rule matched.
        path: &'t [u8],
        /// The request's query (with its `?`), kept unless the target
        /// has one of its own.
        query: &'t str,
    },
    /// `OPTIONS`: 204 with `Allow`.
    Options,
    /// The status path (`--status-path`).
    Status(status::Format),
    /// The health check (`--health-path`): 200 while serving, 503 once
    /// draining or shutting down.
    Health,
    /// An ACME HTTP-01 challenge's answer: its key authorization.
    AcmeChallenge(std::sync::Arc<str>),
    /// An error status, with its `--error-page` if there is one.
    Error(Status),
    /// `--client-rate`: 429, with `Retry-After` in these seconds.
    Limited(u32),
    /// An `auth` rule without valid credentials: 401 with
    /// `WWW-Authenticate` for this realm.
    Unauthorized(&'t str),
    /// The credentials are being verified: no answer yet (see
    /// [`super::auth`]).
    Defer,
}

/// The https URL a plain request is redirected to.
pub struct HttpsUrl<'t> {
    host: HttpsHost<'t>,
    /// The first TLS listener's port (omitted from the URL when 443).
    port: u16,
    /// The request target as sent.
    target: &'t str,
}

enum HttpsHost<'t> {
    /// The request's Host, without its port.
    Name(&'t [u8]),
    /// No Host: the TLS listener's address.
    Addr(IpAddr),
}

impl HttpsUrl<'_> {
    /// Writes the URL into `out` (cleared first).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(b"https://");
        match self.host {
            HttpsHost::Name(name) => out.extend_from_slice(name),
            HttpsHost::Addr(IpAddr::V4(ip)) => {
                let _ = write!(out, "{ip}");
            }
            HttpsHost::Addr(IpAddr::V6(ip)) => {
                let _ = write!(out, "[{ip}]");
            }
        }
        if self.port != 443 {
            let _ = write!(out, ":{}", self.port);
        }
        out.extend_from_slice(self.target.as_bytes());
    }
}

/// The https URL of the request: its Host's name (or, without one, the
/// TLS listener's address), the first TLS port unless 443, the target as
/// sent. `None` when the Host is not a plain host name or address
/// literal, which is not echoed into a header.
pub(super) fn https_url<'t>(head: &RequestHead<'t>, tls: &[SocketAddr]) -> Option<HttpsUrl<'t>> {
    let listener = tls.first()?;
    let host = match head.host {
        Some(host) => {
            // Strip the port: a name, an IPv4 literal or a bracketed IPv6.
            let end = match host.iter().rposition(|&b| b == b':') {
                Some(colon) if !host.ends_with(b"]") => colon,
                _ => host.len(),
            };
            let name = &host[..end];
            let plain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
            let literal = |b: &u8| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'[' | b']');
            let ok = !name.is_empty()
                && (name.iter().all(plain)
                    || name.starts_with(b"[") && name.ends_with(b"]") && name.iter().all(literal));
            if !ok {
                return None;
            }
            HttpsHost::Name(name)
        }
        None if listener.ip().is_unspecified() => return None,
        None => HttpsHost::Addr(listener.ip()),
    };
    Some(HttpsUrl {
        host,
        port: listener.port(),
        target: head.target,
    })
}
