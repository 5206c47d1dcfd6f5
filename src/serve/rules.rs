//! A site's path rules at work ([`crate::config::rules`] says what they
//! mean): compiled once per configuration into one matcher, matched per
//! request against the decoded path, and the two things a match does to
//! a response, as plain code over bytes: the header lines it carries, and
//! a redirect's or rewrite's target with its placeholders filled in.
//!
//! Per request nothing is allocated: the path, the matches and the
//! header lines go into buffers the responder reuses.

use std::io::Write;

use globset::{Candidate, GlobSet, GlobSetBuilder};
use percent_encoding::{AsciiSet, CONTROLS, percent_encode};

use crate::config::rules::{Action, Rule};
use crate::http::target::{PathInfo, decode_rooted};

/// One site's rules, compiled.
pub struct Rules {
    /// The rules whose pattern is neither `/**` nor a literal prefix's
    /// `/**`, compiled together.
    set: GlobSet,
    /// For each glob of `set`, its rule's index.
    in_set: Vec<usize>,
    /// Rules of every path (`/**`): matched without looking.
    everywhere: Vec<usize>,
    /// Rules of a literal prefix (`/assets/**`: what lies beneath
    /// `/assets/`), matched by comparing bytes: (the prefix with its
    /// slash, the rule's index).
    prefixed: Vec<(Vec<u8>, usize)>,
    /// Rules of a file name's literal ending (`*.html`, `*-min.js`: any
    /// file name anywhere that ends so), matched by comparing bytes: (the
    /// ending, the rule's index).
    suffixed: Vec<(Vec<u8>, usize)>,
    rules: Vec<Rule>,
}

/// The literal ending of a pattern `*ENDING` (`*.html`): a file name
/// anywhere that ends so, what `/**/*ENDING` matches; `None` for any
/// other pattern, and for an empty ending.
fn file_name_ending(pattern: &str) -> Option<&str> {
    let ending = pattern.strip_prefix('*')?;
    let literal = !ending.is_empty() && !ending.contains(['*', '?', '[', ']', '{', '}', '\\', '/']);
    literal.then_some(ending)
}

/// What of a path must be escaped where a placeholder puts it in a URL
/// path: everything but unreserved characters, sub-delimiters, `/`, `:`
/// and `@` (RFC 3986 §3.3), so a decoded `%0d%0a` or `?` comes out encoded
/// again, never as a header break or a query.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

impl Rules {
    /// Compiles `rules` (their globs were checked when the configuration
    /// was built; a set too large for the regex engine matches nothing,
    /// and says so).
    pub fn new(rules: &[Rule]) -> Rules {
        let mut builder = GlobSetBuilder::new();
        let (mut in_set, mut everywhere, mut prefixed) = (Vec::new(), Vec::new(), Vec::new());
        let mut suffixed = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            // What globset would match for these, found without it: most
            // rules are these, and a byte comparison costs less than the
            // set's strategies.
            match (rule.prefix.as_deref(), file_name_ending(&rule.pattern)) {
                (Some(""), _) => everywhere.push(i),
                (Some(prefix), _) => prefixed.push((format!("{prefix}/").into_bytes(), i)),
                (None, Some(ending)) => suffixed.push((ending.as_bytes().to_vec(), i)),
                (None, None) => {
                    builder.add(rule.glob.clone());
                    in_set.push(i);
                }
            }
        }
        let set = builder.build().unwrap_or_else(|e| {
            log::error!("the path rules cannot be compiled ({e}): none applies");
            in_set.clear();
            GlobSet::empty()
        });
        Rules {
            set,
            in_set,
            everywhere,
            prefixed,
            suffixed,
            rules: rules.to_vec(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules that match `target`'s decoded path, in order, into
    /// `hits`; the path (with its leading `/`, and a trailing one when the
    /// target had it) is left in `path`, and what decoding learned is
    /// returned. A target that does not decode matches nothing (the
    /// lookup answers it); nor does any target when there are no rules
    /// (`None` either way).
    pub fn matching<'t>(
        &self,
        target: &'t str,
        path: &mut Vec<u8>,
        hits: &mut Vec<usize>,
    ) -> Option<PathInfo<'t>> {
        hits.clear();
        path.clear();
        if self.rules.is_empty() {
            return None;
        }
        let Ok(info) = decode_rooted(target, path) else {
            path.clear();
            return None;
        };
        if !self.in_set.is_empty() {
            self.set
                .matches_candidate_into(&Candidate::from_bytes(&path[..]), hits);
            for hit in hits.iter_mut() {
                *hit = self.in_set[*hit];
            }
        }
        hits.extend_from_slice(&self.everywhere);
        let beneath = |(prefix, i): &(Vec<u8>, usize)| path.starts_with(prefix).then_some(*i);
        hits.extend(self.prefixed.iter().filter_map(beneath));
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
        let ends = |(ending, i): &(Vec<u8>, usize)| name.ends_with(ending).then_some(*i);
        hits.extend(self.suffixed.iter().filter_map(ends));
        hits.sort_unstable();
        Some(info)
    }

    pub fn rule(&self, index: usize) -> &Rule {
        &self.rules[index]
    }

    /// The first of `hits` that decides the response (a redirect, a
    /// rewrite, a deny).
    pub fn decision<'r>(&'r self, hits: &[usize]) -> Option<&'r Rule> {
        hits.iter()
            .map(|&i| &self.rules[i])
            .find(|rule| rule.action.decides())
    }

    /// Some of `hits` is an access rule that refuses `client`.
    pub fn refuse(&self, hits: &[usize], client: std::net::IpAddr) -> bool {
        hits.iter().any(|&i| self.rules[i].action.refuses(client))
    }

    /// The first of `hits` that requires authentication, and its users.
    pub fn auth<'r>(&'r self, hits: &[usize]) -> Option<&'r crate::config::rules::Users> {
        hits.iter().find_map(|&i| self.rules[i].action.users())
    }

    /// Some of `hits` edits headers.
    pub fn edits_headers(&self, hits: &[usize]) -> bool {
        hits.iter().any(|&i| self.rules[i].action.edits_headers())
    }
}

/// Writes `template` into `out` with `{path}` as the decoded `path` and
/// `{rest}` as what follows the rule's `/**` prefix, both escaped for a
/// URL path.
pub fn expand(template: &str, rule: &Rule, path: &[u8], out: &mut Vec<u8>) {
    let rest = rule
        .prefix
        .as_deref()
        .and_then(|prefix| path.strip_prefix(prefix.as_bytes()))
        .map_or(&b""[..], |rest| rest.strip_prefix(b"/").unwrap_or(rest));
    let mut text = template;
    while let Some(open) = text.find('{') {
        out.extend_from_slice(&text.as_bytes()[..open]);
        let after = &text[open..];
        let (value, skip) = if after.starts_with("{path}") {
            (Some(path), "{path}".len())
        } else if after.starts_with("{rest}") {
            (Some(rest), "{rest}".len())
        } else {
            (None, 1)
        };
        match value {
            Some(value) => {
                let _ = write!(out, "{}", percent_encode(value, PATH_ESCAPE));
            }
            None => out.push(b'{'),
        }
        text = &after[skip..];
    }
    out.extend_from_slice(text.as_bytes());
}

/// The extra header lines of a response whose path `hits` rules:
/// `base` (the site's `--header` lines, "Name: value\r\n" each) edited by
/// each header rule in order (a later one wins), into `out`. Returns
/// whether `--cache-control` still applies (no rule set or removed
/// `Cache-Control`).
pub fn compose_headers(rules: &Rules, hits: &[usize], base: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.extend_from_slice(base);
    let mut cache_control = true;
    for &i in hits {
        let name = match &rules.rule(i).action {
            Action::SetHeader(line) => {
                let colon = line.bytes().position(|b| b == b':').unwrap_or(line.len());
                &line.as_bytes()[..colon]
            }
            Action::RemoveHeader(name) => name.as_bytes(),
            _ => continue,
        };
        drop_header(out, name);
        cache_control &= !name.eq_ignore_ascii_case(b"cache-control");
        if let Action::SetHeader(line) = &rules.rule(i).action {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    cache_control
}

/// Removes the lines named `name` (any case) from `lines`, in place.
fn drop_header(lines: &mut Vec<u8>, name: &[u8]) {
    let mut read = 0;
    let mut write = 0;
    while read < lines.len() {
        // Lines end in CRLF, and a value holds no LF (the config refuses
        // one): the LF ends the line.
        let end = lines[read..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(lines.len(), |p| read + p + 1);
        let line = &lines[read..end];
        let named = line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name);
        if !named {
            lines.copy_within(read..end, write);
            write += end - read;
        }
        read = end;
    }
    lines.truncate(write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(lines: &[&str]) -> Rules {
        let parsed: Vec<Rule> = lines
            .iter()
            .map(|l| crate::config::rules::parse(l).unwrap())
            .collect();
        Rules::new(&parsed)
    }

    fn hits(rules: &Rules, target: &str) -> Vec<usize> {
        let (mut path, mut hits) = (Vec::new(), Vec::new());
        rules.matching(target, &mut path, &mut hits);
        hits
    }

    #[test]
    fn patterns_match_the_decoded_normalized_path() {
        let r = rules(&[
            "/assets/** header Cache-Control: immutable",
            "*.html header Cache-Control: no-cache",
            "/about rewrite /about.html",
            "/.git/** deny 404",
            "/docs/*.txt deny 403",
        ]);
        assert_eq!(hits(&r, "/assets/app.css"), [0]);
        assert_eq!(hits(&r, "/assets/deep/er/app.css?v=1"), [0]);
        assert_eq!(hits(&r, "/assets/x.html"), [0, 1]);
        assert_eq!(hits(&r, "/index.html"), [1]);
        assert_eq!(hits(&r, "/a/b/c.html"), [1]);
        assert_eq!(hits(&r, "/about"), [2]);
        assert_eq!(hits(&r, "/about/"), Vec::<usize>::new());
        // Encoded, doubled and dotted spellings are the same path.
        assert_eq!(hits(&r, "/%61ssets//x/../app.css"), [0]);
        assert_eq!(hits(&r, "/x/%2e%2e/.git/config"), [3]);
        assert_eq!(hits(&r, "/%2Egit/HEAD"), [3]);
        // `*` stays within a segment.
        assert_eq!(hits(&r, "/docs/a.txt"), [4]);
        assert_eq!(hits(&r, "/docs/sub/a.txt"), Vec::<usize>::new());
        // A target that does not decode matches nothing.
        assert_eq!(hits(&r, "/../etc/passwd"), Vec::<usize>::new());
        assert_eq!(
            r.decision(&hits(&r, "/x/../about")).unwrap().pattern,
            "/about"
        );
        assert!(r.decision(&hits(&r, "/assets/a")).is_none());
    }

    /// The prefix, file-name-ending and match-all rules found by
    /// comparing bytes match exactly what the glob set would have.
    #[test]
    fn byte_matched_rules_agree_with_globset() {
        assert_eq!(super::file_name_ending("*.txt"), Some(".txt"));
        assert_eq!(super::file_name_ending("*"), None);
        assert_eq!(super::file_name_ending("*.{a,b}"), None);
        assert_eq!(super::file_name_ending("a*.txt"), None);
        assert_eq!(super::file_name_ending("*/x"), None);
        let lines = [
            "/** header A: 1",
            "/docs/** header B: 1",
            "/docs/api/** header C: 1",
            "*.html header D: 1",
            "/do** header E: 1",
            "/{a,b}/** header F: 1",
            "*.txt header G: 1",
            "*-min.js header H: 1",
            "*.tar.gz header I: 1",
            "*x header J: 1",
            "*.{png,jpg} header K: 1",
        ];
        let r = rules(&lines);
        let mut all = GlobSetBuilder::new();
        for line in lines {
            all.add(crate::config::rules::parse(line).unwrap().glob);
        }
        let all = all.build().unwrap();
        for target in [
            "/",
            "/docs",
            "/docs/",
            "/docs/x",
            "/docs/api",
            "/docs/api/",
            "/docs/api/v1/x.html",
            "/docsx/y",
            "/dox",
            "/a/b",
            "/b/",
            "/index.html",
            "/%64ocs/a",
            "/a.txt",
            "/.txt",
            "/dir.txt/",
            "/dir.txt/b",
            "/a/b/c.txt",
            "/a.TXT",
            "/app-min.js",
            "/-min.js",
            "/x.tar.gz",
            "/x.gz",
            "/ax",
            "/x/",
            "/p.png",
            "/q.jpg",
        ] {
            let (mut path, mut hits) = (Vec::new(), Vec::new());
            r.matching(target, &mut path, &mut hits);
            let mut expected = all.matches_candidate(&Candidate::from_bytes(&path[..]));
            expected.sort_unstable();
            assert_eq!(hits, expected, "{target}");
        }
    }

    #[test]
    fn placeholders_are_escaped_path_pieces() {
        let r = rules(&["/old/** redirect 301 /new/{rest}?from={path}"]);
        let rule = r.rule(0);
        let mut out = Vec::new();
        expand(
            "/new/{rest}?from={path}{x",
            rule,
            b"/old/a b/\r\n?#%.txt",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "/new/a%20b/%0D%0A%3F%23%25.txt?from=/old/a%20b/%0D%0A%3F%23%25.txt{x"
        );
        let mut out = Vec::new();
        expand("/new/{rest}", rule, b"/old", &mut out);
        assert_eq!(out, b"/new/");
    }

    #[test]
    fn header_rules_edit_the_sites_lines_in_order() {
        let r = rules(&[
            "/** header X-A: 2",
            "/** remove-header x-b",
            "/** header Cache-Control: no-cache",
            "/** header X-C: 1",
            "/** remove-header X-C",
        ]);
        let mut out = Vec::new();
        let all = [0, 1, 2, 3, 4];
        let keeps = compose_headers(&r, &all, b"X-A: 1\r\nX-B: 1\r\nX-Bb: 1\r\n", &mut out);
        assert!(!keeps);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "X-Bb: 1\r\nX-A: 2\r\nCache-Control: no-cache\r\n"
        );
        assert!(compose_headers(&r, &[1], b"", &mut out));
        assert!(out.is_empty());
    }
}
