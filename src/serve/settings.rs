//! What the configuration says responses carry, encoded once per
//! configuration: the head limits, and per site its `--header` lines,
//! fallback and error pages and the options a lookup consults, with the
//! host table that picks the site. A SIGHUP reload replaces the whole
//! value; a request answered meanwhile saw one configuration or the
//! other, never a mix.

use std::net::SocketAddr;
use std::sync::Arc;

use super::rules::Rules;
use super::sites::Hosts;
use crate::config::{Config, Live, SiteOptions};
use crate::http::HeadLimits;

/// One configuration's response settings (see the module docs).
pub struct Settings {
    /// The live options as loaded.
    pub live: Live,
    /// The limits a request head is parsed under.
    pub limits: HeadLimits,
    /// Every site: the default one first, then the `[[site]]` blocks.
    pub sites: Vec<Site>,
    /// Which site a host name picks.
    pub hosts: Hosts,
    /// Files up to this size go in the head's write (restart-only).
    pub small_file_bytes: u64,
    /// The TLS listeners as bound, for `--redirect-to-https`'s Location.
    pub tls_listen: Vec<SocketAddr>,
    /// How addresses are grouped into clients (restart-only).
    pub client_prefixes: crate::clients::Prefixes,
    /// A site has `--acme`: HTTP-01 challenges are answered.
    pub acme: bool,
}

/// One site's response settings.
pub struct Site {
    /// Its options as loaded.
    pub options: SiteOptions,
    /// `--header` lines, encoded once ("Name: value\r\n" each); shared
    /// so a response head can borrow them while the responder is
    /// borrowed mutably (an atomic increment per response, no
    /// allocation).
    pub extra_headers: Arc<[u8]>,
    /// `--fallback`: the target served for paths that name no file.
    pub fallback: Option<Arc<str>>,
    /// `--error-page`: (status code, target).
    pub error_pages: Vec<(u16, Arc<str>)>,
    /// `--rule`s, compiled.
    pub rules: Rules,
}

impl Settings {
    pub fn new(config: &Config) -> Settings {
        let live = config.live.clone();
        let sites = live.all_sites().map(Site::new).collect();
        let names = live.all_sites().map(|site| &site.hosts[..]);
        Settings {
            limits: HeadLimits {
                max_header_bytes: config.fixed.max_header_bytes,
                max_uri_bytes: live.max_uri_bytes,
            },
            sites,
            hosts: Hosts::new(names, live.unknown_host),
            small_file_bytes: config.fixed.small_file_bytes,
            tls_listen: config.fixed.tls_listen.clone(),
            client_prefixes: config.fixed.client_prefixes,
            acme: config.live.all_sites().any(|site| site.acme),
            live,
        }
    }

    /// Site `index`, or the default site for an index from another
    /// configuration (one computed before a reload).
    pub fn site(&self, index: usize) -> &Site {
        self.sites.get(index).unwrap_or(&self.sites[0])
    }
}

/// The settings a request is answered under: the configuration's, the
/// site its host picked, and the extra header lines its responses carry
/// (the site's, or as its path rules edited them).
#[derive(Clone, Copy)]
pub struct SiteRef<'s> {
    pub settings: &'s Settings,
    /// The site's index in [`Settings::sites`].
    pub index: usize,
    /// "Name: value\r\n" lines added to every response.
    pub extra: &'s [u8],
    /// `Cache-Control` on file responses.
    pub cache_control: Option<&'s str>,
}

impl<'s> SiteRef<'s> {
    /// Site `index` of `settings`, with its own header lines.
    pub fn new(settings: &'s Settings, index: usize) -> SiteRef<'s> {
        let site = settings.site(index);
        SiteRef {
            settings,
            index,
            extra: &site.extra_headers,
            cache_control: site.options.cache_control.as_deref(),
        }
    }

    /// The site's settings.
    pub fn site(self) -> &'s Site {
        self.settings.site(self.index)
    }
}

impl Site {
    fn new(options: &SiteOptions) -> Site {
        Site {
            extra_headers: options
                .headers
                .iter()
                .flat_map(|h| h.as_bytes().iter().chain(b"\r\n"))
                .copied()
                .collect(),
            fallback: options.fallback.as_deref().map(Arc::from),
            error_pages: options
                .error_pages
                .iter()
                .map(|(code, page)| (*code, Arc::from(page.as_str())))
                .collect(),
            rules: Rules::new(&options.rules),
            options: options.clone(),
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
