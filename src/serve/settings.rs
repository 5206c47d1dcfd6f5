//! What the configuration says responses carry, encoded once per
//! configuration: the head limits, `--header` lines, the fallback and
//! error pages, and the options a lookup consults. A SIGHUP reload
//! replaces the whole value; a request answered meanwhile saw one
//! configuration or the other, never a mix.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{Config, Live};
use crate::http::HeadLimits;

/// One configuration's response settings (see the module docs).
pub struct Settings {
    /// The live options as loaded.
    pub live: Live,
    /// The limits a request head is parsed under.
    pub limits: HeadLimits,
    /// `--header` lines, encoded once ("Name: value\r\n" each); shared
    /// so a response head can borrow them while the responder is
    /// borrowed mutably (an atomic increment per response, no
    /// allocation).
    pub extra_headers: Arc<[u8]>,
    /// `--fallback`: the target served for paths that name no file.
    pub fallback: Option<Arc<str>>,
    /// `--error-page`: (status code, target).
    pub error_pages: Vec<(u16, Arc<str>)>,
    /// Files up to this size go in the head's write (restart-only).
    pub small_file_bytes: u64,
    /// The TLS listeners as bound, for `--redirect-to-https`'s Location.
    pub tls_listen: Vec<SocketAddr>,
}

impl Settings {
    pub fn new(config: &Config) -> Settings {
        let live = config.live.clone();
        Settings {
            limits: HeadLimits {
                max_header_bytes: config.fixed.max_header_bytes,
                max_uri_bytes: live.max_uri_bytes,
            },
            extra_headers: live
                .headers
                .iter()
                .flat_map(|h| h.as_bytes().iter().chain(b"\r\n"))
                .copied()
                .collect(),
            fallback: live.fallback.as_deref().map(Arc::from),
            error_pages: live
                .error_pages
                .iter()
                .map(|(code, page)| (*code, Arc::from(page.as_str())))
                .collect(),
            small_file_bytes: config.fixed.small_file_bytes,
            tls_listen: config.fixed.tls_listen.clone(),
            live,
        }
    }

    /// The `--error-page` target for status `code`, if any.
    pub fn error_page(&self, code: u16) -> Option<Arc<str>> {
        self.error_pages
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, page)| Arc::clone(page))
    }
}
