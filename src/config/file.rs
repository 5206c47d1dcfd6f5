//! The `--config` file: TOML whose keys are the long flags without their
//! dashes, read through the option table like the command line, so that
//! a mistake names the file, the line and the key.

use std::path::Path;

use super::error::ConfigError;
use super::options::{OptionSpec, option};

/// One key of the file: the option, its value ("" for a switch), its
/// line, and `on` false for a switch set to false (which sets nothing,
/// but keeps a `[[site]]` block from inheriting the top level's).
pub(super) struct Entry {
    pub spec: &'static OptionSpec,
    pub value: String,
    pub line: usize,
    pub on: bool,
}

/// A `[[site]]` block: its line and its keys.
pub(super) struct SiteBlock {
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// The file's settings: the top level's keys (one entry per array
/// element of a repeatable option), then its `[[site]]` blocks.
pub(super) struct FileEntries {
    pub top: Vec<Entry>,
    pub sites: Vec<SiteBlock>,
}

/// What a `site` key that is not `[[site]]` blocks is told.
const NOT_BLOCKS: &str = "sites are [[site]] blocks (an array of tables)";

/// Reads the file's text as entries of the option table; a key that is
/// not one goes to `errors`, and the reading goes on (a file that is not
/// TOML stops it).
pub(super) fn file_entries(
    path: &Path,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> Result<FileEntries, ConfigError> {
    use toml::de::{DeTable, DeValue};
    // Counted in bytes: a span need not fall on a character boundary.
    let line_of = |offset: usize| {
        let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
        before.iter().filter(|&&b| b == b'\n').count() + 1
    };
    let fail = |line: usize, message: String| ConfigError::InFile {
        file: path.to_path_buf(),
        line,
        message,
    };
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(s.start));
        let message = e.message().lines().next().unwrap_or("").to_string();
        fail(line, format!("not valid TOML: {message}"))
    })?;
    let mut entries = FileEntries {
        top: Vec::new(),
        sites: Vec::new(),
    };
    for (key, value) in table.get_ref() {
        let line = line_of(key.span().start);
        let entry = |key: &str, value, line, in_site, out: &mut Vec<Entry>, errors: &mut Vec<_>| {
            if let Err(m) = table_entry(key, value, line, in_site, out) {
                errors.push(fail(line, m));
            }
        };
        if key.get_ref().as_ref() != "site" {
            entry(
                key.get_ref(),
                value.get_ref(),
                line,
                false,
                &mut entries.top,
                errors,
            );
            continue;
        }
        let DeValue::Array(blocks) = value.get_ref() else {
            errors.push(fail(line, NOT_BLOCKS.into()));
            continue;
        };
        for block in blocks {
            let DeValue::Table(keys) = block.get_ref() else {
                errors.push(fail(line, NOT_BLOCKS.into()));
                continue;
            };
            let mut site = SiteBlock {
                line: line_of(block.span().start),
                entries: Vec::new(),
            };
            for (key, value) in keys {
                let line = line_of(key.span().start);
                entry(
                    key.get_ref(),
                    value.get_ref(),
                    line,
                    true,
                    &mut site.entries,
                    errors,
                );
            }
            entries.sites.push(site);
        }
    }
    Ok(entries)
}

/// One `key = value` of the top level or (`in_site`) of a `[[site]]`
/// block, as entries pushed to `out`; an error is its message.
fn table_entry(
    key: &str,
    value: &toml::de::DeValue<'_>,
    line: usize,
    in_site: bool,
    out: &mut Vec<Entry>,
) -> Result<(), String> {
    use toml::de::DeValue;
    let name = key;
    let flag = format!("--{name}");
    let Some(spec) = option(&flag).filter(|s| !s.command_line_only()) else {
        return Err(format!("unknown key '{name}'"));
    };
    if in_site && !spec.per_site() {
        return Err(format!(
            "'{name}' is not a site's option: set it at the top of the file"
        ));
    }
    let scalar = |value: &DeValue<'_>| -> Result<String, String> {
        match (value, spec.value) {
            (DeValue::String(s), Some(_)) => Ok(s.to_string()),
            (DeValue::Integer(i), Some(_)) => {
                let digits = i.as_str().replace('_', "");
                i64::from_str_radix(&digits, i.radix())
                    .map(|n| n.to_string())
                    .map_err(|_| format!("'{name}': the number is out of range"))
            }
            (DeValue::Float(f), Some(_)) => Ok(f.as_str().replace('_', "")),
            (_, Some(placeholder)) => Err(format!(
                "'{name}' takes {placeholder} (a string or a number)"
            )),
            (_, None) => Err(format!("'{name}' is a switch: true or false")),
        }
    };
    let entry = |value: String, on: bool| Entry {
        spec,
        value,
        line,
        on,
    };
    match value {
        DeValue::Boolean(on) if spec.value.is_none() => out.push(entry(String::new(), *on)),
        DeValue::Array(items) if spec.repeatable => {
            for item in items {
                out.push(entry(scalar(item.get_ref())?, true));
            }
            if items.is_empty() {
                // An empty list sets the option to nothing.
                out.push(entry(String::new(), false));
            }
        }
        DeValue::Array(_) => return Err(format!("'{name}' takes one value, not a list")),
        other => out.push(entry(scalar(other)?, true)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::args::{build, serve};
    use super::super::options::OPTIONS;
    use super::super::{Config, ConfigError, LogFormat, reload};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// A configuration file in a fresh temporary directory.
    fn file(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("holdline-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("holdline.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn with_file(path: &Path, args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend_from_slice(args);
        serve(&all)
    }

    #[test]
    fn the_file_sets_options_by_their_flag_names() {
        let path = file(
            "keys",
            "# a comment\n\
             root = \"/srv/www\"\n\
             listen = [\"127.0.0.1:9000\", \"unix:/run/h.sock\"]\n\
             keepalive-timeout = 2.5\n\
             max-requests = 1_000\n\
             dotfiles = true\n\
             listing = false\n\
             header = [\"X-A: 1\", \"X-B: 2\"]\n\
             error-page = \"404=/404.html\"\n\
             access-log = \"-\"\n\
             log-format = \"json\"\n",
        );
        let c = with_file(&path, &[]).unwrap();
        assert_eq!(c.live.site.root, PathBuf::from("/srv/www"));
        assert_eq!(c.fixed.listen, ["127.0.0.1:9000".parse().unwrap()]);
        assert_eq!(c.fixed.listen_unix, [PathBuf::from("/run/h.sock")]);
        assert_eq!(c.live.keepalive_timeout, Duration::from_millis(2500));
        assert_eq!(c.live.max_requests, 1000);
        assert!(c.live.site.dotfiles && !c.live.site.listing);
        assert_eq!(c.live.site.headers, ["X-A: 1", "X-B: 2"]);
        assert_eq!(c.live.site.error_pages, [(404, "/404.html".to_string())]);
        assert_eq!(c.live.access_log, Some(PathBuf::from("-")));
        assert_eq!(c.live.log_format, LogFormat::Json);
        assert_eq!(c.source.file.as_deref(), Some(path.as_path()));
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let path = file(
            "override",
            "keepalive-timeout = 9\nheader = [\"X-A: 1\", \"X-B: 2\"]\nmax-requests = 7\n",
        );
        let c = with_file(
            &path,
            &["--keepalive-timeout", "1", "--header", "X-C: 3", "/www"],
        )
        .unwrap();
        assert_eq!(c.live.keepalive_timeout, Duration::from_secs(1));
        // A repeatable option on the command line replaces the file's list.
        assert_eq!(c.live.site.headers, ["X-C: 3"]);
        assert_eq!(c.live.max_requests, 7);
        assert_eq!(c.live.site.root, PathBuf::from("/www"));
        // A reload reads the file again under the same command line.
        std::fs::write(&path, "keepalive-timeout = 9\nmax-requests = 8\n").unwrap();
        let again = reload(&c).unwrap();
        assert_eq!(again.live.keepalive_timeout, Duration::from_secs(1));
        assert_eq!(again.live.max_requests, 8);
        assert_eq!(again.live.site.headers, ["X-C: 3"]);
    }

    #[test]
    fn file_mistakes_name_the_file_the_line_and_the_key() {
        let cases = [
            (
                "max-requests = 1\nkeepalive-timeout = \"soon\"\n",
                2,
                "'keepalive-timeout': invalid value 'soon': expected seconds",
            ),
            ("\n\nno-such-key = 1\n", 3, "unknown key 'no-such-key'"),
            (
                "keepalive-timeout = [1, 2]\n",
                1,
                "'keepalive-timeout' takes one value, not a list",
            ),
            (
                "dotfiles = \"yes\"\n",
                1,
                "'dotfiles' is a switch: true or false",
            ),
            ("listen = true\n", 1, "'listen' takes ADDR"),
            (
                "header = [\"Content-Length: 5\"]\n",
                1,
                "'header' must not set",
            ),
            ("config = \"other.toml\"\n", 1, "unknown key 'config'"),
            ("[server]\nroot = \"/\"\n", 1, "unknown key 'server'"),
            (
                "max-header-bytes = 10\n",
                1,
                "'max-header-bytes' must be at least 64",
            ),
            ("keepalive-timeout = \n", 1, "not valid TOML"),
            (
                "# caf\u{e9} \u{1F600}\nkeepalive-timeout = tr\u{e9}\n",
                2,
                "not valid TOML",
            ),
        ];
        for (text, line, message) in cases {
            let path = file("mistakes", text);
            let err = with_file(&path, &[]).unwrap_err().to_string();
            let at = format!("{}:{line}: ", path.display());
            assert!(err.starts_with(&at), "{text:?}: {err}");
            assert!(err.contains(message), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        // Checks of the whole name the file without a line.
        let path = file("whole", "tls-cert = \"a.pem\"\n");
        let err = with_file(&path, &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: '--tls-key' must be given once for each --tls-cert",
                path.display()
            )
        );
        let missing = std::env::temp_dir().join("holdline-no-such-config.toml");
        assert!(with_file(&missing, &[]).is_err());
    }

    #[test]
    fn site_blocks_inherit_the_top_level_and_replace_what_they_set() {
        let path = file(
            "sites",
            "root = \"/srv/main\"\n\
             header = [\"X-A: 1\"]\n\
             listing = true\n\
             host = [\"main.test\"]\n\
             [[site]]\n\
             host = [\"A.test.\", \"*.b.test\"]\n\
             root = \"/srv/a\"\n\
             [[site]]\n\
             host = [\"c.test\"]\n\
             header = []\n\
             listing = false\n\
             error-page = \"404=/404.html\"\n\
             tls-cert = \"/c.pem\"\n\
             tls-key = \"/c.key\"\n",
        );
        let c = with_file(&path, &["--dotfiles", "--header", "X-C: 3"]).unwrap();
        let [a, b] = &c.live.sites[..] else {
            panic!("{:?}", c.live.sites)
        };
        assert_eq!(c.live.site.hosts, ["main.test"]);
        assert_eq!(c.live.site.headers, ["X-C: 3"]);
        // a: its own names (lower case, no final dot) and ROOT; the rest,
        // the command line's --dotfiles and --header included, inherited.
        assert_eq!(a.hosts, ["a.test", "*.b.test"]);
        assert_eq!(a.root, PathBuf::from("/srv/a"));
        assert!(a.dotfiles && a.listing);
        assert_eq!(a.headers, ["X-C: 3"]);
        // b: an empty list and a switch set to false are its own.
        assert_eq!(b.root, PathBuf::from("/srv/main"));
        assert!(b.headers.is_empty() && !b.listing && b.dotfiles);
        assert_eq!(b.error_pages, [(404, "/404.html".to_string())]);
        assert!(c.live.site.error_pages.is_empty());
        // Its certificate joins the server's.
        assert_eq!(c.fixed.tls_certs.len(), 1);
        assert_eq!(c.fixed.tls_certs[0].cert, PathBuf::from("/c.pem"));
        // A reload that changes a block says so.
        std::fs::write(&path, "[[site]]\nhost = [\"d.test\"]\n").unwrap();
        let again = reload(&c).unwrap();
        let update = c.live_update(&c, again);
        assert!(update.changed.contains(&"the [[site]] blocks"));
    }

    /// `contrib/holdline.toml` parses, and names every key a file takes.
    #[test]
    fn the_example_file_parses_and_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/holdline.toml");
        let c = build(Some(path.clone()), Vec::new()).unwrap();
        assert_eq!(c.live.site.root, PathBuf::from("/srv/www"));
        let text = std::fs::read_to_string(&path).unwrap();
        for spec in OPTIONS.iter().filter(|o| !o.command_line_only()) {
            let key = spec.key();
            let listed = text.lines().any(|l| {
                let l = l.trim_start_matches("# ");
                l.starts_with(&format!("{key} = "))
            });
            assert!(listed, "contrib/holdline.toml lacks {key}");
        }
    }
}
