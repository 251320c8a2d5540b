//! File imports: detects each file's format, parses it, merges what several files say about
//! one host (systeminfo + wmic qfe), and gives snapshots with stable ids, or file:line errors.

use std::cmp::Ordering;
use std::io::Read;
use std::path::{Path, PathBuf};

use kbgap_domain::{Arch, KbId, MachineId, SoftwareId};
use serde_json::Value;
use time::OffsetDateTime;

use crate::identity::{fingerprint_id, host_id};
use crate::mde::{self, MdeDevice};
use crate::osquery::{self, OsqueryHost, Program};
use crate::programs;
use crate::qfe::{self, Qfe};
use crate::snapshot::{platform_software, InstalledSoftware, KbSource, Snapshot};
use crate::systeminfo::{self, SystemInfo};
use crate::text;
use crate::windows;
use crate::LineError;

/// The formats `kbgap inventory import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Detected per file.
    Auto,
    /// kbgap snapshots: one JSON document, a JSON array, or NDJSON.
    Snapshot,
    Systeminfo,
    /// `wmic qfe` or `Get-HotFix`.
    Qfe,
    /// osquery results log, or `osqueryi --json` output.
    Osquery,
    /// MDE's software inventory assessment export.
    Mde,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "json" | "ndjson" | "snapshot" => Format::Snapshot,
            "systeminfo" => Format::Systeminfo,
            "qfe" | "wmic-qfe" | "get-hotfix" => Format::Qfe,
            "osquery" => Format::Osquery,
            "mde" => Format::Mde,
            _ => {
                return Err(format!(
                    "'{s}' is not a format: auto, json, systeminfo, qfe, osquery, mde"
                ))
            }
        })
    }
}

/// One file to import.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// Modification time, for `--last-seen mtime`.
    pub modified: Option<OffsetDateTime>,
}

/// When machines from files without a capture time were last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastSeen {
    At(OffsetDateTime),
    /// Each file's modification time (the latest, for a host described by several files).
    FileModified,
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub format: Format,
    /// `None`: osquery results carry their own time; other captures were seen `now`.
    pub last_seen: Option<LastSeen>,
    pub now: OffsetDateTime,
    /// The architecture of machines whose source does not say it (MDE's software
    /// inventory); servers need none, every Windows Server since 2008 R2 being x64.
    pub arch: Option<Arch>,
}

/// Why an import failed: the file and line at fault. Nothing of an import that fails is
/// stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(n) => write!(f, "{}:{n}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ImportError {}

fn err(file: &Path, e: LineError) -> ImportError {
    ImportError {
        file: file.to_path_buf(),
        line: e.line,
        message: e.message,
    }
}

fn err_at(file: &Path, line: usize, message: impl Into<String>) -> ImportError {
    err(file, LineError::at(line, message))
}

/// A host's installed-update list from a capture that says nothing about its OS (`wmic qfe`
/// or osquery `patches` alone): it replaces the list of the machine already stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KbUpdate {
    pub id: MachineId,
    pub file: PathBuf,
    pub line: usize,
    pub kbs: Vec<KbId>,
    pub complete: bool,
    pub source: KbSource,
    pub last_seen: OffsetDateTime,
}

/// The outcome of reading the files: snapshots to store, KB lists to apply to stored
/// machines, and notes for the person importing (partial evidence, derived ids).
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub snapshots: Vec<Snapshot>,
    pub kb_updates: Vec<KbUpdate>,
    pub notes: Vec<String>,
}

/// Applies a KB list to a stored snapshot: the list replaces the stored one (a newer capture
/// of the same host), and the machine was seen again.
pub fn apply_kb_update(mut stored: Snapshot, u: &KbUpdate) -> Snapshot {
    stored.installed_kbs = u.kbs.iter().map(|k| format!("KB{k}")).collect();
    stored.installed_kbs_complete = u.complete;
    stored.installed_kbs_sources = vec![u.source];
    stored.last_seen = stored.last_seen.max(u.last_seen);
    stored
}

/// What one file held, parsed.
enum Parsed {
    Snapshots(Vec<(usize, Snapshot)>),
    Systeminfo(Box<SystemInfo>),
    Qfe(Qfe),
    OsqueryLog(Vec<OsqueryHost>),
    Osqueryi(Box<OsqueryHost>),
    Mde(Vec<MdeDevice>),
}

fn gunzip(file: &Path, bytes: &[u8]) -> Result<Vec<u8>, ImportError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| {
            err(
                file,
                LineError::whole(format!("gzip: {e}: the file is truncated or damaged")),
            )
        })?;
    Ok(out)
}

fn is_ndjson_name(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.ends_with(".ndjson") || name.ends_with(".jsonl")
}

/// The JSON documents of a file: one document, or one per non-empty line.
fn json_documents(lines: &[String], ndjson: bool) -> Result<Vec<(usize, Value)>, LineError> {
    if !ndjson {
        let whole = lines.join("\n");
        if let Ok(v) = serde_json::from_str::<Value>(&whole) {
            return Ok(vec![(1, v)]);
        }
    }
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map(|v| (i + 1, v))
                .map_err(|e| LineError::at(i + 1, format!("not JSON: {e}")))
        })
        .collect()
}

fn snapshot_from(n: usize, v: &Value) -> Result<(usize, Snapshot), LineError> {
    let bytes = serde_json::to_vec(v).map_err(|e| LineError::at(n, e.to_string()))?;
    let s = crate::parse_snapshot(&bytes).map_err(|e| LineError::at(n, e.to_string()))?;
    if s.id.is_none() {
        return Err(LineError::at(n, "id: missing machine id"));
    }
    Ok((n, s))
}

fn parse_json(lines: &[String], ndjson: bool, format: Format) -> Result<Parsed, LineError> {
    let docs = json_documents(lines, ndjson)?;
    // One document holding rows: a JSON array, or MDE's API page {"value": [...]}.
    let rows: Option<Vec<(usize, &Value)>> = match docs.as_slice() {
        [(_, Value::Array(a))] => Some(a.iter().enumerate().map(|(i, v)| (i + 1, v)).collect()),
        [(_, Value::Object(o))]
            if o.get("value").is_some_and(Value::is_array) && !o.contains_key("osPlatform") =>
        {
            o.get("value")
                .and_then(Value::as_array)
                .map(|a| a.iter().enumerate().map(|(i, v)| (i + 1, v)).collect())
        }
        _ => None,
    };
    let first = match &rows {
        Some(r) => r.first().map(|(_, v)| *v),
        None => docs.first().map(|(_, v)| v),
    };
    let detected = match format {
        Format::Auto => match first {
            Some(v) if osquery::is_log_line(v) => Format::Osquery,
            Some(v) if mde::is_row(v) => Format::Mde,
            _ if rows.is_some() && docs.first().is_some_and(|(_, v)| osquery::is_osqueryi(v)) => {
                Format::Osquery
            }
            _ => Format::Snapshot,
        },
        f => f,
    };
    match detected {
        Format::Osquery => {
            if let [(_, v @ Value::Array(_))] = docs.as_slice() {
                return Ok(Parsed::Osqueryi(Box::new(osquery::parse_osqueryi(v)?)));
            }
            Ok(Parsed::OsqueryLog(osquery::parse_log(lines)?))
        }
        Format::Mde => {
            let numbered: Vec<(usize, &Value)> = match rows {
                Some(r) => r,
                None => docs.iter().map(|(n, v)| (*n, v)).collect(),
            };
            Ok(Parsed::Mde(mde::devices(&numbered)?))
        }
        _ => {
            let numbered: Vec<(usize, &Value)> = match (&rows, docs.as_slice()) {
                (Some(r), [(_, Value::Array(_))]) => r.clone(),
                _ => docs.iter().map(|(n, v)| (*n, v)).collect(),
            };
            let in_array = rows.is_some();
            numbered
                .iter()
                .map(|(n, v)| {
                    snapshot_from(*n, v).map_err(|e| {
                        if in_array {
                            LineError::whole(format!("[{}]: {}", n - 1, e.message))
                        } else {
                            e
                        }
                    })
                })
                .collect::<Result<_, _>>()
                .map(Parsed::Snapshots)
        }
    }
}

fn parse_file(f: &InputFile, format: Format) -> Result<Parsed, ImportError> {
    let path = &f.path;
    let bytes = gunzip(path, &f.bytes)?;
    let e = |x: LineError| err(path, x);
    match format {
        Format::Systeminfo => {
            return systeminfo::parse(&bytes)
                .map(|s| Parsed::Systeminfo(Box::new(s)))
                .map_err(e)
        }
        Format::Qfe => return qfe::parse(&bytes).map(Parsed::Qfe).map_err(e),
        _ => {}
    }
    let score = |l: &[String]| {
        usize::from(systeminfo::looks_like(l)) * 10 + usize::from(qfe::looks_like(l))
    };
    let text = text::decode(&bytes, score).map_err(|x| e(x.into()))?;
    let starts_json = text
        .lines
        .iter()
        .flat_map(|l| l.chars())
        .find(|c| !c.is_whitespace())
        .is_some_and(|c| c == '{' || c == '[');
    if starts_json || matches!(format, Format::Snapshot | Format::Osquery | Format::Mde) {
        if !matches!(text.encoding, "ASCII" | "UTF-8" | "UTF-16LE" | "UTF-16BE") {
            return Err(err_at(
                path,
                1,
                format!("JSON must be UTF-8 or UTF-16, not {}", text.encoding),
            ));
        }
        return parse_json(&text.lines, is_ndjson_name(path), format).map_err(e);
    }
    if systeminfo::looks_like(&text.lines) {
        return systeminfo::parse_text(&text)
            .map(|s| Parsed::Systeminfo(Box::new(s)))
            .map_err(e);
    }
    if qfe::looks_like(&text.lines) || text.lines.iter().all(|l| l.trim().is_empty()) {
        return qfe::parse_text(&text).map(Parsed::Qfe).map_err(e);
    }
    Err(err(
        path,
        LineError::whole(
            "cannot tell the format (kbgap snapshots as JSON/NDJSON, systeminfo, wmic qfe or \
             Get-HotFix, osquery results, MDE software inventory): give --format",
        ),
    ))
}

/// Compares versions by their dotted numeric parts ("4.10" > "4.9"), text parts as text.
fn version_cmp(a: &str, b: &str) -> Ordering {
    let mut x = a.split(['.', '-', ' ']);
    let mut y = b.split(['.', '-', ' ']);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    _ => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Adds a software, keeping the highest version when the id repeats: a snapshot holds one
/// version per software (the evaluation's model).
fn add_software(list: &mut Vec<InstalledSoftware>, id: SoftwareId, version: Option<String>) {
    match list.iter_mut().find(|s| s.id.as_ref() == Some(&id)) {
        Some(existing) => {
            let newer = match (&existing.version, &version) {
                (Some(a), Some(b)) => version_cmp(b, a) == Ordering::Greater,
                (None, Some(_)) => true,
                _ => false,
            };
            if newer {
                existing.version = version;
            }
        }
        None => list.push(InstalledSoftware::with_id(id, version)),
    }
}

/// An Add/Remove Programs entry as a software id. Microsoft's components that the catalog
/// knows by MDE's names are mapped explicitly; everything else gets MDE's derivation from
/// vendor and name (the publisher without its company suffix).
pub fn program_software(p: &Program) -> Option<(SoftwareId, Option<String>)> {
    let version = Some(p.version.clone()).filter(|v| !v.is_empty());
    let name = p.name.trim();
    if name == "Microsoft Edge" {
        return Some((SoftwareId::microsoft("edge_chromium-based"), version));
    }
    if let Some(rest) = name.strip_prefix("Microsoft .NET Framework ") {
        let line: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if !line.is_empty() {
            return Some((SoftwareId::microsoft(".net_framework"), Some(line)));
        }
    }
    let mut vendor = p.publisher.trim().to_lowercase();
    for suffix in [
        " corporation",
        " corp.",
        " corp",
        ", inc.",
        " inc.",
        " inc",
        " llc",
        " ltd.",
        " ltd",
        " gmbh",
        " co.",
    ] {
        if let Some(v) = vendor.strip_suffix(suffix) {
            vendor = v.trim_end_matches(',').trim().to_string();
        }
    }
    if vendor.is_empty() {
        vendor = "unknown".into();
    }
    let mut product = name.to_lowercase();
    if let Some(rest) = product.strip_prefix(&format!("{vendor} ")) {
        product = rest.to_string();
    }
    let part = |s: &str| s.split_whitespace().collect::<Vec<_>>().join("_");
    SoftwareId::parse(&format!("{}-_-{}", part(&vendor), part(&product)))
        .ok()
        .map(|id| (id, version))
}

/// Builder of one machine from captures.
struct Machine {
    id: MachineId,
    dns_name: Option<String>,
    files: Vec<PathBuf>,
    modified: Vec<Option<OffsetDateTime>>,
    capture_time: Option<OffsetDateTime>,
}

fn last_seen(opts: &ImportOptions, m: &Machine) -> Result<OffsetDateTime, ImportError> {
    match opts.last_seen {
        Some(LastSeen::At(t)) => Ok(t),
        Some(LastSeen::FileModified) => m
            .modified
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max())
            .ok_or_else(|| {
                err(
                    &m.files[0],
                    LineError::whole("the file's modification time is unknown"),
                )
            }),
        None => Ok(m.capture_time.unwrap_or(opts.now)),
    }
}

/// The product name as the snapshot's `osEdition`: what the tool printed, trimmed; nothing
/// when it printed nothing.
fn edition_name(os_name: &str) -> Option<String> {
    let name = os_name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn kb_strings(kbs: &[KbId]) -> Vec<String> {
    kbs.iter().map(|k| format!("KB{k}")).collect()
}

/// The systeminfo capture of a host, with what wmic qfe files add.
struct SysinfoMachine {
    machine: Machine,
    info: SystemInfo,
    kbs: Vec<KbId>,
    complete: bool,
    sources: Vec<KbSource>,
}

/// The file name of the systeminfo capture a qfe capture without a host column belongs to:
/// `X_qfe.txt` ↔ `X_systeminfo.txt`, the naming of captures taken together.
fn paired_name(qfe_path: &Path) -> Option<String> {
    let name = qfe_path.file_name()?.to_string_lossy().to_lowercase();
    let at = name.rfind("qfe")?;
    Some(format!("{}systeminfo{}", &name[..at], &name[at + 3..]))
}

/// Reads every file and builds what they describe. Fails on the first bad file, naming it
/// and the line: then nothing of the import may be stored.
pub fn import_files(files: &[InputFile], opts: &ImportOptions) -> Result<Imported, ImportError> {
    let mut b = Builder::default();
    let out = &mut b.out;
    let mut parsed = Vec::with_capacity(files.len());
    for f in files {
        parsed.push((f, parse_file(f, opts.format)?));
    }

    // systeminfo captures first: qfe captures attach to them.
    let mut sysinfos: Vec<SysinfoMachine> = Vec::new();
    for (f, p) in &parsed {
        let Parsed::Systeminfo(info) = p else {
            continue;
        };
        let info = (**info).clone();
        let id = match &info.host_name {
            Some(h) => host_id(h).map_err(|m| err_at(&f.path, 1, m))?,
            None => {
                // No host name (removed or redacted): values fixed for the life of the
                // installation identify it; a capture with none of them only by its content.
                let stable: Vec<&str> = [&info.product_id, &info.install_date]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                if stable.is_empty() {
                    out.notes.push(format!(
                        "{}: no host name, product id or install date: the machine id is derived \
                         from the file's content, so a new capture of this host will not replace it",
                        f.path.display()
                    ));
                    fingerprint_id("sysinfo", &[&String::from_utf8_lossy(&f.bytes)])
                } else {
                    out.notes.push(format!(
                        "{}: no host name: the machine id is derived from its product id, install date and model",
                        f.path.display()
                    ));
                    let mut parts = stable;
                    parts.extend(info.manufacturer.as_deref());
                    parts.extend(info.model.as_deref());
                    fingerprint_id("sysinfo", &parts)
                }
            }
        };
        let dns_name = info.host_name.as_ref().map(|h| {
            match info.domain.as_deref().filter(|d| d.contains('.')) {
                Some(d) => format!("{h}.{d}").to_lowercase(),
                None => h.to_lowercase(),
            }
        });
        sysinfos.push(SysinfoMachine {
            machine: Machine {
                id,
                dns_name,
                files: vec![f.path.clone()],
                modified: vec![f.modified],
                capture_time: None,
            },
            kbs: info.kbs.clone(),
            complete: info.kbs_complete(),
            sources: vec![KbSource::Systeminfo],
            info,
        });
    }

    // wmic qfe / Get-HotFix: merged into the same host's systeminfo, else a KB update.
    for (f, p) in &parsed {
        let Parsed::Qfe(q) = p else { continue };
        // An explicit zero: an empty capture beside its host's systeminfo that says
        // `Hotfix(s): N/A` is the machine saying that no update is installed, a complete and
        // empty list. An empty capture alone stays a failed collection.
        if q.hosts.is_empty() {
            let paired = paired_name(&f.path);
            if let Some(s) = sysinfos.iter_mut().find(|s| {
                s.info.none_installed
                    && s.machine.files.iter().any(|p| {
                        p.file_name().map(|n| n.to_string_lossy().to_lowercase()) == paired
                    })
            }) {
                s.complete = true;
                if !s.sources.contains(&q.source) {
                    s.sources.push(q.source);
                }
                s.machine.files.push(f.path.clone());
                s.machine.modified.push(f.modified);
            }
        }
        for h in &q.hosts {
            let target = match &h.host {
                Some(name) => host_id(name).map_err(|m| err_at(&f.path, h.line, m))?,
                None => {
                    let paired = paired_name(&f.path);
                    let found = sysinfos.iter().find(|s| {
                        s.machine.files.iter().any(|p| {
                            p.file_name().map(|n| n.to_string_lossy().to_lowercase()) == paired
                        })
                    });
                    match found {
                        Some(s) => s.machine.id.clone(),
                        None => {
                            return Err(err_at(
                                &f.path,
                                h.line,
                                format!(
                                    "the capture has no CSName column, so its host is unknown: \
                                     import it with the host's systeminfo named {}, or capture \
                                     with `wmic qfe get CSName,HotFixID`",
                                    paired.unwrap_or_else(|| "…systeminfo…".into())
                                ),
                            ))
                        }
                    }
                }
            };
            match sysinfos.iter_mut().find(|s| s.machine.id == target) {
                Some(s) => {
                    for kb in &h.kbs {
                        if !s.kbs.contains(kb) {
                            s.kbs.push(*kb);
                        }
                    }
                    s.complete = s.complete || h.complete();
                    if !s.sources.contains(&q.source) {
                        s.sources.push(q.source);
                    }
                    s.machine.files.push(f.path.clone());
                    s.machine.modified.push(f.modified);
                }
                None => {
                    let m = Machine {
                        id: target.clone(),
                        dns_name: None,
                        files: vec![f.path.clone()],
                        modified: vec![f.modified],
                        capture_time: None,
                    };
                    out.kb_updates.push(KbUpdate {
                        id: target,
                        file: f.path.clone(),
                        line: h.line,
                        kbs: h.kbs.clone(),
                        complete: h.complete(),
                        source: q.source,
                        last_seen: last_seen(opts, &m)?,
                    });
                }
            }
        }
    }

    for s in sysinfos {
        let path = &s.machine.files[0];
        if !s.complete && (s.info.list_truncated || s.info.unidentified > 0) {
            b.out.notes.push(format!(
                "{}: systeminfo names {} of the {} updates it counts: the KB list is partial \
                 (import the host's wmic qfe output with it for the whole list)",
                path.display(),
                s.info.kbs.len(),
                s.info.announced
            ));
        }
        let os =
            windows::identify(&s.info.os_name, &s.info.os_build).map_err(|m| err_at(path, 1, m))?;
        let mut software = Vec::new();
        for (id, version) in
            windows::bundled(&os.platform, &s.info.os_build, &s.info.os_name, &s.kbs)
        {
            add_software(
                &mut software,
                SoftwareId::microsoft(id.trim_start_matches("microsoft-_-")),
                Some(version),
            );
        }
        b.push(
            Snapshot {
                id: Some(s.machine.id.clone()),
                computer_dns_name: s.machine.dns_name.clone(),
                last_seen: last_seen(opts, &s.machine)?,
                os_platform: os.platform,
                os_build: s.info.os_build.to_string(),
                os_architecture: s.info.arch.as_str().to_string(),
                os_edition: edition_name(&s.info.os_name),
                installation_type: None,
                hotpatch_enrolled: false,
                software,
                installed_kbs: kb_strings(&s.kbs),
                installed_kbs_complete: s.complete,
                installed_kbs_sources: s.sources,
                pending_restart_kbs: Vec::new(),
                device_group: None,
            },
            path,
        );
    }

    // osquery: results logs per host; osqueryi output of one import is one host.
    let mut osqueryi: Option<(OsqueryHost, Vec<&InputFile>)> = None;
    let mut osquery_hosts: Vec<(OsqueryHost, Vec<&InputFile>)> = Vec::new();
    for (f, p) in &parsed {
        match p {
            Parsed::OsqueryLog(hosts) => {
                for h in hosts {
                    osquery_hosts.push((h.clone(), vec![*f]));
                }
            }
            Parsed::Osqueryi(h) => match &mut osqueryi {
                None => osqueryi = Some(((**h).clone(), vec![*f])),
                Some((acc, fs)) => {
                    merge_osquery(acc, h).map_err(|m| err_at(&f.path, 1, m))?;
                    fs.push(*f);
                }
            },
            _ => {}
        }
    }
    osquery_hosts.extend(osqueryi);
    for (h, fs) in osquery_hosts {
        osquery_machine(&mut b, opts, &h, &fs)?;
    }

    for (f, p) in &parsed {
        if let Parsed::Mde(devices) = p {
            for d in devices {
                mde_machine(&mut b, opts, d, f)?;
            }
        }
        if let Parsed::Snapshots(list) = p {
            for (_, s) in list {
                b.push(s.clone(), &f.path);
            }
        }
    }
    b.finish()
}

/// Collects snapshots with the file each came from.
#[derive(Default)]
struct Builder {
    out: Imported,
    origins: Vec<PathBuf>,
}

impl Builder {
    fn push(&mut self, s: Snapshot, file: &Path) {
        self.out.snapshots.push(s);
        self.origins.push(file.to_path_buf());
    }

    /// One machine, one snapshot: two captures of a host in one import are ambiguous.
    fn finish(self) -> Result<Imported, ImportError> {
        let mut ids: Vec<(&MachineId, &PathBuf)> = self
            .out
            .snapshots
            .iter()
            .zip(&self.origins)
            .filter_map(|(s, f)| s.id.as_ref().map(|id| (id, f)))
            .chain(self.out.kb_updates.iter().map(|u| (&u.id, &u.file)))
            .collect();
        ids.sort();
        for w in ids.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(ImportError {
                    file: w[1].1.clone(),
                    line: None,
                    message: format!(
                        "describes machine '{}' again (also in {}): import one capture of a \
                         host at a time, oldest first",
                        w[0].0,
                        w[0].1.display()
                    ),
                });
            }
        }
        Ok(self.out)
    }
}

/// Adds what another `osqueryi --json` file of the same import says about the host.
fn merge_osquery(acc: &mut OsqueryHost, h: &OsqueryHost) -> Result<(), String> {
    match (&acc.host, &h.host) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => {
            return Err(format!(
                "osqueryi output of host '{b}', but the other osqueryi files are of '{a}': \
                 import one host's osqueryi files at a time"
            ))
        }
        (None, Some(b)) => acc.host = Some(b.clone()),
        _ => {}
    }
    if h.os.is_some() {
        acc.os = h.os.clone();
    }
    if h.ubr.is_some() {
        acc.ubr = h.ubr;
    }
    if h.other_platform.is_some() {
        acc.other_platform = h.other_platform.clone();
    }
    acc.programs.extend(h.programs.iter().cloned());
    for kb in &h.patches {
        if !acc.patches.contains(kb) {
            acc.patches.push(*kb);
        }
    }
    if h.patches_seen {
        acc.patches_whole = if acc.patches_seen {
            acc.patches_whole && h.patches_whole
        } else {
            h.patches_whole
        };
        acc.patches_seen = true;
    }
    acc.patches_unidentified += h.patches_unidentified;
    Ok(())
}

fn osquery_machine(
    b: &mut Builder,
    opts: &ImportOptions,
    h: &OsqueryHost,
    files: &[&InputFile],
) -> Result<(), ImportError> {
    let path = &files[0].path;
    let Some(host) = &h.host else {
        return Err(err_at(
            path,
            h.line,
            "osqueryi output names no host: add the output of `SELECT hostname, uuid FROM \
             system_info` (or the patches table, whose csname names it)",
        ));
    };
    if let Some(p) = &h.other_platform {
        b.out.notes.push(format!(
            "{}: host {host} runs {p}, not Windows: skipped",
            path.display()
        ));
        return Ok(());
    }
    let id = host_id(host).map_err(|m| err_at(path, h.line, m))?;
    let machine = Machine {
        id: id.clone(),
        dns_name: Some(host.to_lowercase()).filter(|n| n.contains('.')),
        files: files.iter().map(|f| f.path.clone()).collect(),
        modified: files.iter().map(|f| f.modified).collect(),
        capture_time: h
            .last_seen
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
    };
    let complete =
        h.patches_seen && h.patches_whole && h.patches_unidentified == 0 && !h.patches.is_empty();
    let Some(os) = &h.os else {
        if h.patches_seen {
            b.out.kb_updates.push(KbUpdate {
                id,
                file: path.clone(),
                line: h.line,
                kbs: h.patches.clone(),
                complete,
                source: KbSource::OsqueryPatches,
                last_seen: last_seen(opts, &machine)?,
            });
            return Ok(());
        }
        return Err(err_at(
            path,
            h.line,
            format!("host {host}: no os_version result: the OS and build are unknown"),
        ));
    };
    let winos = windows::identify(&os.name, &os.build)
        .map_err(|m| err_at(path, h.line, format!("host {host}: {m}")))?;
    let arch = windows::arch(&os.arch).or(opts.arch).ok_or_else(|| {
        err_at(
            path,
            h.line,
            format!(
                "host {host}: os_version.arch '{}' is not an architecture",
                os.arch
            ),
        )
    })?;
    let build = kbgap_domain::WindowsBuild {
        revision: h.ubr,
        ..os.build
    };
    let mut software = Vec::new();
    for (sw, version) in windows::bundled(&winos.platform, &os.build, &os.name, &h.patches) {
        add_software(
            &mut software,
            SoftwareId::microsoft(sw.trim_start_matches("microsoft-_-")),
            Some(version),
        );
    }
    // Microsoft's MSI products by their line (their ARP version is no patch level), with the
    // updates listed for them: a list of those updates is complete for that product when
    // the programs table lists at least one (an empty one is more often a failed collection).
    for p in &h.programs {
        if let Some((sw, _, kb)) = programs::product_update(&p.name) {
            let entry = match software.iter_mut().position(|s| s.id.as_ref() == Some(&sw)) {
                Some(i) => &mut software[i],
                None => {
                    software.push(InstalledSoftware::with_id(sw, None));
                    software.last_mut().expect("just pushed")
                }
            };
            let kb = format!("KB{kb}");
            if !entry.updates.contains(&kb) {
                entry.updates.push(kb);
            }
            entry.updates_complete = true;
        } else if let Some((sw, line)) = programs::msi_product(&p.name) {
            match software.iter_mut().find(|s| s.id.as_ref() == Some(&sw)) {
                Some(s) if s.version.is_none() => s.version = Some(line),
                Some(_) => {}
                None => software.push(InstalledSoftware::with_id(sw, Some(line))),
            }
        } else if let Some((sw, version)) = program_software(p) {
            add_software(&mut software, sw, version);
        }
    }
    let snapshot = Snapshot {
        id: Some(id),
        computer_dns_name: machine.dns_name.clone(),
        last_seen: last_seen(opts, &machine)?,
        os_platform: winos.platform,
        os_build: build.to_string(),
        os_architecture: arch.as_str().to_string(),
        os_edition: edition_name(&os.name),
        installation_type: None,
        hotpatch_enrolled: false,
        software,
        installed_kbs: kb_strings(&h.patches),
        installed_kbs_complete: complete,
        installed_kbs_sources: if h.patches_seen {
            vec![KbSource::OsqueryPatches]
        } else {
            Vec::new()
        },
        pending_restart_kbs: Vec::new(),
        device_group: None,
    };
    b.push(snapshot, path);
    Ok(())
}

fn mde_machine(
    b: &mut Builder,
    opts: &ImportOptions,
    d: &MdeDevice,
    f: &InputFile,
) -> Result<(), ImportError> {
    let path = &f.path;
    let Some(expected) = platform_software(&d.os_platform) else {
        b.out.notes.push(format!(
            "{}:{}: device {} runs {}, not Windows: skipped",
            path.display(),
            d.line,
            d.id,
            if d.os_platform.is_empty() {
                "an unknown platform"
            } else {
                &d.os_platform
            }
        ));
        return Ok(());
    };
    let Some((os_row, build)) = d.os(Some(expected.as_str())) else {
        return Err(err_at(
            path,
            d.line,
            format!(
                "device {}: no operating-system row (softwareVendor microsoft, softwareName \
                 windows_…, softwareVersion a build such as 10.0.19045.3570)",
                d.id
            ),
        ));
    };
    let os_id = format!("microsoft-_-{}", os_row.name.to_lowercase());
    // Every Windows Server from 2008 R2 on exists only for x64.
    let x64_only = os_id.starts_with("microsoft-_-windows_server")
        && !matches!(
            os_id.as_str(),
            "microsoft-_-windows_server_2008" | "microsoft-_-windows_server_2003"
        );
    let arch = x64_only.then_some(Arch::X64).or(opts.arch).ok_or_else(|| {
        err_at(
            path,
            d.line,
            format!(
                "device {} ({}): MDE's software inventory does not say the architecture of a {} \
                 machine: give --arch",
                d.id,
                d.name.as_deref().unwrap_or("no name"),
                d.os_platform
            ),
        )
    })?;
    let id = MachineId::parse(&d.id).map_err(|e| err_at(path, d.line, e.to_string()))?;
    let mut software = Vec::new();
    for s in &d.software {
        if std::ptr::eq(s, os_row) {
            continue;
        }
        let part = |x: &str| {
            x.split_whitespace()
                .collect::<Vec<_>>()
                .join("_")
                .to_lowercase()
        };
        let sw = SoftwareId::parse(&format!("{}-_-{}", part(&s.vendor), part(&s.name)))
            .map_err(|e| err_at(path, d.line, format!("device {}: {e}", d.id)))?;
        add_software(&mut software, sw, s.version.clone());
    }
    let machine = Machine {
        id: id.clone(),
        dns_name: d.name.clone(),
        files: vec![path.clone()],
        modified: vec![f.modified],
        capture_time: None,
    };
    let snapshot = Snapshot {
        id: Some(id),
        computer_dns_name: d.name.clone(),
        last_seen: last_seen(opts, &machine)?,
        os_platform: os_id,
        os_build: build.to_string(),
        os_architecture: arch.as_str().to_string(),
        // The software inventory export does not name the edition.
        os_edition: None,
        installation_type: None,
        hotpatch_enrolled: false,
        software,
        installed_kbs: Vec::new(),
        installed_kbs_complete: false,
        installed_kbs_sources: Vec::new(),
        pending_restart_kbs: Vec::new(),
        device_group: d.group.clone(),
    };
    b.push(snapshot, path);
    Ok(())
}
