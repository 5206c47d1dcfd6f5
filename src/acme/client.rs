//! The ACME protocol (RFC 8555) over blocking HTTPS, on the manager's
//! thread: the directory, nonces (a `badNonce` is retried with the nonce
//! it came with), the account (created or found again from its key),
//! an order for a site's names, its authorizations with one challenge
//! each (HTTP-01 or TLS-ALPN-01, published through [`super::challenges`]
//! while the CA validates), the CSR, and the chain.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::jws::{AccountKey, base64url, sha256};
use super::{ChallengeKind, challenges};

/// The largest answer read from the CA.
pub const MAX_ANSWER: usize = 256 * 1024;

/// The largest certificate chain taken (real ones are a few KiB).
pub const MAX_CHAIN: usize = 64 * 1024;

/// How long one order may take, validations and issuance included.
const ORDER_DEADLINE: Duration = Duration::from_secs(120);

/// What went wrong with an attempt.
#[derive(Debug)]
pub enum AcmeError {
    /// The CA could not be reached, or said something that is not ACME.
    Transport(String),
    /// The CA answered with a problem document (RFC 7807).
    Problem {
        status: u16,
        kind: String,
        detail: String,
        /// Its `Retry-After` (a rate limit, a busy CA).
        retry_after: Option<Duration>,
    },
    /// A challenge or the order failed, or took too long.
    Failed(String),
}

impl AcmeError {
    /// The CA asked us to wait this long before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AcmeError::Problem { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcmeError::Transport(e) => write!(f, "{e}"),
            AcmeError::Problem {
                status,
                kind,
                detail,
                retry_after,
            } => {
                let kind = kind
                    .strip_prefix("urn:ietf:params:acme:error:")
                    .unwrap_or(kind);
                write!(f, "the CA said {status} {kind}: {detail}")?;
                match retry_after {
                    Some(wait) => write!(f, " (retry after {}s)", wait.as_secs()),
                    None => Ok(()),
                }
            }
            AcmeError::Failed(e) => write!(f, "{e}"),
        }
    }
}

type Result<T> = std::result::Result<T, AcmeError>;

/// An answer of the CA.
struct Answer {
    location: Option<String>,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| AcmeError::Transport(format!("the CA's answer is not JSON: {e}")))
    }
}

/// The directory's URLs.
#[derive(Debug, Clone)]
struct Directory {
    new_nonce: String,
    new_account: String,
    new_order: String,
}

/// A client of one CA, with one account.
pub struct Client {
    agent: ureq::Agent,
    directory_url: String,
    directory: Option<Directory>,
    key: AccountKey,
    contact: Option<String>,
    kid: Option<String>,
    nonce: Option<String>,
}

/// A certificate obtained: the chain (PEM, leaf first) and its key (PEM).
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

impl Client {
    /// A client of the CA at `directory_url`, trusting `roots` (DER) for
    /// its HTTPS.
    pub fn new(
        directory_url: &str,
        roots: Vec<Vec<u8>>,
        key: AccountKey,
        contact: Option<String>,
    ) -> Client {
        use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
        let roots = roots
            .iter()
            .map(|der| Certificate::from_der(der).to_owned())
            .collect();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .unversioned_rustls_crypto_provider(provider)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            // One connection to the CA, kept between the requests of an
            // order only: the fd budget reserves one socket for it.
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .max_idle_age(Duration::from_secs(15))
            .user_agent(concat!("holdline/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            agent,
            directory_url: directory_url.to_string(),
            directory: None,
            key,
            contact,
            kid: None,
            nonce: None,
        }
    }

    fn directory(&mut self) -> Result<Directory> {
        if let Some(directory) = &self.directory {
            return Ok(directory.clone());
        }
        let url = self.directory_url.clone();
        let answer = self.get(&url)?;
        let json = answer.json()?;
        let field = |name: &str| {
            json[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| AcmeError::Transport(format!("the directory has no {name}")))
        };
        let directory = Directory {
            new_nonce: field("newNonce")?,
            new_account: field("newAccount")?,
            new_order: field("newOrder")?,
        };
        self.directory = Some(directory.clone());
        Ok(directory)
    }

    fn get(&mut self, url: &str) -> Result<Answer> {
        let response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| AcmeError::Transport(format!("GET {url}: {e}")))?;
        self.answer(url, response)
    }

    fn answer(
        &mut self,
        url: &str,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<Answer> {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if let Some(nonce) = header("Replay-Nonce") {
            self.nonce = Some(nonce);
        }
        let location = header("Location");
        let retry_after = header("Retry-After").and_then(|v| parse_retry_after(&v));
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER as u64)
            .read_to_vec()
            .map_err(|e| AcmeError::Transport(format!("{url}: {e}")))?;
        let answer = Answer {
            location,
            retry_after,
            body,
        };
        if status >= 400 {
            let problem = answer.json().unwrap_or(Value::Null);
            return Err(AcmeError::Problem {
                status,
                kind: problem["type"].as_str().unwrap_or("").to_string(),
                detail: problem["detail"].as_str().unwrap_or("").to_string(),
                retry_after: answer.retry_after,
            });
        }
        Ok(answer)
    }

    fn fresh_nonce(&mut self) -> Result<String> {
        if let Some(nonce) = self.nonce.take() {
            return Ok(nonce);
        }
        let url = self.directory()?.new_nonce;
        let response = self
            .agent
            .head(&url)
            .call()
            .map_err(|e| AcmeError::Transport(format!("HEAD {url}: {e}")))?;
        self.answer(&url, response)?;
        self.nonce
            .take()
            .ok_or_else(|| AcmeError::Transport("no Replay-Nonce from newNonce".into()))
    }

    /// A signed POST (`payload` JSON, or "" for POST-as-GET), retried with
    /// a new nonce when the CA says `badNonce` (RFC 8555 §6.5).
    fn post(&mut self, url: &str, payload: &str) -> Result<Answer> {
        let mut tries = 0;
        loop {
            tries += 1;
            let nonce = self.fresh_nonce()?;
            let body = self
                .key
                .sign(url, &nonce, self.kid.as_deref(), payload)
                .map_err(AcmeError::Failed)?;
            let response = self
                .agent
                .post(url)
                .header("Content-Type", "application/jose+json")
                .send(body.as_bytes())
                .map_err(|e| AcmeError::Transport(format!("POST {url}: {e}")))?;
            match self.answer(url, response) {
                Err(AcmeError::Problem { kind, .. })
                    if kind == "urn:ietf:params:acme:error:badNonce" && tries < 5 =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    /// The account of our key: created (terms agreed) or found again.
    fn account(&mut self) -> Result<()> {
        if self.kid.is_some() {
            return Ok(());
        }
        let url = self.directory()?.new_account;
        let mut payload = json!({ "termsOfServiceAgreed": true });
        if let Some(contact) = &self.contact {
            payload["contact"] = json!([format!("mailto:{contact}")]);
        }
        let answer = self.post(&url, &payload.to_string())?;
        let kid = answer
            .location
            .ok_or_else(|| AcmeError::Transport("newAccount gave no Location".into()))?;
        log::info!("acme: account {kid}");
        self.kid = Some(kid);
        Ok(())
    }

    /// An order for `names`, validated by `kind`, finalized with a new
    /// key: the chain and its key.
    pub fn obtain(&mut self, names: &[String], kind: ChallengeKind) -> Result<Issued> {
        self.account()?;
        let deadline = Instant::now() + ORDER_DEADLINE;
        let url = self.directory()?.new_order;
        let identifiers: Vec<Value> = names
            .iter()
            .map(|n| json!({ "type": "dns", "value": n }))
            .collect();
        let payload = json!({ "identifiers": identifiers }).to_string();
        let answer = self.post(&url, &payload)?;
        let order_url = answer
            .location
            .clone()
            .ok_or_else(|| AcmeError::Transport("newOrder gave no Location".into()))?;
        let order = answer.json()?;
        let authorizations: Vec<String> = order["authorizations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let finalize = order["finalize"]
            .as_str()
            .ok_or_else(|| AcmeError::Transport("the order has no finalize URL".into()))?
            .to_string();
        let mut published = Published::default();
        for authz in &authorizations {
            self.authorize(authz, kind, &mut published, deadline)?;
        }
        drop(published);
        // Ready: finalize with a CSR for a new key.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| AcmeError::Failed(format!("cannot make a key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(|e| AcmeError::Failed(format!("bad name: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| AcmeError::Failed(format!("cannot make a CSR: {e}")))?;
        let order = self.wait_order(&order_url, "ready", deadline)?;
        if order["status"] == "ready" {
            let payload = json!({ "csr": base64url(csr.der()) }).to_string();
            self.post(&finalize, &payload)?;
        }
        let order = self.wait_order(&order_url, "valid", deadline)?;
        let cert_url = order["certificate"]
            .as_str()
            .ok_or_else(|| AcmeError::Transport("a valid order without certificate".into()))?
            .to_string();
        let answer = self.post(&cert_url, "")?;
        if answer.body.len() > MAX_CHAIN {
            return Err(AcmeError::Transport(format!(
                "a chain of {} bytes (at most {MAX_CHAIN} taken)",
                answer.body.len()
            )));
        }
        let chain_pem = String::from_utf8(answer.body)
            .map_err(|_| AcmeError::Transport("the chain is not PEM".into()))?;
        if !chain_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(AcmeError::Transport("the chain is not PEM".into()));
        }
        Ok(Issued {
            chain_pem,
            key_pem: key.serialize_pem(),
        })
    }

    /// Satisfies one authorization: publishes its challenge's answer,
    /// tells the CA, and waits for the verdict.
    fn authorize(
        &mut self,
        url: &str,
        kind: ChallengeKind,
        published: &mut Published,
        deadline: Instant,
    ) -> Result<()> {
        let authz = self.post(url, "")?.json()?;
        if authz["status"] == "valid" {
            return Ok(());
        }
        let name = authz["identifier"]["value"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let challenge = authz["challenges"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["type"] == kind.as_str()))
            .ok_or_else(|| {
                AcmeError::Failed(format!(
                    "{name}: the CA offers no {} challenge",
                    kind.as_str()
                ))
            })?;
        let token = challenge["token"].as_str().unwrap_or("");
        let challenge_url = challenge["url"].as_str().unwrap_or("").to_string();
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AcmeError::Transport(format!(
                "{name}: a bad challenge token"
            )));
        }
        let key_authorization = self.key.key_authorization(token);
        match kind {
            ChallengeKind::Http01 => {
                challenges().publish_http(token, &key_authorization);
                published.tokens.push(token.to_string());
            }
            ChallengeKind::TlsAlpn01 => {
                let cert = alpn_certificate(&name, &key_authorization)?;
                challenges().publish_alpn(&name, cert);
                published.names.push(name.clone());
            }
        }
        self.post(&challenge_url, "{}")?;
        loop {
            let (authz, wait) = {
                let answer = self.post(url, "")?;
                (answer.json()?, answer.retry_after)
            };
            match authz["status"].as_str() {
                Some("valid") => return Ok(()),
                Some("pending" | "processing") if Instant::now() < deadline => {
                    std::thread::sleep(poll_delay(wait));
                }
                Some("pending" | "processing") => {
                    return Err(AcmeError::Failed(format!(
                        "{name}: validation took too long"
                    )));
                }
                status => {
                    let error = authz["challenges"]
                        .as_array()
                        .and_then(|all| all.iter().find_map(|c| c["error"]["detail"].as_str()))
                        .unwrap_or("");
                    return Err(AcmeError::Failed(format!(
                        "{name}: {} challenge {}: {error}",
                        kind.as_str(),
                        status.unwrap_or("?")
                    )));
                }
            }
        }
    }

    /// Polls the order until it is `want` (or past it), failing on
    /// `invalid` or the deadline.
    fn wait_order(&mut self, url: &str, want: &str, deadline: Instant) -> Result<Value> {
        loop {
            let answer = self.post(url, "")?;
            let (order, wait) = (answer.json()?, answer.retry_after);
            let status = order["status"].as_str().unwrap_or("");
            let done = match want {
                "ready" => matches!(status, "ready" | "processing" | "valid"),
                _ => status == "valid",
            };
            if done {
                return Ok(order);
            }
            if status == "invalid" {
                let detail = order["error"]["detail"].as_str().unwrap_or("");
                return Err(AcmeError::Failed(format!("the order is invalid: {detail}")));
            }
            if Instant::now() >= deadline {
                return Err(AcmeError::Failed(format!("the order stayed {status}")));
            }
            std::thread::sleep(poll_delay(wait));
        }
    }
}

/// Challenge answers published for one order, withdrawn when it is done
/// (whatever the outcome).
#[derive(Default)]
struct Published {
    tokens: Vec<String>,
    names: Vec<String>,
}

impl Drop for Published {
    fn drop(&mut self) {
        for token in &self.tokens {
            challenges().withdraw_http(token);
        }
        for name in &self.names {
            challenges().withdraw_alpn(name);
        }
    }
}

/// How long to wait before polling again: the CA's `Retry-After` within
/// reason, else half a second.
fn poll_delay(retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or(Duration::from_millis(500))
        .clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// A `Retry-After` value: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs.min(7 * 86_400)));
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The TLS-ALPN-01 certificate for `name` (RFC 8737 §3): self-signed,
/// for that name only, with the critical acmeIdentifier extension holding
/// the SHA-256 of the key authorization.
fn alpn_certificate(name: &str, key_authorization: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let fail = |e: rcgen::Error| AcmeError::Failed(format!("{name}: TLS-ALPN-01 certificate: {e}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(fail)?;
    let digest = sha256(key_authorization.as_bytes());
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&digest)];
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date_within_reason() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("999999999"),
            Some(Duration::from_secs(7 * 86_400))
        );
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(90));
        let wait = parse_retry_after(&soon).unwrap();
        assert!(
            wait <= Duration::from_secs(90) && wait >= Duration::from_secs(85),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(poll_delay(None), Duration::from_millis(500));
        assert_eq!(
            poll_delay(Some(Duration::from_secs(60))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn the_alpn_certificate_carries_the_digest_in_a_critical_extension() {
        let (der, _) = alpn_certificate("a.test", "tok.thumb").unwrap();
        let digest = sha256(b"tok.thumb");
        // id-pe-acmeIdentifier, critical, an OCTET STRING of the digest.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der
            .windows(oid.len())
            .position(|w| w == oid)
            .expect("the OID");
        let after = &der[at + oid.len()..];
        assert_eq!(&after[..3], &[0x01, 0x01, 0xff], "critical");
        assert_eq!(&after[3..7], &[0x04, 0x22, 0x04, 0x20]);
        assert_eq!(&after[7..39], &digest);
    }
}
