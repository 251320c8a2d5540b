//! What a CVRF product name means once normalized: the software it belongs to, the version
//! line of a component, and the Windows it runs on.

use serde::{Deserialize, Serialize};

use crate::SoftwareId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86,
    X64,
    Arm64,
    Itanium,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86 => "x86",
            Arch::X64 => "x64",
            Arch::Arm64 => "arm64",
            Arch::Itanium => "itanium",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InstallType {
    Full,
    ServerCore,
}

/// The Windows a product runs on (for OS products: the OS itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostOs {
    /// The OS software id, e.g. `microsoft-_-windows_10`.
    pub software: SoftwareId,
    /// The build number of the OS version (19045 for Windows 10 22H2).
    pub build: u32,
    pub arch: Arch,
    pub install_type: InstallType,
}

/// A CVRF product name, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProductClass {
    /// The software the product belongs to: `microsoft-_-windows_10`,
    /// `microsoft-_-internet_explorer`, `microsoft-_-edge` (EdgeHTML).
    pub software: SoftwareId,
    /// For components: the version line (`11` for Internet Explorer 11).
    pub version_line: Option<String>,
    /// The Windows it runs on; for an OS product, the OS itself.
    pub host: Option<HostOs>,
    /// Hotpatch-only products (Windows Server 2022 Datacenter: Azure Edition hotpatch).
    pub hotpatch: bool,
    /// Judged by version, never by KB (Edge Chromium, Microsoft 365 Apps).
    pub version_fixed: bool,
}

/// The outcome of normalizing one CVRF product name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalized {
    Mapped(ProductClass),
    /// Deliberately not evaluated (Linux packages, cloud services), with the reason.
    OutOfScope(&'static str),
    /// Not yet understood: kept in the catalog, never evaluated, listed by coverage reports.
    Unmapped,
}
