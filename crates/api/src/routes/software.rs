//! `GET /api/Software/{Id}/getmissingkbs`: MDE's missing-KB view of one software product.

use std::net::SocketAddr;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use kbgap_auth::Permission;
use kbgap_domain::SoftwareId;
use serde::Serialize;

use crate::answers::{Answer, Body as AnswerBody};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::odata::{base_url, missing_kbs_context, reject_system_options, ODATA_JSON};
use crate::routes::blocking;
use crate::AppState;

/// MDE's `PublicProductFixDto`; fields serialize in exactly this order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicProductFixDto {
    pub id: String,
    pub name: String,
    pub products_names: Vec<String>,
    pub url: String,
    pub machine_missed_on: u32,
    pub cve_addressed: u32,
}

pub async fn get_missing_kbs(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Permission::SoftwareRead)?;
    reject_system_options(query.as_deref())?;
    let software = SoftwareId::parse(&raw_id)
        .map_err(|e| ApiError::InvalidInput(format!("Invalid software id: {e}.")))?;
    let tenant = &caller.0.tenant;
    let base = request_base(&state, &request);
    let answer = match state.answers.get(tenant, &software) {
        Some(answer) => answer,
        None => {
            let epoch = state.answers.epoch();
            let (store, catalog) = (state.store.clone(), state.catalog.current());
            let (t, sw, b) = (tenant.clone(), software.clone(), base.clone());
            let answer =
                blocking(move || compute(store.as_ref(), &catalog.catalog, &t, &sw, b)).await?;
            state
                .answers
                .insert(tenant, &software, epoch, answer.clone());
            answer
        }
    };
    let Answer::Value(cached) = answer else {
        return Err(ApiError::ResourceNotFound(format!(
            "Software {raw_id} was not found"
        )));
    };
    let body = if cached.base == base {
        cached.body.clone()
    } else {
        body(&base, &cached.value)?
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    Ok(resp)
}

/// Where the client reached this server, for `@odata.context` (see [`base_url`]).
pub(crate) fn request_base(state: &AppState, request: &Request) -> String {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    base_url(
        state.config.public_base_url.as_deref(),
        request.headers(),
        peer,
        &state.config.trusted_proxies,
    )
}

/// The whole response body: `@odata.context` for `base`, then the `value` array.
pub(crate) fn body(base: &str, value: &[u8]) -> Result<Bytes, ApiError> {
    let context = serde_json::to_string(&missing_kbs_context(base)).map_err(ApiError::internal)?;
    let mut body = Vec::with_capacity(32 + context.len() + value.len());
    body.extend_from_slice(b"{\"@odata.context\":");
    body.extend_from_slice(context.as_bytes());
    body.extend_from_slice(b",\"value\":");
    body.extend_from_slice(value);
    body.push(b'}');
    Ok(body.into())
}

/// The answer as the store holds it now: the `value` array, serialized once for every call
/// until the inventory or the catalog changes.
fn compute(
    store: &dyn kbgap_store::Store,
    catalog: &kbgap_domain::Catalog,
    tenant: &kbgap_domain::TenantId,
    software: &SoftwareId,
    base: String,
) -> Result<Answer, ApiError> {
    let Some(rows) = kbgap_service::missing_kbs(store, catalog, tenant, software)? else {
        return Ok(Answer::Unknown);
    };
    let product = software.product_name().to_string();
    let value: Vec<PublicProductFixDto> = rows
        .into_iter()
        .map(|r| PublicProductFixDto {
            id: r.kb.to_string(),
            name: r.name,
            products_names: vec![product.clone()],
            url: r.url,
            machine_missed_on: r.machines,
            cve_addressed: r.cve_addressed,
        })
        .collect();
    let value: Bytes = serde_json::to_vec(&value)
        .map_err(ApiError::internal)?
        .into();
    let body = body(&base, &value)?;
    Ok(Answer::Value(Arc::new(AnswerBody { value, base, body })))
}
