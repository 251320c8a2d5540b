//! Bearer-token authentication for kbgap: Azure AD–style JWT validation into a [`Principal`],
//! MDE-worded permission checks, and a development issuer whose tokens take the same path.
//!
//! No clock (callers pass `now_unix`), no async runtime, no logging of tokens. The only network
//! access is [`RemoteJwks::refresh`], which fetches an identity provider's keys and which
//! callers run off their request path. The algorithm is pinned by [`ValidatorConfig`]; keys
//! come only from a [`KeySource`], never from the token (`jku`, `jwk`, `x5u` and `x5c` headers
//! are ignored). Validated tokens can be remembered in a [`TokenCache`].

mod config;
mod dev_issuer;
mod error;
mod keys;
mod principal;
mod remote;
#[cfg(feature = "test-support")]
pub mod testing;
mod token_cache;
mod validator;

pub use config::{ConfigError, ValidatorConfig, MAX_LEEWAY};
pub use dev_issuer::{
    issuer_for, DevIssuer, DevIssuerError, MintError, MintRequest, DEV_ISSUER_KEY_FILE,
    DEV_ISSUER_TEMPLATE,
};
pub use error::AuthError;
pub use keys::{JwksError, KeySource, StaticJwks, VerificationKey, MIN_RSA_BITS};
pub use principal::{Forbidden, Permission, Principal, PrincipalKind};
pub use remote::{
    check_url, JwksLocation, RefreshOutcome, RemoteJwks, RemoteJwksConfig, RemoteJwksError,
    DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_AGE, DEFAULT_REFRESH_COOLDOWN, MAX_DOCUMENT_BYTES,
    MAX_MAX_AGE,
};
pub use token_cache::{TokenCache, DEFAULT_TOKEN_CACHE_ENTRIES};
pub use validator::{
    bearer_token, tenants_named_by, TenantScope, TrustedIssuer, Validator, MAX_TOKEN_BYTES,
};

/// Re-exported so callers can configure algorithms without depending on `jsonwebtoken`.
pub use jsonwebtoken::Algorithm;
