//! A configuration mistake, said in one line: the flag, or the file, its
//! line and its key.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration mistake; `Display` gives it as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A value that does not parse as what the flag takes.
    Invalid {
        flag: String,
        value: String,
        /// What was expected, as `--help` would say it.
        expected: &'static str,
    },
    /// A value that parses but is out of the flag's range.
    OutOfRange {
        flag: String,
        /// The rule, such as "must be at least 64".
        rule: &'static str,
    },
    /// Not a flag holdline knows, a missing value, a second ROOT.
    Usage(String),
    /// A mistake in the configuration file, at this line (1-based; 0
    /// when it belongs to no line, such as an unpaired --tls-key).
    InFile {
        file: PathBuf,
        line: usize,
        message: String,
    },
}

impl ConfigError {
    pub(super) fn invalid(flag: &str, value: &str, expected: &'static str) -> ConfigError {
        ConfigError::Invalid {
            flag: flag.to_string(),
            value: value.to_string(),
            expected,
        }
    }

    pub(super) fn out_of_range(flag: &str, rule: &'static str) -> ConfigError {
        ConfigError::OutOfRange {
            flag: flag.to_string(),
            rule,
        }
    }

    /// The same mistake, found in `file` at `line` (under `key`).
    pub(super) fn in_file(self, file: &Path, line: usize, key: Option<&str>) -> ConfigError {
        let message = match (key, self) {
            (
                Some(key),
                ConfigError::Invalid {
                    value, expected, ..
                },
            ) => {
                format!("'{key}': invalid value '{value}': expected {expected}")
            }
            (Some(key), ConfigError::OutOfRange { rule, .. }) => format!("'{key}' {rule}"),
            (Some(key), ConfigError::Usage(m)) => format!("'{key}': {m}"),
            (_, e) => e.to_string(),
        };
        ConfigError::InFile {
            file: file.to_path_buf(),
            line,
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid {
                flag,
                value,
                expected,
            } => write!(
                f,
                "invalid value '{value}' for '--{flag}': expected {expected}"
            ),
            ConfigError::OutOfRange { flag, rule } => write!(f, "'--{flag}' {rule}"),
            ConfigError::Usage(message) => f.write_str(message),
            ConfigError::InFile {
                file,
                line: 0,
                message,
            } => write!(f, "{}: {message}", file.display()),
            ConfigError::InFile {
                file,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", file.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<lexopt::Error> for ConfigError {
    fn from(e: lexopt::Error) -> Self {
        ConfigError::Usage(e.to_string())
    }
}
