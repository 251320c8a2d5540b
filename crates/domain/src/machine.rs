//! The facts about one machine that evaluation needs, independent of where they came from
//! (REST snapshot, systeminfo, wmic qfe, …).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Arch, InstallType, KbId, SoftwareId};

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
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MachineFacts {
    pub os: Option<OsFacts>,
    /// Installed software with its version when known. The OS is included. Side-by-side
    /// versions of one software (.NET Framework 3.5 and 4.8) are joined with `|`.
    pub software: BTreeMap<SoftwareId, Option<String>>,
    pub installed_kbs: BTreeSet<KbId>,
    /// Whether `installed_kbs` is the complete list of installed updates.
    pub kb_list_complete: bool,
    /// KBs installed but waiting for a restart.
    pub pending_kbs: BTreeSet<KbId>,
}
