//! The machine snapshot, in MDE's camelCase style, and its strict validation: an invalid
//! snapshot is rejected with the JSON path of the offending field, never half-stored.

use std::collections::{BTreeMap, BTreeSet};

use kbgap_domain::{
    Arch, Edition, InstallType, KbId, KbListScope, MachineFacts, MachineId, OsFacts, SoftwareId,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One machine's state as reported by an inventory source. See `docs/snapshot.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// Machine id, unique within the tenant. Optional in `PUT` (the path names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<MachineId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_dns_name: Option<String>,
    /// When the machine was last seen (RFC 3339). Machines not seen within the retention
    /// window (30 days by default) count nowhere.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// `Windows10`, `Windows11`, `WindowsServer2019`, … (MDE's `osPlatform`), or the OS
    /// software id (`microsoft-_-windows_10`).
    pub os_platform: String,
    /// Full build, `10.0.19045.3570`; without the revision (`10.0.19045`) only KB evidence
    /// can decide.
    pub os_build: String,
    /// `x64`, `x86`, `arm64` (also MDE's `64-bit` / `32-bit`).
    pub os_architecture: String,
    /// The edition, as the source names it: systeminfo's OS Name ("Microsoft Windows 10
    /// Pro"), osquery's `os_version.name`, or a bare edition ("Enterprise LTSC"). It decides
    /// when a Windows 10 or 11 version leaves servicing; a name kbgap does not recognise
    /// leaves the edition unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_edition: Option<String>,
    /// `full` (default) or `serverCore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_type: Option<String>,
    #[serde(default)]
    pub hotpatch_enrolled: bool,
    /// Installed software other than the OS, by software id (`microsoft-_-internet_explorer`).
    #[serde(default)]
    pub software: Vec<InstalledSoftware>,
    /// Installed KBs, `KB5034122` or `5034122`.
    #[serde(default)]
    pub installed_kbs: Vec<String>,
    /// Whether `installedKbs` is the complete list of installed updates; for the
    /// Win32_QuickFixEngineering sources (`systeminfo`, `wmicQfe`, `getHotFix`,
    /// `osqueryPatches`) complete only for what Windows servicing installs.
    #[serde(default)]
    pub installed_kbs_complete: bool,
    /// Where `installedKbs` came from: the tools whose lists were merged into it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installed_kbs_sources: Vec<KbSource>,
    /// KBs installed but waiting for a restart.
    #[serde(default)]
    pub pending_restart_kbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_group: Option<String>,
}

/// An installed software: by MDE software id (`microsoft-_-internet_explorer`), or by vendor
/// and name, from which the id is derived by MDE's rule (lowercase, spaces → `_`,
/// `vendor-_-name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstalledSoftware {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<SoftwareId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The version: a version line (`2016`) or, better, the product's full build
    /// (`15.0.2101.7`, `16.0.5413.1000`), which is evidence of the updates it contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// This product's own installed updates (`KB5002562`), as an MSI/MSP inventory or
    /// osquery's `programs` "Security Update for …" entries list them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<String>,
    /// Whether `updates` is every installed update of this product: then one of its KBs
    /// absent from it is missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub updates_complete: bool,
}

impl InstalledSoftware {
    /// An entry by software id.
    pub fn with_id(id: SoftwareId, version: Option<String>) -> Self {
        InstalledSoftware {
            id: Some(id),
            vendor: None,
            name: None,
            version,
            updates: Vec::new(),
            updates_complete: false,
        }
    }

    /// The software id: `id`, or derived from `vendor` and `name`. The error is the field
    /// at fault and why.
    pub fn software_id(&self) -> Result<SoftwareId, (&'static str, String)> {
        match (&self.id, &self.vendor, &self.name) {
            (Some(id), None, None) => Ok(id.clone()),
            (Some(_), _, _) => Err(("id", "give either id, or vendor and name, not both".into())),
            (None, Some(vendor), Some(name)) => {
                let part = |s: &str| {
                    s.split_whitespace()
                        .collect::<Vec<_>>()
                        .join("_")
                        .to_lowercase()
                };
                let (v, n) = (part(vendor), part(name));
                if v.is_empty() || v.contains("-_-") {
                    return Err(("vendor", format!("'{vendor}' is not a vendor name")));
                }
                if n.is_empty() {
                    return Err(("name", "is empty".into()));
                }
                SoftwareId::parse(&format!("{v}-_-{n}")).map_err(|e| ("name", e.to_string()))
            }
            (None, None, _) => Err(("id", "give id, or vendor and name".into())),
            (None, Some(_), None) => Err(("name", "vendor needs a name".into())),
        }
    }
}

/// The tool an installed-KB list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KbSource {
    /// `systeminfo`: cuts long lists short, and names some updates only "File 1".
    Systeminfo,
    /// `wmic qfe` (Win32_QuickFixEngineering).
    WmicQfe,
    /// PowerShell `Get-HotFix` (the same class).
    GetHotFix,
    /// osquery's `patches` table (the same class).
    OsqueryPatches,
    /// The Windows Update Agent's history or installed-update search.
    WindowsUpdate,
    /// Anything else (an agent of the organization's own).
    Other,
}

impl KbSource {
    /// Whether the source enumerates Win32_QuickFixEngineering, which lists only what Windows
    /// servicing installs, never MSI/MSP updates of Office, SQL Server, Exchange, ….
    pub fn windows_servicing_only(self) -> bool {
        matches!(
            self,
            KbSource::Systeminfo
                | KbSource::WmicQfe
                | KbSource::GetHotFix
                | KbSource::OsqueryPatches
        )
    }
}

/// Why a snapshot was rejected: the JSON path of the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SnapshotError {
    /// `osBuild`, `software[2].id`, `[3].lastSeen` (within a batch), or `.` for the document.
    pub path: String,
    pub message: String,
}

impl SnapshotError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        SnapshotError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error inside a batch, at entry `index`.
    pub fn at_index(self, index: usize) -> Self {
        let path = if self.path == "." {
            format!("[{index}]")
        } else {
            format!("[{index}].{}", self.path)
        };
        SnapshotError { path, ..self }
    }
}

/// Parses and validates one snapshot document.
pub fn parse_snapshot(json: &[u8]) -> Result<Snapshot, SnapshotError> {
    let de = &mut serde_json::Deserializer::from_slice(json);
    let snapshot: Snapshot = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        SnapshotError::new(path, e.into_inner().to_string())
    })?;
    snapshot.facts()?;
    Ok(snapshot)
}

/// Parses a batch: a JSON array, or NDJSON (one snapshot per non-empty line) when `ndjson`.
/// Any invalid entry rejects the whole batch, naming the entry's index.
pub fn parse_snapshots(body: &[u8], ndjson: bool) -> Result<Vec<Snapshot>, SnapshotError> {
    parse_batch(&batch_entries(body, ndjson)?)
}

/// The entries of a batch, each as its own JSON text, found without parsing them as
/// snapshots: callers count them (against a batch limit) before paying for the parse.
pub fn batch_entries(body: &[u8], ndjson: bool) -> Result<Vec<&str>, SnapshotError> {
    if ndjson {
        let text = std::str::from_utf8(body)
            .map_err(|e| SnapshotError::new(".", format!("body is not UTF-8: {e}")))?;
        return Ok(text.lines().filter(|l| !l.trim().is_empty()).collect());
    }
    let entries: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
        .map_err(|e| SnapshotError::new(".", format!("expected a JSON array of snapshots: {e}")))?;
    Ok(entries.into_iter().map(|raw| raw.get()).collect())
}

/// Parses the entries [`batch_entries`] found. Each entry is parsed from its own text, so an
/// error's path is the entry's, prefixed with its index.
pub fn parse_batch(entries: &[&str]) -> Result<Vec<Snapshot>, SnapshotError> {
    entries
        .iter()
        .enumerate()
        .map(|(i, text)| parse_snapshot(text.as_bytes()).map_err(|e| e.at_index(i)))
        .collect()
}

/// MDE `osPlatform` values and the OS software ids they stand for.
/// The names after `windowsserver2025` are kbgap's, for platforms MDE does not onboard.
const PLATFORMS: &[(&str, &str)] = &[
    ("windows7", "windows_7"),
    ("windows8.1", "windows_8.1"),
    ("windows8blue", "windows_8.1"),
    ("windows10", "windows_10"),
    ("windows11", "windows_11"),
    ("windowsserver2008", "windows_server_2008"),
    ("windowsserver2008r2", "windows_server_2008_r2"),
    ("windowsserver2012", "windows_server_2012"),
    ("windowsserver2012r2", "windows_server_2012_r2"),
    ("windowsserver2016", "windows_server_2016"),
    ("windowsserver2019", "windows_server_2019"),
    ("windowsserver2022", "windows_server_2022"),
    ("windowsserver2025", "windows_server_2025"),
    ("windowsxp", "windows_xp"),
    ("windowsvista", "windows_vista"),
    ("windows8", "windows_8"),
    ("windowsserver2003", "windows_server_2003"),
    ("windowsserver2003r2", "windows_server_2003"),
];

/// The platform names accepted, for error messages.
const PLATFORM_NAMES: &str = "WindowsXP, WindowsVista, Windows7, Windows8, Windows8.1, Windows10, \
     Windows11, WindowsServer2003, WindowsServer2008, WindowsServer2008R2, WindowsServer2012, \
     WindowsServer2012R2, WindowsServer2016, WindowsServer2019, WindowsServer2022, \
     WindowsServer2025, or an OS software id such as microsoft-_-windows_10";

/// The OS software id an `osPlatform` value stands for.
pub(crate) fn platform_software(platform: &str) -> Option<SoftwareId> {
    os_software(platform)
}

/// Whether the platform is named by an OS software id (`microsoft-_-windows_10`) rather
/// than by one of MDE's `osPlatform` names, and that id is not one of the names' ids: such an
/// id is checked against the catalog at ingestion, so a typo is refused, not evaluated as an
/// OS without updates.
pub fn platform_is_free_software_id(platform: &str) -> bool {
    let p = platform.trim().to_ascii_lowercase();
    p.contains("-_-")
        && !PLATFORMS
            .iter()
            .any(|(_, product)| SoftwareId::microsoft(product).as_str() == p)
}

fn os_software(platform: &str) -> Option<SoftwareId> {
    let p = platform.trim().to_ascii_lowercase();
    if p.contains("-_-") {
        return SoftwareId::parse(&p).ok();
    }
    let compact: String = p
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .collect();
    PLATFORMS
        .iter()
        .find(|(name, _)| *name == compact)
        .map(|(_, product)| SoftwareId::microsoft(product))
}

fn arch(s: &str) -> Option<Arch> {
    match s.trim().to_ascii_lowercase().as_str() {
        "x64" | "amd64" | "64-bit" | "x64-based" => Some(Arch::X64),
        "x86" | "32-bit" | "x86-based" => Some(Arch::X86),
        "arm64" | "arm64-based" => Some(Arch::Arm64),
        "itanium" | "ia64" => Some(Arch::Itanium),
        _ => None,
    }
}

fn kb_list(field: &str, items: &[String]) -> Result<BTreeSet<KbId>, SnapshotError> {
    items
        .iter()
        .enumerate()
        .map(|(i, k)| {
            KbId::parse(k).map_err(|e| SnapshotError::new(format!("{field}[{i}]"), e.to_string()))
        })
        .collect()
}

impl Snapshot {
    /// The edition group `osEdition` names, if kbgap recognises it.
    pub fn edition(&self) -> Option<Edition> {
        self.os_edition.as_deref().and_then(Edition::from_name)
    }

    /// The evaluation facts this snapshot states.
    pub fn facts(&self) -> Result<MachineFacts, SnapshotError> {
        let os_software = os_software(&self.os_platform).ok_or_else(|| {
            SnapshotError::new(
                "osPlatform",
                format!(
                    "unknown platform '{}': expected one of {PLATFORM_NAMES}",
                    self.os_platform
                ),
            )
        })?;
        let build = kbgap_domain::WindowsBuild::parse(&self.os_build).ok_or_else(|| {
            SnapshotError::new(
                "osBuild",
                format!(
                    "'{}' is not a Windows build such as 10.0.19045.3570",
                    self.os_build
                ),
            )
        })?;
        let arch = arch(&self.os_architecture).ok_or_else(|| {
            SnapshotError::new(
                "osArchitecture",
                format!(
                    "'{}' is not one of x64, x86, arm64, 64-bit, 32-bit",
                    self.os_architecture
                ),
            )
        })?;
        let install_type = match self
            .installation_type
            .as_deref()
            .map(str::to_ascii_lowercase)
        {
            None => InstallType::Full,
            Some(t) if t == "full" => InstallType::Full,
            Some(t) if t == "servercore" || t == "server core" => InstallType::ServerCore,
            Some(t) => {
                return Err(SnapshotError::new(
                    "installationType",
                    format!("'{t}' is not one of full, serverCore"),
                ))
            }
        };
        if let Some(name) = &self.computer_dns_name {
            if name.len() > 255 || name.chars().any(char::is_control) {
                return Err(SnapshotError::new(
                    "computerDnsName",
                    "must be at most 255 characters without control characters",
                ));
            }
        }
        if let Some(name) = &self.os_edition {
            if name.len() > 255 || name.chars().any(char::is_control) {
                return Err(SnapshotError::new(
                    "osEdition",
                    "must be at most 255 characters without control characters",
                ));
            }
        }
        // Sources that name the OS by its product line say "Windows 10" for Windows 11
        // (its registry ProductName still does): the build decides.
        let os_software =
            if os_software.as_str() == "microsoft-_-windows_10" && build.build >= 22000 {
                SoftwareId::microsoft("windows_11")
            } else {
                os_software
            };
        // Server 2008 SP2 reports build 6003 since the April 2019 update and 6002 before; the
        // catalog (and the revisions, which continue across the bump) are those of 6003.
        let branch_build =
            if os_software.as_str() == "microsoft-_-windows_server_2008" && build.build == 6002 {
                6003
            } else {
                build.build
            };
        let mut software: BTreeMap<SoftwareId, Option<String>> = BTreeMap::new();
        let mut installed_kbs = kb_list("installedKbs", &self.installed_kbs)?;
        let mut complete_update_lists = BTreeSet::new();
        for (i, s) in self.software.iter().enumerate() {
            let id = s.software_id().map_err(|(field, message)| {
                SnapshotError::new(format!("software[{i}].{field}"), message)
            })?;
            installed_kbs.extend(kb_list(&format!("software[{i}].updates"), &s.updates)?);
            if s.updates_complete {
                complete_update_lists.insert(id.clone());
            }
            match software.entry(id) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(s.version.clone());
                }
                // Side by side (.NET Framework 3.5 and 4.8): every version counts, in one
                // canonical `3.5|4.8`. An entry without a version makes the version unknown.
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    let merged = match (o.get(), &s.version) {
                        (Some(have), Some(more)) => {
                            let mut versions: Vec<&str> =
                                have.split('|').chain(more.split('|')).collect();
                            versions.sort_unstable();
                            versions.dedup();
                            Some(versions.join("|"))
                        }
                        _ => None,
                    };
                    *o.get_mut() = merged;
                }
            }
        }
        software.insert(os_software.clone(), Some(build.to_string()));
        Ok(MachineFacts {
            os: Some(OsFacts {
                software: os_software,
                build: branch_build,
                revision: build.revision,
                arch,
                install_type,
                hotpatch_enrolled: self.hotpatch_enrolled,
                edition: self.edition(),
            }),
            software,
            installed_kbs,
            kb_list: if !self.installed_kbs_complete {
                KbListScope::Partial
            } else if !self.installed_kbs_sources.is_empty()
                && self
                    .installed_kbs_sources
                    .iter()
                    .all(|s| s.windows_servicing_only())
            {
                KbListScope::WindowsServicing
            } else {
                KbListScope::Everything
            },
            complete_update_lists,
            pending_kbs: kb_list("pendingRestartKbs", &self.pending_restart_kbs)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{
        "id": "pc-1",
        "computerDnsName": "pc-1.contoso.com",
        "lastSeen": "2024-01-30T10:00:00Z",
        "osPlatform": "Windows10",
        "osBuild": "10.0.19045.3570",
        "osArchitecture": "x64",
        "software": [{"id": "microsoft-_-internet_explorer", "version": "11.0"}],
        "installedKbs": ["KB5031356", "5030211"],
        "installedKbsComplete": true,
        "pendingRestartKbs": ["KB5034122"]
    }"#;

    #[test]
    fn update_lists_have_a_scope() {
        let with = |extra: &str| {
            let json = format!(
                r#"{{"id":"pc-1","lastSeen":"2024-01-30T10:00:00Z","osPlatform":"Windows10","osBuild":"10.0.19045.3570","osArchitecture":"x64","installedKbs":["KB5031356"],"installedKbsComplete":true{extra}}}"#
            );
            parse_snapshot(json.as_bytes()).and_then(|s| s.facts())
        };
        // Win32_QuickFixEngineering sources see what Windows servicing installs, no more.
        let qfe = with(r#","installedKbsSources":["systeminfo","wmicQfe"]"#).unwrap();
        assert_eq!(qfe.kb_list, KbListScope::WindowsServicing);
        let agent = with(r#","installedKbsSources":["wmicQfe","other"]"#).unwrap();
        assert_eq!(agent.kb_list, KbListScope::Everything);
        // A product's own update list, complete or not.
        let office = with(
            r#","software":[{"id":"microsoft-_-office","version":"16.0.5413.1000","updates":["KB5002730"],"updatesComplete":true},{"id":"microsoft-_-sql_server","version":"15.0.2101.7","updates":["5021125"]}]"#,
        )
        .unwrap();
        assert_eq!(
            office
                .installed_kbs
                .iter()
                .map(|k| k.number())
                .collect::<Vec<_>>(),
            vec![5002730, 5021125, 5031356]
        );
        assert_eq!(
            office
                .complete_update_lists
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            vec!["microsoft-_-office"]
        );
        let bad =
            with(r#","software":[{"id":"microsoft-_-office","updates":["KBx"]}]"#).unwrap_err();
        assert_eq!(bad.path, "software[0].updates[0]");
    }

    #[test]
    fn a_valid_snapshot_gives_exact_facts() {
        let s = parse_snapshot(VALID.as_bytes()).unwrap();
        let f = s.facts().unwrap();
        let os = f.os.unwrap();
        assert_eq!(os.software.as_str(), "microsoft-_-windows_10");
        assert_eq!(
            (os.build, os.revision, os.arch),
            (19045, Some(3570), Arch::X64)
        );
        assert_eq!(os.install_type, InstallType::Full);
        assert_eq!(
            f.installed_kbs
                .iter()
                .map(|k| k.number())
                .collect::<Vec<_>>(),
            vec![5030211, 5031356]
        );
        assert_eq!(f.kb_list, KbListScope::Everything);
        assert_eq!(f.pending_kbs.iter().next().unwrap().number(), 5034122);
        assert_eq!(
            f.software.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["microsoft-_-internet_explorer", "microsoft-_-windows_10"]
        );
    }

    #[test]
    fn side_by_side_versions_of_one_software_all_count() {
        let net = |versions: &[Option<&str>]| {
            let entries: Vec<String> = versions
                .iter()
                .map(|v| match v {
                    Some(v) => format!(
                        r#"{{"vendor": "Microsoft", "name": ".NET Framework", "version": "{v}"}}"#
                    ),
                    None => r#"{"vendor": "Microsoft", "name": ".NET Framework"}"#.to_string(),
                })
                .collect();
            let v = VALID.replace(
                r#"{"id": "microsoft-_-internet_explorer", "version": "11.0"}"#,
                &entries.join(", "),
            );
            parse_snapshot(v.as_bytes())
                .unwrap()
                .facts()
                .unwrap()
                .software
                .get(&SoftwareId::microsoft(".net_framework"))
                .cloned()
                .unwrap()
        };
        assert_eq!(net(&[Some("4.8"), Some("3.5")]), Some("3.5|4.8".into()));
        assert_eq!(
            net(&[Some("3.5"), Some("4.8"), Some("3.5")]),
            Some("3.5|4.8".into())
        );
        assert_eq!(net(&[Some("4.8"), None]), None);
    }

    #[test]
    fn errors_name_the_field() {
        let bad_build = VALID.replace("10.0.19045.3570", "banana");
        let e = parse_snapshot(bad_build.as_bytes()).unwrap_err();
        assert_eq!(e.path, "osBuild");
        let bad_kb = VALID.replace("5030211", "Release Notes");
        assert_eq!(
            parse_snapshot(bad_kb.as_bytes()).unwrap_err().path,
            "installedKbs[1]"
        );
        let bad_sw = VALID.replace("microsoft-_-internet_explorer", "a/b");
        assert_eq!(
            parse_snapshot(bad_sw.as_bytes()).unwrap_err().path,
            "software[0].id"
        );
        let unknown = VALID.replace("\"osArchitecture\"", "\"osArch\"");
        let e = parse_snapshot(unknown.as_bytes()).unwrap_err();
        assert!(e.message.contains("unknown field `osArch`"), "{e}");
        let bad_date = VALID.replace("2024-01-30T10:00:00Z", "yesterday");
        assert_eq!(
            parse_snapshot(bad_date.as_bytes()).unwrap_err().path,
            "lastSeen"
        );
    }

    #[test]
    fn software_by_vendor_and_name_and_kb_sources() {
        let v = VALID.replace(
            r#"{"id": "microsoft-_-internet_explorer", "version": "11.0"}"#,
            r#"{"vendor": "Microsoft", "name": "Internet  Explorer", "version": "11.0"}"#,
        );
        let v = v.replace(
            r#""installedKbsComplete": true,"#,
            r#""installedKbsComplete": true, "installedKbsSources": ["systeminfo", "wmicQfe"],"#,
        );
        let s = parse_snapshot(v.as_bytes()).unwrap();
        assert_eq!(
            s.installed_kbs_sources,
            vec![KbSource::Systeminfo, KbSource::WmicQfe]
        );
        let f = s.facts().unwrap();
        assert_eq!(
            f.software.get(&SoftwareId::microsoft("internet_explorer")),
            Some(&Some("11.0".into()))
        );
        // Round trip keeps what the client sent.
        let again = parse_snapshot(serde_json::to_string(&s).unwrap().as_bytes()).unwrap();
        assert_eq!(again, s);
        let both = VALID.replace(
            r#""version": "11.0""#,
            r#""vendor": "microsoft", "name": "x""#,
        );
        assert_eq!(
            parse_snapshot(both.as_bytes()).unwrap_err().path,
            "software[0].id"
        );
        let no_name = VALID.replace(
            r#""id": "microsoft-_-internet_explorer""#,
            r#""vendor": "microsoft""#,
        );
        assert_eq!(
            parse_snapshot(no_name.as_bytes()).unwrap_err().path,
            "software[0].name"
        );
        let bad_source = VALID.replace(
            r#""installedKbsComplete": true,"#,
            r#""installedKbsSources": ["floppy"],"#,
        );
        assert_eq!(
            parse_snapshot(bad_source.as_bytes()).unwrap_err().path,
            "installedKbsSources[0]"
        );
    }

    #[test]
    fn old_platforms_and_build_repairs() {
        let os = |platform: &str, build: &str| {
            let v = VALID
                .replace("Windows10", platform)
                .replace("10.0.19045.3570", build);
            let f = parse_snapshot(v.as_bytes()).unwrap().facts().unwrap();
            let os = f.os.unwrap();
            (os.software.to_string(), os.build)
        };
        assert_eq!(
            os("WindowsXP", "5.1.2600"),
            ("microsoft-_-windows_xp".into(), 2600)
        );
        assert_eq!(
            os("WindowsVista", "6.0.6002.24000"),
            ("microsoft-_-windows_vista".into(), 6002)
        );
        assert_eq!(
            os("WindowsServer2003R2", "5.2.3790"),
            ("microsoft-_-windows_server_2003".into(), 3790)
        );
        assert_eq!(
            os("Windows8", "6.2.9200"),
            ("microsoft-_-windows_8".into(), 9200)
        );
        // Server 2008 SP2 before the April 2019 bump: the catalog's 6003 branch.
        assert_eq!(
            os("WindowsServer2008", "6.0.6002.18005"),
            ("microsoft-_-windows_server_2008".into(), 6003)
        );
        // "Windows 10" at a Windows 11 build is Windows 11.
        assert_eq!(
            os("Windows10", "10.0.22631.3007"),
            ("microsoft-_-windows_11".into(), 22631)
        );
    }

    #[test]
    fn batches_name_the_failing_entry() {
        let good = VALID.replace('\n', " ");
        let bad = good.replace("Windows10", "Windows95");
        let ndjson = format!("{good}\n\n{bad}\n");
        let e = parse_snapshots(ndjson.as_bytes(), true).unwrap_err();
        assert_eq!(e.path, "[1].osPlatform");
        let array = format!("[{good},{good},{bad}]");
        assert_eq!(
            parse_snapshots(array.as_bytes(), false).unwrap_err().path,
            "[2].osPlatform"
        );
        assert_eq!(
            parse_snapshots(format!("[{good}]").as_bytes(), false)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(parse_snapshots(b"{}", false).unwrap_err().path, ".");
    }
}
