//! One machine's missing KBs, as MDE's `GET /api/machines/{id}/getmissingkbs` answers them:
//! every software on the machine, each KB once.

use std::collections::BTreeMap;

use kbgap_domain::{KbId, MachineId, SoftwareId, TenantId};
use kbgap_store::Store;

use crate::{find_machine, CompiledCatalog, Result};

/// One KB missing on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineMissingKb {
    pub kb: KbId,
    pub name: String,
    pub url: String,
    /// The software on the machine the KB is missing for, by id, sorted.
    pub software: Vec<SoftwareId>,
    /// Distinct CVEs the KB fixes in the products of that software.
    pub cve_addressed: u32,
}

/// The missing KBs of one stored machine of the tenant (ids match ignoring case, as
/// [`find_machine`] does), evaluated against the loaded catalog, in MDE's order
/// (`cveAddressed` descending, then KB ascending; `machineMissedOn` is 1 for each). `None`
/// when the tenant has no such machine. The machine's own answer whether or not it is active:
/// it is asked for by id.
pub fn machine_missing_kbs(
    store: &dyn Store,
    catalog: &CompiledCatalog,
    tenant: &TenantId,
    machine: &MachineId,
) -> Result<Option<(MachineId, Vec<MachineMissingKb>)>> {
    let Some((id, json)) = find_machine(store, tenant, machine)? else {
        return Ok(None);
    };
    let snapshot = crate::parse_stored(tenant, &id, &json)?;
    let evaluation = catalog.evaluate(&snapshot.facts()?);
    let mut by_kb: BTreeMap<KbId, Vec<SoftwareId>> = BTreeMap::new();
    for (software, kbs) in &evaluation.missing {
        for kb in kbs {
            by_kb.entry(*kb).or_default().push(software.clone());
        }
    }
    let mut out: Vec<MachineMissingKb> = by_kb
        .into_iter()
        .map(|(kb, software)| {
            let info = catalog.catalog.kb(kb);
            MachineMissingKb {
                kb,
                name: info.map(|i| i.name.clone()).unwrap_or_default(),
                url: info.map_or_else(|| kbgap_domain::catalog::catalog_url(kb), |i| i.url()),
                cve_addressed: catalog.catalog.cves_fixed(&software, kb).len() as u32,
                software,
            }
        })
        .collect();
    out.sort_by(|a, b| b.cve_addressed.cmp(&a.cve_addressed).then(a.kb.cmp(&b.kb)));
    Ok(Some((id, out)))
}
