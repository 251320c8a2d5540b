//! `GET /api/machines/{machineId}/getmissingkbs`: MDE's missing-KB view of one machine, the
//! same `PublicProductFixDto` collection as the software route, over every software on the
//! machine. Application role `Software.Read.All` only; another tenant's machine is as absent
//! as one that does not exist.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use kbgap_auth::Permission;
use kbgap_domain::MachineId;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::odata::{reject_system_options, ODATA_JSON};
use crate::routes::blocking;
use crate::routes::software::{body, request_base, PublicProductFixDto};
use crate::AppState;

pub async fn get_missing_kbs(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Permission::SoftwareReadApplication)?;
    reject_system_options(query.as_deref())?;
    let id =
        MachineId::parse(&raw_id).map_err(|e| ApiError::InvalidInput(format!("Invalid {e}.")))?;
    let base = request_base(&state, &request);
    let tenant = caller.0.tenant.clone();
    let (store, catalog) = (state.store.clone(), state.catalog.current());
    let target = id.clone();
    let found = blocking(move || {
        kbgap_service::machine_missing_kbs(store.as_ref(), &catalog, &tenant, &target)
            .map_err(ApiError::from)
    })
    .await?;
    let Some((_, kbs)) = found else {
        return Err(ApiError::ResourceNotFound(format!(
            "Machine {id} was not found"
        )));
    };
    let value: Vec<PublicProductFixDto> = kbs
        .into_iter()
        .map(|k| PublicProductFixDto {
            id: k.kb.to_string(),
            name: k.name,
            products_names: k
                .software
                .iter()
                .map(|s| s.product_name().to_string())
                .collect(),
            url: k.url,
            machine_missed_on: 1,
            cve_addressed: k.cve_addressed,
        })
        .collect();
    let value = serde_json::to_vec(&value).map_err(ApiError::internal)?;
    let body = body(&base, &value)?;
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    Ok(resp)
}
