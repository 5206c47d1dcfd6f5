//! What an option's value must be: the parsers the option table's
//! setters share (numbers, seconds, paths on the site, header lines), and
//! the printers its `show` functions share.

use std::time::Duration;

use super::error::ConfigError;

pub(super) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        format!("{s}")
    }
}

pub(super) fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.into()
}

pub(super) fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items.iter().map(show).collect::<Vec<_>>().join(" ")
}

/// A path on the site (`--fallback`, `--error-page`): absolute, without a
/// query or control characters.
pub(super) fn site_path(flag: &str, path: &str) -> Result<String, ConfigError> {
    if !path.starts_with('/') || path.contains(['?', '#']) || path.chars().any(|c| c.is_control()) {
        return Err(ConfigError::invalid(
            flag,
            path,
            "a path on the site such as /index.html",
        ));
    }
    Ok(path.to_string())
}

/// Headers an operator may not add: they frame the message or belong to
/// the connection (RFC 9110 §7.6.1), or holdline sends them itself once.
const RESERVED_HEADERS: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "date",
    "server",
];

/// Checks `--header 'Name: value'` and returns it as it will be sent
/// ("Name: value", the value trimmed).
pub(super) fn header_line(arg: &str) -> Result<String, ConfigError> {
    let expected = "'Name: value' with a token name and a value without control characters";
    let invalid = || ConfigError::invalid("header", arg, expected);
    let (name, value) = arg.split_once(':').ok_or_else(invalid)?;
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        return Err(invalid());
    }
    let value = value.trim_matches([' ', '\t']);
    if value.chars().any(|c| c.is_ascii_control() && c != '\t') || !value.is_ascii() {
        return Err(invalid());
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ConfigError::out_of_range(
            "header",
            "must not set Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE, Trailer, Date or Server",
        ));
    }
    Ok(format!("{name}: {value}"))
}

pub(super) fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::invalid(name, value, "a whole number"))
}

/// The most bytes an option may make one buffer (`--max-header-bytes`,
/// every connection's input) or one file read whole into memory
/// (`--small-file-bytes`, `--compress-max-bytes`): more is not a server
/// configuration but a way to make an allocation fail, which aborts.
pub(super) const MAX_BUFFER_BYTES: u64 = 1 << 30;

/// A byte count of at most [`MAX_BUFFER_BYTES`].
pub(super) fn buffer_bytes<T: TryFrom<u64>>(name: &str, value: &str) -> Result<T, ConfigError> {
    let too_large = || ConfigError::out_of_range(name, "must be at most 1073741824 (1 GiB)");
    let n: u64 = number(name, value)?;
    if n > MAX_BUFFER_BYTES {
        return Err(too_large());
    }
    T::try_from(n).map_err(|_| too_large())
}

/// Seconds, fractions allowed (tests use short timeouts), 0 allowed.
pub(super) fn duration(name: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| *d <= Duration::from_secs(365 * 24 * 3600))
        .ok_or_else(|| ConfigError::invalid(name, value, "seconds, such as 5 or 0.5"))
}

pub(super) fn positive(name: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration(name, value)?;
    if d.is_zero() {
        return Err(ConfigError::out_of_range(name, "must be more than 0"));
    }
    Ok(d)
}

/// A site's host name (`--host`): a DNS name, `*.` and a name (every name
/// beneath it), or an address literal (`127.0.0.1`, `[::1]`); no port.
/// Returned in lower case, without a trailing dot: how requests' names
/// are compared with it.
pub(super) fn host_name(value: &str) -> Result<String, ConfigError> {
    let expected = "a host name such as example.com or *.example.com, or an address such as [::1], without a port";
    let invalid = || ConfigError::invalid("host", value, expected);
    let name = value
        .strip_suffix('.')
        .unwrap_or(value)
        .to_ascii_lowercase();
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return match v6.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(name),
            Err(_) => Err(invalid()),
        };
    }
    let labels = name.strip_prefix("*.").unwrap_or(&name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !labels.split('.').all(label_ok) {
        return Err(invalid());
    }
    Ok(name)
}
