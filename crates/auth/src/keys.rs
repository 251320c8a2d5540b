//! Where verification keys come from: the [`KeySource`] trait and a fixed JWKS ([`StaticJwks`]).
//! A caching HTTP fetcher can implement the same trait by swapping in new `StaticJwks` sets.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde_json::Value;

/// Smaller RSA moduli are factorable in practice; Azure AD and the dev issuer use 2048.
pub const MIN_RSA_BITS: usize = 2048;

/// Supplies the public key for a token's `kid`.
///
/// Synchronous on purpose: validation never waits on the network. A fetching implementation
/// answers from its cache; when [`crate::Validator::validate`] reports
/// [`crate::AuthError::UnknownKey`] the caller may refresh the source (rate-limited) and retry once.
pub trait KeySource: Send + Sync {
    /// The key named `kid`; with no `kid`, the only key if there is exactly one.
    fn key(&self, kid: Option<&str>) -> Option<Arc<VerificationKey>>;
}

/// An RSA public key, optionally bound to one algorithm by its JWK `alg`.
#[derive(Clone)]
pub struct VerificationKey {
    pub(crate) decoding: DecodingKey,
    alg: Option<Algorithm>,
    bits: usize,
}

impl VerificationKey {
    /// Builds a key from the JWK members `n` and `e` (base64url, no padding).
    pub fn from_rsa_components(
        n: &str,
        e: &str,
        alg: Option<Algorithm>,
    ) -> Result<Self, JwksError> {
        let n = URL_SAFE_NO_PAD
            .decode(n)
            .map_err(|_| JwksError::InvalidKey("modulus is not base64url"))?;
        let e = URL_SAFE_NO_PAD
            .decode(e)
            .map_err(|_| JwksError::InvalidKey("exponent is not base64url"))?;
        Self::from_rsa_raw(&n, &e, alg)
    }

    /// Builds a key from big-endian modulus and exponent bytes.
    pub fn from_rsa_raw(n: &[u8], e: &[u8], alg: Option<Algorithm>) -> Result<Self, JwksError> {
        if let Some(a) = alg {
            if a.family() != AlgorithmFamily::Rsa {
                return Err(JwksError::InvalidKey("alg is not an RSA algorithm"));
            }
        }
        // Let the rsa crate vet the numbers (exponent range, modulus upper bound) now, so a bad
        // key fails at load time instead of on every request.
        let public = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
            .map_err(|_| JwksError::InvalidKey("not a valid RSA public key"))?;
        let bits = public.n().bits();
        if bits < MIN_RSA_BITS {
            return Err(JwksError::InvalidKey(
                "RSA modulus is shorter than 2048 bits",
            ));
        }
        let n = public.n().to_bytes_be();
        let e = public.e().to_bytes_be();
        Ok(VerificationKey {
            decoding: DecodingKey::from_rsa_raw_components(&n, &e),
            alg,
            bits,
        })
    }

    /// The algorithm this key is restricted to, if its JWK named one.
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }
}

impl fmt::Debug for VerificationKey {
    // Public keys are not secret, but key material stays out of logs as a rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("alg", &self.alg)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

/// Why a JWKS document or key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is not valid JSON")]
    NotJson,
    #[error("JWKS has no \"keys\" array")]
    NoKeysArray,
    #[error("JWKS has no usable RSA signing key")]
    NoUsableKeys,
    #[error("JWKS has two keys with kid {0:?}")]
    DuplicateKid(String),
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
}

/// A fixed set of keys, from a JWKS document (RFC 7517) or built directly.
#[derive(Clone)]
pub struct StaticJwks {
    keys: Vec<(Option<String>, Arc<VerificationKey>)>,
}

impl StaticJwks {
    /// A set from explicit keys. Fails on an empty set or a repeated `kid`, either of which
    /// would make key selection ambiguous or impossible.
    pub fn new(
        keys: impl IntoIterator<Item = (Option<String>, VerificationKey)>,
    ) -> Result<Self, JwksError> {
        let mut out: Vec<(Option<String>, Arc<VerificationKey>)> = Vec::new();
        for (kid, key) in keys {
            if let Some(k) = &kid {
                if out
                    .iter()
                    .any(|(other, _)| other.as_deref() == Some(k.as_str()))
                {
                    return Err(JwksError::DuplicateKid(k.clone()));
                }
            }
            out.push((kid, Arc::new(key)));
        }
        if out.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok(StaticJwks { keys: out })
    }

    /// Parses a JWKS document.
    pub fn from_json(json: &str) -> Result<Self, JwksError> {
        let value: Value = serde_json::from_str(json).map_err(|_| JwksError::NotJson)?;
        Self::from_value(&value)
    }

    /// Keeps the RSA signature keys of a parsed JWKS. Following RFC 7517 §5, keys of other
    /// types, for other uses, or with missing or out-of-range members are skipped rather than
    /// failing the whole set; only a set with nothing usable left is an error.
    pub fn from_value(jwks: &Value) -> Result<Self, JwksError> {
        let entries = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        Self::new(entries.iter().filter_map(usable_rsa_key))
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false for a constructed set; present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids held, in document order (`None` for keys without `kid`).
    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(|(kid, _)| kid.as_deref())
    }
}

impl KeySource for StaticJwks {
    fn key(&self, kid: Option<&str>) -> Option<Arc<VerificationKey>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| Arc::clone(key)),
            None => match self.keys.as_slice() {
                [(_, only)] => Some(Arc::clone(only)),
                _ => None,
            },
        }
    }
}

impl fmt::Debug for StaticJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticJwks")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn usable_rsa_key(jwk: &Value) -> Option<(Option<String>, VerificationKey)> {
    let str_member = |name: &str| jwk.get(name).and_then(Value::as_str);
    if str_member("kty") != Some("RSA") {
        return None;
    }
    if let Some(usage) = jwk.get("use") {
        if usage.as_str() != Some("sig") {
            return None;
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return None;
        }
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(a) => Some(a.as_str()?.parse::<Algorithm>().ok()?),
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(k) => Some(k.as_str()?.to_string()),
    };
    let key = VerificationKey::from_rsa_components(str_member("n")?, str_member("e")?, alg).ok()?;
    Some((kid, key))
}
