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

/// Which tenants a provider's keys may vouch for. A token is accepted only if the issuer it
/// names may vouch for its `tid`: without this, a provider that signs for one tenant (its own
/// keys, its own concrete issuer) could sign a token naming another tenant's `tid` and read
/// that tenant's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Taken from the issuers themselves: a `{tid}` template vouches for the tenant it names
    /// once `{tid}` is replaced (so for every tenant, each under its own issuer); a concrete
    /// issuer vouches for the tenants whose GUID is a segment of its URL path
    /// (`https://login.microsoftonline.com/{GUID}/v2.0`). With other providers configured, a
    /// provider that could thereby vouch for every tenant (a `{tid}` template, a concrete
    /// issuer naming no GUID) is refused by [`Validator::with_trusted_issuers`]: say which
    /// tenants it serves ([`TenantScope::Only`]) or allow it explicitly ([`TenantScope::Any`]).
    FromIssuer,
    /// Exactly these tenants (and, for a `{tid}` template, each under its own issuer).
    Only(Vec<TenantId>),
    /// Every tenant, stated explicitly: a multi-tenant provider such as Azure AD, which
    /// itself guarantees that `tid` and `iss` agree.
    Any,
}

/// Issuers whose tokens are verified with one key source. With several trusted issuers, a
/// token is verified only with the keys of the issuers it could belong to (its `iss`, and a
/// `tid` they may vouch for), so one provider's keys can never vouch for a token claiming
/// another provider's issuer or tenant.
#[derive(Clone)]
pub struct TrustedIssuer {
    /// Issuer templates (`{tid}` is the token's own tenant) this key source speaks for.
    pub issuer_templates: Vec<String>,
    pub keys: Arc<dyn KeySource>,
    /// The tenants these keys may vouch for.
    pub tenants: TenantScope,
}

impl fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("issuer_templates", &self.issuer_templates)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

/// The tenants one issuer template vouches for, resolved once at construction.
#[derive(Debug, Clone)]
enum Vouches {
    Any,
    Only(Vec<TenantId>),
}

/// A trusted issuer with the tenant scope of each of its templates resolved.
#[derive(Clone)]
struct Resolved {
    issuer: TrustedIssuer,
    vouches: Vec<Vouches>,
}

/// Whether `s` has the form of a GUID (8-4-4-4-12 hex digits), as Azure AD tenant ids do.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The tenants a concrete issuer names: the GUID segments of its URL path. Only GUIDs, because
/// any other segment (`v2.0`, `realms`, a realm name) may or may not be a tenant id, and
/// guessing wrong would let this provider vouch for a tenant it does not own.
pub fn tenants_named_by(issuer: &str) -> Vec<TenantId> {
    let after_scheme = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
    let path = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split_once('/')
        .map_or("", |(_, path)| path);
    let mut named: Vec<TenantId> = path
        .split('/')
        .filter(|segment| is_guid(segment))
        .filter_map(|segment| TenantId::parse(segment).ok())
        .collect();
    named.dedup();
    named
}

impl TrustedIssuer {
    /// An issuer whose tenants are taken from its templates ([`TenantScope::FromIssuer`]).
    pub fn new(issuer_templates: Vec<String>, keys: Arc<dyn KeySource>) -> Self {
        TrustedIssuer {
            issuer_templates,
            keys,
            tenants: TenantScope::FromIssuer,
        }
    }

    /// The same issuer with its tenants stated.
    pub fn with_tenants(mut self, tenants: TenantScope) -> Self {
        self.tenants = tenants;
        self
    }

    /// Whether `template` matches `iss` for a token of tenant `raw_tid`. The token's own tid
    /// is substituted byte for byte, so an issuer of tenant A cannot vouch for a token
    /// claiming tenant B; a concrete issuer binds nothing here (its tenants are checked by
    /// [`Resolved::vouches_for`]).
    fn template_matches(template: &str, iss: &str, raw_tid: &str) -> bool {
        template.replace("{tid}", raw_tid) == iss
    }

    /// Whether some template of this issuer matches `iss` for tenant `raw_tid`.
    pub fn accepts(&self, iss: &str, raw_tid: &str) -> bool {
        self.issuer_templates
            .iter()
            .any(|t| Self::template_matches(t, iss, raw_tid))
    }

    /// Resolves each template's tenants; `alone` says whether this is the only provider.
    fn resolve(self, alone: bool) -> Result<Resolved, ConfigError> {
        if let TenantScope::Only(list) = &self.tenants {
            if list.is_empty() {
                return Err(ConfigError::EmptyProviderTenants(self.describe()));
            }
        }
        let mut vouches = Vec::with_capacity(self.issuer_templates.len());
        for template in &self.issuer_templates {
            let v = match &self.tenants {
                TenantScope::Any => Vouches::Any,
                TenantScope::Only(list) => Vouches::Only(list.clone()),
                TenantScope::FromIssuer => {
                    let named = if template.contains("{tid}") {
                        Vec::new()
                    } else {
                        tenants_named_by(template)
                    };
                    if !named.is_empty() {
                        Vouches::Only(named)
                    } else if alone {
                        // Nobody else's tenants to protect: the only provider vouches for
                        // every tenant kbgap serves.
                        Vouches::Any
                    } else {
                        return Err(ConfigError::ProviderForEveryTenant(template.clone()));
                    }
                }
            };
            vouches.push(v);
        }
        Ok(Resolved {
            issuer: self,
            vouches,
        })
    }

    fn describe(&self) -> String {
        self.issuer_templates.join(", ")
    }
}

impl Resolved {
    /// Whether some template matches `iss` for `raw_tid`.
    fn matches(&self, iss: &str, raw_tid: &str) -> bool {
        self.issuer.accepts(iss, raw_tid)
    }

    /// Whether a template that matches `iss` may vouch for `tenant`.
    fn vouches_for(&self, iss: &str, raw_tid: &str, tenant: &TenantId) -> bool {
        self.issuer
            .issuer_templates
            .iter()
            .zip(&self.vouches)
            .any(|(t, v)| {
                TrustedIssuer::template_matches(t, iss, raw_tid)
                    && match v {
                        Vouches::Any => true,
                        Vouches::Only(list) => list.contains(tenant),
                    }
            })
    }
}

/// Validates bearer tokens against one policy and its trusted issuers' key sources. Cheap to
/// share behind `Arc`.
pub struct Validator {
    config: ValidatorConfig,
    issuers: Vec<Resolved>,
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
        let issuers =
            vec![TrustedIssuer::new(config.issuer_templates.clone(), keys).resolve(true)?];
        Ok(Validator { config, issuers })
    }

    /// Several issuers, each with its own key source and tenants. `config.issuer_templates`
    /// is replaced by the union of the issuers' templates. Refuses, when there are several
    /// issuers, one whose tenants are taken from its templates and could be every tenant
    /// ([`ConfigError::ProviderForEveryTenant`]).
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
        let alone = issuers.len() == 1;
        let issuers = issuers
            .into_iter()
            .map(|i| i.resolve(alone))
            .collect::<Result<_, _>>()?;
        Ok(Validator { config, issuers })
    }

    /// The trusted issuers and their key sources.
    pub fn trusted_issuers(&self) -> Vec<&TrustedIssuer> {
        self.issuers.iter().map(|r| &r.issuer).collect()
    }

    /// The policy in force (leeway already clamped).
    pub fn config(&self) -> &ValidatorConfig {
        &self.config
    }

    /// The trusted issuers whose keys could verify `token`, judged by its unverified `iss` and
    /// `tid` without any signature check: the only ones worth re-fetching keys for when the
    /// token names an unknown key. Empty for a token that is malformed or that no issuer
    /// may vouch for.
    pub fn issuers_for(&self, token: &str) -> Vec<&TrustedIssuer> {
        let mut parts = token.split('.');
        let (Some(_), Some(payload_b64)) = (parts.next(), parts.next()) else {
            return Vec::new();
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Vec::new();
        }
        self.candidates(payload_b64)
            .map(|c| c.into_iter().map(|r| &r.issuer).collect())
            .unwrap_or_default()
    }

    /// The issuers that match the token's unverified `iss` and may vouch for its `tid`.
    /// These claims only choose whose keys to verify with; they are checked again once the
    /// signature holds.
    fn candidates(&self, payload_b64: &str) -> Result<Vec<&Resolved>, AuthError> {
        let peek: IssuerClaims = decode_json(payload_b64)?;
        let raw_tid = peek.tid.as_deref().ok_or(AuthError::MissingTenant)?;
        let tenant = TenantId::parse(raw_tid).map_err(|_| AuthError::MissingTenant)?;
        let iss = peek.iss.as_deref().ok_or(AuthError::WrongIssuer)?;
        let matching: Vec<&Resolved> = self
            .issuers
            .iter()
            .filter(|r| r.matches(iss, raw_tid))
            .collect();
        if matching.is_empty() {
            return Err(AuthError::WrongIssuer);
        }
        let vouching: Vec<&Resolved> = matching
            .into_iter()
            .filter(|r| r.vouches_for(iss, raw_tid, &tenant))
            .collect();
        if vouching.is_empty() {
            return Err(AuthError::IssuerNotForTenant);
        }
        Ok(vouching)
    }

    /// Validates `token` at time `now_unix` (seconds). Checks run in this order, so each
    /// refusal names the first rule broken: size and shape, header `alg`, the issuers whose
    /// keys to use (from the unverified `iss` and `tid`: one must match `iss` and may vouch
    /// for `tid`), key, signature, `exp`/`nbf`, `tid`, `iss`, `aud`, tenant allow-list.
    /// Everything before the signature is cheap, so a token refused there costs no RSA
    /// operation.
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

        let candidates = self.candidates(payload_b64)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::Malformed)?;
        // Several providers may share an issuer template (one key set per tenant): try each
        // whose issuer matches and that holds the named key, until one verifies. Each
        // provider only ever sees tokens it may vouch for.
        let mut failure = AuthError::UnknownKey;
        let mut verified_by = None;
        for candidate in candidates {
            let Some(key) = candidate.issuer.keys.key(header.kid.as_deref()) else {
                continue;
            };
            if key.alg().is_some_and(|bound| bound != alg) {
                failure = AuthError::AlgorithmNotAllowed;
                continue;
            }
            // The provider is named explicitly rather than taken from jsonwebtoken's
            // process-wide default, which panics if another crate in the build enables a
            // second backend.
            let verifies = (DEFAULT_PROVIDER.verifier_factory)(&alg, &key.decoding)
                .is_ok_and(|v| v.verify(signing_input.as_bytes(), &signature).is_ok());
            if verifies {
                verified_by = Some(candidate);
                break;
            }
            failure = AuthError::BadSignature;
        }
        let Some(issuer) = verified_by else {
            return Err(failure);
        };

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
        // The same claims chose the issuer before the signature; checked again now that they
        // are signed, so no later change to that choice can skip the binding.
        if !issuer.matches(iss, raw_tid) {
            return Err(AuthError::WrongIssuer);
        }
        if !issuer.vouches_for(iss, raw_tid, &tenant) {
            return Err(AuthError::IssuerNotForTenant);
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
