//! `systeminfo` output (the list format, every Windows from XP and Server 2003 on) in the
//! languages and encodings real captures come in: the host, OS, build, architecture and KBs.

use kbgap_domain::{Arch, KbId, WindowsBuild};

use crate::text::{self, Text};
use crate::LineError;

/// The fields the importer reads. The others (memory, network cards, …) are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Host,
    OsName,
    OsVersion,
    ProductId,
    InstallDate,
    Manufacturer,
    Model,
    SystemType,
    Domain,
    Hotfixes,
}

use Field::*;

/// Field labels per language, lowercase, as systeminfo writes them (the Spanish "Modelo el
/// sistema" is Microsoft's own typo). Only languages seen in real captures are listed: a
/// guessed label would silently misread a field.
const LABELS: &[(&str, &[(Field, &str)])] = &[
    (
        "en",
        &[
            (Host, "host name"),
            (OsName, "os name"),
            (OsVersion, "os version"),
            (ProductId, "product id"),
            (InstallDate, "original install date"),
            (Manufacturer, "system manufacturer"),
            (Model, "system model"),
            (SystemType, "system type"),
            (Domain, "domain"),
            (Hotfixes, "hotfix(s)"),
        ],
    ),
    (
        "de",
        &[
            (Host, "hostname"),
            (OsName, "betriebssystemname"),
            (OsVersion, "betriebssystemversion"),
            (ProductId, "produkt-id"),
            (InstallDate, "ursprüngliches installationsdatum"),
            (Manufacturer, "systemhersteller"),
            (Model, "systemmodell"),
            (SystemType, "systemtyp"),
            (Domain, "domäne"),
            (Hotfixes, "hotfix(es)"),
        ],
    ),
    (
        "es",
        &[
            (Host, "nombre de host"),
            (OsName, "nombre del sistema operativo"),
            (OsVersion, "versión del sistema operativo"),
            (ProductId, "id. del producto"),
            (InstallDate, "fecha de instalación original"),
            (Manufacturer, "fabricante del sistema"),
            (Model, "modelo el sistema"),
            (SystemType, "tipo de sistema"),
            (Domain, "dominio"),
            (Hotfixes, "revisión(es)"),
        ],
    ),
    (
        "fr",
        &[
            (Host, "nom de l'hôte"),
            (OsName, "nom du système d'exploitation"),
            (OsVersion, "version du système"),
            (ProductId, "identificateur de produit"),
            (InstallDate, "date d'installation originale"),
            (Manufacturer, "fabricant du système"),
            (Model, "modèle du système"),
            (SystemType, "type du système"),
            (Domain, "domaine"),
            (Hotfixes, "correctif(s)"),
        ],
    ),
    (
        "it",
        &[
            (Host, "nome host"),
            (OsName, "nome so"),
            (OsVersion, "versione so"),
            (ProductId, "numero di serie"),
            (InstallDate, "data di installazione originale"),
            (Manufacturer, "produttore sistema"),
            (Model, "modello sistema"),
            (SystemType, "tipo sistema"),
            (Domain, "dominio"),
            (Hotfixes, "aggiornamenti rapidi"),
        ],
    ),
    (
        "ru",
        &[
            (Host, "имя узла"),
            (OsName, "название ос"),
            (OsVersion, "версия ос"),
            (ProductId, "код продукта"),
            (InstallDate, "дата установки"),
            (Manufacturer, "изготовитель системы"),
            (Model, "модель системы"),
            (SystemType, "тип системы"),
            (Domain, "домен"),
            (Hotfixes, "исправление(я)"),
        ],
    ),
    (
        "zh-CN",
        &[
            (Host, "主机名"),
            (OsName, "os 名称"),
            (OsVersion, "os 版本"),
            (ProductId, "产品 id"),
            (InstallDate, "初始安装日期"),
            (Manufacturer, "系统制造商"),
            (Model, "系统型号"),
            (SystemType, "系统类型"),
            (Domain, "域"),
            (Hotfixes, "修补程序"),
        ],
    ),
];

/// The languages whose labels are known, for error messages.
pub const LANGUAGES: &str = "en, de, es, fr, it, ru, zh-CN";

/// What a systeminfo capture says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    /// `None` when absent or redacted ("...").
    pub host_name: Option<String>,
    pub os_name: String,
    /// `major.minor.build`: systeminfo never reports the update build revision.
    pub os_build: WindowsBuild,
    pub arch: Arch,
    pub domain: Option<String>,
    pub product_id: Option<String>,
    pub install_date: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// Installed KBs in the order listed, without duplicates.
    pub kbs: Vec<KbId>,
    /// The count systeminfo announces ("273 Hotfix(s) Installed.").
    pub announced: usize,
    /// Entries listed, identified or not.
    pub listed: usize,
    /// The machine says no update is installed: `Hotfix(s): N/A`. Alone this is not a
    /// complete list (a failed collection looks the same); with an empty wmic qfe capture of
    /// the same host it is.
    pub none_installed: bool,
    /// Entries that name no KB: "File 1" (XP, Server 2003), component GUIDs (Vista).
    pub unidentified: usize,
    /// systeminfo cut its own list short (an empty `[246]` entry, or fewer listed than
    /// announced): a limit of the tool, not a damaged file.
    pub list_truncated: bool,
    pub language: &'static str,
    pub encoding: &'static str,
}

impl SystemInfo {
    /// Whether the KB list is every installed update: nothing cut, nothing unidentified, and
    /// not empty (an empty list is a failed collection far more often than an unpatched
    /// machine, and treating it as complete would report every update missing).
    pub fn kbs_complete(&self) -> bool {
        !self.list_truncated
            && self.unidentified == 0
            && !self.kbs.is_empty()
            && self.listed == self.announced
    }
}

fn normalize(line: &str) -> String {
    line.replace('\u{a0}', " ").to_lowercase()
}

/// The field a top-level line starts, with its value: the line must start with a known
/// label followed (after optional spaces) by ':'.
fn field(line: &str) -> Option<(&'static str, Field, String)> {
    let norm = normalize(line);
    for (lang, labels) in LABELS {
        for (f, label) in labels.iter() {
            if let Some(rest) = norm.strip_prefix(label) {
                if let Some(value) = rest.trim_start().strip_prefix(':') {
                    // Take the value from the original line: labels keep their length when
                    // lowercased, so the label part has as many characters in both.
                    let skip = norm.chars().count() - value.chars().count();
                    let original: String = line.chars().skip(skip).collect();
                    return Some((lang, *f, original.trim().to_string()));
                }
            }
        }
    }
    None
}

fn score(lines: &[String]) -> usize {
    let mut seen: Vec<Field> = Vec::new();
    for l in lines.iter().filter(|l| !l.starts_with(char::is_whitespace)) {
        if let Some((_, f, _)) = field(l) {
            if !seen.contains(&f) {
                seen.push(f);
            }
        }
    }
    seen.len()
}

/// Whether decoded text looks like systeminfo output (for format detection).
pub fn looks_like(lines: &[String]) -> bool {
    let has = |f: Field| {
        lines
            .iter()
            .any(|l| field(l).is_some_and(|(_, g, _)| g == f))
    };
    has(OsVersion) && has(Hotfixes)
}

/// What one hotfix entry names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Kb(KbId),
    /// "File 1", a GUID: an installed update whose KB the tool does not say.
    Unidentified,
    /// `[246]` with nothing after it: systeminfo's own truncation.
    Empty,
}

/// Reads a hotfix id as Windows tools write it: `KB5034122`, `KB2267602 - Update`,
/// `KB958488-v2`, `KB893803v2`, `Q147222` (Q articles became KBs with the same number),
/// `943729`. An id that starts like a KB but has the wrong number of digits is an error: it is
/// what a file cut in the middle of a line looks like.
pub(crate) fn entry(value: &str) -> Result<Entry, String> {
    let v = value.trim();
    let Some(token) = v.split_whitespace().next() else {
        return Ok(Entry::Empty);
    };
    let upper = token.to_ascii_uppercase();
    let (prefixed, rest) = match upper.strip_prefix("KB").or_else(|| upper.strip_prefix('Q')) {
        Some(r) => (true, r),
        None => (false, upper.as_str()),
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return if prefixed {
            Err(format!("'{token}' is not a KB number"))
        } else {
            Ok(Entry::Unidentified)
        };
    }
    if !(6..=7).contains(&digits.len()) {
        return Err(format!(
            "'{token}' is not a KB number (6 or 7 digits): the line may be cut short"
        ));
    }
    KbId::parse(&digits)
        .map(Entry::Kb)
        .map_err(|e| e.to_string())
}

/// Parses a systeminfo capture.
pub fn parse(bytes: &[u8]) -> Result<SystemInfo, LineError> {
    let text = text::decode(bytes, score).map_err(LineError::from)?;
    parse_text(&text)
}

fn first_number(s: &str) -> Option<usize> {
    let digits: String = s
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn present(v: String) -> Option<String> {
    (!crate::identity::is_placeholder(&v)).then_some(v)
}

pub fn parse_text(text: &Text) -> Result<SystemInfo, LineError> {
    let lines = &text.lines;
    let last = lines.len().max(1);
    let mut values: Vec<(Field, String, usize)> = Vec::new();
    let mut language = None;
    let mut kbs: Vec<KbId> = Vec::new();
    let mut listed = 0;
    let mut unidentified = 0;
    let mut empty_entry = false;
    let mut in_hotfixes = false;
    let mut after_hotfixes = false;
    let mut first_field: Option<(usize, &str)> = None;
    let mut malformed: Option<(usize, String)> = None;
    let mut announced_so_far = 0;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if in_hotfixes {
                let t = line.trim_start();
                let Some(inner) = t.strip_prefix('[') else {
                    continue;
                };
                let Some((index, value)) = inner.split_once(']') else {
                    continue;
                };
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Some((line, message)) = malformed.take() {
                    return Err(LineError::at(line, message));
                }
                listed += 1;
                let value = value.strip_prefix(':').unwrap_or(value);
                let e = match entry(value) {
                    Ok(e) => e,
                    Err(m) => {
                        // Only acceptable as the list's last entry: see below.
                        malformed = Some((n, m));
                        continue;
                    }
                };
                match e {
                    Entry::Kb(kb) => {
                        if !kbs.contains(&kb) {
                            kbs.push(kb);
                        }
                    }
                    Entry::Unidentified => unidentified += 1,
                    Entry::Empty => {
                        listed -= 1;
                        empty_entry = true;
                    }
                }
            }
            continue;
        }
        if first_field.is_none() {
            first_field = Some((n, line));
        }
        if in_hotfixes {
            in_hotfixes = false;
            after_hotfixes = true;
            // systeminfo's output buffer cuts long lists, sometimes inside the last id
            // ("[240]: KB2862" of 352): its own truncation, not a damaged file.
            if let Some((line, message)) = malformed.take() {
                if listed < announced_so_far {
                    listed -= 1;
                    empty_entry = true;
                } else {
                    return Err(LineError::at(line, message));
                }
            }
        }
        let Some((lang, f, value)) = field(line) else {
            continue;
        };
        if f == Hotfixes {
            in_hotfixes = true;
            announced_so_far = first_number(&value).unwrap_or(0);
        }
        if f == OsVersion {
            language = Some(lang);
        }
        if !values.iter().any(|(g, ..)| *g == f) {
            values.push((f, value, n));
        }
    }
    if let Some((line, message)) = malformed {
        return Err(LineError::at(line, message));
    }
    let get = |f: Field| values.iter().find(|(g, ..)| *g == f);
    let Some(language) = language else {
        return Err(match first_field {
            Some((n, l)) => LineError::at(
                n,
                format!(
                    "'{}' is not a systeminfo field this importer knows (languages: {LANGUAGES}); \
                     the file is in another language, in an encoding it cannot tell, or not \
                     systeminfo output",
                    l.chars().take(60).collect::<String>()
                ),
            ),
            None => LineError::at(1, "the file is empty"),
        });
    };
    let required = |f: Field, name: &str| {
        get(f).ok_or_else(|| {
            LineError::at(
                last,
                format!("the file ends without a '{name}' field: it is truncated or not systeminfo output"),
            )
        })
    };
    let (_, os_name, _) = required(OsName, "OS Name")?;
    let (_, version, version_line) = required(OsVersion, "OS Version")?;
    let (_, system_type, type_line) = required(SystemType, "System Type")?;
    let (_, hotfix_header, _) = required(Hotfixes, "Hotfix(s)")?;
    if !after_hotfixes {
        return Err(LineError::at(
            last,
            "the file ends inside the hotfix list (no field such as 'Network Card(s)' follows \
             it): it is truncated",
        ));
    }
    let build_text = version.split_whitespace().next().unwrap_or("");
    let os_build = WindowsBuild::parse(build_text)
        .filter(|b| b.revision.is_none())
        .ok_or_else(|| {
            LineError::at(
                *version_line,
                format!("'{version}' does not start with a Windows version such as 10.0.19045"),
            )
        })?;
    let arch = crate::windows::arch(system_type).ok_or_else(|| {
        LineError::at(
            *type_line,
            format!("'{system_type}' is not a system type such as x64-based PC"),
        )
    })?;
    let announced = first_number(hotfix_header).unwrap_or(0);
    let opt = |f: Field| get(f).and_then(|(_, v, _)| present(v.clone()));
    Ok(SystemInfo {
        host_name: opt(Host),
        os_name: os_name.clone(),
        os_build,
        arch,
        domain: opt(Domain),
        product_id: opt(ProductId),
        install_date: opt(InstallDate),
        manufacturer: opt(Manufacturer),
        model: opt(Model),
        list_truncated: empty_entry || listed < announced,
        none_installed: listed == 0 && hotfix_header.trim().eq_ignore_ascii_case("n/a"),
        kbs,
        announced,
        listed,
        unidentified,
        language,
        encoding: text.encoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hotfix_entries() {
        let kb = |n| Ok(Entry::Kb(KbId::from_number(n).unwrap()));
        assert_eq!(entry("KB5022502"), kb(5022502));
        assert_eq!(entry(" KB2267602 - Update"), kb(2267602));
        assert_eq!(entry("KB958488-v2 - Update"), kb(958488));
        assert_eq!(entry("KB893803v2"), kb(893803));
        assert_eq!(entry("KB888111_WM9"), kb(888111));
        assert_eq!(entry("Q147222"), kb(147222));
        assert_eq!(entry("943729"), kb(943729));
        assert_eq!(entry("File 1"), Ok(Entry::Unidentified));
        assert_eq!(
            entry("{7A068575-C5DB-43D9-BE20-3895D0C69B17}"),
            Ok(Entry::Unidentified)
        );
        assert_eq!(entry(""), Ok(Entry::Empty));
        assert!(entry("KB44").is_err());
        assert!(entry("KB").is_err());
    }

    const SAMPLE: &str = "\r\nHost Name:                 PC-1\r\nOS Name:                   Microsoft Windows 10 Pro\r\nOS Version:                10.0.19045 N/A Build 19045\r\nSystem Type:               x64-based PC\r\nHotfix(s):                 2 Hotfix(s) Installed.\r\n                           [01]: KB5031356\r\n                           [02]: KB5030211\r\nNetwork Card(s):           N/A\r\n";

    #[test]
    fn a_minimal_capture() {
        let s = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(s.host_name.as_deref(), Some("PC-1"));
        assert_eq!(s.os_build.to_string(), "10.0.19045");
        assert_eq!(s.arch, Arch::X64);
        assert_eq!(
            s.kbs.iter().map(|k| k.number()).collect::<Vec<_>>(),
            vec![5031356, 5030211]
        );
        assert!(s.kbs_complete());
        assert_eq!((s.language, s.encoding), ("en", "ASCII"));
    }

    #[test]
    fn truncated_files_name_the_line() {
        let cut = SAMPLE.split("Network").next().unwrap();
        let e = parse(cut.as_bytes()).unwrap_err();
        assert_eq!(e.line, Some(8));
        assert!(e.message.contains("truncated"), "{e}");
        let cut = &SAMPLE[..SAMPLE.find("KB5030211").unwrap() + 4];
        let e = parse(cut.as_bytes()).unwrap_err();
        assert_eq!(e.line, Some(8));
        let cut = SAMPLE.split("System Type").next().unwrap();
        assert!(parse(cut.as_bytes())
            .unwrap_err()
            .message
            .contains("System Type"));
        let e = parse(b"Hello: world\r\n").unwrap_err();
        assert_eq!(e.line, Some(1));
    }
}
