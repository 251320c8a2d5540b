//! `GET /api/Software/{Id}/getmissingkbs`: MDE's missing-KB view of one software product.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use kbgap_auth::Permission;
use kbgap_domain::SoftwareId;
use serde::Serialize;

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

#[derive(Debug, Serialize)]
struct Collection {
    #[serde(rename = "@odata.context")]
    context: String,
    value: Vec<PublicProductFixDto>,
}

pub async fn get_missing_kbs(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Response, ApiError> {
    caller.require(Permission::SoftwareRead)?;
    reject_system_options(query.as_deref())?;
    let software = SoftwareId::parse(&raw_id)
        .map_err(|e| ApiError::InvalidInput(format!("Invalid software id: {e}.")))?;
    let tenant = caller.0.tenant.clone();
    let store = state.store.clone();
    let catalog = state.catalog.current();
    let sw = software.clone();
    let rows = blocking(move || {
        kbgap_service::missing_kbs(store.as_ref(), &catalog.catalog, &tenant, &sw)
            .map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::ResourceNotFound(format!("Software {raw_id} was not found")))?;

    let product = software.product_name().to_string();
    let peer = connect.map(|Extension(ConnectInfo(addr))| addr.ip());
    let base = base_url(
        state.config.public_base_url.as_deref(),
        &headers,
        peer,
        &state.config.trusted_proxies,
    );
    let body = Collection {
        context: missing_kbs_context(&base),
        value: rows
            .into_iter()
            .map(|r| PublicProductFixDto {
                id: r.kb.to_string(),
                name: r.name,
                products_names: vec![product.clone()],
                url: r.url,
                machine_missed_on: r.machines,
                cve_addressed: r.cve_addressed,
            })
            .collect(),
    };
    let json = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    let mut resp = json.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    Ok(resp)
}
