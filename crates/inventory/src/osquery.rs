//! osquery results for Windows hosts: the results log (event, snapshot and batch formats,
//! differential results replayed) and `osqueryi --json` output, read per osquery's schemas.

use std::collections::BTreeMap;

use kbgap_domain::{KbId, WindowsBuild};
use serde_json::{Map, Value};

use crate::systeminfo::{entry, Entry};
use crate::LineError;

/// The tables the importer reads, recognised by their columns (query names are the
/// organization's own): `os_version`, `programs`, `patches`, plus `system_info` (host name)
/// and a `registry` row of the update build revision, which `os_version` does not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    OsVersion,
    Programs,
    Patches,
    SystemInfo,
    Ubr,
    Other,
}

fn classify(row: &Map<String, Value>) -> Table {
    let has = |c: &str| row.contains_key(c);
    if has("hotfix_id") {
        Table::Patches
    } else if has("platform") && has("name") && (has("major") || has("build")) {
        Table::OsVersion
    } else if has("hostname") && (has("uuid") || has("cpu_brand") || has("computer_name")) {
        Table::SystemInfo
    } else if has("path")
        && has("data")
        && (text(row, "name").eq_ignore_ascii_case("ubr")
            || text(row, "path").to_ascii_lowercase().ends_with("\\ubr"))
    {
        Table::Ubr
    } else if has("name")
        && has("version")
        && [
            "publisher",
            "identifying_number",
            "uninstall_string",
            "install_location",
            "install_source",
        ]
        .iter()
        .any(|c| has(c))
    {
        Table::Programs
    } else {
        Table::Other
    }
}

/// A column as text: osquery writes strings, or numbers with `--logger_numerics`.
fn text(row: &Map<String, Value>, column: &str) -> String {
    match row.get(column) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The `os_version` row of a Windows host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsVersion {
    /// `Caption` of Win32_OperatingSystem ("Microsoft Windows 11 Enterprise").
    pub name: String,
    /// `major.minor.build`; os_version has no update build revision.
    pub build: WindowsBuild,
    /// `OSArchitecture` ("64-bit").
    pub arch: String,
}

/// A `programs` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    pub publisher: String,
    pub version: String,
}

/// What the results say about one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsqueryHost {
    /// `hostIdentifier` (results log), else `system_info.hostname` or `patches.csname`.
    pub host: Option<String>,
    pub os: Option<OsVersion>,
    /// Platform of a non-Windows `os_version` row ("ubuntu"), which kbgap does not evaluate.
    pub other_platform: Option<String>,
    pub ubr: Option<u32>,
    pub programs: Vec<Program>,
    pub patches: Vec<KbId>,
    /// Whether a `patches` result was seen at all.
    pub patches_seen: bool,
    /// Whether the `patches` rows are the whole table: a snapshot, `osqueryi`, or
    /// differential results replayed from the query's first run (counter 0). A log that starts
    /// later (rotated) holds only changes.
    pub patches_whole: bool,
    pub patches_unidentified: usize,
    /// Latest `unixTime` of the host's results.
    pub last_seen: Option<i64>,
    /// First line that mentions the host.
    pub line: usize,
}

/// One query's rows, whether they are its whole result, and the line it starts at.
type QueryRows = (Vec<Map<String, Value>>, bool, usize);

/// Rows of one query of one host, replayed.
#[derive(Default)]
struct QueryState {
    rows: BTreeMap<String, Map<String, Value>>,
    whole: bool,
    started: bool,
    line: usize,
}

fn key(row: &Map<String, Value>) -> String {
    Value::Object(row.clone()).to_string()
}

fn rows_of(v: &Value, n: usize, what: &str) -> Result<Vec<Map<String, Value>>, LineError> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|r| match r {
                Value::Object(o) => Ok(o.clone()),
                _ => Err(LineError::at(
                    n,
                    format!("{what}: a row is not a JSON object"),
                )),
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(LineError::at(n, format!("{what} is not an array of rows"))),
    }
}

/// Whether a JSON value is an osquery results-log line.
pub fn is_log_line(v: &Value) -> bool {
    v.get("hostIdentifier").is_some()
        && (v.get("columns").is_some()
            || v.get("snapshot").is_some()
            || v.get("diffResults").is_some())
}

/// Whether a JSON array is `osqueryi --json` output of a table this importer reads.
pub fn is_osqueryi(v: &Value) -> bool {
    v.as_array().is_some_and(|a| {
        !a.is_empty()
            && a.iter().all(|r| {
                r.as_object()
                    .is_some_and(|o| o.values().all(|x| x.is_string() || x.is_number()))
            })
            && a.iter()
                .any(|r| r.as_object().is_some_and(|o| classify(o) != Table::Other))
    })
}

/// Parses a results log (one JSON document per line).
pub fn parse_log(text: &[String]) -> Result<Vec<OsqueryHost>, LineError> {
    let mut states: BTreeMap<(String, String), QueryState> = BTreeMap::new();
    let mut times: BTreeMap<String, i64> = BTreeMap::new();
    let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
    for (i, line) in text.iter().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| LineError::at(n, format!("not JSON: {e}")))?;
        if !is_log_line(&v) {
            return Err(LineError::at(
                n,
                "not an osquery result (no hostIdentifier with columns, snapshot or diffResults)",
            ));
        }
        let host = v["hostIdentifier"]
            .as_str()
            .unwrap_or("")
            .trim()
            .to_string();
        if host.is_empty() {
            return Err(LineError::at(n, "hostIdentifier is empty"));
        }
        first_line.entry(host.clone()).or_insert(n);
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let unix = match v.get("unixTime") {
            Some(Value::Number(x)) => x.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        if let Some(t) = unix {
            let e = times.entry(host.clone()).or_insert(t);
            *e = (*e).max(t);
        }
        let counter = match v.get("counter") {
            Some(Value::Number(x)) => x.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let state = states.entry((host, name)).or_default();
        if !state.started {
            state.line = n;
        }
        if let Some(snapshot) = v.get("snapshot") {
            state.rows = rows_of(snapshot, n, "snapshot")?
                .into_iter()
                .map(|r| (key(&r), r))
                .collect();
            state.whole = true;
        } else {
            if !state.started {
                state.whole = counter == Some(0);
            }
            let (added, removed) = if let Some(diff) = v.get("diffResults") {
                (
                    rows_of(
                        diff.get("added").unwrap_or(&Value::Null),
                        n,
                        "diffResults.added",
                    )?,
                    rows_of(
                        diff.get("removed").unwrap_or(&Value::Null),
                        n,
                        "diffResults.removed",
                    )?,
                )
            } else {
                let row = match v.get("columns") {
                    Some(Value::Object(o)) => o.clone(),
                    _ => return Err(LineError::at(n, "columns is not an object")),
                };
                match v.get("action").and_then(Value::as_str) {
                    Some("removed") => (Vec::new(), vec![row]),
                    _ => (vec![row], Vec::new()),
                }
            };
            for r in removed {
                state.rows.remove(&key(&r));
            }
            for r in added {
                state.rows.insert(key(&r), r);
            }
        }
        state.started = true;
    }
    let mut hosts: BTreeMap<String, Vec<QueryRows>> = BTreeMap::new();
    for ((host, _), s) in states {
        hosts
            .entry(host)
            .or_default()
            .push((s.rows.into_values().collect(), s.whole, s.line));
    }
    let mut out = Vec::new();
    for (host, queries) in hosts {
        let line = first_line.get(&host).copied().unwrap_or(1);
        let mut h = collect(queries, line)?;
        h.host = Some(host.clone());
        h.last_seen = times.get(&host).copied();
        out.push(h);
    }
    out.sort_by_key(|h| h.line);
    Ok(out)
}

/// Parses `osqueryi --json` output: one host, every table whole.
pub fn parse_osqueryi(rows: &Value) -> Result<OsqueryHost, LineError> {
    let rows = rows_of(rows, 1, "osqueryi output")?;
    let mut h = collect(vec![(rows, true, 1)], 1)?;
    h.host = h.host.take();
    Ok(h)
}

/// Combines the rows of one host's queries; `bool` says whether a query's rows are whole.
fn collect(queries: Vec<QueryRows>, line: usize) -> Result<OsqueryHost, LineError> {
    let mut h = OsqueryHost {
        host: None,
        os: None,
        other_platform: None,
        ubr: None,
        programs: Vec::new(),
        patches: Vec::new(),
        patches_seen: false,
        patches_whole: false,
        patches_unidentified: 0,
        last_seen: None,
        line,
    };
    let mut named: Option<String> = None;
    for (rows, whole, qline) in queries {
        let mut patches_here = false;
        for r in &rows {
            match classify(r) {
                Table::OsVersion => {
                    let platform = text(r, "platform");
                    if !platform.eq_ignore_ascii_case("windows") {
                        h.other_platform = Some(platform);
                        continue;
                    }
                    let version = format!(
                        "{}.{}.{}",
                        text(r, "major"),
                        text(r, "minor"),
                        text(r, "build")
                    );
                    let build = WindowsBuild::parse(&version)
                        .or_else(|| WindowsBuild::parse(&text(r, "version")))
                        .filter(|b| b.revision.is_none())
                        .ok_or_else(|| {
                            LineError::at(
                                qline,
                                format!("os_version: '{version}' is not a Windows version such as 10.0.19045"),
                            )
                        })?;
                    h.os = Some(OsVersion {
                        name: text(r, "name"),
                        build,
                        arch: text(r, "arch"),
                    });
                }
                Table::Ubr => {
                    let data = text(r, "data");
                    h.ubr = Some(data.parse().map_err(|_| {
                        LineError::at(qline, format!("registry UBR: '{data}' is not a number"))
                    })?);
                }
                Table::SystemInfo => {
                    let name = text(r, "hostname");
                    if !name.is_empty() {
                        named.get_or_insert(name);
                    }
                }
                Table::Patches => {
                    patches_here = true;
                    let csname = text(r, "csname");
                    if !csname.is_empty() {
                        named.get_or_insert(csname);
                    }
                    match entry(&text(r, "hotfix_id"))
                        .map_err(|m| LineError::at(qline, format!("patches: {m}")))?
                    {
                        Entry::Kb(kb) if !h.patches.contains(&kb) => h.patches.push(kb),
                        Entry::Kb(_) => {}
                        Entry::Unidentified | Entry::Empty => h.patches_unidentified += 1,
                    }
                }
                Table::Programs => {
                    let name = text(r, "name");
                    if !name.is_empty() {
                        h.programs.push(Program {
                            name,
                            publisher: text(r, "publisher"),
                            version: text(r, "version"),
                        });
                    }
                }
                Table::Other => {}
            }
        }
        if patches_here {
            // Every query that returns patches must be whole for the list to be.
            h.patches_whole = if h.patches_seen {
                h.patches_whole && whole
            } else {
                whole
            };
            h.patches_seen = true;
        }
    }
    // A table has no order: list KBs by number.
    h.patches.sort();
    h.host = named;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn event_format_differential_replay() {
        let log = lines(concat!(
            r#"{"name":"pack_kb_patches","hostIdentifier":"PC-1","unixTime":1706608800,"epoch":0,"counter":0,"numerics":false,"columns":{"csname":"PC-1","hotfix_id":"KB5031356","caption":"","description":"Update","fix_comments":"","installed_by":"","install_date":"","installed_on":"10/11/2023"},"action":"added"}"#,
            "\n",
            r#"{"name":"pack_kb_patches","hostIdentifier":"PC-1","unixTime":1706608800,"epoch":0,"counter":0,"numerics":false,"columns":{"csname":"PC-1","hotfix_id":"KB5030211","caption":"","description":"Update","fix_comments":"","installed_by":"","install_date":"","installed_on":"9/12/2023"},"action":"added"}"#,
            "\n",
            r#"{"name":"pack_kb_patches","hostIdentifier":"PC-1","unixTime":1706695200,"epoch":0,"counter":1,"numerics":false,"columns":{"csname":"PC-1","hotfix_id":"KB5030211","caption":"","description":"Update","fix_comments":"","installed_by":"","install_date":"","installed_on":"9/12/2023"},"action":"removed"}"#,
            "\n",
            r#"{"snapshot":[{"name":"Microsoft Windows 10 Pro","version":"10.0.19045","major":"10","minor":"0","patch":"","build":"19045","platform":"windows","platform_like":"windows","codename":"Microsoft Windows 10 Pro","arch":"64-bit","install_date":"1690000000"}],"action":"snapshot","name":"os","hostIdentifier":"PC-1","calendarTime":"","unixTime":1706695300,"epoch":0,"counter":0,"numerics":false}"#,
            "\n",
        ));
        let hosts = parse_log(&log).unwrap();
        assert_eq!(hosts.len(), 1);
        let h = &hosts[0];
        assert_eq!(h.host.as_deref(), Some("PC-1"));
        assert_eq!(
            h.patches.iter().map(|k| k.number()).collect::<Vec<_>>(),
            vec![5031356]
        );
        assert!(h.patches_whole);
        assert_eq!(h.os.as_ref().unwrap().build.to_string(), "10.0.19045");
        assert_eq!(h.last_seen, Some(1706695300));
    }

    #[test]
    fn a_rotated_log_is_not_whole() {
        let log = lines(
            r#"{"name":"p","hostIdentifier":"PC-1","unixTime":1,"counter":7,"columns":{"csname":"PC-1","hotfix_id":"KB5031356"},"action":"added"}"#,
        );
        assert!(!parse_log(&log).unwrap()[0].patches_whole);
        let bad = lines("{\"hostIdentifier\":\"x\"}");
        assert_eq!(parse_log(&bad).unwrap_err().line, Some(1));
    }
}
