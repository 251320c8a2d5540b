//! CVRF product names → what they mean: the rule engine over the reviewed product table in
//! `data/products.toml` (compiled in), one ordered list of anchored regex rules per family.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use kbgap_domain::product::{Arch, HostOs, InstallType, Normalized, ProductClass, ProductUpdates};
use kbgap_domain::SoftwareId;
use regex::{Captures, Regex};
use serde::Deserialize;

/// The product table, reviewed data in the repository.
const PRODUCTS_TOML: &str = include_str!("../data/products.toml");

/// How a product's security updates relate to each other when the remediation's `SubType`
/// says nothing more specific (semantics §2 "track").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProductTrack {
    /// Windows 10 and later: the monthly latest cumulative update.
    Lcu,
    /// Windows 7 / 8.1 / 2008 / 2012 era: Monthly Rollup (cumulative) or Security Only (not),
    /// by `SubType`.
    Rollup,
    /// Internet Explorer's own cumulative update on pre-Windows 10 hosts.
    IeCumulative,
    /// The product's own cumulative updates (.NET Framework on Windows 10+, Flash Player); for
    /// a product named without a host, cumulative within a servicing path that is a range of
    /// builds (SQL Server GDR / CU).
    Cumulative,
    /// Cumulative within the release the build's third part names (an Exchange CU).
    CumulativePerRelease,
    /// Serviced per component, each component's updates cumulative (Office MSI, SharePoint).
    Components,
    /// Every KB is its own frontier.
    Standalone,
    /// Judged by version, never by KB.
    VersionFixed,
    /// Hotpatch-only products.
    Hotpatch,
}

impl ProductTrack {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductTrack::Lcu => "lcu",
            ProductTrack::Rollup => "rollup",
            ProductTrack::IeCumulative => "ie-cumulative",
            ProductTrack::Cumulative => "cumulative",
            ProductTrack::CumulativePerRelease => "cumulative-per-release",
            ProductTrack::Components => "components",
            ProductTrack::Standalone => "standalone",
            ProductTrack::VersionFixed => "version-fixed",
            ProductTrack::Hotpatch => "hotpatch",
        }
    }

    fn parse(s: &str) -> Option<ProductTrack> {
        Some(match s {
            "lcu" => ProductTrack::Lcu,
            "rollup" => ProductTrack::Rollup,
            "ie-cumulative" => ProductTrack::IeCumulative,
            "cumulative" => ProductTrack::Cumulative,
            "cumulative-per-release" => ProductTrack::CumulativePerRelease,
            "components" => ProductTrack::Components,
            "standalone" => ProductTrack::Standalone,
            "version-fixed" => ProductTrack::VersionFixed,
            "hotpatch" => ProductTrack::Hotpatch,
            _ => return None,
        })
    }
}

impl fmt::Display for ProductTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the product table says about one name. `normalized` is what the domain's
/// catalog uses; the other fields are what `ProductClass` cannot carry yet (see the README of
/// the issue hand-off): the family for reports, the architecture of host-less products
/// (Office 32/64-bit), the component, servicing level, install flavour and default track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The family the matching rule belongs to; "unmapped" when no rule matched.
    pub family: &'static str,
    pub normalized: Normalized,
    /// The host's architecture for OS products and components on Windows; the product's own
    /// for host-less products ("Microsoft Office 2016 (64-bit edition)").
    pub arch: Option<Arch>,
    /// The part of the software: `word` within `office`, `enterprise` SharePoint, …
    pub component: Option<String>,
    /// The update level or servicing branch the name states: `gdr`, `service pack 3 cu 4`,
    /// `cumulative update 23`.
    pub servicing: Option<String>,
    /// Install technology or flavour: `msi`, `click-to-run`, `rt`, `admin level`.
    pub install: Option<String>,
    pub track: Option<ProductTrack>,
}

/// The family of names no rule matches.
pub const UNMAPPED_FAMILY: &str = "unmapped";

/// Normalizes one CVRF product name for the domain's catalog.
pub fn normalize(product_name: &str) -> Normalized {
    classify(product_name).normalized
}

/// Classifies one CVRF product name with the product table. Matching is on the whole name
/// after lowercasing and collapsing whitespace, so "Windows Server 2019  (Server Core
/// installation)" and "… (Server Core Installation)" are the same product, while look-alikes
/// such as "Windows 10 HLK Version 22H2" are not Windows.
pub fn classify(product_name: &str) -> Classification {
    let name = canonical(product_name);
    let table = table();
    for rule in &table.rules {
        if let Some(c) = rule.apply(table, &name) {
            return c;
        }
    }
    Classification {
        family: UNMAPPED_FAMILY,
        normalized: Normalized::Unmapped,
        arch: None,
        component: None,
        servicing: None,
        install: None,
        track: None,
    }
}

/// Every family the product table names, in file order, without repeats.
pub fn families() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in &table().rules {
        if !out.contains(&r.family.as_str()) {
            out.push(&r.family);
        }
    }
    out
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

// ---------------------------------------------------------------------------------------------
// The table file.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    versions: HashMap<String, HashMap<String, u32>>,
    rule: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    family: String,
    #[serde(rename = "match")]
    pattern: String,
    out_of_scope: Option<String>,
    #[serde(default)]
    os: bool,
    software: Option<String>,
    build: Option<u32>,
    versions: Option<String>,
    default_version: Option<String>,
    arch: Option<String>,
    arch_default: Option<String>,
    host: Option<String>,
    line: Option<String>,
    #[serde(default)]
    line_alternatives: bool,
    component: Option<String>,
    package: Option<String>,
    servicing: Option<String>,
    install: Option<String>,
    track: Option<String>,
    track_nt10: Option<String>,
    #[serde(default)]
    version_fixed: bool,
}

struct Table {
    versions: HashMap<String, HashMap<String, u32>>,
    rules: Vec<Rule>,
}

// A few hundred rules, built once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    OutOfScope(String),
    Map {
        software: String,
        build: Option<u32>,
        versions: Option<String>,
        default_version: Option<String>,
        arch: Option<Arch>,
        arch_default: Option<Arch>,
        host: Option<String>,
        line: Option<String>,
        line_alternatives: bool,
        component: Option<String>,
        package: Option<String>,
        servicing: Option<String>,
        install: Option<String>,
        track: Option<ProductTrack>,
        track_nt10: Option<ProductTrack>,
        version_fixed: bool,
    },
}

struct Rule {
    family: String,
    os: bool,
    regex: Regex,
    outcome: Outcome,
}

/// The parsed table; the file is part of the source tree, so a broken one is a build defect
/// that the `the_product_table_loads` test reports with the rule at fault.
fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| match load(PRODUCTS_TOML) {
        Ok(t) => t,
        Err(e) => panic!("crates/catalog/data/products.toml: {e}"),
    })
}

/// Parses and checks the table; the error names the rule (1-based, with its family).
fn load(text: &str) -> Result<Table, String> {
    let file: TableFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut rules = Vec::with_capacity(file.rule.len());
    for (i, spec) in file.rule.into_iter().enumerate() {
        let at = format!("rule {} ({})", i + 1, spec.family);
        rules.push(compile_rule(spec, &file.versions).map_err(|e| format!("{at}: {e}"))?);
    }
    Ok(Table {
        versions: file.versions,
        rules,
    })
}

fn compile_rule(
    spec: RuleSpec,
    versions: &HashMap<String, HashMap<String, u32>>,
) -> Result<Rule, String> {
    let regex = Regex::new(&format!("^(?:{})$", spec.pattern)).map_err(|e| e.to_string())?;
    let has_group = |g: &str| regex.capture_names().flatten().any(|n| n == g);
    let arch_of = |a: &Option<String>| -> Result<Option<Arch>, String> {
        match a {
            None => Ok(None),
            Some(s) => arch_word(s)
                .map(Some)
                .ok_or_else(|| format!("'{s}' is not an architecture")),
        }
    };
    let track_of = |t: &Option<String>| -> Result<Option<ProductTrack>, String> {
        match t {
            None => Ok(None),
            Some(s) => ProductTrack::parse(s)
                .map(Some)
                .ok_or_else(|| format!("'{s}' is not a track")),
        }
    };
    let outcome = match (spec.out_of_scope, spec.software) {
        (Some(reason), None) => Outcome::OutOfScope(reason),
        (None, Some(software)) => {
            if let Some(v) = &spec.versions {
                if !versions.contains_key(v) {
                    return Err(format!("no [versions.{v}] table"));
                }
                if !has_group("version") && spec.default_version.is_none() {
                    return Err("`versions` needs a `version` capture or `default_version`".into());
                }
            }
            if spec.os {
                if spec.build.is_none() && spec.versions.is_none() {
                    return Err("an os rule needs `build` or `versions`".into());
                }
                if spec.arch.is_none() && spec.arch_default.is_none() && !has_group("arch") {
                    return Err(
                        "an os rule needs `arch`, `arch_default` or an `arch` capture".into(),
                    );
                }
                if spec.host.is_some() {
                    return Err("an os rule has no host".into());
                }
            }
            if let Some(h) = &spec.host {
                if !has_group(h) {
                    return Err(format!("`host = \"{h}\"` names no capture of the regex"));
                }
            }
            Outcome::Map {
                software,
                build: spec.build,
                versions: spec.versions,
                default_version: spec.default_version,
                arch: arch_of(&spec.arch)?,
                arch_default: arch_of(&spec.arch_default)?,
                host: spec.host,
                line: spec.line,
                line_alternatives: spec.line_alternatives,
                component: spec.component,
                package: spec.package,
                servicing: spec.servicing,
                install: spec.install,
                track: track_of(&spec.track)?,
                track_nt10: track_of(&spec.track_nt10)?,
                version_fixed: spec.version_fixed,
            }
        }
        _ => return Err("exactly one of `out_of_scope` and `software` is required".into()),
    };
    Ok(Rule {
        family: spec.family,
        os: spec.os,
        regex,
        outcome,
    })
}

/// The architecture words of product names and of the table.
fn arch_word(s: &str) -> Option<Arch> {
    match s {
        "32-bit" | "32" | "x86" => Some(Arch::X86),
        "x64-based" | "64" | "x64" | "64-bit" => Some(Arch::X64),
        "arm64-based" | "arm64" | "arm" => Some(Arch::Arm64),
        "itanium-based" | "itanium" => Some(Arch::Itanium),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Matching.
// ---------------------------------------------------------------------------------------------

/// An OS as a host or product.
enum Os {
    Windows {
        host: HostOs,
        hotpatch: bool,
        track: Option<ProductTrack>,
        family: &'static str,
    },
    OutOfScope(&'static str, &'static str),
}

impl Rule {
    /// The classification when this rule matches the (canonical) name.
    fn apply(&'static self, table: &'static Table, name: &str) -> Option<Classification> {
        if self.os {
            return match self.os_match(table, name)? {
                Os::Windows {
                    host,
                    hotpatch,
                    track,
                    family,
                } => Some(Classification {
                    family,
                    arch: Some(host.arch),
                    normalized: Normalized::Mapped(ProductClass {
                        software: host.software.clone(),
                        version_line: None,
                        host: Some(host),
                        hotpatch,
                        version_fixed: false,
                        servicing: None,
                        updates: ProductUpdates::Standalone,
                        package: None,
                    }),
                    component: None,
                    servicing: None,
                    install: None,
                    track: if hotpatch {
                        Some(ProductTrack::Hotpatch)
                    } else {
                        track
                    },
                }),
                Os::OutOfScope(family, reason) => Some(out_of_scope(family, reason)),
            };
        }
        let caps = self.regex.captures(name)?;
        let Outcome::Map {
            software,
            arch,
            arch_default,
            host,
            line,
            line_alternatives,
            component,
            package,
            servicing,
            install,
            track,
            track_nt10,
            version_fixed,
            ..
        } = &self.outcome
        else {
            return Some(out_of_scope(&self.family, self.reason()));
        };
        let unmapped = || Classification {
            family: &self.family,
            normalized: Normalized::Unmapped,
            arch: None,
            component: None,
            servicing: None,
            install: None,
            track: None,
        };
        // A component names its host; the host must be a Windows the table knows, and a host
        // out of scope puts the component out of scope with it.
        let host_os = match host.as_deref().and_then(|h| caps.name(h)) {
            None => None,
            Some(h) => match os_of(table, h.as_str()) {
                Some(Os::Windows { host, .. }) => Some(host),
                Some(Os::OutOfScope(family, reason)) => return Some(out_of_scope(family, reason)),
                None => return Some(unmapped()),
            },
        };
        let Some(software) = software_id(&expand(software, &caps)) else {
            return Some(unmapped());
        };
        let own_arch = arch
            .or_else(|| caps.name("arch").and_then(|a| arch_word(a.as_str())))
            .or(*arch_default);
        let nt10 = host_os.as_ref().is_some_and(|h| h.build >= 10240);
        let track = if nt10 { track_nt10.or(*track) } else { *track };
        let version_line = line.as_ref().and_then(|l| {
            let l = expand(l, &caps);
            if *line_alternatives {
                Some(
                    l.split('/')
                        .flat_map(|p| p.split(" and "))
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .collect::<Vec<_>>()
                        .join("|"),
                )
            } else {
                Some(l)
            }
            .filter(|l| !l.is_empty())
        });
        let text = |t: &Option<String>| {
            t.as_ref()
                .map(|t| expand(t, &caps))
                .filter(|t| !t.is_empty())
        };
        let servicing = text(servicing);
        // Only products named without a Windows host have updates of their own kind; the
        // others follow the Windows tracks.
        let updates = match (&host_os, track) {
            (None, Some(ProductTrack::Cumulative)) => ProductUpdates::Cumulative,
            (None, Some(ProductTrack::CumulativePerRelease)) => {
                ProductUpdates::CumulativePerRelease
            }
            (None, Some(ProductTrack::Components)) => ProductUpdates::Components,
            _ => ProductUpdates::Standalone,
        };
        Some(Classification {
            family: &self.family,
            arch: host_os.as_ref().map(|h| h.arch).or(own_arch),
            normalized: Normalized::Mapped(ProductClass {
                software,
                version_line,
                host: host_os,
                hotpatch: false,
                version_fixed: *version_fixed,
                servicing: servicing.clone(),
                updates,
                package: text(package),
            }),
            component: text(component),
            servicing,
            install: text(install),
            track,
        })
    }

    fn reason(&'static self) -> &'static str {
        match &self.outcome {
            Outcome::OutOfScope(r) => r,
            Outcome::Map { .. } => "",
        }
    }

    /// An `os` rule against a name: a trailing "(server core installation)" is the same OS
    /// without the GUI shell.
    fn os_match(&'static self, table: &Table, name: &str) -> Option<Os> {
        let (name, install_type) = match name.strip_suffix(" (server core installation)") {
            Some(n) => (n, InstallType::ServerCore),
            None => (name, InstallType::Full),
        };
        let caps = self.regex.captures(name)?;
        let Outcome::Map {
            software,
            build,
            versions,
            default_version,
            arch,
            arch_default,
            track,
            ..
        } = &self.outcome
        else {
            return Some(Os::OutOfScope(&self.family, self.reason()));
        };
        let build = match build {
            Some(b) => *b,
            None => {
                let version = caps
                    .name("version")
                    .map(|v| v.as_str())
                    .or(default_version.as_deref())?;
                *table.versions.get(versions.as_deref()?)?.get(version)?
            }
        };
        let arch = match arch {
            Some(a) => *a,
            None => match caps.name("arch") {
                Some(a) => arch_word(a.as_str())?,
                None => (*arch_default)?,
            },
        };
        Some(Os::Windows {
            host: HostOs {
                software: software_id(&expand(software, &caps))?,
                build,
                arch,
                install_type,
            },
            hotpatch: caps.name("hotpatch").is_some(),
            track: *track,
            family: &self.family,
        })
    }
}

fn out_of_scope(family: &'static str, reason: &'static str) -> Classification {
    Classification {
        family,
        normalized: Normalized::OutOfScope(reason),
        arch: None,
        component: None,
        servicing: None,
        install: None,
        track: None,
    }
}

/// The host of a component: only `os` rules apply.
fn os_of(table: &'static Table, name: &str) -> Option<Os> {
    table
        .rules
        .iter()
        .filter(|r| r.os)
        .find_map(|r| r.os_match(table, name))
}

/// `{capture}` replaced by the capture's text (empty when it did not participate), runs of
/// spaces collapsed and the ends trimmed.
fn expand(template: &str, caps: &Captures<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                if let Some(m) = caps.name(&after[..close]) {
                    out.push_str(m.as_str());
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `windows_10` → `microsoft-_-windows_10`; a value with its own vendor (`adobe-_-…`) is
/// taken as it is.
fn software_id(s: &str) -> Option<SoftwareId> {
    if s.is_empty() {
        None
    } else if s.contains("-_-") {
        SoftwareId::parse(&s.replace(' ', "_")).ok()
    } else {
        Some(SoftwareId::microsoft(s))
    }
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
            servicing: None,
            updates: ProductUpdates::Standalone,
            package: None,
        })
    }

    use Arch::*;
    use InstallType::*;

    #[test]
    fn the_product_table_loads() {
        let t = match load(PRODUCTS_TOML) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert!(t.rules.len() > 80, "{} rules", t.rules.len());
        assert!(families().contains(&"Windows 10"));
    }

    #[test]
    fn a_broken_table_names_the_rule() {
        let bad = r#"
            [versions]
            [[rule]]
            family = "A"
            match = 'a'
            out_of_scope = "x"
            [[rule]]
            family = "B"
            match = 'b('
            software = "b"
        "#;
        let err = load(bad).err().unwrap_or_default();
        assert!(err.starts_with("rule 2 (B): regex parse error"), "{err}");
        let both = r#"
            [versions]
            [[rule]]
            family = "C"
            match = 'c'
            out_of_scope = "x"
            software = "c"
        "#;
        assert_eq!(
            load(both).err().unwrap_or_default(),
            "rule 1 (C): exactly one of `out_of_scope` and `software` is required"
        );
        let no_table = r#"
            [versions]
            [[rule]]
            family = "D"
            os = true
            match = 'd (?P<version>\d+)'
            software = "d"
            versions = "nope"
            arch = "x64"
        "#;
        assert_eq!(
            load(no_table).err().unwrap_or_default(),
            "rule 1 (D): no [versions.nope] table"
        );
    }

    #[test]
    fn templates_expand_and_collapse() {
        let re = Regex::new(r"^(?P<a>\w+)(?: (?P<b>\w+))?$").unwrap_or_else(|e| panic!("{e}"));
        let caps = re.captures("x").unwrap_or_else(|| panic!("no match"));
        assert_eq!(expand("{a} {b} {c} z", &caps), "x z");
        assert_eq!(expand("open {a", &caps), "open {a");
        assert_eq!(
            software_id("adobe-_-flash player").map(|s| s.to_string()),
            Some("adobe-_-flash_player".into())
        );
        assert_eq!(software_id(""), None);
    }

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
            (
                "Windows Vista Service Pack 2",
                os("windows_vista", 6002, X86, Full),
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
        let hot = |name: &str| match classify(name) {
            Classification {
                normalized: Normalized::Mapped(p),
                track,
                ..
            } => Some((p.software.to_string(), p.hotpatch, p.host, track)),
            _ => None,
        };
        let want = Some((
            "microsoft-_-windows_server_2022".to_string(),
            true,
            Some(host("windows_server_2022", 20348, X64, Full)),
            Some(ProductTrack::Hotpatch),
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
                Some(ProductTrack::Lcu),
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
                servicing: None,
                updates: ProductUpdates::Standalone,
                package: None,
            })
        );
        let ie9 = classify(
            "Internet Explorer 9 on Windows Server 2008 for 32-bit Systems Service Pack 2",
        );
        assert_eq!(
            ie9.normalized,
            Normalized::Mapped(ProductClass {
                software: SoftwareId::microsoft("internet_explorer"),
                version_line: Some("9".into()),
                host: Some(host("windows_server_2008", 6003, X86, Full)),
                hotpatch: false,
                version_fixed: false,
                servicing: None,
                updates: ProductUpdates::Standalone,
                package: None,
            })
        );
        // Before Windows 10, IE had its own cumulative update; on Windows 10 it rides the LCU.
        assert_eq!(ie9.track, Some(ProductTrack::IeCumulative));
        let edge = Normalized::Mapped(ProductClass {
            software: SoftwareId::microsoft("edge"),
            version_line: None,
            host: Some(host("windows_10", 18363, X64, Full)),
            hotpatch: false,
            version_fixed: false,
            servicing: None,
            updates: ProductUpdates::Standalone,
            package: None,
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
        let ie_core =
            classify("Internet Explorer 11 on Windows Server 2016  (Server Core installation)");
        assert_eq!(
            ie_core.normalized,
            Normalized::Mapped(ProductClass {
                software: SoftwareId::microsoft("internet_explorer"),
                version_line: Some("11".into()),
                host: Some(host("windows_server_2016", 14393, X64, ServerCore)),
                hotpatch: false,
                version_fixed: false,
                servicing: None,
                updates: ProductUpdates::Standalone,
                package: None,
            })
        );
        assert_eq!(ie_core.track, Some(ProductTrack::Lcu));
    }

    #[test]
    fn edge_chromium_is_version_fixed_without_host() {
        let chromium = Normalized::Mapped(ProductClass {
            software: SoftwareId::microsoft("edge_chromium-based"),
            version_line: None,
            host: None,
            hotpatch: false,
            version_fixed: true,
            servicing: None,
            updates: ProductUpdates::Standalone,
            package: None,
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
            ".NET 8.0 installed on Linux",
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
    fn what_no_rule_matches_is_unmapped() {
        for name in [
            "Windows 10 Version 9999 for x64-based Systems",
            "Windows 10 Version 22H2 for RISC-V Systems",
            "Windows Server 2003",
            "Contoso Widget 7",
            "",
        ] {
            let c = classify(name);
            assert!(
                c.normalized == Normalized::Unmapped
                    || matches!(c.normalized, Normalized::OutOfScope(_)),
                "{name}: {c:?}"
            );
        }
        assert_eq!(classify("Contoso Widget 7").family, UNMAPPED_FAMILY);
        assert_eq!(classify("").normalized, Normalized::Unmapped);
        // A component on a Windows the table does not know is unmapped, under its family.
        let ie = classify("Internet Explorer 11 on Windows 95");
        assert_eq!(
            (ie.family, ie.normalized),
            ("Internet Explorer", Normalized::Unmapped)
        );
        let v = classify("Windows 10 Version 9999 for x64-based Systems");
        assert_eq!(v.normalized, Normalized::Unmapped);
    }
}
