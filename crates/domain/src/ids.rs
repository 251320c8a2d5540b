//! Validated identifiers. Each one can only be built through `parse`, so an invalid id cannot
//! exist past the boundary where input enters the system.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("'{0}' is not a KB number (6 or 7 digits, optionally prefixed by KB)")]
    Kb(String),
    #[error("software id {0}")]
    Software(String),
    #[error("tenant id {0}")]
    Tenant(String),
    #[error("machine id {0}")]
    Machine(String),
}

/// A Microsoft Knowledge Base article number, e.g. 5034122.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KbId(u32);

impl KbId {
    /// Accepts `5034122` and `KB5034122` (any case, surrounding spaces trimmed).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let t = s.trim();
        let digits = t
            .strip_prefix("KB")
            .or_else(|| t.strip_prefix("kb"))
            .or_else(|| t.strip_prefix("Kb"))
            .or_else(|| t.strip_prefix("kB"))
            .unwrap_or(t);
        if (6..=7).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits
                .parse()
                .map(KbId)
                .map_err(|_| IdError::Kb(s.to_string()))
        } else {
            Err(IdError::Kb(s.to_string()))
        }
    }

    pub fn from_number(n: u32) -> Result<Self, IdError> {
        if (100_000..10_000_000).contains(&n) {
            Ok(KbId(n))
        } else {
            Err(IdError::Kb(n.to_string()))
        }
    }

    pub fn number(self) -> u32 {
        self.0
    }
}

impl fmt::Display for KbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<String> for KbId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        KbId::parse(&s)
    }
}

impl From<KbId> for String {
    fn from(k: KbId) -> String {
        k.to_string()
    }
}

/// Longest software id accepted, in bytes (API contract §1 path rules).
pub const MAX_SOFTWARE_ID_LEN: usize = 256;

/// An MDE-style software id, `vendor-_-product`, always lowercase
/// (`microsoft-_-windows_10`, `microsoft-_-.net_framework`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SoftwareId(String);

impl SoftwareId {
    /// Parses a software id as it arrives from a client: matched case-insensitively, so it is
    /// lowercased. Rejects empty ids, ids over 256 bytes, control characters and `/`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Software("is empty".into()));
        }
        if s.len() > MAX_SOFTWARE_ID_LEN {
            return Err(IdError::Software(format!(
                "is longer than {MAX_SOFTWARE_ID_LEN} bytes"
            )));
        }
        if s.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
            return Err(IdError::Software(
                "contains a control character or '/'".into(),
            ));
        }
        Ok(SoftwareId(s.to_lowercase()))
    }

    /// A Microsoft product id from its product part, by the documented derivation rule:
    /// lowercase, spaces replaced by `_`.
    pub fn microsoft(product: &str) -> Self {
        SoftwareId(format!(
            "microsoft-_-{}",
            product.trim().to_lowercase().replace(' ', "_")
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The product part after `-_-` (`edge` for `microsoft-_-edge`): MDE's `productsNames`.
    pub fn product_name(&self) -> &str {
        self.0.split_once("-_-").map(|(_, p)| p).unwrap_or(&self.0)
    }

    /// The vendor part before `-_-` (`microsoft` for `microsoft-_-edge`); empty for an id
    /// without one.
    pub fn vendor(&self) -> &str {
        self.0.split_once("-_-").map(|(v, _)| v).unwrap_or("")
    }
}

impl fmt::Display for SoftwareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SoftwareId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        SoftwareId::parse(&s)
    }
}

impl From<SoftwareId> for String {
    fn from(s: SoftwareId) -> String {
        s.0
    }
}

fn check_opaque(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > max {
        return Err(format!("is longer than {max} bytes"));
    }
    if s.chars().any(|c| c.is_control() || c == '/') {
        return Err("contains a control character or '/'".into());
    }
    Ok(())
}

/// The Azure AD tenant (`tid` claim) that owns machines and counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_opaque(s, 128).map_err(IdError::Tenant)?;
        Ok(TenantId(s.to_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        TenantId::parse(&s)
    }
}

impl From<TenantId> for String {
    fn from(s: TenantId) -> String {
        s.0
    }
}

/// A machine id, unique within a tenant (MDE uses 40 hex digits; any sane string is accepted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MachineId(String);

impl MachineId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_opaque(s, 256).map_err(IdError::Machine)?;
        Ok(MachineId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MachineId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        MachineId::parse(&s)
    }
}

impl From<MachineId> for String {
    fn from(s: MachineId) -> String {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_ids_parse_with_and_without_prefix() {
        assert_eq!(KbId::parse("5034122").unwrap().number(), 5034122);
        assert_eq!(KbId::parse(" KB4540673 ").unwrap().to_string(), "4540673");
        assert!(KbId::parse("Release Notes").is_err());
        assert!(KbId::parse("12345").is_err());
        assert!(KbId::parse("12345678").is_err());
    }

    #[test]
    fn software_ids_are_lowercased_and_bounded() {
        let s = SoftwareId::parse("Microsoft-_-Windows_10").unwrap();
        assert_eq!(s.as_str(), "microsoft-_-windows_10");
        assert_eq!(s.product_name(), "windows_10");
        assert!(SoftwareId::parse("").is_err());
        assert!(SoftwareId::parse("a/b").is_err());
        assert!(SoftwareId::parse("a\u{7}b").is_err());
        assert!(SoftwareId::parse(&"a".repeat(257)).is_err());
        assert_eq!(
            SoftwareId::microsoft("Edge Chromium-based").as_str(),
            "microsoft-_-edge_chromium-based"
        );
    }
}
