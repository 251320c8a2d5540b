//! The facts kbgap keeps from one MSRC CVRF document: its identity and dates, and every
//! `Vendor Fix` remediation that names a numeric KB, flattened per (CVE, KB, product).

use serde::{Deserialize, Serialize};
use time::PrimitiveDateTime;

use crate::KbId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvrfDocument {
    /// The document id, e.g. `2024-Jan`.
    pub id: String,
    /// `DocumentTitle`, e.g. "January 2024 Security Updates".
    pub title: String,
    /// `InitialReleaseDate` (UTC): the release date of the KBs this document releases.
    pub initial_release: PrimitiveDateTime,
    /// `CurrentReleaseDate` (UTC): when the document was last revised.
    pub current_release: PrimitiveDateTime,
    pub fixes: Vec<VendorFix>,
}

/// One KB remediating one vulnerability for one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorFix {
    /// The vulnerability id: `CVE-2024-20674`, or an advisory such as `ADV990001`.
    pub cve: String,
    pub kb: KbId,
    /// MSRC's ProductID, e.g. `11569` (stable across documents).
    pub product_id: String,
    /// The product's full name from the document's product tree.
    pub product_name: String,
    /// `SubType` as written: `Security Update`, `Monthly Rollup`, `Security Only`, …
    pub sub_type: Option<String>,
    /// `FixedBuild` as written: a Windows build, a Linux version, `-`, or a URL.
    pub fixed_build: Option<String>,
    /// `Supercedence` as written (`a; b`, `a, b`, `MS16-016, 3124280`, `None`, …).
    pub supersedence: Option<String>,
}
