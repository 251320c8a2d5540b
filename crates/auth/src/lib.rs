//! Bearer-token authentication for kbgap: Azure AD–style JWT validation into a [`Principal`],
//! MDE-worded permission checks, and a development issuer whose tokens take the same path.
//!
//! Pure library code: no HTTP, no clock (callers pass `now_unix`), no logging of tokens.
//! The algorithm is pinned by [`ValidatorConfig`]; keys come only from a [`KeySource`], never
//! from the token (`jku`, `jwk`, `x5u` and `x5c` headers are ignored).

mod config;
mod dev_issuer;
mod error;
mod keys;
mod principal;
mod validator;

pub use config::{ConfigError, ValidatorConfig, MAX_LEEWAY};
pub use dev_issuer::{
    issuer_for, DevIssuer, DevIssuerError, MintError, MintRequest, DEV_ISSUER_KEY_FILE,
    DEV_ISSUER_TEMPLATE,
};
pub use error::AuthError;
pub use keys::{JwksError, KeySource, StaticJwks, VerificationKey, MIN_RSA_BITS};
pub use principal::{Forbidden, Permission, Principal, PrincipalKind};
pub use validator::{bearer_token, Validator, MAX_TOKEN_BYTES};

/// Re-exported so callers can configure algorithms without depending on `jsonwebtoken`.
pub use jsonwebtoken::Algorithm;
