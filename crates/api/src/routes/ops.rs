//! Operations endpoints, without authentication: liveness, readiness and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::routes::blocking;
use crate::AppState;

/// The process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Storage answers, a catalog is loaded, and every identity provider's signing keys are
/// loaded (without them every token of that provider is refused).
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let store = state.store.clone();
    blocking(move || {
        store.ping().map_err(|e| {
            tracing::warn!(error = %e, "readiness: storage unreachable");
            // The reason names the server (host:port) and the failure, never credentials.
            ApiError::ServiceUnavailable(format!("Storage is unreachable: {e}."))
        })
    })
    .await?;
    let keyless = state.security.sources_without_keys();
    if !keyless.is_empty() {
        return Err(ApiError::ServiceUnavailable(format!(
            "No signing keys are loaded for identity provider {}; tokens it issued are refused \
             until its keys can be fetched.",
            keyless.join(", ")
        )));
    }
    let catalog = state.catalog.current();
    if catalog.generation == 0 {
        return Err(ApiError::ServiceUnavailable(
            "No catalog has been imported yet; run `kbgap catalog import`.".into(),
        ));
    }
    Ok(Json(json!({
        "status": "ready",
        "catalogGeneration": catalog.generation,
        "catalogKbs": catalog.catalog.kb_count(),
    })))
}

/// The OpenAPI description of the API.
pub async fn openapi() -> Response {
    let mut resp = include_str!("../../openapi.json").into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}
