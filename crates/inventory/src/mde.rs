//! Microsoft Defender's "Export software inventory assessment" (per device), as the export
//! files (JSON lines) or API pages (`{"value": [...]}`) carry it, grouped into devices.

use kbgap_domain::WindowsBuild;
use serde_json::{Map, Value};

use crate::LineError;

/// One software row of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdeSoftware {
    pub vendor: String,
    pub name: String,
    pub version: Option<String>,
}

/// One device: its rows gathered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdeDevice {
    /// MDE's device id (40 hex digits).
    pub id: String,
    /// FQDN.
    pub name: Option<String>,
    /// `Windows10`, `WindowsServer2019`, `Linux`, …
    pub os_platform: String,
    /// `rbacGroupName`, unless it is MDE's "Unassigned" or "None".
    pub group: Option<String>,
    pub software: Vec<MdeSoftware>,
    /// The first line (or row) of the device.
    pub line: usize,
}

impl MdeDevice {
    /// The OS row: MDE lists the OS itself as software (`microsoft` / `windows_10`, version
    /// `10.0.19045.3570`, the full build with revision). The row whose name is the platform's
    /// OS software id wins; otherwise the only row that is a Windows build.
    pub fn os(&self, platform_software: Option<&str>) -> Option<(&MdeSoftware, WindowsBuild)> {
        let candidates: Vec<(&MdeSoftware, WindowsBuild)> = self
            .software
            .iter()
            .filter(|s| {
                s.vendor.eq_ignore_ascii_case("microsoft")
                    && s.name.to_lowercase().starts_with("windows")
            })
            .filter_map(|s| Some((s, WindowsBuild::parse(s.version.as_deref()?)?)))
            .collect();
        if let Some(p) = platform_software {
            if let Some(c) = candidates
                .iter()
                .find(|(s, _)| format!("microsoft-_-{}", s.name.to_lowercase()) == p)
            {
                return Some(*c);
            }
        }
        match candidates.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// A property, whatever its case: the JSON API writes `deviceId`, the docs `DeviceId`.
fn field<'a>(row: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    row.get(name).or_else(|| {
        row.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn string(row: &Map<String, Value>, name: &str) -> Option<String> {
    match field(row, name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether a JSON value is a row of the export.
pub fn is_row(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        field(o, "deviceId").is_some()
            && field(o, "softwareName").is_some()
            && field(o, "softwareVendor").is_some()
    })
}

/// Groups rows (each with its line or row number) into devices, in the order they appear.
pub fn devices(rows: &[(usize, &Value)]) -> Result<Vec<MdeDevice>, LineError> {
    let mut out: Vec<MdeDevice> = Vec::new();
    for &(n, v) in rows {
        let Some(row) = v.as_object() else {
            return Err(LineError::at(n, "not a JSON object"));
        };
        let need = |name: &str| {
            string(row, name).ok_or_else(|| LineError::at(n, format!("{name} is missing or empty")))
        };
        let id = need("deviceId")?;
        let software = MdeSoftware {
            vendor: need("softwareVendor")?,
            name: need("softwareName")?,
            version: string(row, "softwareVersion"),
        };
        let device = match out.iter_mut().find(|d| d.id == id) {
            Some(d) => d,
            None => {
                out.push(MdeDevice {
                    id: id.clone(),
                    name: None,
                    os_platform: String::new(),
                    group: None,
                    software: Vec::new(),
                    line: n,
                });
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        if device.name.is_none() {
            device.name = string(row, "deviceName");
        }
        if device.os_platform.is_empty() {
            device.os_platform = string(row, "osPlatform").unwrap_or_default();
        }
        if device.group.is_none() {
            device.group = string(row, "rbacGroupName").filter(|g| {
                !g.eq_ignore_ascii_case("unassigned") && !g.eq_ignore_ascii_case("none")
            });
        }
        if !device.software.contains(&software) {
            device.software.push(software);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_group_into_devices_and_the_os_row_is_found() {
        let rows = [
            json!({"deviceId":"d1","deviceName":"pc1.contoso.com","osPlatform":"Windows10","rbacGroupName":"Unassigned","softwareVendor":"microsoft","softwareName":"windows_10","softwareVersion":"10.0.17763.1637"}),
            json!({"DeviceId":"d1","DeviceName":"pc1.contoso.com","OSPlatform":"Windows10","SoftwareVendor":"microsoft","SoftwareName":".net_framework","SoftwareVersion":"4.0.0.0"}),
            json!({"deviceId":"d2","osPlatform":"Linux","rbacGroupName":"Servers","softwareVendor":"canonical","softwareName":"ubuntu_linux","softwareVersion":"22.04"}),
        ];
        let numbered: Vec<(usize, &Value)> =
            rows.iter().enumerate().map(|(i, v)| (i + 1, v)).collect();
        let d = devices(&numbered).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].software.len(), 2);
        assert_eq!(d[0].group, None);
        assert_eq!(d[1].group.as_deref(), Some("Servers"));
        let (os, build) = d[0].os(Some("microsoft-_-windows_10")).unwrap();
        assert_eq!(
            (os.name.as_str(), build.revision),
            ("windows_10", Some(1637))
        );
        assert!(d[1].os(None).is_none());
        let bad = json!({"deviceId":"d3","softwareVendor":"x"});
        assert_eq!(devices(&[(7, &bad)]).unwrap_err().line, Some(7));
    }
}
