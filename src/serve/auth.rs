//! HTTP Basic authentication (RFC 7617) for `auth` rules, without
//! stalling the reactor.
//!
//! bcrypt is slow on purpose (a cost-10 hash takes tens of milliseconds):
//! verified on the reactor, every guess would stall every connection of
//! the worker. So each worker has a verifier thread: a request whose
//! credentials are not known yet is *deferred* (its head stays in the
//! connection's input, unanswered, see [`crate::http::session::Reply`]),
//! the credentials go to the verifier, and when it is done the reactor
//! drives the waiting connections again; their requests are answered
//! then, as if they had just arrived. What was verified is remembered
//! by the SHA-256 of realm, user, password and the stored hash (never the
//! password itself), for at most [`KNOWN`] credentials per worker: a
//! browser's next requests pass at once, and so does a guess tried
//! before (as a 401).
//!
//! What a client guessing passwords costs: one bcrypt per new guess, on
//! the verifier thread (one core at most per worker, however many
//! guessers), at most [`QUEUE`] guesses waiting; past that a guess is
//! answered 503 with `Retry-After` and costs nothing. A user who does not
//! exist is verified against a dummy hash of the same cost, so the answer
//! takes as long and tells nothing. `--client-rate` caps one client's
//! guesses further.

use std::collections::HashMap;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;

use crate::config::rules::Users;
use crate::wake::{Alarm, Wake};

/// Verifications waiting for the verifier, per worker, at most.
pub const QUEUE: usize = 64;

/// Credentials remembered per worker (verified good or bad).
pub const KNOWN: usize = 1024;

/// The heap one worker's authenticator holds at most once it verifies
/// (for the memory bound): the known credentials' table (hashbrown's 7/8
/// load in a power of two, a control byte a slot), the waiting list, the
/// decoded credentials (at most a request head).
pub fn heap_bytes(max_header_bytes: usize) -> usize {
    let slots = ((KNOWN + QUEUE) * 8).div_ceil(7).next_power_of_two();
    slots * (std::mem::size_of::<(Key, Known)>() + 1)
        + QUEUE * std::mem::size_of::<usize>()
        + max_header_bytes
}

/// A credential's key in the cache: SHA-256 of realm, user, password and
/// stored hash.
type Key = [u8; 32];

/// What is known of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Pending,
    Valid,
    Invalid,
}

/// What a request's credentials get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: serve the request.
    Pass,
    /// Missing, malformed or wrong: 401 with `WWW-Authenticate`.
    Challenge,
    /// Being verified: answer the request once they are.
    Defer,
    /// The verifier has [`QUEUE`] waiting: 503, try again.
    Busy,
}

/// One worker's side of authentication: what is known, who waits, and
/// the verifier thread (started at the first credentials to verify).
pub struct Authenticator {
    known: HashMap<Key, Known>,
    /// Connections (slab keys) whose request waits for a verification.
    waiting: Vec<usize>,
    verifier: Option<Verifier>,
    /// Wakes this worker's reactor when a verification is done.
    alarm: Option<Arc<Alarm>>,
    /// The decoded credentials of the request being checked.
    decoded: Vec<u8>,
}

struct Verifier {
    jobs: SyncSender<Job>,
    done: Arc<Mutex<Vec<(Key, bool)>>>,
}

struct Job {
    key: Key,
    /// The stored hash; `None` for a user the file does not name.
    hash: Option<String>,
    password: Vec<u8>,
}

impl Authenticator {
    /// `alarm` wakes the reactor when verifications are done; `None`
    /// (a responder without a reactor) verifies nothing: every request
    /// that needs it is challenged.
    pub fn new(alarm: Option<Arc<Alarm>>) -> Authenticator {
        Authenticator {
            // Reserved when the verifier starts: a server without auth
            // rules holds none of it.
            known: HashMap::new(),
            waiting: Vec::new(),
            verifier: None,
            alarm,
            decoded: Vec::with_capacity(256),
        }
    }

    /// The verdict on `authorization` (the header as sent) for `users`,
    /// for a request on connection `conn` (re-driven when a deferred
    /// verification is done).
    pub fn check(&mut self, users: &Users, authorization: Option<&[u8]>, conn: usize) -> Verdict {
        let job = {
            let Some((user, password)) = basic_credentials(authorization, &mut self.decoded) else {
                return Verdict::Challenge;
            };
            let hash = users.hash_of(user);
            let key = credential_key(&users.realm, user, password, hash);
            match self.known.get(&key) {
                Some(Known::Valid) => return Verdict::Pass,
                Some(Known::Invalid) => return Verdict::Challenge,
                Some(Known::Pending) => {
                    wait(&mut self.waiting, conn);
                    return Verdict::Defer;
                }
                None => {}
            }
            // Allocated only for a verification (a slow path anyway).
            Job {
                key,
                hash: hash.map(str::to_string),
                password: password.as_bytes().to_vec(),
            }
        };
        let key = job.key;
        let Some(verifier) = self.verifier() else {
            return Verdict::Challenge;
        };
        match verifier.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Verdict::Busy,
            Err(TrySendError::Disconnected(_)) => {
                self.verifier = None;
                return Verdict::Busy;
            }
        }
        self.make_room();
        self.known.insert(key, Known::Pending);
        wait(&mut self.waiting, conn);
        Verdict::Defer
    }

    /// The verifier is done with some: their results are known now, and
    /// the connections that waited go into `redrive` (to be driven again).
    pub fn take_verified(&mut self, redrive: &mut Vec<usize>) {
        let Some(verifier) = &self.verifier else {
            return;
        };
        let done = match verifier.done.lock() {
            Ok(mut done) => std::mem::take(&mut *done),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for (key, valid) in done {
            let known = if valid { Known::Valid } else { Known::Invalid };
            self.known.insert(key, known);
        }
        redrive.append(&mut self.waiting);
    }

    /// Keeps the cache within [`KNOWN`] settled entries: gives up a bad
    /// credential first (a retry costs a verification again), else any.
    fn make_room(&mut self) {
        let settled = self
            .known
            .values()
            .filter(|k| **k != Known::Pending)
            .count();
        if settled < KNOWN {
            return;
        }
        let victim = self
            .known
            .iter()
            .find(|(_, k)| **k == Known::Invalid)
            .or_else(|| self.known.iter().find(|(_, k)| **k == Known::Valid))
            .map(|(key, _)| *key);
        if let Some(key) = victim {
            self.known.remove(&key);
        }
    }

    fn verifier(&mut self) -> Option<&Verifier> {
        if self.verifier.is_none() {
            let alarm = Arc::clone(self.alarm.as_ref()?);
            self.known.reserve(KNOWN + QUEUE);
            self.waiting.reserve(QUEUE);
            self.verifier = Verifier::start(alarm)
                .inspect_err(|e| {
                    log::error!("no password verifier thread ({e}): auth rules answer 503")
                })
                .ok();
        }
        self.verifier.as_ref()
    }
}

impl Verifier {
    fn start(alarm: Arc<Alarm>) -> std::io::Result<Verifier> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let done = Arc::new(Mutex::new(Vec::new()));
        let results = Arc::clone(&done);
        std::thread::Builder::new()
            .name("holdline-verify".into())
            .spawn(move || {
                // What an unknown user's password is checked against, so
                // that its answer takes as long as a known user's.
                let dummy = bcrypt::hash_with_salt("-", 10, [7; 16])
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                for job in queue {
                    let hash = job.hash.as_deref().unwrap_or(&dummy);
                    let valid =
                        bcrypt::verify(&job.password, hash).unwrap_or(false) && job.hash.is_some();
                    match results.lock() {
                        Ok(mut done) => done.push((job.key, valid)),
                        Err(poisoned) => poisoned.into_inner().push((job.key, valid)),
                    }
                    alarm.wake(Wake::Verified);
                }
            })?;
        Ok(Verifier { jobs, done })
    }
}

/// The user and password of an `Authorization: Basic` header (RFC 7617
/// §2: base64 of `user:password`, UTF-8), decoded into `decoded`; `None`
/// for anything else (another scheme, bad base64, no colon, not UTF-8, a
/// control character).
pub fn basic_credentials<'d>(
    authorization: Option<&[u8]>,
    decoded: &'d mut Vec<u8>,
) -> Option<(&'d str, &'d str)> {
    let value = authorization?;
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let encoded = rest.trim_ascii();
    decoded.clear();
    base64_decode(encoded, decoded)?;
    let text = std::str::from_utf8(decoded).ok()?;
    if text.chars().any(char::is_control) {
        return None;
    }
    text.split_once(':')
}

/// Standard base64 (RFC 4648 §4), padding required where due; `None` for
/// anything else.
fn base64_decode(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if !input.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let quads = input.len() / 4;
    for (i, quad) in input.chunks_exact(4).enumerate() {
        let pad = match (quad[2], quad[3]) {
            (b'=', b'=') => 2,
            (_, b'=') => 1,
            _ => 0,
        };
        if pad > 0 && i + 1 != quads {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(())
}

/// Notes that connection `conn` waits for a verification (once).
fn wait(waiting: &mut Vec<usize>, conn: usize) {
    if !waiting.contains(&conn) {
        waiting.push(conn);
    }
}

fn credential_key(realm: &str, user: &str, password: &str, hash: Option<&str>) -> Key {
    let mut context = digest::Context::new(&digest::SHA256);
    for part in [realm, user, password, hash.unwrap_or("")] {
        context.update(part.as_bytes());
        context.update(&[0]);
    }
    let mut key = [0; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

/// A bcrypt hash of `password` with a random salt, at `cost` (`holdline
/// hash-password`).
pub fn hash_password(password: &str, cost: u32) -> Result<String, String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| "no random bytes for a salt".to_string())?;
    bcrypt::hash_with_salt(password, cost, salt)
        .map(|h| h.format_for_version(bcrypt::Version::TwoY))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(header: &[u8]) -> Option<(String, String)> {
        let mut buf = Vec::new();
        basic_credentials(Some(header), &mut buf).map(|(u, p)| (u.to_string(), p.to_string()))
    }

    #[test]
    fn basic_credentials_are_decoded_or_refused() {
        // RFC 7617 §2's example: Aladdin / open sesame.
        assert_eq!(
            creds(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Some(("Aladdin".into(), "open sesame".into()))
        );
        assert_eq!(creds(b"basic  YTpi "), Some(("a".into(), "b".into())));
        // A password may contain colons; UTF-8 is UTF-8.
        assert_eq!(creds(b"Basic YTpiOmM="), Some(("a".into(), "b:c".into())));
        assert_eq!(
            creds("Basic dGVzdDoxMjPCow==".as_bytes()),
            Some(("test".into(), "123£".into()))
        );
        for bad in [
            &b"Bearer abc"[..],
            b"Basic",
            b"Basic ",
            b"Basic YWJj",     // no colon
            b"Basic YTpi=",    // bad length
            b"Basic YT=pi",    // padding inside
            b"Basic YQ==YTpi", // padding before the end
            b"Basic YTpi!!!!", // not base64
            b"Basic /w==",     // not UTF-8
            b"Basic YToNCg==", // a control character
        ] {
            assert_eq!(creds(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn keys_differ_by_every_part() {
        let k = credential_key("r", "u", "p", Some("h"));
        assert_ne!(k, credential_key("r", "u", "p", Some("h2")));
        assert_ne!(k, credential_key("r", "u", "q", Some("h")));
        assert_ne!(k, credential_key("r", "v", "p", Some("h")));
        assert_ne!(k, credential_key("s", "u", "p", Some("h")));
        // The separators keep "ab"+"c" from being "a"+"bc".
        assert_ne!(
            credential_key("r", "ab", "c", None),
            credential_key("r", "a", "bc", None)
        );
    }

    #[test]
    fn hashes_verify_and_look_like_htpasswd_ones() {
        let hash = hash_password("s3cret", 4).unwrap();
        assert!(hash.starts_with("$2y$04$") && hash.len() == 60, "{hash}");
        assert!(bcrypt::verify("s3cret", &hash).unwrap());
        assert!(!bcrypt::verify("s3cret!", &hash).unwrap());
        assert_ne!(
            hash,
            hash_password("s3cret", 4).unwrap(),
            "a fresh salt each"
        );
    }

    #[test]
    fn without_a_reactor_every_request_is_challenged() {
        let users = Users {
            realm: "r".into(),
            file: "/users".into(),
            users: vec![("a".into(), hash_password("b", 4).unwrap())],
        };
        let mut auth = Authenticator::new(None);
        assert_eq!(
            auth.check(&users, Some(b"Basic YTpi"), 1),
            Verdict::Challenge
        );
        assert_eq!(auth.check(&users, None, 1), Verdict::Challenge);
    }
}
