//! The authenticated caller as an extractor: validates the bearer token with the one
//! validator (production and development tokens alike), applies the caller's rate limit
//! ([`crate::security`]) and records the tenant for the log.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kbgap_auth::{Permission, Principal};

use crate::error::ApiError;
use crate::middleware::TenantSlot;
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
        if let Some(slot) = parts.extensions.get::<TenantSlot>() {
            if let Ok(mut t) = slot.0.lock() {
                *t = Some(principal.tenant.clone());
            }
        }
        Ok(Caller(principal))
    }
}
