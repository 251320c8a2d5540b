//! MDE's software entity: `GET /api/Software` (the tenant's software inventory),
//! `GET /api/Software/{Id}` and `GET /api/machines/{machineId}/software`. Role
//! `Software.Read.All` or scope `Software.Read`; only the caller's tenant is visible.
//!
//! `weaknesses` and `exposedMachines` come from the counts `getmissingkbs` answers from:
//! the distinct CVEs fixed by the KBs missing on the tenant's active machines, and the active
//! machines missing at least one. `publicExploit`, `activeAlert` and `impactScore` are
//! Defender's own assessments, which kbgap does not have: `null`.

use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use kbgap_auth::Permission;
use kbgap_domain::{MachineId, SoftwareId};
use kbgap_service::SoftwareEntity;
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::odata::filter::{Kind, Record, Value};
use crate::odata::{context, odata_json, reject_system_options, Entity, ListOptions, Page};
use crate::routes::software::request_base;
use crate::routes::{blocking, known, software_id};
use crate::AppState;

/// The properties MDE filters the software list on.
const FILTERABLE: &[(&str, Kind)] = &[
    ("id", Kind::String),
    ("name", Kind::String),
    ("vendor", Kind::String),
];

/// MDE's software entity; fields serialize in exactly this order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareDto {
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub weaknesses: u32,
    pub public_exploit: Option<bool>,
    pub active_alert: Option<bool>,
    pub exposed_machines: u64,
    pub impact_score: Option<f64>,
}

impl From<&SoftwareEntity> for SoftwareDto {
    fn from(s: &SoftwareEntity) -> SoftwareDto {
        SoftwareDto {
            id: s.id.to_string(),
            name: s.id.product_name().to_string(),
            vendor: s.id.vendor().to_string(),
            weaknesses: s.weaknesses,
            public_exploit: None,
            active_alert: None,
            exposed_machines: s.exposed_machines,
            impact_score: None,
        }
    }
}

struct Filtered<'a>(&'a SoftwareId);

impl Record for Filtered<'_> {
    fn value(&self, property: &str) -> Value<'_> {
        match property {
            "id" => Value::String(Some(self.0.as_str())),
            "name" => Value::String(Some(self.0.product_name())),
            "vendor" => Value::String(Some(self.0.vendor())),
            _ => Value::String(None),
        }
    }
}

/// `GET /api/Software`: in id order; the figures are computed for the page only.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Permission::SoftwareRead)?;
    let options = ListOptions::parse(query.as_deref(), FILTERABLE)?;
    let base = request_base(&state, &request);
    let take = options.take(state.config.page_size);
    let (store, catalog, tenant) = (
        state.store.clone(),
        state.catalog.current(),
        caller.0.tenant.clone(),
    );
    let (filter, skip) = (options.filter.clone(), options.skip);
    let (page, more) = blocking(move || {
        let mut matching = kbgap_service::tenant_software(store.as_ref(), &tenant)?
            .into_iter()
            .filter(|s| filter.as_ref().is_none_or(|f| f.matches(&Filtered(s))))
            .skip(skip);
        let page: Vec<SoftwareId> = matching.by_ref().take(take).collect();
        let more = matching.next().is_some();
        let page = page
            .iter()
            .map(|s| kbgap_service::software_entity(store.as_ref(), &catalog.catalog, &tenant, s))
            .collect::<kbgap_service::Result<Vec<_>>>()?;
        Ok::<_, ApiError>((page, more))
    })
    .await?;
    let next_link = more
        .then(|| options.next_link(&base, "/api/Software", page.len()))
        .flatten();
    odata_json(&Page {
        context: context(&base, "Software"),
        value: page.iter().map(SoftwareDto::from).collect(),
        next_link,
    })
}

/// `GET /api/Software/{Id}`: 404 for a software no active machine of the tenant has.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Permission::SoftwareRead)?;
    reject_system_options(query.as_deref())?;
    let software = software_id(&raw_id)?;
    let base = request_base(&state, &request);
    let (store, catalog, tenant) = (
        state.store.clone(),
        state.catalog.current(),
        caller.0.tenant.clone(),
    );
    let entity = blocking(move || {
        known(store.as_ref(), &tenant, &software)?;
        Ok(kbgap_service::software_entity(
            store.as_ref(),
            &catalog.catalog,
            &tenant,
            &software,
        )?)
    })
    .await?;
    odata_json(&Entity {
        context: context(&base, "Software/$entity"),
        entity: SoftwareDto::from(&entity),
    })
}

/// `GET /api/machines/{machineId}/software`: the software on one machine, with the tenant's
/// figures for each; another tenant's machine is as absent as one that does not exist.
pub async fn of_machine(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Permission::SoftwareRead)?;
    reject_system_options(query.as_deref())?;
    let id =
        MachineId::parse(&raw_id).map_err(|e| ApiError::InvalidInput(format!("Invalid {e}.")))?;
    let base = request_base(&state, &request);
    let (store, catalog, tenant) = (
        state.store.clone(),
        state.catalog.current(),
        caller.0.tenant.clone(),
    );
    let target = id.clone();
    let found = blocking(move || {
        Ok(kbgap_service::machine_software(
            store.as_ref(),
            &catalog,
            &tenant,
            &target,
        )?)
    })
    .await?;
    let (_, software) =
        found.ok_or_else(|| ApiError::ResourceNotFound(format!("Machine {id} was not found")))?;
    odata_json(&Page {
        context: context(&base, "Software"),
        value: software.iter().map(SoftwareDto::from).collect(),
        next_link: None,
    })
}
