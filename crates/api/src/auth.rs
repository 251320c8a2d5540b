//! The authenticated caller as an extractor: validates the bearer token with the one
//! validator (production and development tokens alike), records the caller for the log and
//! applies the caller's rate limit ([`crate::security`]).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kbgap_auth::{Permission, Principal};

use crate::error::ApiError;
use crate::AppState;

/// A caller whose token validated. Handlers check permissions with [`Caller::require`].
pub struct Caller(pub Arc<Principal>);

impl Caller {
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        self.0
            .require(permission)
            .map_err(|f| ApiError::Forbidden(f.message().to_string()))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = crate::security::authenticate(parts, state).await?;
        Ok(Caller(principal))
    }
}
