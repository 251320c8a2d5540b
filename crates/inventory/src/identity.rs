//! Machine ids for file imports that carry none: the same host gets the same id on every
//! re-import, so a re-import replaces the stored machine instead of adding a second one.

use kbgap_domain::MachineId;
use sha2::{Digest, Sha256};

/// Whether a captured value says nothing: empty, "N/A" in any language systeminfo writes it,
/// or redacted ("...", "xxxx"). Such values never identify a machine.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_lowercase();
    matches!(
        v.as_str(),
        "n/a" | "n/d" | "н/д" | "暂缺" | "unknown" | "none"
    ) || !v.chars().any(char::is_alphanumeric)
        || v.chars().all(|c| c == 'x' || !c.is_alphanumeric())
}

/// The id of a host named by a capture (systeminfo "Host Name", wmic `CSName`, osquery
/// `hostIdentifier`): the name lowercased, because Windows host names are case-insensitive
/// and wmic writes them in capitals while osquery writes them as configured.
pub fn host_id(host: &str) -> Result<MachineId, String> {
    let name = host.trim().to_lowercase();
    MachineId::parse(&name).map_err(|e| format!("host name '{host}' cannot be a machine id: {e}"))
}

/// A fingerprint id, `{prefix}-{16 hex digits}` of SHA-256 over the parts: for captures that
/// name no host, from values that stay the same for the life of an installation.
pub fn fingerprint_id(prefix: &str, parts: &[&str]) -> MachineId {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.trim().as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    // A prefix and hex digits are always a valid id.
    MachineId::parse(&format!("{prefix}-{hex}"))
        .unwrap_or_else(|_| unreachable!("fingerprint ids are ASCII without '/'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for p in ["", "...", "N/A", "N/D", "Н/Д", "暂缺", "xxxxxxxx", " - "] {
            assert!(is_placeholder(p), "{p}");
        }
        assert!(!is_placeholder("00426-OEM-xxxxxxxxx"));
        assert!(!is_placeholder("DESKTOP-92B51CV"));
        assert!(!is_placeholder("00329-10180-00000-AA626"));
    }

    #[test]
    fn ids_are_stable_and_lowercase() {
        assert_eq!(host_id(" WIN7SP1X64 ").unwrap().as_str(), "win7sp1x64");
        assert!(host_id("a/b").is_err());
        let a = fingerprint_id("sysinfo", &["00329", "5/24/2018"]);
        assert_eq!(a, fingerprint_id("sysinfo", &["00329", "5/24/2018"]));
        assert_ne!(a, fingerprint_id("sysinfo", &["00329", "5/24/2019"]));
        assert!(a.as_str().starts_with("sysinfo-") && a.as_str().len() == 24);
    }
}
