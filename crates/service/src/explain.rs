//! Explanations (`kbgap explain`, `GET /api/machines/{id}/missingkbs/explain`): one stored
//! machine's evaluation with its evidence, and the machines kbgap cannot decide for a software.
//!
//! [`ExplanationReport`] is the one JSON form of an explanation: the API answers it and
//! `kbgap explain --json` prints it.

use std::collections::BTreeMap;

use kbgap_domain::engine::{KbExplanation, Outcome};
use kbgap_domain::lifecycle::{self, Servicing};
use kbgap_domain::{
    Arch, Catalog, Edition, Evaluation, InstallType, KbId, MachineFacts, MachineId, SoftwareId,
    TenantId,
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

/// A machine whose Windows version, for its edition, left servicing, as the API answers it
/// and `kbgap explain --end-of-servicing --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndOfServicingMachine {
    pub id: MachineId,
    /// Microsoft's name of the version: "Windows 10, version 1809".
    pub version: String,
    /// The edition group the machine named (`homePro`, `enterpriseEducation`, …); `null`
    /// when every edition of the version left servicing and none was named.
    pub edition: Option<Edition>,
    /// The last day the edition was serviced (YYYY-MM-DD).
    pub since: String,
    /// Until when the version's Extended Security Updates continue for enrolled devices.
    pub esu_until: Option<String>,
    /// The last cumulative update the edition was offered.
    pub last_update: Option<KbId>,
}

/// The tenant's active machines with the software whose Windows version, for their edition,
/// left servicing (their edition's updates ended; see `docs/semantics-products.md` §8).
pub fn end_of_servicing_machines(
    store: &dyn Store,
    tenant: &TenantId,
    software: &SoftwareId,
) -> Result<Vec<EndOfServicingMachine>> {
    Ok(store
        .end_of_servicing_machines(tenant, software)?
        .into_iter()
        .map(|e| EndOfServicingMachine {
            id: e.machine,
            version: e.version,
            edition: e.edition,
            since: e.since.to_string(),
            esu_until: e.esu_until.map(|d| d.to_string()),
            last_update: e.last_update,
        })
        .collect())
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
    /// Whether the machine's Windows version, for its edition, left servicing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_of_servicing: Option<ServicingReport>,
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
    /// The edition group the snapshot named, when kbgap recognised it.
    pub edition: Option<Edition>,
}

/// The end of servicing of a machine's Windows version, as its explanation says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum ServicingReport {
    /// The machine's edition (or every edition of its version) left servicing: updates
    /// listed for its version since then are for other editions and are not counted, unless
    /// the version has Extended Security Updates (`esuUntil`).
    #[serde(rename_all = "camelCase")]
    Ended {
        version: &'static str,
        edition: Option<Edition>,
        since: String,
        esu_until: Option<String>,
        /// The last cumulative update the machine's edition was offered.
        last_update: Option<KbId>,
    },
    /// The snapshot names no edition, and the edition decides: some editions of the version
    /// left servicing on `since`, `servicedEdition` is serviced until `servicedUntil` at the
    /// longest. The updates are counted as for the editions still serviced.
    #[serde(rename_all = "camelCase")]
    DependsOnEdition {
        version: &'static str,
        since: String,
        /// The edition still serviced: "Windows 10 Enterprise LTSC 2021".
        serviced_edition: &'static str,
        /// The last day any edition of the version is serviced.
        serviced_until: String,
    },
}

impl ServicingReport {
    /// What the evaluation and the lifecycle say about a machine on the catalog's day.
    pub fn of(catalog: &Catalog, facts: &MachineFacts, ev: &Evaluation) -> Option<Self> {
        if let Some(e) = &ev.end_of_servicing {
            return Some(ServicingReport::Ended {
                version: e.version,
                edition: e.edition,
                since: e.since.to_string(),
                esu_until: e.esu_until.map(|d| d.to_string()),
                last_update: e.last_update,
            });
        }
        let os = facts.os.as_ref()?;
        let today = catalog.newest_release()?;
        match lifecycle::servicing(&os.software, os.build, os.edition, today) {
            Servicing::EditionDecides {
                since,
                serviced_until,
            } => {
                let version = lifecycle::version(&os.software, os.build)?;
                Some(ServicingReport::DependsOnEdition {
                    version: version.name,
                    since: since.to_string(),
                    serviced_edition: version.ltsc.map_or("Enterprise and Education", |l| l.0),
                    serviced_until: serviced_until.to_string(),
                })
            }
            Servicing::Serviced | Servicing::Ended { .. } => None,
        }
    }
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
                edition: o.edition,
            }),
            pending_restart: ev.pending_restart,
            end_of_servicing: ServicingReport::of(catalog, &self.facts, ev),
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
