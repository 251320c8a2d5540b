//! Turns a bearer token into a [`Principal`] or an [`AuthError`], following api-contract.md §3.
//! Parsing is done here so every refusal has a precise cause; only the signature math is delegated.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::Algorithm;
use kbgap_domain::TenantId;
use serde::Deserialize;

use crate::config::{ConfigError, ValidatorConfig};
use crate::error::AuthError;
use crate::keys::KeySource;
use crate::principal::{Principal, PrincipalKind};

/// Longer tokens are refused before any decoding, so a flood of huge headers costs no parsing.
/// Azure AD access tokens are a few KiB even with many roles.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Extracts the token from an `Authorization` header value (`Bearer <token>`, scheme
/// case-insensitive). Anything that is not a non-empty bearer credential is
/// [`AuthError::MissingToken`], which RFC 6750 answers without an error code.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::MissingToken)?.trim();
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

/// Issuers whose tokens are verified with one key source. With several trusted issuers, a
/// token is verified only with the keys of the issuer it names, so one provider's keys can
/// never vouch for a token claiming another provider's issuer.
#[derive(Clone)]
pub struct TrustedIssuer {
    /// Issuer templates (`{tid}` is the token's own tenant) this key source speaks for.
    pub issuer_templates: Vec<String>,
    pub keys: Arc<dyn KeySource>,
}

impl fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("issuer_templates", &self.issuer_templates)
            .finish_non_exhaustive()
    }
}

impl TrustedIssuer {
    fn accepts(&self, iss: &str, raw_tid: &str) -> bool {
        // Substitute the token's own tid, byte for byte, so an issuer of tenant A cannot
        // vouch for a token claiming tenant B.
        self.issuer_templates
            .iter()
            .any(|t| t.replace("{tid}", raw_tid) == iss)
    }
}

/// Validates bearer tokens against one policy and its trusted issuers' key sources. Cheap to
/// share behind `Arc`.
pub struct Validator {
    config: ValidatorConfig,
    issuers: Vec<TrustedIssuer>,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The two claims needed to pick the key source before the signature is checked.
#[derive(Deserialize)]
struct IssuerClaims {
    iss: Option<String>,
    tid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains_any(&self, accepted: &[String]) -> bool {
        match self {
            Audience::One(a) => accepted.contains(a),
            Audience::Many(list) => list.iter().any(|a| accepted.contains(a)),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<serde_json::Number>,
    nbf: Option<serde_json::Number>,
    iss: Option<String>,
    aud: Option<Audience>,
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    roles: Option<Vec<String>>,
    scp: Option<String>,
}

impl Validator {
    /// Checks the configuration (no HMAC, nothing empty) and clamps its leeway.
    /// Every issuer template of `config` is verified with `keys`.
    pub fn new(config: ValidatorConfig, keys: Arc<dyn KeySource>) -> Result<Self, ConfigError> {
        let config = config.checked()?;
        let issuers = vec![TrustedIssuer {
            issuer_templates: config.issuer_templates.clone(),
            keys,
        }];
        Ok(Validator { config, issuers })
    }

    /// Several issuers, each with its own key source. `config.issuer_templates` is replaced
    /// by the union of the issuers' templates.
    pub fn with_trusted_issuers(
        mut config: ValidatorConfig,
        issuers: Vec<TrustedIssuer>,
    ) -> Result<Self, ConfigError> {
        if issuers.is_empty() || issuers.iter().any(|i| i.issuer_templates.is_empty()) {
            return Err(ConfigError::NoIssuers);
        }
        config.issuer_templates = issuers
            .iter()
            .flat_map(|i| i.issuer_templates.iter().cloned())
            .collect();
        let config = config.checked()?;
        Ok(Validator { config, issuers })
    }

    /// The trusted issuers and their key sources.
    pub fn trusted_issuers(&self) -> &[TrustedIssuer] {
        &self.issuers
    }

    /// The policy in force (leeway already clamped).
    pub fn config(&self) -> &ValidatorConfig {
        &self.config
    }

    /// Validates `token` at time `now_unix` (seconds). Checks run in this order, so each
    /// refusal names the first rule broken: size and shape, header `alg`, (with several
    /// trusted issuers: the issuer whose keys to use, from the unverified `iss` and `tid`),
    /// key, signature, `exp`/`nbf`, `tid`, `iss`, `aud`, tenant allow-list.
    pub fn validate(&self, token: &str, now_unix: i64) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        if token.trim().is_empty() {
            return Err(AuthError::MissingToken);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];

        let header: Header = decode_json(header_b64)?;
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| AuthError::AlgorithmNotAllowed)?;
        if !self.config.algorithms.contains(&alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        // RFC 7515 §4.1.11: a `crit` extension we do not implement must be refused.
        if header.crit.is_some() {
            return Err(AuthError::Malformed);
        }

        let issuer = match self.issuers.as_slice() {
            [only] => only,
            several => {
                // Unverified claims, used only to choose whose keys to verify with; they are
                // checked again below once the signature holds.
                let peek: IssuerClaims = decode_json(payload_b64)?;
                let tid = peek.tid.as_deref().ok_or(AuthError::MissingTenant)?;
                let iss = peek.iss.as_deref().ok_or(AuthError::WrongIssuer)?;
                several
                    .iter()
                    .find(|i| i.accepts(iss, tid))
                    .ok_or(AuthError::WrongIssuer)?
            }
        };
        let key = issuer
            .keys
            .key(header.kid.as_deref())
            .ok_or(AuthError::UnknownKey)?;
        if key.alg().is_some_and(|bound| bound != alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::Malformed)?;
        // The provider is named explicitly rather than taken from jsonwebtoken's process-wide
        // default, which panics if another crate in the build enables a second backend.
        let verifier = (DEFAULT_PROVIDER.verifier_factory)(&alg, &key.decoding)
            .map_err(|_| AuthError::BadSignature)?;
        verifier
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| AuthError::BadSignature)?;

        // Only now is the payload trusted enough to look at.
        let claims: Claims = decode_json(payload_b64)?;
        let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(0);
        let exp = claims
            .exp
            .as_ref()
            .map(numeric_date)
            .transpose()?
            .ok_or(AuthError::Malformed)?;
        if now_unix >= exp.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = claims.nbf.as_ref().map(numeric_date).transpose()? {
            if nbf > now_unix.saturating_add(leeway) {
                return Err(AuthError::NotYetValid);
            }
        }

        let raw_tid = claims.tid.as_deref().ok_or(AuthError::MissingTenant)?;
        let tenant = TenantId::parse(raw_tid).map_err(|_| AuthError::MissingTenant)?;
        let iss = claims.iss.as_deref().ok_or(AuthError::WrongIssuer)?;
        if !issuer.accepts(iss, raw_tid) {
            return Err(AuthError::WrongIssuer);
        }
        let aud_ok = claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains_any(&self.config.audiences));
        if !aud_ok {
            return Err(AuthError::WrongAudience);
        }
        if let Some(allowed) = &self.config.allowed_tenants {
            if !allowed.contains(&tenant) {
                return Err(AuthError::TenantNotAllowed);
            }
        }

        let kind = if claims.scp.is_some() {
            PrincipalKind::Delegated
        } else {
            PrincipalKind::Application
        };
        Ok(Principal {
            tenant,
            app_id: claims
                .appid
                .filter(|a| !a.is_empty())
                .or(claims.azp.filter(|a| !a.is_empty())),
            roles: claims.roles.unwrap_or_default(),
            scopes: claims
                .scp
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            kind,
            expires_at: exp,
        })
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// RFC 7519 NumericDate: seconds, possibly fractional; fractions are truncated toward the past.
fn numeric_date(n: &serde_json::Number) -> Result<i64, AuthError> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
            Ok(f.floor() as i64)
        }
        _ => Err(AuthError::Malformed),
    }
}
