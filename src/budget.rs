//! The fd budget: how many connections fit under RLIMIT_NOFILE.
//!
//! Every connection holds one fd (its socket), and a connection sending a
//! large file holds a second (the file, for sendfile). The process also
//! holds fds that are not connections: the [`Reserve`]. At start holdline
//! raises the soft limit to the hard limit (or `--max-fds`), subtracts the
//! reserve, and admits connections only while
//!
//! ```text
//! connections + open file bodies + file headroom  <=  budget
//! ```
//!
//! The headroom keeps fds free for file bodies, so a storm of idle sockets
//! cannot leave a real client's download without an fd. When admission
//! would break the inequality the reactor evicts the least valuable
//! connection (see [`crate::evict`]) or stops accepting until a slot frees.

use std::io;

/// Fds the process holds besides connections and file bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve {
    /// stdin, stdout, stderr (the log goes to stderr).
    pub stdio: usize,
    /// The epoll instance.
    pub epoll: usize,
    pub listeners: usize,
    pub signalfd: usize,
    /// The default site's ROOT, held open as a directory fd (the other
    /// sites' ROOTs are charged as file fds: see `Files::fds_charged`).
    pub root_dir: usize,
    /// The short-lived fd of a file opened, read and closed within one
    /// request (small files, directories, index lookups).
    pub transient_open: usize,
    /// One spare, so the fd of a connection just accepted (before an
    /// eviction makes room) never exceeds the limit.
    pub spare: usize,
    /// With `--workers N > 1`: each worker's waker (an eventfd), through
    /// which the signal-handling worker tells the others to shut down.
    pub wakers: usize,
    /// Helper threads' fds: the ACME client's connection to its CA and a
    /// file it stores (2, with an `--acme` site), `--etag hash`'s files
    /// waiting and being hashed (5).
    pub helpers: usize,
}

impl Reserve {
    /// The reserve for `listeners` addresses served by `workers` reactors;
    /// every per-reactor fd (epoll, listener sockets, ROOT, the transient
    /// open, the spare) counts once per worker.
    pub fn new(listeners: usize, workers: usize) -> Reserve {
        let workers = workers.max(1);
        Reserve {
            stdio: 3,
            epoll: workers,
            listeners: listeners * workers,
            signalfd: 1,
            root_dir: workers,
            transient_open: workers,
            spare: workers,
            wakers: if workers > 1 { workers } else { 0 },
            helpers: 0,
        }
    }

    /// The same, with `helpers` fds for helper threads.
    pub fn with_helpers(self, helpers: usize) -> Reserve {
        Reserve { helpers, ..self }
    }

    pub fn total(&self) -> usize {
        self.stdio
            + self.epoll
            + self.listeners
            + self.signalfd
            + self.root_dir
            + self.transient_open
            + self.spare
            + self.wakers
            + self.helpers
    }
}

/// The figures admission works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit_before: u64,
    /// The soft RLIMIT_NOFILE in force.
    pub limit: u64,
    pub hard_limit: u64,
    pub reserve: usize,
    /// Fds for connections and file bodies together: limit - reserve.
    pub fds: usize,
    /// Fds kept for file bodies: admission stops this short of `fds`.
    pub file_headroom: usize,
    /// Connections admitted at most.
    pub max_connections: usize,
}

/// Why the limits asked for cannot be met; `Display` gives one line with
/// the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetError {
    /// `--max-fds` above the hard RLIMIT_NOFILE (only root may raise it).
    MaxFdsAboveHard { requested: u64, hard: u64 },
    /// The limit leaves no fd for a single connection.
    NoRoom {
        limit: u64,
        reserve: usize,
        file_headroom: usize,
    },
    /// `--max-connections` above what the fd budget allows.
    ConnectionsAboveBudget {
        requested: usize,
        allowed: usize,
        limit: u64,
        reserve: usize,
        file_headroom: usize,
    },
}

impl std::fmt::Display for BudgetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            BudgetError::MaxFdsAboveHard { requested, hard } => write!(
                f,
                "--max-fds {requested} is above the hard RLIMIT_NOFILE of {hard}"
            ),
            BudgetError::NoRoom {
                limit,
                reserve,
                file_headroom,
            } => write!(
                f,
                "an fd limit of {limit} leaves no room for connections (reserve {reserve}, file headroom {file_headroom})"
            ),
            BudgetError::ConnectionsAboveBudget {
                requested,
                allowed,
                limit,
                reserve,
                file_headroom,
            } => write!(
                f,
                "--max-connections {requested} is above the {allowed} the fd budget allows \
                 (limit {limit} - reserve {reserve} - file headroom {file_headroom})"
            ),
        }
    }
}

impl std::error::Error for BudgetError {}

impl Budget {
    /// The budget for a soft limit `limit` (already raised).
    ///
    /// `requested_max_fds` is `--max-fds`; `requested_connections` is
    /// `--max-connections`. Both are checked against what the limits allow.
    pub fn compute(
        soft_before: u64,
        hard: u64,
        requested_max_fds: Option<u64>,
        requested_connections: Option<usize>,
        reserve: Reserve,
    ) -> Result<Budget, BudgetError> {
        let limit = match requested_max_fds {
            Some(n) if n > hard => {
                return Err(BudgetError::MaxFdsAboveHard { requested: n, hard });
            }
            Some(n) => n,
            None => hard,
        };
        let reserve_total = reserve.total();
        let fds = (limit as usize).saturating_sub(reserve_total);
        // Keep an eighth for file bodies, at least 2, so a limit of 64
        // still admits connections.
        let file_headroom = (fds / 8).max(2);
        let allowed = fds.saturating_sub(file_headroom);
        if allowed < 1 {
            return Err(BudgetError::NoRoom {
                limit,
                reserve: reserve_total,
                file_headroom,
            });
        }
        let max_connections = match requested_connections {
            Some(n) if n > allowed => {
                return Err(BudgetError::ConnectionsAboveBudget {
                    requested: n,
                    allowed,
                    limit,
                    reserve: reserve_total,
                    file_headroom,
                });
            }
            Some(n) => n,
            None => allowed,
        };
        Ok(Budget {
            limit_before: soft_before,
            limit,
            hard_limit: hard,
            reserve: reserve_total,
            fds,
            file_headroom,
            max_connections,
        })
    }

    /// One worker's share of the budget, when `workers` reactors split it.
    pub fn share(&self, workers: usize) -> Budget {
        let workers = workers.max(1);
        Budget {
            fds: self.fds / workers,
            file_headroom: (self.file_headroom / workers).max(1),
            max_connections: (self.max_connections / workers).max(1),
            ..*self
        }
    }

    /// May one more connection be admitted?
    pub fn admits(&self, connections: usize, open_files: usize) -> bool {
        connections < self.max_connections
            && connections + open_files + self.file_headroom < self.fds
    }

    /// May a connection open one more file body?
    pub fn has_file_room(&self, connections: usize, open_files: usize) -> bool {
        connections + open_files < self.fds
    }
}

/// Reads RLIMIT_NOFILE: (soft, hard).
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((rl.rlim_cur, rl.rlim_max))
}

/// Sets the soft RLIMIT_NOFILE, keeping the hard one.
pub fn set_soft_nofile(soft: u64, hard: u64) -> io::Result<()> {
    let rl = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `rl` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_counts_every_fd() {
        assert_eq!(Reserve::new(2, 1).total(), 3 + 1 + 2 + 1 + 1 + 1 + 1);
        // Two workers: epoll, 2 listeners, ROOT, transient, spare and a
        // waker each; stdio and the signalfd once.
        assert_eq!(
            Reserve::new(2, 2).total(),
            3 + 1 + 2 * (1 + 2 + 1 + 1 + 1 + 1)
        );
        let b = Budget::compute(1024, 20_000, None, None, Reserve::new(1, 2)).unwrap();
        let half = b.share(2);
        assert_eq!(half.fds, b.fds / 2);
        assert_eq!(half.max_connections, b.max_connections / 2);
    }

    #[test]
    fn budget_from_hard_limit() {
        let b = Budget::compute(1024, 20_000, None, None, Reserve::new(1, 1)).unwrap();
        assert_eq!(b.limit, 20_000);
        assert_eq!(b.fds, 20_000 - 9);
        assert_eq!(b.file_headroom, (20_000 - 9) / 8);
        assert_eq!(b.max_connections, b.fds - b.file_headroom);
        assert!(b.admits(b.max_connections - 1, 0));
        assert!(!b.admits(b.max_connections, 0));
        // Open file bodies eat into the headroom first, then admission.
        assert!(!b.admits(b.max_connections - 1, b.file_headroom + 1));
        assert!(b.has_file_room(b.max_connections, b.file_headroom - 1));
        assert!(!b.has_file_room(b.max_connections, b.file_headroom));
    }

    #[test]
    fn admission_at_its_edges() {
        // 64 fds: 55 after the reserve, headroom 6, 49 connections.
        let b = Budget::compute(1024, 20_000, Some(64), None, Reserve::new(1, 1)).unwrap();
        assert_eq!((b.fds, b.file_headroom, b.max_connections), (55, 6, 49));
        assert!(b.admits(26, 0));
        assert!(b.admits(48, 0));
        // connections + file fds + headroom must stay under the budget.
        assert!(!b.admits(48, 1), "48 + 1 + 6 = 55");
        assert!(b.admits(47, 1));
        // A smaller --max-connections binds on its own.
        let ten = Budget::compute(1024, 20_000, Some(64), Some(10), Reserve::new(1, 1)).unwrap();
        assert!(ten.admits(9, 0));
        assert!(!ten.admits(10, 0));
    }

    #[test]
    fn share_splits_every_figure() {
        let b = Budget::compute(1024, 20_000, None, None, Reserve::new(1, 4)).unwrap();
        let quarter = b.share(4);
        assert_eq!(quarter.fds, b.fds / 4);
        assert_eq!(quarter.file_headroom, b.file_headroom / 4);
        assert_eq!(quarter.max_connections, b.max_connections / 4);
        assert_eq!(quarter.limit, b.limit);
    }

    #[test]
    fn nofile_limit_reads_and_sets_this_process() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft > 3 && hard >= soft, "{soft} {hard}");
        // Lower the soft limit by one and back: what is set is read back.
        set_soft_nofile(soft - 1, hard).unwrap();
        assert_eq!(nofile_limit().unwrap(), (soft - 1, hard));
        set_soft_nofile(soft, hard).unwrap();
        assert_eq!(nofile_limit().unwrap(), (soft, hard));
        assert!(
            set_soft_nofile(hard + 1, hard).is_err(),
            "above the hard limit"
        );
    }

    #[test]
    fn limits_at_their_edges() {
        let reserve = Reserve::new(1, 1); // 9 fds
        // --max-fds equal to the hard limit is allowed.
        assert_eq!(
            Budget::compute(1024, 64, Some(64), None, reserve)
                .unwrap()
                .limit,
            64
        );
        // 12 fds: 3 after the reserve, 2 of them headroom: one connection.
        let one = Budget::compute(1024, 20_000, Some(12), None, reserve).unwrap();
        assert_eq!(one.max_connections, 1);
        assert!(Budget::compute(1024, 20_000, Some(11), None, reserve).is_err());
        // --max-connections below what the budget allows is taken as is.
        let ten = Budget::compute(1024, 20_000, Some(64), Some(10), reserve).unwrap();
        assert_eq!(ten.max_connections, 10);
        let all = Budget::compute(1024, 20_000, Some(64), Some(49), reserve).unwrap();
        assert_eq!(all.max_connections, 49);
    }

    #[test]
    fn max_fds_and_max_connections_are_checked() {
        let b = Budget::compute(1024, 20_000, Some(64), None, Reserve::new(1, 1)).unwrap();
        assert_eq!(b.limit, 64);
        assert_eq!(b.fds, 55);
        assert_eq!(b.max_connections, 55 - 6);
        let err =
            Budget::compute(1024, 20_000, Some(30_000), None, Reserve::new(1, 1)).unwrap_err();
        assert!(
            err.to_string().contains("30000") && err.to_string().contains("20000"),
            "{err}",
        );
        let err = Budget::compute(1024, 64, None, Some(100), Reserve::new(1, 1)).unwrap_err();
        assert!(
            err.to_string().contains("100") && err.to_string().contains("49"),
            "{err}"
        );
        assert!(Budget::compute(1024, 10, None, None, Reserve::new(1, 1)).is_err());
    }
}
