//! The development issuer's OpenID discovery document and JWKS, served only in development
//! mode, so tools that discover keys work against a local kbgap.

use axum::extract::{Path, State};
use axum::Json;
use kbgap_auth::issuer_for;
use kbgap_domain::TenantId;

use crate::error::ApiError;
use crate::AppState;

/// The JWKS path, relative to the server.
pub const JWKS_PATH: &str = "/discovery/v2.0/keys";

fn issuer(state: &AppState) -> Result<&kbgap_auth::DevIssuer, ApiError> {
    state
        .dev_issuer
        .as_deref()
        .ok_or_else(|| ApiError::NotFound("The requested resource does not exist.".into()))
}

pub async fn jwks(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(issuer(&state)?.jwks()))
}

pub async fn discovery(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dev = issuer(&state)?;
    let tenant = TenantId::parse(&tenant)
        .map_err(|e| ApiError::InvalidInput(format!("Invalid tenant: {e}.")))?;
    let base = state
        .config
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.listen));
    let iss = issuer_for(&state.config.dev_issuer_template, &tenant);
    Ok(Json(dev.discovery(&iss, &format!("{base}{JWKS_PATH}"))))
}
