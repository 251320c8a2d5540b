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

use foldhash::{HashMap, HashMapExt, HashSet};

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

/// One part of a machine's evaluation as a key that borrows the machine's facts: what
/// [`Part`] holds, without copying the strings. Two keys are equal exactly when the parts
/// they stand for ([`PartKey::to_part`]) are equal, so a fleet's classes can be split and
/// their equal parts found without a copy of each part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PartKey<'a> {
    /// [`Part::Os`].
    Os {
        os: &'a OsFacts,
        /// The software the OS part evaluates (the OS and what it hosts), in id order.
        software: Vec<(&'a SoftwareId, &'a Option<String>)>,
        installed_kbs: Vec<KbId>,
        kb_list: KbListScope,
        complete_update_lists: Vec<&'a SoftwareId>,
        pending_kbs: Vec<KbId>,
    },
    /// [`Part::Product`].
    Product {
        software: &'a SoftwareId,
        version: &'a Option<String>,
        arch: Arch,
        installed_kbs: Vec<KbId>,
        pending_kbs: Vec<KbId>,
        list_complete: bool,
    },
    /// [`Part::Component`].
    Component {
        os: &'a OsFacts,
        software: &'a SoftwareId,
        version: &'a Option<String>,
        installed_kbs: Vec<KbId>,
        pending_kbs: Vec<KbId>,
        kb_list: KbListScope,
        own_list_complete: bool,
    },
}

impl PartKey<'_> {
    /// The part this key stands for.
    pub fn to_part(&self) -> Part {
        let kbs = |kbs: &[KbId]| kbs.iter().copied().collect::<BTreeSet<KbId>>();
        match self {
            PartKey::Os {
                os,
                software,
                installed_kbs,
                kb_list,
                complete_update_lists,
                pending_kbs,
            } => Part::Os(MachineFacts {
                os: Some((*os).clone()),
                software: software
                    .iter()
                    .map(|(s, v)| ((*s).clone(), (*v).clone()))
                    .collect(),
                installed_kbs: kbs(installed_kbs),
                kb_list: *kb_list,
                complete_update_lists: complete_update_lists.iter().map(|s| (*s).clone()).collect(),
                pending_kbs: kbs(pending_kbs),
            }),
            PartKey::Product {
                software,
                version,
                arch,
                installed_kbs,
                pending_kbs,
                list_complete,
            } => Part::Product(ProductFacts {
                software: (*software).clone(),
                version: (*version).clone(),
                arch: *arch,
                installed_kbs: kbs(installed_kbs),
                pending_kbs: kbs(pending_kbs),
                list_complete: *list_complete,
            }),
            PartKey::Component {
                os,
                software,
                version,
                installed_kbs,
                pending_kbs,
                kb_list,
                own_list_complete,
            } => Part::Component(ComponentFacts {
                os: (*os).clone(),
                software: (*software).clone(),
                version: (*version).clone(),
                installed_kbs: kbs(installed_kbs),
                pending_kbs: kbs(pending_kbs),
                kb_list: *kb_list,
                own_list_complete: *own_list_complete,
            }),
        }
    }
}

/// Splits a machine into the parts of its evaluation. A machine that reports no OS has none:
/// nothing can be decided for it.
pub fn split(catalog: &Catalog, machine: &MachineFacts) -> Vec<Part> {
    split_keys(catalog, machine)
        .iter()
        .map(PartKey::to_part)
        .collect()
}

/// [`split`], as keys that borrow the machine's facts: the OS part first, then the others in
/// the order of their software ids.
pub fn split_keys<'a>(catalog: &Catalog, machine: &'a MachineFacts) -> Vec<PartKey<'a>> {
    let Some(os) = &machine.os else {
        return Vec::new();
    };
    let branch = Branch::of(os.build);
    split_with(catalog, machine, |software| {
        Role::of(catalog, software, &os.software, branch)
    })
}

/// Where a software of a machine goes among the parts of its evaluation.
#[derive(Debug, Clone, Copy)]
enum Role<'c> {
    /// A part of its own: a product evaluated apart from the OS, which can look at these KBs.
    Product(Option<&'c HashSet<KbId>>),
    /// A part of its own: a component on the OS whose updates are its own.
    Component(Option<&'c HashSet<KbId>>),
    /// In the OS part.
    Os,
    /// Nowhere: the catalog has no updates for it.
    None,
}

impl<'c> Role<'c> {
    fn of(catalog: &'c Catalog, software: &SoftwareId, os: &SoftwareId, branch: Branch) -> Self {
        if catalog.evaluated_apart(software) {
            Role::Product(catalog.kbs_of(software))
        } else if catalog.component_apart(software, os, branch) {
            Role::Component(catalog.kbs_of(software))
        } else if software == os || catalog.entries_for(software).next().is_some() {
            Role::Os
        } else {
            Role::None
        }
    }
}

/// Splits many machines against one catalog, remembering where each software goes on each
/// OS and branch: [`split_keys`] for a fleet.
pub struct Splitter<'c, 'a> {
    catalog: &'c Catalog,
    roles: HashMap<(&'a SoftwareId, Branch), HashMap<&'a SoftwareId, Role<'c>>>,
}

impl<'c, 'a> Splitter<'c, 'a> {
    pub fn new(catalog: &'c Catalog) -> Self {
        Splitter {
            catalog,
            roles: HashMap::new(),
        }
    }

    /// The parts of a machine's evaluation, as [`split_keys`] gives them.
    pub fn split(&mut self, machine: &'a MachineFacts) -> Vec<PartKey<'a>> {
        let catalog = self.catalog;
        let Some(os) = &machine.os else {
            return Vec::new();
        };
        let branch = Branch::of(os.build);
        let roles = self.roles.entry((&os.software, branch)).or_default();
        split_with(catalog, machine, |software| {
            *roles
                .entry(software)
                .or_insert_with(|| Role::of(catalog, software, &os.software, branch))
        })
    }
}

/// The one split, with `role` telling where each software goes on the machine's OS.
fn split_with<'c, 'a>(
    catalog: &'c Catalog,
    machine: &'a MachineFacts,
    mut role: impl FnMut(&'a SoftwareId) -> Role<'c>,
) -> Vec<PartKey<'a>> {
    let Some(os) = &machine.os else {
        return Vec::new();
    };
    let mut parts = Vec::with_capacity(machine.software.len() + 1);
    let mut os_software = Vec::new();
    let of = |kbs: Option<&HashSet<KbId>>, set: &BTreeSet<KbId>| match kbs {
        Some(kbs) => only(set, |kb| kbs.contains(&kb)),
        None => Vec::new(),
    };
    for (software, version) in &machine.software {
        match role(software) {
            Role::Product(kbs) => parts.push(PartKey::Product {
                software,
                version,
                arch: os.arch,
                installed_kbs: of(kbs, &machine.installed_kbs),
                pending_kbs: of(kbs, &machine.pending_kbs),
                list_complete: machine.kb_list == KbListScope::Everything
                    || machine.complete_update_lists.contains(software),
            }),
            Role::Component(kbs) => parts.push(PartKey::Component {
                os,
                software,
                version,
                installed_kbs: of(kbs, &machine.installed_kbs),
                pending_kbs: of(kbs, &machine.pending_kbs),
                kb_list: machine.kb_list,
                own_list_complete: machine.complete_update_lists.contains(software),
            }),
            Role::Os => os_software.push((software, version)),
            Role::None => {}
        }
    }
    let complete_update_lists = machine
        .complete_update_lists
        .iter()
        .filter(|&s| matches!(role(s), Role::Os | Role::None))
        .collect();
    parts.insert(
        0,
        PartKey::Os {
            os,
            software: os_software,
            installed_kbs: only(&machine.installed_kbs, |kb| catalog.is_os_group_kb(kb)),
            kb_list: machine.kb_list,
            complete_update_lists,
            pending_kbs: only(&machine.pending_kbs, |kb| catalog.is_os_group_kb(kb)),
        },
    );
    parts
}

/// The KBs of a set that a part can look at, in order.
fn only(kbs: &BTreeSet<KbId>, keep: impl Fn(KbId) -> bool) -> Vec<KbId> {
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
