//! Explanations (a kbgap extension): why each KB is or is not missing on one machine, which
//! machines kbgap cannot decide for a software, and which run a Windows version that left
//! servicing. Role `Software.Read.All` or scope `Software.Read`; only the caller's tenant is
//! visible.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use kbgap_auth::Permission;
use kbgap_domain::{KbId, MachineId, SoftwareId, TenantId};
use kbgap_service::{EndOfServicingMachine, ExplanationReport};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::{blocking, known, software_id};
use crate::AppState;

fn kb_filter(query: Option<&str>) -> Result<Option<KbId>, ApiError> {
    for pair in query.unwrap_or("").split('&') {
        if let Some(v) = pair.strip_prefix("kb=") {
            return KbId::parse(v)
                .map(Some)
                .map_err(|e| ApiError::InvalidInput(format!("Invalid kb: {e}.")));
        }
    }
    Ok(None)
}

/// `GET /api/machines/{machineId}/missingkbs/explain[?kb=5034122]`. The id matches ignoring
/// case; the answer names the machine as stored.
pub async fn explain(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ExplanationReport>, ApiError> {
    caller.require(Permission::SoftwareRead)?;
    let id =
        MachineId::parse(&raw_id).map_err(|e| ApiError::InvalidInput(format!("Invalid {e}.")))?;
    let kb = kb_filter(query.as_deref())?;
    let tenant = caller.0.tenant.clone();
    let store = state.store.clone();
    let catalog = state.catalog.current();
    let target = id.clone();
    let found = blocking(move || {
        kbgap_service::explain_machine(store.as_ref(), &catalog, &tenant, &target, kb)
            .map(|e| e.map(|e| (e, catalog)))
            .map_err(ApiError::from)
    })
    .await?;
    // Another tenant's machine is as absent as one that does not exist: no existence oracle.
    let (found, catalog) =
        found.ok_or_else(|| ApiError::ResourceNotFound(format!("Machine {id} was not found")))?;
    Ok(Json(found.report(&catalog.catalog)))
}

/// A software's machines of one kind: `{software, machineCount, machines}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareMachines<T> {
    pub software: SoftwareId,
    pub machine_count: usize,
    pub machines: Vec<T>,
}

/// The tenant's machines of `list` for the software `{Id}`, 404 for a software no active
/// machine of the tenant has.
async fn software_machines<T: Send + 'static>(
    caller: Caller,
    state: AppState,
    raw_id: &str,
    list: fn(&dyn kbgap_store::Store, &TenantId, &SoftwareId) -> kbgap_service::Result<Vec<T>>,
) -> Result<Json<SoftwareMachines<T>>, ApiError> {
    caller.require(Permission::SoftwareRead)?;
    let software = software_id(raw_id)?;
    let tenant = caller.0.tenant.clone();
    let store = state.store.clone();
    let sw = software.clone();
    let machines = blocking(move || {
        known(store.as_ref(), &tenant, &sw)?;
        list(store.as_ref(), &tenant, &sw).map_err(ApiError::from)
    })
    .await?;
    Ok(Json(SoftwareMachines {
        software,
        machine_count: machines.len(),
        machines,
    }))
}

/// `GET /api/Software/{Id}/indeterminatemachines`: active machines for which kbgap could not
/// decide some applicable KB (no build revision and no complete KB list), which the MDE DTO
/// cannot carry.
pub async fn indeterminate(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<SoftwareMachines<MachineId>>, ApiError> {
    software_machines(
        caller,
        state,
        &raw_id,
        kbgap_service::indeterminate_machines,
    )
    .await
}

/// `GET /api/Software/{Id}/endofservicingmachines`: active machines with the software whose
/// Windows version, for their edition, left servicing, with the last update each could get
/// (MSRC names one product for every edition, so the MDE DTO cannot say it).
pub async fn end_of_servicing(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<SoftwareMachines<EndOfServicingMachine>>, ApiError> {
    software_machines(
        caller,
        state,
        &raw_id,
        kbgap_service::end_of_servicing_machines,
    )
    .await
}
