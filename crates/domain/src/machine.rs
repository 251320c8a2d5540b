//! The facts about one machine that evaluation needs, independent of where they came from
//! (REST snapshot, systeminfo, wmic qfe, …).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Arch, Edition, InstallType, KbId, SoftwareId};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OsFacts {
    /// The OS software id, e.g. `microsoft-_-windows_10`.
    pub software: SoftwareId,
    /// Build number (19045).
    pub build: u32,
    /// Update build revision (UBR), when the source reports it.
    pub revision: Option<u32>,
    pub arch: Arch,
    pub install_type: InstallType,
    pub hotpatch_enrolled: bool,
    /// The edition group, when the source names the edition (systeminfo's OS Name): it
    /// decides when a Windows 10 or 11 version leaves servicing ([`crate::lifecycle`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edition: Option<Edition>,
}

/// How far a machine's installed-update list is known to be complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KbListScope {
    /// It may be partial: a KB absent from it proves nothing.
    #[default]
    Partial,
    /// Complete for what Windows servicing installs (the OS and the components it services),
    /// as Win32_QuickFixEngineering lists it: systeminfo, wmic qfe, Get-HotFix, osquery
    /// `patches`. It says nothing about MSI-installed products (Office, SQL Server, …).
    WindowsServicing,
    /// Complete for every installed update.
    Everything,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MachineFacts {
    pub os: Option<OsFacts>,
    /// Installed software with its version when known. The OS is included. Side-by-side
    /// versions of one software (.NET Framework 3.5 and 4.8) are joined with `|`.
    pub software: BTreeMap<SoftwareId, Option<String>>,
    /// Installed updates, from every source.
    pub installed_kbs: BTreeSet<KbId>,
    /// For which software `installed_kbs` is the complete list of installed updates.
    pub kb_list: KbListScope,
    /// Software whose own installed-update list is complete (an osquery `programs` listing
    /// of its "Security Update for …" entries, a snapshot's `software[].updatesComplete`):
    /// those updates are in `installed_kbs`, and a KB of that software absent from it is
    /// not installed.
    pub complete_update_lists: BTreeSet<SoftwareId>,
    /// KBs installed but waiting for a restart.
    pub pending_kbs: BTreeSet<KbId>,
}

impl MachineFacts {
    /// Whether the installed-update list is complete for a product of `class`: a KB of that
    /// product absent from it is not installed (rule e).
    pub fn kb_list_complete_for(&self, class: &crate::ProductClass) -> bool {
        match self.kb_list {
            KbListScope::Everything => true,
            KbListScope::WindowsServicing if class.windows_serviced() => true,
            _ => self.complete_update_lists.contains(&class.software),
        }
    }
}
