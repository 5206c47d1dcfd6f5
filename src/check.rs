//! `holdline check` (nginx's `-t`): what a configuration would serve,
//! and what in it cannot work, found without serving: every site's ROOT
//! opened as the server would open it, every certificate and key loaded,
//! every site's rules compiled. A SIGHUP reload runs the same checks
//! ([`problems`]) before it swaps, and keeps the running configuration
//! when one fails.
//!
//! It binds nothing: a listener's address in use is found at start.

use std::fmt::Write;

use crate::config::{Config, SiteOptions, UnknownHost};
use crate::files::Root;

/// What [`check`] found: the report of what would be served, the
/// problems (each one line; any makes the configuration unusable) and the
/// warnings (it would serve, perhaps not as meant).
#[derive(Debug, Default)]
pub struct Checked {
    pub report: String,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// Checks `config` and describes it.
pub fn check(config: &Config) -> Checked {
    let mut checked = Checked {
        problems: problems(config),
        warnings: warnings(config),
        ..Checked::default()
    };
    let out = &mut checked.report;
    let fixed = &config.fixed;
    let listeners: Vec<String> = fixed
        .listen
        .iter()
        .map(|a| format!("http://{a}"))
        .chain(fixed.tls_listen.iter().map(|a| format!("https://{a}")))
        .chain(
            fixed
                .listen_unix
                .iter()
                .map(|p| format!("unix:{}", p.display())),
        )
        .collect();
    let _ = writeln!(out, "listeners: {}", listeners.join(" "));
    let _ = writeln!(out, "workers: {}", fixed.workers);
    for pair in &fixed.tls_certs {
        let _ = writeln!(
            out,
            "certificate: {} (key {})",
            pair.cert.display(),
            pair.key.display()
        );
    }
    let unknown = match config.live.unknown_host {
        UnknownHost::DefaultSite => "the default site",
        UnknownHost::NotFound => "404",
        UnknownHost::Misdirected => "421",
    };
    let _ = writeln!(out, "unknown hosts: {unknown}");
    for (i, site) in config.live.all_sites().enumerate() {
        let name = match i {
            0 => "default site".to_string(),
            i => format!("site {i}"),
        };
        describe_site(out, &name, site);
    }
    checked
}

fn describe_site(out: &mut String, name: &str, site: &SiteOptions) {
    let hosts = match site.hosts.is_empty() {
        true => "(any host no other site names)".to_string(),
        false => site.hosts.join(" "),
    };
    let _ = writeln!(out, "{name}: {hosts}");
    let _ = writeln!(out, "  root: {}", site.root.display());
    let on = |flag: bool, what: &'static str| flag.then_some(what);
    let switches: Vec<&str> = [
        on(site.redirect_to_https, "redirect-to-https"),
        on(site.dotfiles, "dotfiles"),
        on(site.listing, "listing"),
        on(site.clean_urls, "clean-urls"),
        on(site.acme, "acme"),
        on(!site.precompressed, "no-precompressed"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !switches.is_empty() {
        let _ = writeln!(out, "  {}", switches.join(", "));
    }
    if let Some(value) = &site.cache_control {
        let _ = writeln!(out, "  cache-control: {value}");
    }
    for header in &site.headers {
        let _ = writeln!(out, "  header: {header}");
    }
    if let Some(fallback) = &site.fallback {
        let _ = writeln!(out, "  fallback: {fallback}");
    }
    for (code, page) in &site.error_pages {
        let _ = writeln!(out, "  error-page: {code}={page}");
    }
    for (i, rule) in site.rules.iter().enumerate() {
        let _ = writeln!(out, "  rule {}: {rule}", i + 1);
    }
}

/// What makes `config` unusable: a ROOT that cannot be opened, a
/// certificate or key that cannot be loaded, rules that cannot be
/// compiled. Each is one line.
pub fn problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: Vec<&std::path::Path> = Vec::new();
    for (i, site) in config.live.all_sites().enumerate() {
        let which = site_name(i, site);
        if !seen.contains(&site.root.as_path()) {
            seen.push(&site.root);
            if let Err(e) = Root::open(&site.root, config.fixed.follow_symlinks) {
                problems.push(format!(
                    "{which}: cannot serve {}: {e}",
                    site.root.display()
                ));
            }
        }
        let mut set = globset::GlobSetBuilder::new();
        for rule in &site.rules {
            set.add(rule.glob.clone());
        }
        if let Err(e) = set.build() {
            problems.push(format!("{which}: its rules cannot be compiled: {e}"));
        }
        if site.acme && crate::acme::validatable(&site.hosts).is_empty() {
            problems.push(format!(
                "{which}: --acme needs a host name a CA can validate (not a wildcard or an address)"
            ));
        }
    }
    let acme = &config.fixed.acme;
    if config.live.all_sites().any(|site| site.acme) {
        if !acme.agree_tos {
            problems.push("acme: needs --acme-agree-tos (the CA's terms of service)".into());
        }
        if let Some(root) = &acme.ca_root
            && let Err(e) = std::fs::metadata(root)
        {
            problems.push(format!("acme-ca-root: {}: {e}", root.display()));
        }
    }
    if !config.fixed.tls_listen.is_empty() || !config.fixed.tls_certs.is_empty() {
        for pair in &config.fixed.tls_certs {
            if let Err(e) = crate::tls::check_pair(pair) {
                problems.push(format!("certificate: {e}"));
            }
        }
    }
    problems
}

/// What would serve, perhaps not as meant: a TLS site whose names no
/// certificate covers (its clients get the default one and a warning).
fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.fixed.tls_listen.is_empty() {
        return warnings;
    }
    for (i, site) in config.live.all_sites().enumerate() {
        for host in &site.hosts {
            // A wildcard is checked with a name beneath it.
            let name = match host.strip_prefix("*.") {
                Some(domain) => format!("check.{domain}"),
                None => host.clone(),
            };
            let covered = config
                .fixed
                .tls_certs
                .iter()
                .any(|pair| crate::tls::pair_covers(pair, &name));
            // An --acme site's certificate is the CA's for the names it
            // can validate.
            let acme = site.acme && crate::acme::validatable(std::slice::from_ref(host)).len() == 1;
            if !covered && !acme {
                warnings.push(format!(
                    "{}: no certificate names {host}: its TLS clients get the default one",
                    site_name(i, site)
                ));
            }
        }
    }
    warnings
}

fn site_name(index: usize, site: &SiteOptions) -> String {
    match (index, site.hosts.first()) {
        (0, _) => "the default site".to_string(),
        (i, Some(host)) => format!("site {i} ({host})"),
        (i, None) => format!("site {i}"),
    }
}
