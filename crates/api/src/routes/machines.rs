//! Explanations (a kbgap extension): why each KB is or is not missing on one machine, and which
//! machines kbgap cannot decide for a software. Role `Software.Read.All` or scope
//! `Software.Read`; only the caller's tenant is visible.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use kbgap_auth::Permission;
use kbgap_domain::engine::KbExplanation;
use kbgap_domain::{KbId, MachineId, SoftwareId};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::blocking;
use crate::AppState;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplanationDto {
    pub machine_id: String,
    pub catalog_generation: i64,
    pub os: Option<kbgap_domain::OsFacts>,
    pub pending_restart: bool,
    pub missing: Vec<SoftwareKbs>,
    pub indeterminate: Vec<SoftwareId>,
    pub kbs: Vec<KbDto>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareKbs {
    pub software: SoftwareId,
    pub kbs: Vec<KbId>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KbDto {
    pub name: Option<String>,
    pub machine_revision: Option<u32>,
    #[serde(flatten)]
    pub explanation: KbExplanation,
}

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

/// `GET /api/machines/{machineId}/missingkbs/explain[?kb=5034122]`.
pub async fn explain(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ExplanationDto>, ApiError> {
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
    let ev = &found.explanation.evaluation;
    let revision = found.facts.os.as_ref().and_then(|o| o.revision);
    Ok(Json(ExplanationDto {
        machine_id: found.machine.to_string(),
        catalog_generation: found.generation,
        os: found.facts.os.clone(),
        pending_restart: ev.pending_restart,
        missing: ev
            .missing
            .iter()
            .map(|(s, k)| SoftwareKbs {
                software: s.clone(),
                kbs: k.iter().copied().collect(),
            })
            .collect(),
        indeterminate: ev.indeterminate.iter().cloned().collect(),
        kbs: found
            .explanation
            .kbs
            .into_iter()
            .map(|k| KbDto {
                name: catalog.catalog.kb(k.verdict.kb).map(|i| i.name.clone()),
                machine_revision: revision,
                explanation: k,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndeterminateDto {
    pub software: SoftwareId,
    pub machine_count: usize,
    pub machines: Vec<MachineId>,
}

/// `GET /api/Software/{Id}/indeterminatemachines`: active machines for which kbgap could not
/// decide some applicable KB (no build revision and no complete KB list), which the MDE DTO
/// cannot carry.
pub async fn indeterminate(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<IndeterminateDto>, ApiError> {
    caller.require(Permission::SoftwareRead)?;
    let software = SoftwareId::parse(&raw_id)
        .map_err(|e| ApiError::InvalidInput(format!("Invalid software id: {e}.")))?;
    let tenant = caller.0.tenant.clone();
    let store = state.store.clone();
    let sw = software.clone();
    let machines = blocking(move || {
        kbgap_service::indeterminate_machines(store.as_ref(), &tenant, &sw).map_err(ApiError::from)
    })
    .await?;
    Ok(Json(IndeterminateDto {
        software,
        machine_count: machines.len(),
        machines,
    }))
}
