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
    pub const ALL: [Arch; 4] = [Arch::X86, Arch::X64, Arch::Arm64, Arch::Itanium];

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
    /// The update level or servicing branch the name states (SQL Server `gdr`, Exchange
    /// `cumulative update 13`): which servicing path the product's updates belong to.
    pub servicing: Option<String>,
    /// For products named without a Windows host: how their updates relate.
    pub updates: ProductUpdates,
    /// For a product serviced per component whose name is one update package (Word 2016,
    /// Excel 2016): its updates form one chain, even where MSRC's `Supercedence` breaks it.
    pub package: Option<String>,
}

impl ProductClass {
    /// Whether Windows servicing installs this product's updates (the OS, and the components
    /// named "on Windows …": Internet Explorer, EdgeHTML, .NET Framework, …), so that they
    /// appear in Win32_QuickFixEngineering (systeminfo, wmic qfe, Get-HotFix, osquery
    /// `patches`). Products named without a host (Office MSI, SharePoint, Exchange, SQL
    /// Server, Visual Studio) install their updates with MSI/MSP, which those lists never show.
    pub fn windows_serviced(&self) -> bool {
        self.host.is_some()
    }
}

/// How the security updates of a product named without a Windows host relate to each other;
/// products on a Windows host follow the Windows tracks instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProductUpdates {
    /// Every update is its own frontier.
    #[default]
    Standalone,
    /// Each update contains the earlier ones of its servicing path, a range of builds of the
    /// line: SQL Server's GDR path (2019: 15.0.2xxx) and CU path (15.0.4xxx).
    Cumulative,
    /// Each update contains the earlier ones for the same release, which the build's third
    /// part names: an Exchange cumulative update (15.2.1544.x is Exchange 2019 CU14).
    CumulativePerRelease,
    /// Serviced per component (Office MSI, SharePoint): each component's updates replace the
    /// earlier ones of that component, which MSRC's `Supercedence` links.
    Components,
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
