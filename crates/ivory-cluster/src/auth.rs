//! The cluster secret: shared by the nodes of a cluster and by its operators. Node-to-node and
//! operator gRPC calls carry a short-lived token signed with it ([`ClusterSecret::token`], header
//! [`TOKEN_HEADER`]); the receiving node checks it ([`ClusterSecret::verify_token`]). The secret
//! itself never travels on the cluster plane, so a captured token is only good for minutes.
//!
//! Token = `v1.<unix seconds>.<hex HMAC-SHA256(key, "ivory cluster token v1\n<seconds>")>`, where
//! key = SHA-256 of the secret with a domain prefix. MACs are compared in constant time.

use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub type HmacSha256 = Hmac<Sha256>;

/// The gRPC metadata key (an HTTP/2 header) that carries the token.
pub const TOKEN_HEADER: &str = "x-ivory-cluster-token";
/// Shortest secret accepted: a guessable secret would open the whole cluster.
pub const SECRET_LEN_MIN: usize = 16;
/// How far a token's time may be from the receiver's clock (either way): covers clock skew and
/// bounds how long a captured token can be replayed.
pub const TOKEN_SKEW_S: u64 = 300;
/// A sender reuses one token this long before signing a fresh one.
const TOKEN_REUSE_S: u64 = 30;
/// Longest token looked at; anything longer is not one of ours.
const TOKEN_LEN_MAX: usize = 128;

/// Why a cluster token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterAuthError {
    Missing,
    Malformed,
    Expired,
    BadSignature,
}

impl std::fmt::Display for ClusterAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClusterAuthError::Missing => {
                "the cluster credential is missing (set IVORY_CLUSTER_SECRET or --cluster-secret-file)"
            }
            ClusterAuthError::Malformed => "the cluster credential is malformed",
            ClusterAuthError::Expired => "the cluster credential is expired or from a clock too far off",
            ClusterAuthError::BadSignature => "the cluster credential is not signed with this cluster's secret",
        })
    }
}

/// A cluster secret, ready to sign and verify tokens.
pub struct ClusterSecret {
    key: [u8; 32],
    /// The last token signed, with its time: signing per request would be wasted work.
    cached: RwLock<(u64, String)>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// HMAC-SHA256 keyed with `key` (any length is a valid HMAC key).
pub fn mac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("hmac accepts keys of any length"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

impl ClusterSecret {
    /// The secret as an operator wrote it (surrounding whitespace, e.g. a file's newline, ignored).
    ///
    /// # Errors
    /// When it is shorter than [`SECRET_LEN_MIN`].
    pub fn new(secret: &str) -> Result<ClusterSecret, String> {
        let secret = secret.trim();
        if secret.len() < SECRET_LEN_MIN {
            return Err(format!(
                "the cluster secret must be at least {SECRET_LEN_MIN} characters"
            ));
        }
        let key: [u8; 32] = Sha256::digest(format!("ivory cluster secret v1\n{secret}")).into();
        Ok(ClusterSecret {
            key,
            cached: RwLock::new((0, String::new())),
        })
    }

    /// A fresh random secret (64 hex characters), for a node that was given none.
    pub fn generate() -> String {
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
        hex(&raw)
    }

    fn signature(&self, at_s: u64) -> HmacSha256 {
        let mut m = mac(&self.key);
        m.update(format!("ivory cluster token v1\n{at_s}").as_bytes());
        m
    }

    /// A token signed at `at_s` (unix seconds).
    pub fn token_at(&self, at_s: u64) -> String {
        format!("v1.{at_s}.{}", hex(&self.signature(at_s).finalize().into_bytes()))
    }

    /// A token good for about [`TOKEN_SKEW_S`] from now; the same one is reused for a few seconds.
    pub fn token(&self) -> String {
        let now = now_s();
        if let Ok(cached) = self.cached.read()
            && now.saturating_sub(cached.0) < TOKEN_REUSE_S
            && !cached.1.is_empty()
        {
            return cached.1.clone();
        }
        let token = self.token_at(now);
        if let Ok(mut cached) = self.cached.write() {
            *cached = (now, token.clone());
        }
        token
    }

    /// Checks a token against this secret and the clock `now_s`.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn verify_token_at(&self, token: &str, now_s: u64) -> Result<(), ClusterAuthError> {
        if token.len() > TOKEN_LEN_MAX {
            return Err(ClusterAuthError::Malformed);
        }
        let mut parts = token.trim().splitn(3, '.');
        let (Some("v1"), Some(at), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ClusterAuthError::Malformed);
        };
        let at: u64 = at.parse().map_err(|_| ClusterAuthError::Malformed)?;
        let sig = unhex(sig).ok_or(ClusterAuthError::Malformed)?;
        self.signature(at)
            .verify_slice(&sig)
            .map_err(|_| ClusterAuthError::BadSignature)?;
        if at.abs_diff(now_s) > TOKEN_SKEW_S {
            return Err(ClusterAuthError::Expired);
        }
        Ok(())
    }

    /// [`ClusterSecret::verify_token_at`] now.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn verify_token(&self, token: &str) -> Result<(), ClusterAuthError> {
        self.verify_token_at(token, now_s())
    }

    /// Whether `candidate` is the secret itself, in constant time (for a sign-in with the secret,
    /// e.g. a web console or an operator's REST call).
    pub fn verify_secret(&self, candidate: &str) -> bool {
        let Ok(other) = ClusterSecret::new(candidate) else {
            return false;
        };
        // Compare the derived keys through a MAC: constant time whatever the lengths.
        let mut m = mac(b"ivory cluster secret compare");
        m.update(&other.key);
        let expected = {
            let mut e = mac(b"ivory cluster secret compare");
            e.update(&self.key);
            e.finalize().into_bytes()
        };
        m.verify_slice(&expected).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_the_same_secret_and_in_time() {
        let a = ClusterSecret::new("a-secret-of-enough-length").unwrap();
        let b = ClusterSecret::new("another-secret-of-enough-length").unwrap();
        let t = a.token_at(1_000);
        assert_eq!(a.verify_token_at(&t, 1_000), Ok(()));
        assert_eq!(a.verify_token_at(&t, 1_000 + TOKEN_SKEW_S), Ok(()));
        assert_eq!(
            a.verify_token_at(&t, 1_001 + TOKEN_SKEW_S),
            Err(ClusterAuthError::Expired)
        );
        assert_eq!(
            a.verify_token_at(&t, 999 - TOKEN_SKEW_S),
            Err(ClusterAuthError::Expired)
        );
        assert_eq!(b.verify_token_at(&t, 1_000), Err(ClusterAuthError::BadSignature));
        let forged = t.replace("v1.1000.", "v1.1001.");
        assert_eq!(a.verify_token_at(&forged, 1_000), Err(ClusterAuthError::BadSignature));
        for garbage in ["", "v1", "v1.x.00", "v2.1000.00", "v1.1000.zz", "v1.1000.abc"] {
            assert_eq!(
                a.verify_token_at(garbage, 1_000),
                Err(ClusterAuthError::Malformed),
                "{garbage}"
            );
        }
        assert!(a.verify_token(&a.token()).is_ok());
    }

    #[test]
    fn the_secret_itself_verifies_and_short_ones_are_refused() {
        let a = ClusterSecret::new("a-secret-of-enough-length\n").unwrap();
        assert!(a.verify_secret("a-secret-of-enough-length"));
        assert!(!a.verify_secret("a-secret-of-enough-lengtH"));
        assert!(!a.verify_secret("short"));
        assert!(ClusterSecret::new("short").is_err());
        assert_eq!(ClusterSecret::generate().len(), 64);
    }
}
