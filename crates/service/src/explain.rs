//! Explanations (`kbgap explain`, `GET /api/machines/{id}/missingkbs/explain`): one stored
//! machine's evaluation with its evidence, and the machines kbgap cannot decide for a software.

use kbgap_domain::{KbId, MachineFacts, MachineId, SoftwareId, TenantId};
use kbgap_store::Store;

use crate::{CompiledCatalog, Result, ServiceError};

/// One stored machine's evaluation with its evidence.
#[derive(Debug, Clone)]
pub struct MachineExplanation {
    pub machine: MachineId,
    pub facts: MachineFacts,
    pub generation: i64,
    pub explanation: kbgap_domain::Explanation,
}

/// Explains a stored machine of the tenant against the loaded catalog, for every applicable
/// KB or only `kb`. `None` when the tenant has no such machine.
pub fn explain_machine(
    store: &dyn Store,
    catalog: &CompiledCatalog,
    tenant: &TenantId,
    machine: &MachineId,
    kb: Option<KbId>,
) -> Result<Option<MachineExplanation>> {
    let Some(json) = store.machine_snapshot(tenant, machine)? else {
        return Ok(None);
    };
    let snapshot = kbgap_inventory::parse_snapshot(json.as_bytes()).map_err(|e| {
        ServiceError::StoredSnapshot {
            tenant: tenant.clone(),
            machine: machine.clone(),
            error: e.to_string(),
        }
    })?;
    let facts = snapshot.facts()?;
    let mut explanation = kbgap_domain::explain(&catalog.catalog, &facts);
    if let Some(kb) = kb {
        explanation.kbs.retain(|k| k.verdict.kb == kb);
    }
    Ok(Some(MachineExplanation {
        machine: machine.clone(),
        facts,
        generation: catalog.generation,
        explanation,
    }))
}

/// The tenant's active machines that are indeterminate for a software: kbgap could not tell
/// whether some applicable KB is present, so they count as missing nothing.
pub fn indeterminate_machines(
    store: &dyn Store,
    tenant: &TenantId,
    software: &SoftwareId,
) -> Result<Vec<MachineId>> {
    Ok(store.indeterminate_machines(tenant, software)?)
}
