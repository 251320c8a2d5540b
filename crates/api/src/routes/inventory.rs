//! Inventory ingestion (a kbgap extension): replace one machine, a batch, or delete one.
//! Needs the application role `Machine.ReadWrite.All`; writes only into the token's tenant.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kbgap_auth::Permission;
use kbgap_domain::MachineId;
use kbgap_inventory::{batch_entries, parse_batch, parse_snapshot, Snapshot};
use serde_json::json;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::blocking;
use crate::AppState;

#[derive(Debug, PartialEq, Eq)]
enum BodyKind {
    Json,
    NdJson,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(BodyKind::Json),
        "application/x-ndjson" | "application/ndjson" => Ok(BodyKind::NdJson),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type '{ct}' is not supported: send application/json or application/x-ndjson."
        ))),
    }
}

fn machine_id(raw: &str) -> Result<MachineId, ApiError> {
    MachineId::parse(raw).map_err(|e| ApiError::InvalidInput(format!("Invalid {e}.")))
}

async fn store(
    state: &AppState,
    caller: &Caller,
    snapshots: Vec<Snapshot>,
) -> Result<(), ApiError> {
    let tenant = caller.0.tenant.clone();
    let store = state.store.clone();
    let catalog = state.catalog.clone();
    let retention = state.config.retention;
    blocking(move || {
        kbgap_service::ingest(
            store.as_ref(),
            &catalog,
            &tenant,
            &snapshots,
            time::OffsetDateTime::now_utc(),
            retention,
        )
        .map_err(ApiError::from)
    })
    .await?;
    state.answers.invalidate();
    Ok(())
}

/// `PUT /api/inventory/machines/{machineId}`: replaces the machine's snapshot.
pub async fn put_machine(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Permission::MachineReadWrite)?;
    let id = machine_id(&raw_id)?;
    if body_kind(&headers)? != BodyKind::Json {
        return Err(ApiError::UnsupportedMediaType(
            "A single machine is sent as application/json.".into(),
        ));
    }
    let mut snapshot =
        parse_snapshot(&body).map_err(|e| ApiError::InvalidRequestBody(e.to_string()))?;
    match &snapshot.id {
        Some(body_id) if body_id != &id => {
            return Err(ApiError::InvalidRequestBody(format!(
                "id: '{body_id}' differs from the machine id in the path '{id}'"
            )))
        }
        _ => snapshot.id = Some(id.clone()),
    }
    store(&state, &caller, vec![snapshot]).await?;
    Ok((
        StatusCode::OK,
        Json(json!({"id": id.as_str(), "stored": true})),
    )
        .into_response())
}

/// `POST /api/inventory/machines`: a batch, all stored or none.
pub async fn post_machines(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Permission::MachineReadWrite)?;
    let ndjson = body_kind(&headers)? == BodyKind::NdJson;
    let allowed = state.config.max_batch;
    // Parsing a full batch takes tens of milliseconds: off the request threads.
    let snapshots = blocking(move || {
        let entries = batch_entries(&body, ndjson).map_err(|e| {
            ApiError::InvalidRequestBody(if e.path == "." {
                e.message
            } else {
                e.to_string()
            })
        })?;
        if entries.len() > allowed {
            return Err(ApiError::MaximumBatchSizeExceeded {
                received: entries.len(),
                allowed,
            });
        }
        let snapshots =
            parse_batch(&entries).map_err(|e| ApiError::InvalidRequestBody(e.to_string()))?;
        for (i, s) in snapshots.iter().enumerate() {
            if s.id.is_none() {
                return Err(ApiError::InvalidRequestBody(format!(
                    "[{i}].id: missing machine id"
                )));
            }
        }
        Ok(snapshots)
    })
    .await?;
    let n = snapshots.len();
    store(&state, &caller, snapshots).await?;
    Ok((StatusCode::OK, Json(json!({"stored": n}))).into_response())
}

/// `DELETE /api/inventory/machines/{machineId}`.
pub async fn delete_machine(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Permission::MachineReadWrite)?;
    let id = machine_id(&raw_id)?;
    let tenant = caller.0.tenant.clone();
    let store = state.store.clone();
    let target = id.clone();
    let existed = blocking(move || {
        store
            .delete_machine(&tenant, &target)
            .map_err(|e| ApiError::from(kbgap_service::ServiceError::from(e)))
    })
    .await?;
    if existed {
        state.answers.invalidate();
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::ResourceNotFound(format!(
            "Machine {id} was not found"
        )))
    }
}
