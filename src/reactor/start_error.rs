//! Why the server could not start, as one line for the operator.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::budget::BudgetError;

/// Why the server could not start; `Display` gives it as one line.
#[derive(Debug)]
pub enum StartError {
    /// The fd limits asked for cannot be met.
    Budget(BudgetError),
    /// RLIMIT_NOFILE could not be read, or set to this.
    Rlimit {
        set_to: Option<u64>,
        source: io::Error,
    },
    /// ROOT is not a readable directory.
    Root { path: PathBuf, source: io::Error },
    /// An address could not be bound and listened on.
    Listen { addr: SocketAddr, source: io::Error },
    /// The reactor's own machinery: epoll, a registration, a waker.
    Reactor { what: String, source: io::Error },
    /// A unix socket could not be bound and listened on.
    ListenUnix { path: PathBuf, source: io::Error },
    /// A TLS certificate or key could not be loaded.
    Tls(crate::tls::CertError),
    /// `--user` could not be applied.
    User(crate::privileges::DropError),
    /// The `--access-log` file could not be opened.
    AccessLog { path: PathBuf, source: io::Error },
}

impl StartError {
    pub(super) fn reactor(what: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
        let what = what.into();
        move |source| StartError::Reactor { what, source }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Budget(e) => write!(f, "{e}"),
            StartError::Rlimit {
                set_to: None,
                source,
            } => write!(f, "cannot read RLIMIT_NOFILE: {source}"),
            StartError::Rlimit {
                set_to: Some(n),
                source,
            } => write!(f, "cannot set RLIMIT_NOFILE to {n}: {source}"),
            StartError::Root { path, source } => {
                write!(f, "cannot serve {}: {source}", path.display())
            }
            StartError::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Reactor { what, source } => write!(f, "cannot {what}: {source}"),
            StartError::ListenUnix { path, source } => {
                write!(f, "cannot listen on unix:{}: {source}", path.display())
            }
            StartError::Tls(e) => write!(f, "cannot load TLS certificates: {e}"),
            StartError::User(e) => write!(f, "{e}"),
            StartError::AccessLog { path, source } => {
                write!(f, "cannot open the access log {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Budget(e) => Some(e),
            StartError::Tls(e) => Some(e),
            StartError::User(e) => Some(e),
            StartError::Rlimit { source, .. }
            | StartError::Root { source, .. }
            | StartError::Listen { source, .. }
            | StartError::ListenUnix { source, .. }
            | StartError::AccessLog { source, .. }
            | StartError::Reactor { source, .. } => Some(source),
        }
    }
}
