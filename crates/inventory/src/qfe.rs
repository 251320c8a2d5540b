//! `wmic qfe` and `Get-HotFix` output (Win32_QuickFixEngineering, the class systeminfo reads
//! too, but never cut short): tables and `/format:list` or `Format-List` records, per host.

use kbgap_domain::KbId;

use crate::snapshot::KbSource;
use crate::systeminfo::{entry, Entry};
use crate::text::{self, Text};
use crate::LineError;

/// Win32_QuickFixEngineering's properties as wmic names them, plus Get-HotFix's `Source`
/// and PowerShell's `PSComputerName` (both the host).
const COLUMNS: &[&str] = &[
    "Caption",
    "CSName",
    "Description",
    "FixComments",
    "HotFixID",
    "InstallDate",
    "InstalledBy",
    "InstalledOn",
    "Name",
    "ServicePackInEffect",
    "Status",
    "Source",
    "PSComputerName",
];

const HOST_COLUMNS: &[&str] = &["CSName", "Source", "PSComputerName"];

/// The updates one host lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QfeHost {
    /// `CSName` (wmic) or `Source` (Get-HotFix); `None` when the capture has no such column.
    pub host: Option<String>,
    /// Installed KBs in the order listed, without duplicates.
    pub kbs: Vec<KbId>,
    pub rows: usize,
    /// Rows naming no KB (component GUIDs on Vista).
    pub unidentified: usize,
    /// The line of the host's first row.
    pub line: usize,
}

impl QfeHost {
    /// The class lists every update installed through CBS, so the list is complete unless a
    /// row names no KB, or it is empty (an empty answer is a failed query, not a machine
    /// without updates).
    pub fn complete(&self) -> bool {
        self.unidentified == 0 && !self.kbs.is_empty()
    }
}

/// A parsed capture: one entry per host, in the order they appear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qfe {
    pub hosts: Vec<QfeHost>,
    pub source: KbSource,
    pub encoding: &'static str,
}

fn is_column(s: &str) -> Option<&'static str> {
    COLUMNS.iter().copied().find(|c| c.eq_ignore_ascii_case(s))
}

/// Whether decoded text looks like wmic qfe / Get-HotFix output.
pub fn looks_like(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        l.split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("hotfixid"))
            || key_value(l).is_some_and(|(k, _, _)| k == "HotFixID")
    })
}

fn score(lines: &[String]) -> usize {
    usize::from(looks_like(lines))
}

/// `HotFixID=KB123` (wmic /format:list) or `HotFixID : KB123` (Format-List); the bool says
/// which separator (true: `=`).
fn key_value(line: &str) -> Option<(&'static str, String, bool)> {
    let (sep, eq) = match (line.find('='), line.find(':')) {
        (Some(e), Some(c)) if e < c => (e, true),
        (Some(e), None) => (e, true),
        (_, Some(c)) => (c, false),
        (None, None) => return None,
    };
    let key = is_column(line[..sep].trim())?;
    Some((key, line[sep + 1..].trim().to_string(), eq))
}

/// Runs of text separated by two or more spaces, with their starting character column.
fn cells(line: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        while end < chars.len() {
            if chars[end] == ' ' && chars.get(end + 1).is_none_or(|&c| c == ' ') {
                break;
            }
            end += 1;
        }
        out.push((
            start,
            chars[start..end]
                .iter()
                .collect::<String>()
                .trim()
                .to_string(),
        ));
        i = end;
    }
    out
}

type Record = Vec<(&'static str, String)>;

/// Whitespace-separated words with their starting character column.
fn words(line: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, c) in line.chars().enumerate() {
        if c.is_whitespace() {
            if !current.is_empty() {
                out.push((start, std::mem::take(&mut current)));
            }
        } else {
            if current.is_empty() {
                start = i;
            }
            current.push(c);
        }
    }
    if !current.is_empty() {
        out.push((start, current));
    }
    out
}

/// Table form: a header naming the columns, an optional dashed underline (Get-HotFix), rows.
/// A row's cell belongs to the last column starting at or before it: wmic pads every column,
/// but a capture converted between encodings shifts the columns after a non-ASCII value, and
/// the host and HotFixID columns come before the ones that hold such values.
fn table(lines: &[String], header: usize) -> (Vec<(usize, Record)>, bool) {
    let mut columns: Vec<(usize, &'static str)> = Vec::new();
    for (start, w) in words(&lines[header]) {
        if let Some(c) = is_column(&w) {
            columns.push((start, c));
        } else if columns.is_empty() {
            // XP writes "Please wait while WMIC is being installed." before the header, on
            // the same line: the first column name is glued to it.
            if let Some(c) = COLUMNS
                .iter()
                .find(|c| w.len() > c.len() && w.ends_with(*c))
            {
                columns.push((start + w.chars().count() - c.len(), c));
            }
        }
    }
    let offset = columns.first().map_or(0, |c| c.0);
    for c in &mut columns {
        c.0 -= offset;
    }
    let mut first = header + 1;
    let mut underlined = false;
    if let Some(next) = lines.get(first) {
        let t = next.trim();
        if !t.is_empty() && t.chars().all(|c| c == '-' || c == ' ') {
            // Get-HotFix underlines each column: the dashes give the exact column starts.
            underlined = true;
            let starts = words(next);
            if starts.len() == columns.len() {
                for (c, (s, _)) in columns.iter_mut().zip(starts) {
                    c.0 = s;
                }
            }
            first += 1;
        }
    }
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(first) {
        if line.trim().is_empty() {
            continue;
        }
        let mut record: Record = Vec::new();
        for (start, value) in cells(line) {
            if let Some((_, name)) = columns.iter().rev().find(|(s, _)| *s <= start) {
                if !record.iter().any(|(n, _)| n == name) {
                    record.push((name, value));
                }
            }
        }
        rows.push((i + 1, record));
    }
    (rows, underlined)
}

/// List form: `Key=Value` or `Key : Value` lines, records separated by blank lines.
fn list(lines: &[String]) -> (Vec<(usize, Record)>, bool) {
    let mut rows = Vec::new();
    let mut current: Record = Vec::new();
    let mut start = 0;
    let mut equals = true;
    for (i, line) in lines.iter().enumerate() {
        match key_value(line) {
            Some((key, value, eq)) => {
                if current.iter().any(|(k, _)| *k == key) {
                    rows.push((start, std::mem::take(&mut current)));
                }
                if current.is_empty() {
                    start = i + 1;
                }
                equals = eq;
                current.push((key, value));
            }
            None if line.trim().is_empty() && !current.is_empty() => {
                rows.push((start, std::mem::take(&mut current)));
            }
            None => {}
        }
    }
    if !current.is_empty() {
        rows.push((start, current));
    }
    (rows, equals)
}

/// Parses a capture.
pub fn parse(bytes: &[u8]) -> Result<Qfe, LineError> {
    let text = text::decode(bytes, score).map_err(LineError::from)?;
    parse_text(&text)
}

pub fn parse_text(text: &Text) -> Result<Qfe, LineError> {
    let lines = &text.lines;
    let header = lines.iter().position(|l| {
        l.split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("hotfixid"))
            && !l.contains('=')
            && !l.contains(':')
    });
    let (rows, source) = match header {
        Some(h) => {
            let (rows, underlined) = table(lines, h);
            let get_hotfix = underlined || lines[h].split_whitespace().any(|w| w == "Source");
            (
                rows,
                if get_hotfix {
                    KbSource::GetHotFix
                } else {
                    KbSource::WmicQfe
                },
            )
        }
        None if lines.iter().all(|l| l.trim().is_empty()) => (Vec::new(), KbSource::WmicQfe),
        None => {
            let (rows, equals) = list(lines);
            if rows.is_empty() {
                let n = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0) + 1;
                return Err(LineError::at(
                    n,
                    "no HotFixID column: not wmic qfe or Get-HotFix output",
                ));
            }
            (
                rows,
                if equals {
                    KbSource::WmicQfe
                } else {
                    KbSource::GetHotFix
                },
            )
        }
    };
    let mut hosts: Vec<QfeHost> = Vec::new();
    for (n, record) in rows {
        let get = |name: &str| {
            record
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        let host = HOST_COLUMNS
            .iter()
            .find_map(|c| get(c))
            .filter(|h| !h.is_empty())
            .map(str::to_string);
        // XP lists some updates with HotFixID "File 1" and the KB in ServicePackInEffect.
        let kb = match entry(get("HotFixID").unwrap_or("")).map_err(|m| LineError::at(n, m))? {
            Entry::Kb(kb) => Some(kb),
            Entry::Unidentified | Entry::Empty => {
                match entry(get("ServicePackInEffect").unwrap_or("")) {
                    Ok(Entry::Kb(kb)) => Some(kb),
                    _ => None,
                }
            }
        };
        let h = match hosts.iter_mut().find(|h| h.host == host) {
            Some(h) => h,
            None => {
                hosts.push(QfeHost {
                    host: host.clone(),
                    kbs: Vec::new(),
                    rows: 0,
                    unidentified: 0,
                    line: n,
                });
                let last = hosts.len() - 1;
                &mut hosts[last]
            }
        };
        h.rows += 1;
        match kb {
            Some(kb) if !h.kbs.contains(&kb) => h.kbs.push(kb),
            Some(_) => {}
            None => h.unidentified += 1,
        }
    }
    Ok(Qfe {
        hosts,
        source,
        encoding: text.encoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kbs(h: &QfeHost) -> Vec<u32> {
        h.kbs.iter().map(|k| k.number()).collect()
    }

    #[test]
    fn wmic_table_with_and_without_host() {
        let t = "Description      FixComments  HotFixID   InstallDate  InstalledBy          InstalledOn  Name  ServicePackInEffect  Status  \r\nUpdate                        KB4462930               NT AUTHORITY\\SYSTEM  3/2/2019                                        \r\nSecurity Update               KB4485449               NT AUTHORITY\\SYSTEM  3/2/2019   \r\n";
        let q = parse(t.as_bytes()).unwrap();
        assert_eq!(q.source, KbSource::WmicQfe);
        assert_eq!(q.hosts.len(), 1);
        assert_eq!(q.hosts[0].host, None);
        assert_eq!(kbs(&q.hosts[0]), vec![4462930, 4485449]);
        assert!(q.hosts[0].complete());
    }

    #[test]
    fn xp_quirks() {
        let t = "Please wait while WMIC is being installed.Caption  CSName    Description                       FixComments  HotFixID    InstallDate  InstalledBy  InstalledOn  Name  ServicePackInEffect  Status  \r\r\n         WINXPSP0                                                 File 1                                                   KB893803v2                   \r\r\n         WINXPSP0                                                 Q147222                                                                               \r\r\n";
        let q = parse(t.as_bytes()).unwrap();
        assert_eq!(q.hosts[0].host.as_deref(), Some("WINXPSP0"));
        assert_eq!(kbs(&q.hosts[0]), vec![893803, 147222]);
    }

    #[test]
    fn get_hotfix_table_and_lists() {
        let t = "\r\nSource        Description      HotFixID      InstalledBy          InstalledOn\r\n------        -----------      --------      -----------          -----------\r\nPC-1          Update           KB5034122     NT AUTHORITY\\SYSTEM  1/10/2024 12:00:00 AM\r\nPC-2          Security Update  KB5034441                          \r\n";
        let q = parse(t.as_bytes()).unwrap();
        assert_eq!(q.source, KbSource::GetHotFix);
        assert_eq!(q.hosts.len(), 2);
        assert_eq!(kbs(&q.hosts[1]), vec![5034441]);
        let l = "\r\n\r\nCSName=PC-1\r\nHotFixID=KB5034122\r\n\r\n\r\nCSName=PC-1\r\nHotFixID=KB5034441\r\n";
        let q = parse(l.as_bytes()).unwrap();
        assert_eq!(kbs(&q.hosts[0]), vec![5034122, 5034441]);
        let l = "Source      : PC-1\r\nHotFixID    : KB5034122\r\n";
        assert_eq!(parse(l.as_bytes()).unwrap().source, KbSource::GetHotFix);
    }

    #[test]
    fn damaged_rows_name_the_line() {
        let t = "CSName  HotFixID\r\nPC-1    KB5034122\r\nPC-1    KB50\r\n";
        assert_eq!(parse(t.as_bytes()).unwrap_err().line, Some(3));
        assert_eq!(parse(b"hello\r\n").unwrap_err().line, Some(1));
        assert!(parse(b"\r\n").unwrap().hosts.is_empty());
    }
}
