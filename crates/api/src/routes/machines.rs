//! `GET /api/machines` and `GET /api/machines/{id}`: the tenant's machines as MDE's machine
//! entity, with the fields kbgap knows and `null` (or `[]`) for those only Defender's sensor
//! could tell (IP addresses, risk, exposure, Entra ID join, tags, onboarding). Role
//! `Machine.Read.All` or `Machine.ReadWrite.All`, or scope `Machine.Read` or
//! `Machine.ReadWrite`; only the caller's tenant is visible.
//!
//! The list supports `$filter` on the properties MDE documents for it, `$top` (at most
//! 10,000) and `$skip`, in id order; an answer carries at most the configured page size and
//! `@odata.nextLink` leads on.

use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use kbgap_auth::Permission;
use kbgap_domain::MachineId;
use kbgap_service::MachineEntity;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::odata::filter::{Kind, Record, Value};
use crate::odata::{context, odata_json, reject_system_options, Entity, ListOptions, Page};
use crate::routes::blocking;
use crate::routes::software::request_base;
use crate::AppState;

/// The properties MDE filters the machine list on, with their types.
const FILTERABLE: &[(&str, Kind)] = &[
    ("computerDnsName", Kind::String),
    ("id", Kind::String),
    ("version", Kind::String),
    ("deviceValue", Kind::String),
    ("aadDeviceId", Kind::String),
    ("machineTags", Kind::Strings),
    ("lastSeen", Kind::DateTime),
    ("exposureLevel", Kind::String),
    ("onboardingStatus", Kind::String),
    ("lastIpAddress", Kind::String),
    ("healthStatus", Kind::String),
    ("osPlatform", Kind::String),
    ("riskScore", Kind::String),
    ("rbacGroupId", Kind::Number),
];

/// MDE's machine entity; fields serialize in exactly this order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineDto {
    pub id: String,
    pub computer_dns_name: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: String,
    pub os_platform: String,
    pub os_version: String,
    pub os_processor: String,
    pub version: Option<String>,
    pub last_ip_address: Option<String>,
    pub last_external_ip_address: Option<String>,
    pub os_build: Option<u32>,
    pub health_status: &'static str,
    pub device_value: Option<String>,
    pub rbac_group_id: Option<i64>,
    pub rbac_group_name: Option<String>,
    pub risk_score: Option<String>,
    pub exposure_level: Option<String>,
    pub is_aad_joined: Option<bool>,
    pub aad_device_id: Option<String>,
    pub machine_tags: Vec<String>,
    pub onboarding_status: Option<String>,
    pub os_architecture: Option<&'static str>,
}

fn health(m: &MachineEntity) -> &'static str {
    if m.active {
        "Active"
    } else {
        "Inactive"
    }
}

impl From<&MachineEntity> for MachineDto {
    fn from(m: &MachineEntity) -> MachineDto {
        MachineDto {
            id: m.id.to_string(),
            computer_dns_name: m.computer_dns_name.clone(),
            first_seen: None,
            last_seen: m.last_seen.format(&Rfc3339).unwrap_or_default(),
            os_platform: m.os_platform.clone(),
            os_version: m.os_version.clone(),
            os_processor: m.os_architecture.clone(),
            version: m.version.clone(),
            last_ip_address: None,
            last_external_ip_address: None,
            os_build: m.os_build,
            health_status: health(m),
            device_value: None,
            rbac_group_id: None,
            rbac_group_name: m.device_group.clone(),
            risk_score: None,
            exposure_level: None,
            is_aad_joined: None,
            aad_device_id: None,
            machine_tags: Vec::new(),
            onboarding_status: None,
            os_architecture: match m.os_architecture.to_ascii_lowercase().as_str() {
                "x64" | "amd64" | "arm64" => Some("64-bit"),
                "x86" => Some("32-bit"),
                _ => None,
            },
        }
    }
}

/// A machine as `$filter` reads it: what kbgap does not know is `null` (an empty tag list).
struct Filtered<'a>(&'a MachineEntity);

impl Record for Filtered<'_> {
    fn value(&self, property: &str) -> Value<'_> {
        let m = self.0;
        match property {
            "computerDnsName" => Value::String(m.computer_dns_name.as_deref()),
            "id" => Value::String(Some(m.id.as_str())),
            "version" => Value::String(m.version.as_deref()),
            "lastSeen" => Value::DateTime(Some(m.last_seen)),
            "healthStatus" => Value::String(Some(health(m))),
            "osPlatform" => Value::String(Some(&m.os_platform)),
            "machineTags" => Value::Strings(&[]),
            "rbacGroupId" => Value::Number(None),
            _ => Value::String(None),
        }
    }
}

fn active_since(state: &AppState) -> i64 {
    state
        .config
        .retention
        .active_since(OffsetDateTime::now_utc())
}

/// `GET /api/machines`.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Permission::MachineRead)?;
    let options = ListOptions::parse(query.as_deref(), FILTERABLE)?;
    let base = request_base(&state, &request);
    let take = options.take(state.config.page_size);
    let (store, tenant, since) = (
        state.store.clone(),
        caller.0.tenant.clone(),
        active_since(&state),
    );
    let filter = options.filter.clone();
    let skip = options.skip;
    let (machines, more) = blocking(move || {
        let keep = |m: &MachineEntity| filter.as_ref().is_none_or(|f| f.matches(&Filtered(m)));
        kbgap_service::list_machines(store.as_ref(), &tenant, since, keep, skip, take)
            .map_err(ApiError::from)
    })
    .await?;
    let next_link = more
        .then(|| options.next_link(&base, "/api/machines", machines.len()))
        .flatten();
    odata_json(&Page {
        context: context(&base, "Machines"),
        value: machines.iter().map(MachineDto::from).collect(),
        next_link,
    })
}

/// `GET /api/machines/{id}`: one machine, its id matched ignoring case.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Permission::MachineRead)?;
    reject_system_options(query.as_deref())?;
    let id =
        MachineId::parse(&raw_id).map_err(|e| ApiError::InvalidInput(format!("Invalid {e}.")))?;
    let base = request_base(&state, &request);
    let (store, tenant, since) = (
        state.store.clone(),
        caller.0.tenant.clone(),
        active_since(&state),
    );
    let target = id.clone();
    let found = blocking(move || {
        kbgap_service::machine_entity(store.as_ref(), &tenant, &target, since)
            .map_err(ApiError::from)
    })
    .await?;
    // Another tenant's machine is as absent as one that does not exist.
    let machine =
        found.ok_or_else(|| ApiError::ResourceNotFound(format!("Machine {id} was not found")))?;
    odata_json(&Entity {
        context: context(&base, "Machines/$entity"),
        entity: MachineDto::from(&machine),
    })
}
