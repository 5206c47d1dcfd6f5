//! A site's path rules (`--rule 'PATTERN ACTION ...'`), parsed and
//! checked: what the option table's `--rule` setter builds, one [`Rule`]
//! per value, in order.
//!
//! PATTERN is a glob over the request's decoded, normalized path: it
//! starts with `/` to match from the root (`/assets/**`, `/about`), or it
//! matches a file name anywhere (`*.html` is `/**/*.html`). `*` and `?`
//! stay within a segment, `**` spans any number of them, `{a,b}` is
//! either. ACTION is one of:
//!
//! - `header NAME: VALUE`: set a header (replacing a `--header` of the
//!   same name, or `--cache-control`);
//! - `remove-header NAME`: drop a `--header` line or `Cache-Control`;
//! - `redirect CODE TARGET`: 301, 302, 307 or 308 to TARGET, a path or an
//!   `http(s)://` URL, where `{path}` is the request's path and `{rest}`
//!   what a pattern's trailing `/**` matched; the query is kept unless
//!   TARGET has one;
//! - `rewrite TARGET`: serve TARGET (a path, with the same placeholders)
//!   instead, beneath the same ROOT;
//! - `deny CODE`: answer 403 or 404;
//! - `auth REALM FILE`: HTTP Basic authentication against FILE's users
//!   (bcrypt hashes): 401 with `WWW-Authenticate` without valid ones;
//! - `allow-from RANGE...` / `deny-from RANGE...`: 403 for a client
//!   outside (inside) these address ranges (the client as
//!   `--trusted-proxy` says: the peer, or its `X-Forwarded-For`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobBuilder};

use super::cidr::Cidr;
use super::error::ConfigError;
use super::values::{header_line, site_path};

/// One path rule (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The pattern as given, for `--help`, `holdline check` and reloads.
    pub pattern: String,
    /// The glob it compiles to (`*.html` as `/**/*.html`).
    pub glob: Glob,
    /// For a pattern ending in `/**`, the part before: what `{rest}`
    /// follows.
    pub prefix: Option<String>,
    pub action: Action,
}

/// What a rule does to a response of a path it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// "Name: value", checked as `--header` is.
    SetHeader(String),
    /// A header name, lower case.
    RemoveHeader(String),
    Redirect {
        status: u16,
        target: String,
    },
    Rewrite(String),
    Deny(u16),
    /// Only clients in these ranges pass; others get 403.
    AllowFrom(Vec<Cidr>),
    /// Clients in these ranges get 403.
    DenyFrom(Vec<Cidr>),
    /// HTTP Basic authentication (RFC 7617) against a users file.
    Auth(Arc<Users>),
}

/// An `auth` rule's realm and users, read from an htpasswd-style file
/// (`user:$2y$...` lines of bcrypt hashes, as `htpasswd -B` or `holdline
/// hash-password` write them; `#` comments).
#[derive(Debug, PartialEq, Eq)]
pub struct Users {
    pub realm: String,
    pub file: PathBuf,
    /// (user, bcrypt hash), in the file's order.
    pub users: Vec<(String, String)>,
}

impl Users {
    /// The hash of `user`, if the file names it.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(name, _)| name == user)
            .map(|(_, hash)| hash.as_str())
    }

    /// Reads `file` for `realm`.
    pub fn read(realm: &str, file: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut users = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |what: &str| format!("{}:{}: {what}", file.display(), i + 1);
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| at("expected user:hash"))?;
            let bcrypt = ["$2a$", "$2b$", "$2x$", "$2y$"]
                .iter()
                .any(|p| hash.starts_with(p));
            if user.is_empty() || !bcrypt || hash.len() != 60 {
                return Err(at(
                    "expected user:$2y$... (a bcrypt hash, as htpasswd -B writes)",
                ));
            }
            users.push((user.to_string(), hash.to_string()));
        }
        Ok(Users {
            realm: realm.to_string(),
            file: file.to_path_buf(),
            users,
        })
    }
}

impl Action {
    /// It decides the response (the first one that matches does), where
    /// header edits only add to it (every one that matches).
    pub fn decides(&self) -> bool {
        matches!(
            self,
            Action::Redirect { .. } | Action::Rewrite(_) | Action::Deny(_)
        )
    }

    /// An access rule refuses `client` (403): every matching one is
    /// asked, before the deciding ones.
    pub fn refuses(&self, client: std::net::IpAddr) -> bool {
        match self {
            Action::AllowFrom(ranges) => !ranges.iter().any(|r| r.contains(client)),
            Action::DenyFrom(ranges) => ranges.iter().any(|r| r.contains(client)),
            _ => false,
        }
    }

    /// The users of an `auth` rule.
    pub fn users(&self) -> Option<&Users> {
        match self {
            Action::Auth(users) => Some(users),
            _ => None,
        }
    }

    /// It edits the response's headers.
    pub fn edits_headers(&self) -> bool {
        matches!(self, Action::SetHeader(_) | Action::RemoveHeader(_))
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.action {
            Action::SetHeader(line) => write!(f, "{} header {line}", self.pattern),
            Action::RemoveHeader(name) => write!(f, "{} remove-header {name}", self.pattern),
            Action::Redirect { status, target } => {
                write!(f, "{} redirect {status} {target}", self.pattern)
            }
            Action::Rewrite(target) => write!(f, "{} rewrite {target}", self.pattern),
            Action::Deny(status) => write!(f, "{} deny {status}", self.pattern),
            Action::Auth(users) => write!(
                f,
                "{} auth {} {} ({} users)",
                self.pattern,
                users.realm,
                users.file.display(),
                users.users.len()
            ),
            Action::AllowFrom(ranges) | Action::DenyFrom(ranges) => {
                let verb = match &self.action {
                    Action::AllowFrom(_) => "allow-from",
                    _ => "deny-from",
                };
                write!(f, "{} {verb}", self.pattern)?;
                ranges.iter().try_for_each(|r| write!(f, " {r}"))
            }
        }
    }
}

/// Parses one `--rule` value.
pub fn parse(value: &str) -> Result<Rule, ConfigError> {
    let expected = "'PATTERN ACTION ...': header NAME: VALUE, remove-header NAME, \
                    redirect 301|302|307|308 TARGET, rewrite PATH, deny 403|404, \
                    allow-from RANGES, deny-from RANGES or auth REALM FILE";
    let invalid = || ConfigError::invalid("rule", value, expected);
    let mut words = value.trim().splitn(3, ' ');
    let pattern = words.next().filter(|p| !p.is_empty()).ok_or_else(invalid)?;
    let verb = words.next().ok_or_else(invalid)?;
    let rest = words.next().unwrap_or("").trim();
    let status = |text: &str, allowed: &[u16]| {
        text.parse::<u16>()
            .ok()
            .filter(|s| allowed.contains(s))
            .ok_or_else(invalid)
    };
    let action = match verb {
        "header" => Action::SetHeader(header_line(rest)?),
        "remove-header" => {
            let line = header_line(&format!("{rest}: x"))?;
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            Action::RemoveHeader(name)
        }
        "redirect" => {
            let (code, target) = rest.split_once(' ').ok_or_else(invalid)?;
            let status = status(code, &[301, 302, 307, 308])?;
            let target = target.trim();
            let url = target.starts_with("http://") || target.starts_with("https://");
            let plain = target
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'\\'));
            if !(url || target.starts_with('/')) || !plain {
                return Err(ConfigError::invalid(
                    "rule",
                    value,
                    "a redirect TARGET that is a path (/new/{rest}) or an http(s):// URL, without spaces",
                ));
            }
            Action::Redirect {
                status,
                target: target.to_string(),
            }
        }
        "rewrite" => Action::Rewrite(site_path("rule", rest)?),
        "deny" => Action::Deny(status(rest, &[403, 404])?),
        "auth" => {
            let (realm, file) = rest.rsplit_once(' ').ok_or_else(invalid)?;
            let realm = realm.trim();
            if realm.is_empty()
                || realm.contains(['"', '\\'])
                || realm.chars().any(char::is_control)
            {
                return Err(ConfigError::invalid(
                    "rule",
                    value,
                    "auth REALM FILE, the realm without quotes or backslashes",
                ));
            }
            let users = Users::read(realm, Path::new(file))
                .map_err(|e| ConfigError::Usage(format!("--rule '{value}': {e}")))?;
            Action::Auth(Arc::new(users))
        }
        "allow-from" | "deny-from" => {
            let ranges = rest
                .split_ascii_whitespace()
                .map(|r| {
                    Cidr::parse(r).ok_or_else(|| {
                        ConfigError::invalid(
                            "rule",
                            value,
                            "address ranges such as 10.0.0.0/8 or 2001:db8::/32",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            match verb {
                "allow-from" => Action::AllowFrom(ranges),
                _ => Action::DenyFrom(ranges),
            }
        }
        _ => return Err(invalid()),
    };
    if !matches!(action, Action::Deny(_)) && rest.is_empty() {
        return Err(invalid());
    }
    let rooted = match pattern.strip_prefix('/') {
        Some(_) => pattern.to_string(),
        None => format!("/**/{pattern}"),
    };
    let glob = GlobBuilder::new(&rooted)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| ConfigError::Usage(format!("--rule '{value}': not a glob pattern: {e}")))?;
    let prefix = rooted
        .strip_suffix("/**")
        .filter(|p| !p.contains(['*', '?', '[', '{', '\\']))
        .map(str::to_string);
    Ok(Rule {
        pattern: pattern.to_string(),
        glob,
        prefix,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_into_their_actions() {
        let r =
            parse("/assets/** header Cache-Control: public, max-age=31536000, immutable").unwrap();
        assert_eq!(r.prefix.as_deref(), Some("/assets"));
        assert_eq!(
            r.action,
            Action::SetHeader("Cache-Control: public, max-age=31536000, immutable".into())
        );
        let r = parse("*.html remove-header X-Frame-Options").unwrap();
        assert_eq!(r.glob.glob(), "/**/*.html");
        assert_eq!(r.action, Action::RemoveHeader("x-frame-options".into()));
        let r = parse("/old/** redirect 301 https://example.com/new/{rest}").unwrap();
        assert!(r.action.decides());
        assert_eq!(
            r.to_string(),
            "/old/** redirect 301 https://example.com/new/{rest}"
        );
        assert_eq!(parse("/about rewrite /about.html").unwrap().prefix, None);
        assert_eq!(
            parse("/.git/** deny 404").unwrap().action,
            Action::Deny(404)
        );
    }

    #[test]
    fn bad_rules_say_what_is_expected() {
        for bad in [
            "",
            "/a",
            "/a header",
            "/a header Content-Length: 5",
            "/a header X: a\r\nb",
            "/a redirect 303 /b",
            "/a redirect 301",
            "/a redirect 301 b",
            "/a redirect 301 /b c",
            "/a redirect 301 javascript:alert(1)",
            "/a rewrite b",
            "/a rewrite /b?c",
            "/a deny 500",
            "/a explode now",
            "/a[ deny 404",
            "/a remove-header Bad Name",
            "/a allow-from",
            "/a allow-from 10.0.0.0/40",
            "/a deny-from example.com",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
