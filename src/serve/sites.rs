//! Virtual hosts: which site a request's host name picks, as plain code
//! over bytes (no socket, no file), so it is tested and fuzzed alone.
//!
//! A request names its host by its absolute-form target's authority, or
//! else its `Host` header (RFC 9112 §3.2.2); the name is compared without
//! its port, its case and a trailing dot. An exact name wins over a
//! wildcard, and a longer wildcard (`*.a.example.com`) over a shorter
//! one (`*.example.com`); a wildcard matches every name beneath it, at
//! any depth (as nginx's `*.example.com`), but not the bare domain.
//!
//! The table is a list scanned per request: a server has a handful of
//! sites, and comparing a few short names costs less than hashing one
//! (which would need the name lowered into a buffer first).

use crate::config::UnknownHost;
use crate::http::request::RequestHead;
use crate::http::target::absolute_authority;

/// The host table of one configuration: every site's names, each with
/// its site's index (0 is the default site).
#[derive(Debug, Default)]
pub struct Hosts {
    /// Exact names, lower case.
    exact: Vec<(Box<[u8]>, usize)>,
    /// Wildcards as the suffix they match (`.example.com` for
    /// `*.example.com`), longest first.
    wildcards: Vec<(Box<[u8]>, usize)>,
    /// What a name that no site names gets.
    unknown: UnknownHost,
    /// More than the default site: without, every request is its.
    several: bool,
}

impl Hosts {
    /// The table for the sites' host lists, in site order (the default
    /// site's first), as the configuration checked them: lower case,
    /// without a trailing dot, each named once.
    pub fn new<'a>(sites: impl Iterator<Item = &'a [String]>, unknown: UnknownHost) -> Hosts {
        let mut hosts = Hosts {
            unknown,
            ..Hosts::default()
        };
        for (site, names) in sites.enumerate() {
            for name in names {
                match name.strip_prefix('*') {
                    Some(suffix) => hosts.wildcards.push((suffix.as_bytes().into(), site)),
                    None => hosts.exact.push((name.as_bytes().into(), site)),
                }
            }
        }
        hosts
            .wildcards
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        hosts.several = !hosts.exact.is_empty() || !hosts.wildcards.is_empty();
        hosts
    }

    /// Some site is named: requests must be matched by their host.
    pub fn named(&self) -> bool {
        self.several
    }

    /// The site a host name (as sent, port and all) picks, or `None` when
    /// no site names it and `--unknown-host` is not `default`.
    pub fn site_for(&self, sent: Option<&[u8]>) -> Option<usize> {
        if !self.several {
            return Some(0);
        }
        let sent = sent.map(bare_name).unwrap_or_default();
        // Lowered once (the table's names are lower case), on the stack:
        // then each comparison is a memcmp, not a byte loop of its own.
        let mut lowered = [0u8; 256];
        let found = match lowered.get_mut(..sent.len()) {
            Some(name) if !name.is_empty() => {
                name.copy_from_slice(sent);
                name.make_ascii_lowercase();
                let name = &*name;
                let exact = self.exact.iter().find(|(n, _)| **n == *name);
                let wildcard = || {
                    self.wildcards
                        .iter()
                        .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix))
                };
                exact.or_else(wildcard).map(|(_, site)| *site)
            }
            // Empty, or longer than a DNS name may be: no site's.
            _ => None,
        };
        match (found, self.unknown) {
            (Some(site), _) => Some(site),
            (None, UnknownHost::DefaultSite) => Some(0),
            (None, _) => None,
        }
    }

    /// What a request for a name no site names is answered.
    pub fn unknown(&self) -> UnknownHost {
        self.unknown
    }
}

/// The host a request names: its absolute-form target's authority, or
/// else its `Host` header; `None` without either (HTTP/1.0).
pub fn request_host<'t>(head: &RequestHead<'t>) -> Option<&'t [u8]> {
    match absolute_authority(head.target) {
        Some(authority) => Some(authority.as_bytes()),
        None => head.host,
    }
}

/// A host as sent without its port and a trailing dot: `Example.COM.:81`
/// gives `Example.COM`, `[::1]:8080` gives `[::1]`; userinfo
/// (`user@host`, which a Host never has) leaves nothing to match.
fn bare_name(sent: &[u8]) -> &[u8] {
    // One pass for the userinfo and the last colon (a name is short: a
    // loop costs less than a memchr call per question).
    let mut last_colon = None;
    for (i, &b) in sent.iter().enumerate() {
        match b {
            b'@' => return b"",
            b':' => last_colon = Some(i),
            _ => {}
        }
    }
    let name = match sent.first() {
        Some(b'[') => match sent.iter().position(|&b| b == b']') {
            Some(end) => &sent[..=end],
            None => b"",
        },
        _ => last_colon.map_or(sent, |colon| &sent[..colon]),
    };
    name.strip_suffix(b".").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(unknown: UnknownHost) -> Hosts {
        let sites: Vec<Vec<String>> = vec![
            vec![],
            vec!["example.com".into(), "www.example.com".into()],
            vec!["*.example.com".into()],
            vec!["*.static.example.com".into(), "[::1]".into()],
            vec!["127.0.0.1".into()],
        ];
        Hosts::new(sites.iter().map(|s| &s[..]), unknown)
    }

    #[test]
    fn names_pick_sites_by_exact_name_then_longest_wildcard() {
        let hosts = table(UnknownHost::NotFound);
        let pick = |name: &str| hosts.site_for(Some(name.as_bytes()));
        assert_eq!(pick("example.com"), Some(1));
        assert_eq!(pick("EXAMPLE.com:8080"), Some(1));
        assert_eq!(pick("www.example.com."), Some(1));
        assert_eq!(pick("img.example.com"), Some(2));
        assert_eq!(pick("a.b.example.com"), Some(2));
        assert_eq!(pick("x.static.example.com"), Some(3));
        assert_eq!(pick("static.example.com"), Some(2));
        assert_eq!(pick("[::1]:443"), Some(3));
        assert_eq!(pick("127.0.0.1:80"), Some(4));
        // The bare domain is not beneath its wildcard; lookalikes match
        // nothing.
        assert_eq!(pick("notexample.com"), None);
        assert_eq!(pick(".example.com"), None);
        assert_eq!(pick("example.com.evil"), None);
        assert_eq!(pick("user@example.com"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick(":80"), None);
        assert_eq!(pick("[::1"), None);
        assert_eq!(hosts.site_for(None), None);
    }

    #[test]
    fn unknown_names_go_to_the_default_site_or_nowhere() {
        let hosts = table(UnknownHost::DefaultSite);
        assert_eq!(hosts.site_for(Some(b"other.org")), Some(0));
        assert_eq!(hosts.site_for(None), Some(0));
        assert_eq!(hosts.site_for(Some(b"example.com")), Some(1));
        assert_eq!(table(UnknownHost::Misdirected).site_for(None), None);
        // Without named sites every request is the default site's,
        // whatever --unknown-host says.
        let single = Hosts::new(std::iter::once(&[][..]), UnknownHost::NotFound);
        assert!(!single.named());
        assert_eq!(single.site_for(Some(b"anything")), Some(0));
        assert_eq!(single.site_for(None), Some(0));
    }

    #[test]
    fn the_default_site_may_have_names_of_its_own() {
        let sites: Vec<Vec<String>> = vec![vec!["main.test".into()], vec!["other.test".into()]];
        let hosts = Hosts::new(sites.iter().map(|s| &s[..]), UnknownHost::Misdirected);
        assert_eq!(hosts.site_for(Some(b"main.test")), Some(0));
        assert_eq!(hosts.site_for(Some(b"other.test")), Some(1));
        assert_eq!(hosts.site_for(Some(b"third.test")), None);
    }

    #[test]
    fn bare_names_lose_their_port_and_final_dot_only() {
        assert_eq!(bare_name(b"a.b:1"), b"a.b");
        assert_eq!(bare_name(b"a.b."), b"a.b");
        assert_eq!(bare_name(b"[::1]:1"), b"[::1]");
        assert_eq!(bare_name(b"[::1]"), b"[::1]");
        assert_eq!(bare_name(b"a:b:c"), b"a:b");
    }
}
