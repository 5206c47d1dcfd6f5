//! The `--config` file: TOML whose keys are the long flags without their
//! dashes, read through the option table like the command line, so that
//! a mistake names the file, the line and the key.

use std::path::Path;

use super::error::ConfigError;
use super::options::{OptionSpec, option};

/// The file's settings as (option, value, line): one entry per array
/// element of a repeatable option, "" for a switch set to true.
pub(super) fn file_entries(
    path: &Path,
    text: &str,
) -> Result<Vec<(&'static OptionSpec, String, usize)>, ConfigError> {
    use toml::de::{DeTable, DeValue};
    // Counted in bytes: a span need not fall on a character boundary.
    let line_of = |offset: usize| {
        let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
        before.iter().filter(|&&b| b == b'\n').count() + 1
    };
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(s.start));
        let message = e.message().lines().next().unwrap_or("").to_string();
        ConfigError::InFile {
            file: path.to_path_buf(),
            line,
            message: format!("not valid TOML: {message}"),
        }
    })?;
    let mut entries = Vec::new();
    for (key, value) in table.get_ref() {
        let line = line_of(key.span().start);
        let name = key.get_ref().as_ref();
        let fail = |message: String| ConfigError::InFile {
            file: path.to_path_buf(),
            line,
            message,
        };
        let flag = format!("--{name}");
        let Some(spec) = option(&flag).filter(|s| !s.command_line_only()) else {
            return Err(fail(format!("unknown key '{name}'")));
        };
        let scalar = |value: &DeValue<'_>| -> Result<String, ConfigError> {
            match (value, spec.value) {
                (DeValue::String(s), Some(_)) => Ok(s.to_string()),
                (DeValue::Integer(i), Some(_)) => {
                    let digits = i.as_str().replace('_', "");
                    i64::from_str_radix(&digits, i.radix())
                        .map(|n| n.to_string())
                        .map_err(|_| fail(format!("'{name}': the number is out of range")))
                }
                (DeValue::Float(f), Some(_)) => Ok(f.as_str().replace('_', "")),
                (_, Some(placeholder)) => Err(fail(format!(
                    "'{name}' takes {placeholder} (a string or a number)"
                ))),
                (_, None) => Err(fail(format!("'{name}' is a switch: true or false"))),
            }
        };
        match value.get_ref() {
            DeValue::Boolean(on) if spec.value.is_none() => {
                if *on {
                    entries.push((spec, String::new(), line));
                }
            }
            DeValue::Array(items) if spec.repeatable => {
                for item in items {
                    entries.push((spec, scalar(item.get_ref())?, line));
                }
            }
            DeValue::Array(_) => {
                return Err(fail(format!("'{name}' takes one value, not a list")));
            }
            other => entries.push((spec, scalar(other)?, line)),
        }
    }
    Ok(entries)
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
        assert_eq!(c.fixed.root, PathBuf::from("/srv/www"));
        assert_eq!(c.fixed.listen, ["127.0.0.1:9000".parse().unwrap()]);
        assert_eq!(c.fixed.listen_unix, [PathBuf::from("/run/h.sock")]);
        assert_eq!(c.live.keepalive_timeout, Duration::from_millis(2500));
        assert_eq!(c.live.max_requests, 1000);
        assert!(c.live.dotfiles && !c.live.listing);
        assert_eq!(c.live.headers, ["X-A: 1", "X-B: 2"]);
        assert_eq!(c.live.error_pages, [(404, "/404.html".to_string())]);
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
        assert_eq!(c.live.headers, ["X-C: 3"]);
        assert_eq!(c.live.max_requests, 7);
        assert_eq!(c.fixed.root, PathBuf::from("/www"));
        // A reload reads the file again under the same command line.
        std::fs::write(&path, "keepalive-timeout = 9\nmax-requests = 8\n").unwrap();
        let again = reload(&c).unwrap();
        assert_eq!(again.live.keepalive_timeout, Duration::from_secs(1));
        assert_eq!(again.live.max_requests, 8);
        assert_eq!(again.live.headers, ["X-C: 3"]);
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

    /// `contrib/holdline.toml` parses, and names every key a file takes.
    #[test]
    fn the_example_file_parses_and_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/holdline.toml");
        let c = build(Some(path.clone()), Vec::new()).unwrap();
        assert_eq!(c.fixed.root, PathBuf::from("/srv/www"));
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
