//! A machine's evaluation in independent parts: the OS with the software Windows services on
//! it (Internet Explorer, .NET Framework, …), and each product evaluated apart from the OS
//! (Office MSI, SQL Server, Exchange, SharePoint: every product of the software named without
//! a Windows host), and each component on the OS whose updates are its own (.NET Framework:
//! none of its KBs is an OS update). A product's verdicts read only its own build, its own installed updates
//! and the machine's architecture, and its open CVEs are its own (`docs/semantics-products.md`,
//! "Each product on its own"), so machines of a fleet share parts far more often than whole
//! evaluations: a fleet of a million machines with 10–20 applications each has tens of
//! thousands of distinct machines but only a few thousand distinct parts.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::Evaluation;
use crate::{Arch, Branch, Catalog, KbId, KbListScope, MachineFacts, OsFacts, SoftwareId};

/// One independent part of a machine's evaluation: everything that part reads, so two
/// machines with an equal part get the same verdicts for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// The OS and the software it hosts: the machine's facts without the products evaluated
    /// apart, without software the catalog has no updates for, and with only the installed
    /// updates this part's evaluation can look at.
    Os(MachineFacts),
    /// One product evaluated apart from the OS.
    Product(ProductFacts),
    /// One component on the OS whose updates are its own (.NET Framework).
    Component(ComponentFacts),
}

/// What the evaluation of a component on the OS reads, apart from the OS's own updates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ComponentFacts {
    pub os: OsFacts,
    pub software: SoftwareId,
    /// The installed version lines (`3.5|4.8`).
    pub version: Option<String>,
    /// The machine's installed updates that the component's evaluation can look at.
    pub installed_kbs: BTreeSet<KbId>,
    /// Of those, the ones waiting for a restart.
    pub pending_kbs: BTreeSet<KbId>,
    /// The machine's installed-update list scope.
    pub kb_list: KbListScope,
    /// Whether the component's own installed-update list is complete.
    pub own_list_complete: bool,
}

impl ComponentFacts {
    /// The OS with the component as its only other software and only the component's
    /// updates: what the engine evaluates (for the component alone).
    pub(crate) fn as_machine(&self) -> MachineFacts {
        MachineFacts {
            os: Some(self.os.clone()),
            software: BTreeMap::from([(self.software.clone(), self.version.clone())]),
            installed_kbs: self.installed_kbs.clone(),
            kb_list: self.kb_list,
            complete_update_lists: if self.own_list_complete {
                BTreeSet::from([self.software.clone()])
            } else {
                BTreeSet::new()
            },
            pending_kbs: self.pending_kbs.clone(),
        }
    }
}

/// What the evaluation of one product apart from the OS reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductFacts {
    pub software: SoftwareId,
    /// The installed version: a full product build (`15.0.4326.1`) or a version line.
    pub version: Option<String>,
    pub arch: Arch,
    /// The machine's installed updates that the product's evaluation can look at (its own
    /// updates and those its supersedence chains name).
    pub installed_kbs: BTreeSet<KbId>,
    /// Of those, the ones waiting for a restart.
    pub pending_kbs: BTreeSet<KbId>,
    /// Whether the machine's installed-update list is complete for this product.
    pub list_complete: bool,
}

impl ProductFacts {
    /// The product alone, as a machine that has nothing else: what the engine evaluates.
    pub(crate) fn as_machine(&self) -> MachineFacts {
        MachineFacts {
            os: None,
            software: BTreeMap::from([(self.software.clone(), self.version.clone())]),
            installed_kbs: self.installed_kbs.clone(),
            kb_list: if self.list_complete {
                KbListScope::Everything
            } else {
                KbListScope::Partial
            },
            complete_update_lists: BTreeSet::new(),
            pending_kbs: self.pending_kbs.clone(),
        }
    }
}

/// Splits a machine into the parts of its evaluation. A machine that reports no OS has none:
/// nothing can be decided for it.
pub fn split(catalog: &Catalog, machine: &MachineFacts) -> Vec<Part> {
    let Some(os) = &machine.os else {
        return Vec::new();
    };
    let branch = Branch::of(os.build);
    let mut parts = Vec::new();
    let mut os_software = BTreeMap::new();
    for (software, version) in &machine.software {
        if catalog.evaluated_apart(software) {
            parts.push(Part::Product(ProductFacts {
                software: software.clone(),
                version: version.clone(),
                arch: os.arch,
                installed_kbs: only(&machine.installed_kbs, |kb| catalog.is_kb_of(software, kb)),
                pending_kbs: only(&machine.pending_kbs, |kb| catalog.is_kb_of(software, kb)),
                list_complete: machine.kb_list == KbListScope::Everything
                    || machine.complete_update_lists.contains(software),
            }));
        } else if catalog.component_apart(software, &os.software, branch) {
            parts.push(Part::Component(ComponentFacts {
                os: os.clone(),
                software: software.clone(),
                version: version.clone(),
                installed_kbs: only(&machine.installed_kbs, |kb| catalog.is_kb_of(software, kb)),
                pending_kbs: only(&machine.pending_kbs, |kb| catalog.is_kb_of(software, kb)),
                kb_list: machine.kb_list,
                own_list_complete: machine.complete_update_lists.contains(software),
            }));
        } else if software == &os.software || catalog.entries_for(software).next().is_some() {
            os_software.insert(software.clone(), version.clone());
        }
    }
    parts.insert(
        0,
        Part::Os(MachineFacts {
            os: Some(os.clone()),
            software: os_software,
            installed_kbs: only(&machine.installed_kbs, |kb| catalog.is_os_group_kb(kb)),
            kb_list: machine.kb_list,
            complete_update_lists: machine
                .complete_update_lists
                .iter()
                .filter(|s| {
                    !catalog.evaluated_apart(s) && !catalog.component_apart(s, &os.software, branch)
                })
                .cloned()
                .collect(),
            pending_kbs: only(&machine.pending_kbs, |kb| catalog.is_os_group_kb(kb)),
        }),
    );
    parts
}

fn only(kbs: &BTreeSet<KbId>, keep: impl Fn(KbId) -> bool) -> BTreeSet<KbId> {
    kbs.iter().copied().filter(|&kb| keep(kb)).collect()
}

/// A machine's evaluation from the evaluations of its parts.
pub fn merge<'a>(
    machine: &MachineFacts,
    parts: impl IntoIterator<Item = &'a Evaluation>,
) -> Evaluation {
    let mut out = Evaluation {
        software: machine.software.keys().cloned().collect(),
        ..Evaluation::default()
    };
    if let Some(os) = &machine.os {
        out.software.insert(os.software.clone());
    }
    for part in parts {
        for (software, kbs) in &part.missing {
            out.missing
                .entry(software.clone())
                .or_default()
                .extend(kbs.iter().copied());
        }
        out.indeterminate.extend(part.indeterminate.iter().cloned());
        out.pending_restart |= part.pending_restart;
        if out.end_of_servicing.is_none() {
            out.end_of_servicing.clone_from(&part.end_of_servicing);
        }
    }
    out
}
