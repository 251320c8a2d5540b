//! Explanations (`kbgap explain`, `GET /api/machines/{id}/missingkbs/explain`): one stored
//! machine's evaluation with its evidence, and the machines kbgap cannot decide for a software.
//!
//! [`ExplanationReport`] is the one JSON form of an explanation: the API answers it and
//! `kbgap explain --json` prints it.

use std::collections::BTreeMap;

use kbgap_domain::engine::{KbExplanation, Outcome};
use kbgap_domain::{
    Arch, Catalog, InstallType, KbId, MachineFacts, MachineId, SoftwareId, TenantId,
};
use kbgap_store::Store;
use serde::Serialize;

use crate::{CompiledCatalog, Result, ServiceError};

/// One stored machine's evaluation with its evidence.
#[derive(Debug, Clone)]
pub struct MachineExplanation {
    /// The machine's id as stored (the one asked for may differ in case).
    pub machine: MachineId,
    pub facts: MachineFacts,
    pub generation: i64,
    pub explanation: kbgap_domain::Explanation,
}

/// The tenant's stored machine with this id: the exact id, else the one machine whose id
/// differs from it only in case (host names are case-insensitive, and imports store them
/// lowercased). `None` when there is none; an error when several differ only in case.
pub fn find_machine(
    store: &dyn Store,
    tenant: &TenantId,
    machine: &MachineId,
) -> Result<Option<(MachineId, String)>> {
    if let Some(json) = store.machine_snapshot(tenant, machine)? {
        return Ok(Some((machine.clone(), json)));
    }
    let named = store.machines_named(tenant, machine)?;
    match named.as_slice() {
        [] => Ok(None),
        [one] => Ok(store
            .machine_snapshot(tenant, one)?
            .map(|json| (one.clone(), json))),
        _ => Err(ServiceError::AmbiguousMachine {
            given: machine.clone(),
            candidates: named,
        }),
    }
}

/// Explains a stored machine of the tenant against the loaded catalog, for every applicable
/// KB or only `kb`. `None` when the tenant has no such machine (ids match ignoring case, see
/// [`find_machine`]).
pub fn explain_machine(
    store: &dyn Store,
    catalog: &CompiledCatalog,
    tenant: &TenantId,
    machine: &MachineId,
    kb: Option<KbId>,
) -> Result<Option<MachineExplanation>> {
    let Some((machine, json)) = find_machine(store, tenant, machine)? else {
        return Ok(None);
    };
    let snapshot = crate::parse_stored(tenant, &machine, &json)?;
    let facts = snapshot.facts()?;
    let mut explanation = kbgap_domain::explain(&catalog.catalog, &facts);
    if let Some(kb) = kb {
        explanation.kbs.retain(|k| k.verdict.kb == kb);
    }
    Ok(Some(MachineExplanation {
        machine,
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

/// An explanation as the API answers it and `kbgap explain --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplanationReport {
    /// The machine's id as stored.
    pub machine_id: MachineId,
    pub catalog_generation: i64,
    pub os: Option<OsReport>,
    pub pending_restart: bool,
    /// The missing KBs per software: what `getmissingkbs` counts.
    pub missing: Vec<SoftwareKbs>,
    /// Software for which an unknown KB could change the answer.
    pub indeterminate: Vec<SoftwareId>,
    /// Per software: what became of its applicable KBs.
    pub by_software: Vec<SoftwareSummary>,
    /// Every applicable KB with its verdict and evidence.
    pub kbs: Vec<KbReport>,
}

/// The machine's operating system as evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OsReport {
    pub software: SoftwareId,
    pub build: u32,
    pub revision: Option<u32>,
    pub arch: Arch,
    pub install_type: InstallType,
    pub hotpatch_enrolled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareKbs {
    pub software: SoftwareId,
    pub kbs: Vec<KbId>,
}

/// What became of one software's applicable KBs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareSummary {
    pub software: SoftwareId,
    /// Reported missing.
    pub missing: Vec<KbId>,
    /// Neither proven present nor absent: never counted as missing.
    pub unknown: Vec<KbId>,
    /// Unsatisfied but not reported: superseded by a reported KB, every CVE closed by other
    /// updates, or an alternative to what is reported.
    pub not_reported: Vec<KbId>,
    /// How many applicable KBs are present.
    pub satisfied: usize,
    pub indeterminate: bool,
}

/// One applicable KB: its release document's title, the machine's revision and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KbReport {
    pub name: Option<String>,
    pub machine_revision: Option<u32>,
    #[serde(flatten)]
    pub explanation: KbExplanation,
}

impl MachineExplanation {
    /// The explanation in its one JSON form; KB names come from `catalog`.
    pub fn report(&self, catalog: &Catalog) -> ExplanationReport {
        let ev = &self.explanation.evaluation;
        let revision = self.facts.os.as_ref().and_then(|o| o.revision);
        let mut by_software: BTreeMap<&SoftwareId, SoftwareSummary> = BTreeMap::new();
        for k in &self.explanation.kbs {
            for o in &k.outcomes {
                let s = by_software
                    .entry(&o.software)
                    .or_insert_with(|| SoftwareSummary {
                        software: o.software.clone(),
                        missing: Vec::new(),
                        unknown: Vec::new(),
                        not_reported: Vec::new(),
                        satisfied: 0,
                        indeterminate: ev.indeterminate.contains(&o.software),
                    });
                let kb = k.verdict.kb;
                match o.outcome {
                    Outcome::Missing => s.missing.push(kb),
                    Outcome::Unknown => s.unknown.push(kb),
                    Outcome::Satisfied => s.satisfied += 1,
                    Outcome::Superseded { .. }
                    | Outcome::NoOpenCve
                    | Outcome::Alternative { .. } => s.not_reported.push(kb),
                }
            }
        }
        ExplanationReport {
            machine_id: self.machine.clone(),
            catalog_generation: self.generation,
            os: self.facts.os.as_ref().map(|o| OsReport {
                software: o.software.clone(),
                build: o.build,
                revision: o.revision,
                arch: o.arch,
                install_type: o.install_type,
                hotpatch_enrolled: o.hotpatch_enrolled,
            }),
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
            by_software: by_software.into_values().collect(),
            kbs: self
                .explanation
                .kbs
                .iter()
                .map(|k| KbReport {
                    name: catalog.kb(k.verdict.kb).map(|i| i.name.clone()),
                    machine_revision: revision,
                    explanation: k.clone(),
                })
                .collect(),
        }
    }
}
