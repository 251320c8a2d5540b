//! Fuzzes path and query decoding through the real middleware stack (path normalization,
//! header limits, routing, percent-decoding, software id and OData option checks): every
//! request must get a response, and every error response the MDE envelope.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

async fn software(
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<String, kbgap_api::error::ApiError> {
    kbgap_api::odata::reject_system_options(q.as_deref())?;
    let id = kbgap_domain::SoftwareId::parse(&id).map_err(|e| {
        kbgap_api::error::ApiError::InvalidInput(format!("Invalid software id: {e}."))
    })?;
    Ok(id.to_string())
}

async fn machine(Path(id): Path<String>) -> Result<String, kbgap_api::error::ApiError> {
    let id = kbgap_domain::MachineId::parse(&id)
        .map_err(|e| kbgap_api::error::ApiError::InvalidInput(format!("Invalid {e}.")))?;
    Ok(id.to_string())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let uri = if text.starts_with('/') {
        text.to_string()
    } else {
        format!("/{text}")
    };
    let Ok(req) = Request::get(uri.as_str()).body(Body::empty()) else {
        return;
    };
    let router = Router::new()
        .route("/api/Software/{id}/getmissingkbs", get(software))
        .route("/api/inventory/machines/{id}", get(machine));
    let app = kbgap_api::service(router, 64 * 1024);
    runtime().block_on(async move {
        let resp = app.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        if status.is_client_error() || status.is_server_error() {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("error body is JSON");
            assert!(v["error"]["code"].is_string(), "no envelope: {v}");
        }
        assert_ne!(status.as_u16(), 500, "a path made the server fail: {uri}");
    });
});
