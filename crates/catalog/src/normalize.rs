//! CVRF product names → what they mean (`ProductClass`): every mapping rule and table lives
//! here, one rule per product family, so adding a family means adding one rule.

use kbgap_domain::product::{Arch, HostOs, InstallType, Normalized, ProductClass};
use kbgap_domain::SoftwareId;

// ---------------------------------------------------------------------------------------------
// Tables. Marketing versions are lowercase because names are matched after lowercasing.
// ---------------------------------------------------------------------------------------------

/// Windows 10 feature updates. "Windows 10 for …" with no version is the original 1507.
const WINDOWS_10: &[(&str, u32)] = &[
    ("1507", 10240),
    ("1511", 10586),
    ("1607", 14393),
    ("1703", 15063),
    ("1709", 16299),
    ("1803", 17134),
    ("1809", 17763),
    ("1903", 18362),
    ("1909", 18363),
    ("2004", 19041),
    ("20h2", 19042),
    ("21h1", 19043),
    ("21h2", 19044),
    ("22h2", 19045),
];

/// Windows 11 feature updates. "Windows 11 for …" with no version is 21H2: the revised
/// 2019-Jul and 2020-Feb documents use that older name for products 11926/11927, with
/// FixedBuild 10.0.22000.x. 26H1 is build 28000 (FixedBuild 10.0.28000.x in 2026 documents).
const WINDOWS_11: &[(&str, u32)] = &[
    ("21h2", 22000),
    ("22h2", 22621),
    ("23h2", 22631),
    ("24h2", 26100),
    ("25h2", 26200),
    ("26h1", 28000),
];

/// Long-term servicing servers named by year, with their build; always x64 (no 32-bit or
/// ARM server editions exist from 2008 R2 on).
const SERVER_BY_YEAR: &[(&str, &str, u32)] = &[
    ("windows server 2012", "windows_server_2012", 9200),
    ("windows server 2012 r2", "windows_server_2012_r2", 9600),
    ("windows server 2016", "windows_server_2016", 14393),
    ("windows server 2019", "windows_server_2019", 17763),
    ("windows server 2022", "windows_server_2022", 20348),
    ("windows server 2025", "windows_server_2025", 26100),
];

/// Semi-annual channel servers ("Windows Server, version 1903"): each is its own software in
/// MDE, and Server Core only.
const SERVER_SEMI_ANNUAL: &[(&str, &str, u32)] = &[
    ("1709", "windows_server_1709", 16299),
    ("1803", "windows_server_1803", 17134),
    ("1903", "windows_server_1903", 18362),
    ("1909", "windows_server_1909", 18363),
    ("2004", "windows_server_2004", 19041),
    ("20h2", "windows_server_20h2", 19042),
    ("23h2", "windows_server_23h2", 25398),
];

/// Windows 7 SP1 and Server 2008 R2 SP1.
const BUILD_7601: u32 = 7601;
/// Windows 8.1, RT 8.1 and Server 2012 R2.
const BUILD_9600: u32 = 9600;
/// Server 2008 SP2 reports 6003 since the April 2019 update (6002 before); 6003 is what a
/// machine reports today.
const BUILD_2008_SP2: u32 = 6003;
/// Vista SP2 left support in April 2017, before the 6003 bump.
const BUILD_VISTA_SP2: u32 = 6002;

// ---------------------------------------------------------------------------------------------
// Rules, in the order they are tried.
// ---------------------------------------------------------------------------------------------

/// Normalizes one CVRF product name. Matching is on the whole name after lowercasing and
/// collapsing whitespace, so "Windows Server 2019  (Server Core installation)" and
/// "… (Server Core Installation)" are the same product, while look-alikes such as
/// "Windows 10 HLK Version 22H2" or "Windows Terminal for Windows 10" are not Windows.
pub fn normalize(product_name: &str) -> Normalized {
    let name = canonical(product_name);
    let name = name.as_str();

    // Rule 1: Linux packages on Microsoft's distributions ("cbl2 kernel 5.15.162.2-1 on CBL
    // Mariner 2.0", "… on Azure Linux 3.0") and the distributions themselves are not Windows
    // software; kbgap does not evaluate them.
    if is_linux(name) {
        return Normalized::OutOfScope("Linux package");
    }

    // Rule 2: Edge (Chromium) in all its variants (Extended Stable, Updater, "in IE Mode on
    // Windows …") is judged by browser version, never by KB, and runs on any Windows.
    if name.starts_with("microsoft edge (chromium-based)") {
        return Normalized::Mapped(ProductClass {
            software: SoftwareId::microsoft("edge_chromium-based"),
            version_line: None,
            host: None,
            hotpatch: false,
            version_fixed: true,
        });
    }

    // Rule 3: a component "on" a Windows ("Internet Explorer 11 on Windows 10 Version 22H2
    // for x64-based Systems"): the component's software, hosted by that Windows.
    if let Some((component, host)) = name.split_once(" on windows ") {
        return component_on(component, &format!("windows {host}"));
    }

    // Rule 4: Windows itself.
    match windows(name) {
        Some(Os::Windows { host, hotpatch }) => Normalized::Mapped(ProductClass {
            software: host.software.clone(),
            version_line: None,
            host: Some(host),
            hotpatch,
            version_fixed: false,
        }),
        Some(Os::OutOfScope(reason)) => Normalized::OutOfScope(reason),
        None => not_the_os(name),
    }
}

/// Rule 5: products whose name starts with "Windows" but that are not Windows (one or two
/// KB-bearing fixes each in ten years). Neither is inventoried as an OS update: the tools run
/// once and leave nothing installed; the server applications are updated by their own
/// installers, so a Windows KB list never shows their KBs.
/// Rule 6: everything else is not understood yet and is listed by the coverage report.
fn not_the_os(name: &str) -> Normalized {
    const TOOLS: &[&str] = &[
        "windows malicious software removal tool",
        "windows update assistant",
        "windows upgrade assistant",
    ];
    const APPLICATIONS: &[&str] = &["windows admin center", "windows azure pack"];
    if TOOLS.iter().any(|t| name.starts_with(t)) {
        Normalized::OutOfScope("run-once tool, not installed software")
    } else if APPLICATIONS.iter().any(|a| name.starts_with(a)) {
        Normalized::OutOfScope("server application updated by its own installer")
    } else {
        Normalized::Unmapped
    }
}

/// Lowercase, single spaces, no space inside parentheses: the archive writes "2019  (Server
/// Core installation)", "(Server Core Installation)", and names with stray spaces.
fn canonical(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .replace("( ", "(")
        .replace(" )", ")")
}

fn is_linux(name: &str) -> bool {
    // The host after the last " on " ("<package> on CBL Mariner 2.0 x64"), or the whole name
    // for the distribution itself ("Azure Linux 3.0 ARM").
    let host = name.rsplit_once(" on ").map_or(name, |(_, host)| host);
    ["cbl mariner", "cbl-mariner", "azure linux"]
        .iter()
        .any(|distro| {
            host.strip_prefix(distro).is_some_and(|rest| {
                let mut words = rest.split(' ').filter(|w| !w.is_empty());
                words.next().is_none_or(is_version)
                    && words.next().is_none_or(|a| a == "x64" || a == "arm")
                    && words.next().is_none()
            })
        })
}

fn is_version(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Rule 3's components. The host must itself be a Windows this module knows.
fn component_on(component: &str, host_name: &str) -> Normalized {
    let (software, version_line) = if let Some(v) = component.strip_prefix("internet explorer ") {
        // "Internet Explorer 9 / 10 / 11 on …": one software, the version is the line.
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Normalized::Unmapped;
        }
        ("internet_explorer", Some(v.to_string()))
    } else if component == "microsoft edge (edgehtml-based)" || component == "microsoft edge" {
        // EdgeHTML, the legacy Edge serviced by Windows cumulative updates; older documents
        // call it just "Microsoft Edge". MDE's id for it is `edge`.
        ("edge", None)
    } else {
        // .NET, MSXML, VBScript, … on Windows: later work.
        return Normalized::Unmapped;
    };
    match windows(host_name) {
        Some(Os::Windows { host, .. }) => Normalized::Mapped(ProductClass {
            software: SoftwareId::microsoft(software),
            version_line,
            host: Some(host),
            hotpatch: false,
            version_fixed: false,
        }),
        Some(Os::OutOfScope(reason)) => Normalized::OutOfScope(reason),
        None => Normalized::Unmapped,
    }
}

enum Os {
    Windows { host: HostOs, hotpatch: bool },
    OutOfScope(&'static str),
}

/// Rule 4's grammar: one branch per Windows family, each matching the whole name.
fn windows(name: &str) -> Option<Os> {
    // "(Server Core installation)" is the same product without the GUI shell.
    let (name, install_type) = match name.strip_suffix(" (server core installation)") {
        Some(n) => (n, InstallType::ServerCore),
        None => (name, InstallType::Full),
    };
    let os = |software: &str, build: u32, arch: Arch| {
        Some(Os::Windows {
            host: HostOs {
                software: SoftwareId::microsoft(software),
                build,
                arch,
                install_type,
            },
            hotpatch: false,
        })
    };

    // Windows 10: "Windows 10 for x64-based Systems" (1507), "Windows 10 Version 1809 for
    // 32-bit Systems". HoloLens builds are devices MDE does not onboard.
    if let Some(rest) = name.strip_prefix("windows 10 ") {
        if rest.ends_with(" for hololens") {
            return Some(Os::OutOfScope("HoloLens (not an MDE platform)"));
        }
        let (version, arch) = version_for_arch(rest)?;
        let build = lookup(WINDOWS_10, version.unwrap_or("1507"))?;
        return os("windows_10", build, arch);
    }

    // Windows 11: as Windows 10; one 2026 product carries a stray " - extra" suffix, and
    // 25H2 has an "ARM systems" duplicate of its ARM64 product.
    if let Some(rest) = name.strip_prefix("windows 11 ") {
        let rest = rest.strip_suffix(" - extra").unwrap_or(rest);
        let (version, arch) = version_for_arch(rest)?;
        let build = lookup(WINDOWS_11, version.unwrap_or("21h2"))?;
        return os("windows_11", build, arch);
    }

    // Windows 7 SP1: "Windows 7 for 32-bit Systems Service Pack 1".
    if let Some(rest) = name.strip_prefix("windows 7 ") {
        let rest = rest.strip_suffix(" service pack 1").unwrap_or(rest);
        let arch = for_arch(rest)?;
        return os("windows_7", BUILD_7601, arch);
    }

    // Windows 8.1: "Windows 8.1 for x64-based systems".
    if let Some(rest) = name.strip_prefix("windows 8.1 ") {
        return os("windows_8.1", BUILD_9600, for_arch(rest)?);
    }

    // Windows RT 8.1 runs on 32-bit ARM, which the domain's Arch cannot express; Arm64 is
    // the nearest, and RT is its own software so it never meets a real ARM64 machine.
    if name == "windows rt 8.1" {
        return os("windows_rt_8.1", BUILD_9600, Arch::Arm64);
    }

    // Windows Vista SP2: "Windows Vista Service Pack 2", "Windows Vista x64 Edition Service
    // Pack 2" (2016–2017 documents).
    match name {
        "windows vista service pack 2" => return os("windows_vista", BUILD_VISTA_SP2, Arch::X86),
        "windows vista x64 edition service pack 2" => {
            return os("windows_vista", BUILD_VISTA_SP2, Arch::X64)
        }
        _ => {}
    }

    // Server 2008 R2 SP1: "Windows Server 2008 R2 for x64-based Systems Service Pack 1",
    // also Itanium.
    if let Some(rest) = name.strip_prefix("windows server 2008 r2 ") {
        let rest = rest.strip_suffix(" service pack 1").unwrap_or(rest);
        return os("windows_server_2008_r2", BUILD_7601, for_arch(rest)?);
    }

    // Server 2008 SP2: "Windows Server 2008 for 32-bit Systems Service Pack 2". Two 2016-May
    // products omit the service pack; SP2 is the only 2008 level serviced in the archive.
    if let Some(rest) = name.strip_prefix("windows server 2008 ") {
        let rest = rest.strip_suffix(" service pack 2").unwrap_or(rest);
        return os("windows_server_2008", BUILD_2008_SP2, for_arch(rest)?);
    }

    // Server 2022 23H2 (annual channel, Server Core only), as MSRC writes it: "Windows Server
    // 2022, 23H2 Edition (Server Core installation)".
    if name == "windows server 2022, 23h2 edition" {
        return os("windows_server_23h2", 25398, Arch::X64);
    }

    // Semi-annual servers: "Windows Server, version 1903 (Server Core installation)".
    if let Some(version) = name.strip_prefix("windows server, version ") {
        let &(_, software, build) = SERVER_SEMI_ANNUAL.iter().find(|(v, _, _)| *v == version)?;
        return os(software, build, Arch::X64);
    }

    // Datacenter: Azure Edition, the edition that can enrol in hotpatching: "Windows Server
    // 2022 Datacenter: Azure Edition", with "(Hotpatch)" for the hotpatch-only product.
    if let Some((server, edition)) = name.split_once(" datacenter") {
        let edition = edition.trim_start_matches(':').trim();
        let (edition, hotpatch) = match edition
            .strip_suffix("(hotpatch)")
            .or_else(|| edition.strip_suffix("hotpatch"))
        {
            Some(e) => (e.trim_end().trim_end_matches(['-', ',']).trim_end(), true),
            None => (edition, false),
        };
        if edition != "azure edition" {
            return None;
        }
        let &(_, software, build) = SERVER_BY_YEAR.iter().find(|(n, _, _)| *n == server)?;
        return Some(Os::Windows {
            host: HostOs {
                software: SoftwareId::microsoft(software),
                build,
                arch: Arch::X64,
                install_type,
            },
            hotpatch,
        });
    }

    // Servers named by year: "Windows Server 2019", "Windows Server 2012 R2".
    let &(_, software, build) = SERVER_BY_YEAR.iter().find(|(n, _, _)| *n == name)?;
    os(software, build, Arch::X64)
}

/// "version 1809 for x64-based systems" → (Some("1809"), X64); "for 32-bit systems" →
/// (None, X86).
fn version_for_arch(rest: &str) -> Option<(Option<&str>, Arch)> {
    match rest.strip_prefix("version ") {
        Some(v) => {
            let (version, arch) = v.split_once(" for ")?;
            Some((Some(version), arch_of(arch)?))
        }
        None => Some((None, for_arch(rest)?)),
    }
}

/// "for x64-based systems" → X64.
fn for_arch(rest: &str) -> Option<Arch> {
    arch_of(rest.strip_prefix("for ")?)
}

/// The architecture phrase without "for ": "x64-based systems", "32-bit systems",
/// "arm64-based systems", "itanium-based systems", and 25H2's "arm systems" (Windows 11 has
/// no 32-bit ARM build, so it is ARM64).
fn arch_of(phrase: &str) -> Option<Arch> {
    match phrase {
        "32-bit systems" => Some(Arch::X86),
        "x64-based systems" => Some(Arch::X64),
        "arm64-based systems" | "arm systems" => Some(Arch::Arm64),
        "itanium-based systems" => Some(Arch::Itanium),
        _ => None,
    }
}

fn lookup(table: &[(&str, u32)], version: &str) -> Option<u32> {
    table.iter().find(|(v, _)| *v == version).map(|&(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(software: &str, build: u32, arch: Arch, install_type: InstallType) -> HostOs {
        HostOs {
            software: SoftwareId::microsoft(software),
            build,
            arch,
            install_type,
        }
    }

    fn os(software: &str, build: u32, arch: Arch, install_type: InstallType) -> Normalized {
        Normalized::Mapped(ProductClass {
            software: SoftwareId::microsoft(software),
            version_line: None,
            host: Some(host(software, build, arch, install_type)),
            hotpatch: false,
            version_fixed: false,
        })
    }

    use Arch::*;
    use InstallType::*;

    #[test]
    fn one_example_per_windows_family() {
        let cases: &[(&str, Normalized)] = &[
            (
                "Windows 7 for 32-bit Systems Service Pack 1",
                os("windows_7", 7601, X86, Full),
            ),
            (
                "Windows 8.1 for x64-based systems",
                os("windows_8.1", 9600, X64, Full),
            ),
            ("Windows RT 8.1", os("windows_rt_8.1", 9600, Arm64, Full)),
            (
                "Windows 10 for x64-based Systems",
                os("windows_10", 10240, X64, Full),
            ),
            (
                "Windows 10 Version 1607 for 32-bit Systems",
                os("windows_10", 14393, X86, Full),
            ),
            (
                "Windows 10 Version 22H2 for x64-based Systems",
                os("windows_10", 19045, X64, Full),
            ),
            (
                "Windows 11 version 21H2 for x64-based Systems",
                os("windows_11", 22000, X64, Full),
            ),
            (
                "Windows 11 Version 24H2 for ARM64-based Systems",
                os("windows_11", 26100, Arm64, Full),
            ),
            (
                "Windows 11 Version 25H2 for x64-based Systems",
                os("windows_11", 26200, X64, Full),
            ),
            (
                "Windows Server 2008 for 32-bit Systems Service Pack 2",
                os("windows_server_2008", 6003, X86, Full),
            ),
            (
                "Windows Server 2008 for Itanium-Based Systems Service Pack 2",
                os("windows_server_2008", 6003, Itanium, Full),
            ),
            (
                "Windows Server 2008 R2 for x64-based Systems Service Pack 1 (Server Core installation)",
                os("windows_server_2008_r2", 7601, X64, ServerCore),
            ),
            ("Windows Server 2012", os("windows_server_2012", 9200, X64, Full)),
            (
                "Windows Server 2012 R2 (Server Core installation)",
                os("windows_server_2012_r2", 9600, X64, ServerCore),
            ),
            ("Windows Server 2016", os("windows_server_2016", 14393, X64, Full)),
            ("Windows Server 2019", os("windows_server_2019", 17763, X64, Full)),
            ("Windows Server 2022", os("windows_server_2022", 20348, X64, Full)),
            (
                "Windows Server 2025 (Server Core installation)",
                os("windows_server_2025", 26100, X64, ServerCore),
            ),
            (
                "Windows Server, version 1903 (Server Core installation)",
                os("windows_server_1903", 18362, X64, ServerCore),
            ),
            (
                "Windows Server, version 20H2 (Server Core Installation)",
                os("windows_server_20h2", 19042, X64, ServerCore),
            ),
            (
                "Windows Server 2022, 23H2 Edition (Server Core installation)",
                os("windows_server_23h2", 25398, X64, ServerCore),
            ),
            (
                "Windows Vista x64 Edition Service Pack 2",
                os("windows_vista", 6002, X64, Full),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(&normalize(name), want, "{name}");
        }
    }

    #[test]
    fn irregular_spacing_and_case() {
        let core = os("windows_server_2019", 17763, X64, ServerCore);
        assert_eq!(
            normalize("Windows Server 2019  (Server Core installation)"),
            core
        );
        assert_eq!(
            normalize("Windows Server 2019 (Server Core Installation)"),
            core
        );
        assert_eq!(
            normalize(" windows  server 2019 ( Server Core installation ) "),
            core
        );
        assert_eq!(
            normalize("Windows Server, version 1709  (Server Core Installation)"),
            os("windows_server_1709", 16299, X64, ServerCore)
        );
    }

    #[test]
    fn archive_oddities() {
        assert_eq!(
            normalize("Windows 11 for ARM64-based Systems"),
            os("windows_11", 22000, Arm64, Full)
        );
        assert_eq!(
            normalize("Windows 11 Version 25H2 for ARM systems"),
            os("windows_11", 26200, Arm64, Full)
        );
        assert_eq!(
            normalize("Windows 11 Version 26H1 for x64-based Systems - extra"),
            os("windows_11", 28000, X64, Full)
        );
        assert_eq!(
            normalize("Windows Server 2008 for x64-based Systems (Server Core installation)"),
            os("windows_server_2008", 6003, X64, ServerCore)
        );
        assert_eq!(
            normalize("Windows 10 Version 1809 for HoloLens"),
            Normalized::OutOfScope("HoloLens (not an MDE platform)")
        );
    }

    #[test]
    fn hotpatch_products() {
        let hot = |name: &str| match normalize(name) {
            Normalized::Mapped(p) => Some((p.software.to_string(), p.hotpatch, p.host)),
            _ => None,
        };
        let want = Some((
            "microsoft-_-windows_server_2022".to_string(),
            true,
            Some(host("windows_server_2022", 20348, X64, Full)),
        ));
        assert_eq!(
            hot("Windows Server 2022 Datacenter: Azure Edition (Hotpatch)"),
            want
        );
        assert_eq!(
            hot("Windows Server 2022 Datacenter: Azure Edition Hotpatch"),
            want
        );
        assert_eq!(
            hot("Windows Server 2022 Datacenter: Azure Edition"),
            Some((
                "microsoft-_-windows_server_2022".to_string(),
                false,
                Some(host("windows_server_2022", 20348, X64, Full)),
            ))
        );
        assert_eq!(hot("Windows Server 2022 Datacenter: Some Edition"), None);
    }

    #[test]
    fn internet_explorer_and_edgehtml_on_windows() {
        assert_eq!(
            normalize("Internet Explorer 11 on Windows 10 Version 22H2 for x64-based Systems"),
            Normalized::Mapped(ProductClass {
                software: SoftwareId::microsoft("internet_explorer"),
                version_line: Some("11".into()),
                host: Some(host("windows_10", 19045, X64, Full)),
                hotpatch: false,
                version_fixed: false,
            })
        );
        assert_eq!(
            normalize(
                "Internet Explorer 9 on Windows Server 2008 for 32-bit Systems Service Pack 2"
            ),
            Normalized::Mapped(ProductClass {
                software: SoftwareId::microsoft("internet_explorer"),
                version_line: Some("9".into()),
                host: Some(host("windows_server_2008", 6003, X86, Full)),
                hotpatch: false,
                version_fixed: false,
            })
        );
        let edge = Normalized::Mapped(ProductClass {
            software: SoftwareId::microsoft("edge"),
            version_line: None,
            host: Some(host("windows_10", 18363, X64, Full)),
            hotpatch: false,
            version_fixed: false,
        });
        assert_eq!(
            normalize(
                "Microsoft Edge (EdgeHTML-based) on Windows 10 Version 1909 for x64-based Systems"
            ),
            edge
        );
        assert_eq!(
            normalize("Microsoft Edge on Windows 10 Version 1909 for x64-based Systems"),
            edge
        );
        assert_eq!(
            normalize("Internet Explorer 11 on Windows Server 2016  (Server Core installation)"),
            Normalized::Mapped(ProductClass {
                software: SoftwareId::microsoft("internet_explorer"),
                version_line: Some("11".into()),
                host: Some(host("windows_server_2016", 14393, X64, ServerCore)),
                hotpatch: false,
                version_fixed: false,
            })
        );
    }

    #[test]
    fn edge_chromium_is_version_fixed_without_host() {
        let chromium = Normalized::Mapped(ProductClass {
            software: SoftwareId::microsoft("edge_chromium-based"),
            version_line: None,
            host: None,
            hotpatch: false,
            version_fixed: true,
        });
        for name in [
            "Microsoft Edge (Chromium-based)",
            "Microsoft Edge (Chromium-based) Extended Stable",
            "Microsoft Edge (Chromium-based) in IE Mode on Windows 10 Version 1809 for x64-based Systems",
        ] {
            assert_eq!(normalize(name), chromium, "{name}");
        }
    }

    #[test]
    fn linux_is_out_of_scope() {
        for name in [
            "cbl2 kernel 5.15.162.2-1 on CBL Mariner 2.0",
            "azl3 kernel 6.6.47.1-1 on Azure Linux 3.0",
            "bind-9.19.21-1.azl3.x86_64.rpm on Azure Linux 3.0 x64",
            "zip-3.0-5.cm1.aarch64.rpm on CBL Mariner 1.0 ARM",
            "CBL Mariner 1.0 x64",
            "Azure Linux 3.0 ARM",
        ] {
            assert_eq!(
                normalize(name),
                Normalized::OutOfScope("Linux package"),
                "{name}"
            );
        }
    }

    #[test]
    fn windows_named_tools_and_applications_are_out_of_scope() {
        assert_eq!(
            normalize("Windows Malicious Software Removal Tool 64-bit"),
            Normalized::OutOfScope("run-once tool, not installed software")
        );
        assert_eq!(
            normalize("Windows Azure Pack Rollup 13.1"),
            Normalized::OutOfScope("server application updated by its own installer")
        );
    }

    #[test]
    fn everything_else_is_unmapped() {
        for name in [
            "Microsoft Office 2019 for 32-bit editions",
            "Microsoft .NET Framework 4.8 on Windows 10 Version 22H2 for x64-based Systems",
            "Windows 10 HLK Version 22H2",
            "Windows Terminal for Windows 10",
            "Windows 10 Version 9999 for x64-based Systems",
            "Windows 10 Version 22H2 for RISC-V Systems",
            "Internet Explorer 11 on Windows 95",
            "Windows Server 2003",
            "Azure Linux Guest Agent",
            "",
        ] {
            assert_eq!(normalize(name), Normalized::Unmapped, "{name}");
        }
    }
}
