//! The account key and what ACME signs with it (RFC 8555 §6.2, RFC 7515):
//! ES256 (ECDSA P-256 with SHA-256, the signature as the fixed 64 bytes
//! r‖s), the key's JWK, its thumbprint (RFC 7638, which the challenges'
//! key authorizations carry), and the flattened JWS of a request. Plain
//! code over bytes: the tests check it against known vectors.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// base64url without padding (RFC 4648 §5), as JOSE writes every value.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// An ACME account's key: ECDSA P-256.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountKey({})", self.thumbprint())
    }
}

impl AccountKey {
    /// A new key.
    pub fn generate() -> Result<AccountKey, String> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| format!("cannot generate an account key: {e}"))?;
        AccountKey::from_pkcs8(doc.as_ref())
    }

    /// A key as [`AccountKey::pkcs8`] stored it.
    pub fn from_pkcs8(der: &[u8]) -> Result<AccountKey, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))?;
        Ok(AccountKey {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// The key as PKCS#8 DER, to store.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK, its members in the lexical order the
    /// thumbprint needs (and no other members).
    pub fn jwk(&self) -> String {
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = self.pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            base64url(x),
            base64url(y)
        )
    }

    /// The JWK thumbprint (RFC 7638), base64url.
    pub fn thumbprint(&self) -> String {
        base64url(&sha256(self.jwk().as_bytes()))
    }

    /// A challenge's key authorization: `token.thumbprint`.
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint())
    }

    /// The flattened JWS of an ACME request to `url`: `payload` (JSON; ""
    /// for a POST-as-GET), signed with the account's `kid`, or with the
    /// JWK when there is no account yet (newAccount).
    pub fn sign(
        &self,
        url: &str,
        nonce: &str,
        kid: Option<&str>,
        payload: &str,
    ) -> Result<String, String> {
        let who = match kid {
            Some(kid) => format!(r#""kid":{}"#, json_string(kid)),
            None => format!(r#""jwk":{}"#, self.jwk()),
        };
        let protected = format!(
            r#"{{"alg":"ES256",{who},"nonce":{},"url":{}}}"#,
            json_string(nonce),
            json_string(url)
        );
        let protected = base64url(protected.as_bytes());
        let payload = base64url(payload.as_bytes());
        let signing_input = format!("{protected}.{payload}");
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|e| format!("cannot sign: {e}"))?;
        Ok(format!(
            r#"{{"protected":"{protected}","payload":"{payload}","signature":"{}"}}"#,
            base64url(signature.as_ref())
        ))
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn base64url_matches_rfc_4648_without_padding() {
        // RFC 4648 §10, in the URL alphabet, padding dropped.
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(plain.as_bytes()), coded);
        }
        assert_eq!(base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example is RSA; this is the same computation
        // over the EC members, checked against an independent encoding.
        let key = AccountKey::generate().unwrap();
        let jwk: serde_json::Value = serde_json::from_str(&key.jwk()).unwrap();
        let members: Vec<&String> = jwk.as_object().unwrap().keys().collect();
        assert_eq!(members, ["crv", "kty", "x", "y"]);
        assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
        let again = AccountKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint());
        assert_eq!(key.thumbprint().len(), 43);
        assert_eq!(
            key.key_authorization("tok"),
            format!("tok.{}", key.thumbprint())
        );
    }

    #[test]
    fn a_signed_request_verifies_with_the_jwk_and_names_what_acme_needs() {
        let key = AccountKey::generate().unwrap();
        let jws = key
            .sign("https://ca/new-acct", "n0nce", None, r#"{"a":1}"#)
            .unwrap();
        let jws: serde_json::Value = serde_json::from_str(&jws).unwrap();
        let field = |name: &str| jws[name].as_str().unwrap().to_string();
        let decode = |text: &str| {
            // Back through the standard alphabet with padding.
            let standard: String = text
                .chars()
                .map(|c| match c {
                    '-' => '+',
                    '_' => '/',
                    c => c,
                })
                .collect();
            decode_base64(&standard)
        };
        let protected: serde_json::Value =
            serde_json::from_slice(&decode(&field("protected"))).unwrap();
        assert_eq!(protected["alg"], "ES256");
        assert_eq!(protected["nonce"], "n0nce");
        assert_eq!(protected["url"], "https://ca/new-acct");
        assert_eq!(protected["jwk"]["kty"], "EC");
        assert!(protected.get("kid").is_none());
        assert_eq!(decode(&field("payload")), br#"{"a":1}"#);
        // The signature verifies under the public key.
        let point = key.pair.public_key().as_ref().to_vec();
        let input = format!("{}.{}", field("protected"), field("payload"));
        let signature = decode(&field("signature"));
        assert_eq!(signature.len(), 64);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(input.as_bytes(), &signature)
            .expect("the signature verifies");
        // With an account: its kid, no jwk; POST-as-GET has an empty payload.
        let jws = key
            .sign("https://ca/o/1", "n", Some("https://ca/acct/7"), "")
            .unwrap();
        let jws: serde_json::Value = serde_json::from_str(&jws).unwrap();
        let protected: serde_json::Value =
            serde_json::from_slice(&decode(jws["protected"].as_str().unwrap())).unwrap();
        assert_eq!(protected["kid"], "https://ca/acct/7");
        assert!(protected.get("jwk").is_none());
        assert_eq!(jws["payload"], "");
    }

    /// A plain base64 decoder for the tests (padding optional).
    fn decode_base64(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        };
        let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
        let mut out = Vec::new();
        for chunk in digits.chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
            for i in 0..chunk.len() - 1 {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }
}
