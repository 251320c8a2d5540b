//! What a token must look like to be accepted: issuers, audiences, tenants, skew, algorithms.
//! Defaults are the ones Azure AD uses for MDE (api-contract.md §3).

use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use kbgap_domain::TenantId;

/// The contract allows at most 5 minutes of clock skew; larger values are clamped to this.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Validation policy. Build a [`crate::Validator`] from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorConfig {
    /// Accepted issuers; `{tid}` is replaced by the token's own `tid` before comparing, so a
    /// token cannot borrow another tenant's issuer.
    pub issuer_templates: Vec<String>,
    /// The token's `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    /// When set, only these tenants are accepted.
    pub allowed_tenants: Option<Vec<TenantId>>,
    /// Clock skew tolerated on `exp` and `nbf`; clamped to [`MAX_LEEWAY`].
    pub leeway: Duration,
    /// Signature algorithms accepted; the token header may only pick among these.
    pub algorithms: Vec<Algorithm>,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        ValidatorConfig {
            issuer_templates: vec![
                "https://sts.windows.net/{tid}/".to_string(),
                "https://login.microsoftonline.com/{tid}/v2.0".to_string(),
            ],
            audiences: vec![
                "https://api.securitycenter.microsoft.com".to_string(),
                "https://api.security.microsoft.com".to_string(),
                // The WindowsDefenderATP application id, which v2.0 tokens carry as `aud`.
                "fc780465-2017-40d4-a0c5-307022471b92".to_string(),
                "https://securitycenter.onmicrosoft.com/windowsatpservice".to_string(),
            ],
            allowed_tenants: None,
            leeway: MAX_LEEWAY,
            algorithms: vec![Algorithm::RS256],
        }
    }
}

/// A configuration that would make validation unsafe or impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no signature algorithm configured")]
    NoAlgorithms,
    #[error("algorithm {0:?} is refused: HMAC keys are shared secrets and must never verify bearer tokens")]
    HmacRefused(Algorithm),
    #[error(
        "algorithm {0:?} is not supported: only RSA algorithms (RS256/384/512, PS256/384/512) are"
    )]
    UnsupportedAlgorithm(Algorithm),
    #[error("no issuer template configured")]
    NoIssuers,
    #[error("an issuer template is empty")]
    EmptyIssuer,
    #[error("no audience configured")]
    NoAudiences,
    #[error("an audience is empty")]
    EmptyAudience,
    #[error("the allowed-tenant list is empty, which would reject every token; leave it unset to allow all tenants")]
    EmptyTenantList,
    /// With several providers, one whose issuer does not name its tenants would vouch for
    /// every tenant, other providers' included.
    #[error(
        "the provider of issuer {0} could vouch for every tenant, while other providers are \
         configured: list the tenants it may vouch for (`tenants = [...]` in its \
         [[auth.providers]] entry) or, if it is a multi-tenant provider that guarantees `tid` \
         itself (such as Azure AD), allow it explicitly with `any_tenant = true`"
    )]
    ProviderForEveryTenant(String),
    #[error("the tenant list of the provider of issuer {0} is empty, which would reject every token it signs")]
    EmptyProviderTenants(String),
}

impl ValidatorConfig {
    /// Checks the policy and returns it with the leeway clamped.
    pub(crate) fn checked(mut self) -> Result<Self, ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        for alg in &self.algorithms {
            match alg.family() {
                AlgorithmFamily::Rsa => {}
                // An HMAC algorithm would let anyone holding the (public) verification key
                // forge tokens; `none` has no `Algorithm` variant so cannot be configured at all.
                AlgorithmFamily::Hmac => return Err(ConfigError::HmacRefused(*alg)),
                _ => return Err(ConfigError::UnsupportedAlgorithm(*alg)),
            }
        }
        if self.issuer_templates.is_empty() {
            return Err(ConfigError::NoIssuers);
        }
        if self.issuer_templates.iter().any(|i| i.trim().is_empty()) {
            return Err(ConfigError::EmptyIssuer);
        }
        if self.audiences.is_empty() {
            return Err(ConfigError::NoAudiences);
        }
        if self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(ConfigError::EmptyAudience);
        }
        if matches!(&self.allowed_tenants, Some(t) if t.is_empty()) {
            return Err(ConfigError::EmptyTenantList);
        }
        self.leeway = self.leeway.min(MAX_LEEWAY);
        self.algorithms.dedup();
        Ok(self)
    }
}
