//! The tenant's software as MDE's software entity describes it (`GET /api/Software`,
//! `GET /api/Software/{Id}`, `GET /api/machines/{id}/software`), from the same counts
//! `getmissingkbs` answers from.

use std::collections::BTreeSet;

use kbgap_domain::{Catalog, MachineId, SoftwareId, TenantId};
use kbgap_store::Store;

use crate::{find_machine, parse_stored, CompiledCatalog, Result};

/// What kbgap knows of one software across the tenant's active machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftwareEntity {
    pub id: SoftwareId,
    /// Distinct CVEs fixed by the KBs missing for it on at least one active machine.
    pub weaknesses: u32,
    /// Active machines on which at least one KB of it is missing.
    pub exposed_machines: u64,
}

/// The figures of one software in the tenant, whether or not an active machine has it.
pub fn software_entity(
    store: &dyn Store,
    catalog: &Catalog,
    tenant: &TenantId,
    software: &SoftwareId,
) -> Result<SoftwareEntity> {
    let mut cves = BTreeSet::new();
    for count in store.missing_counts(tenant, software)? {
        cves.extend(catalog.cves_fixed([software], count.kb));
    }
    Ok(SoftwareEntity {
        id: software.clone(),
        weaknesses: cves.len() as u32,
        exposed_machines: store.exposed_machines(tenant, software)?,
    })
}

/// The software at least one active machine of the tenant has, sorted by id.
pub fn tenant_software(store: &dyn Store, tenant: &TenantId) -> Result<Vec<SoftwareId>> {
    Ok(store.tenant_software(tenant)?)
}

/// The software installed on one stored machine of the tenant (ids match ignoring case, see
/// [`find_machine`]), as the catalog's evaluation finds it, with the tenant's figures for
/// each. `None` when the tenant has no such machine.
pub fn machine_software(
    store: &dyn Store,
    catalog: &CompiledCatalog,
    tenant: &TenantId,
    machine: &MachineId,
) -> Result<Option<(MachineId, Vec<SoftwareEntity>)>> {
    let Some((id, json)) = find_machine(store, tenant, machine)? else {
        return Ok(None);
    };
    let snapshot = parse_stored(tenant, &id, &json)?;
    let evaluation = catalog.evaluate(&snapshot.facts()?);
    let entities = evaluation
        .software
        .iter()
        .map(|s| software_entity(store, &catalog.catalog, tenant, s))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((id, entities)))
}
