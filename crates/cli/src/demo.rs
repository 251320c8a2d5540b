//! The quickstart's demo fleet, generated from the imported catalog: machines of common
//! Windows versions at cumulative updates lagging 0 to 12 months behind the newest one.

use kbgap_domain::catalog::Track;
use kbgap_domain::{Arch, Catalog, MachineId, SoftwareId};
use kbgap_inventory::Snapshot;
use time::OffsetDateTime;

pub const DEMO_TENANT: &str = "11111111-2222-3333-4444-555555555555";

/// (software id, MDE platform, build) of the demo machines.
const SYSTEMS: &[(&str, &str, u32)] = &[
    ("microsoft-_-windows_10", "Windows10", 19045),
    ("microsoft-_-windows_11", "Windows11", 22631),
    (
        "microsoft-_-windows_server_2019",
        "WindowsServer2019",
        17763,
    ),
    (
        "microsoft-_-windows_server_2022",
        "WindowsServer2022",
        20348,
    ),
];

pub const SOFTWARE: [&str; 4] = [SYSTEMS[0].0, SYSTEMS[1].0, SYSTEMS[2].0, SYSTEMS[3].0];

/// How many cumulative updates behind the newest each demo machine is, with a few machines
/// at each step.
const LAG: &[(usize, usize)] = &[(0, 3), (1, 4), (2, 2), (3, 2), (6, 1), (12, 1)];

pub fn fleet(catalog: &Catalog, now: OffsetDateTime) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for (software, platform, build) in SYSTEMS {
        let sw = SoftwareId::microsoft(software.trim_start_matches("microsoft-_-"));
        let mut revisions: Vec<u32> = catalog
            .entries_for(&sw)
            .filter(|e| e.track == Track::Cumulative && !e.wrong_branch)
            .filter(|e| {
                e.class
                    .host
                    .as_ref()
                    .is_some_and(|h| h.build == *build && h.arch == Arch::X64)
            })
            .filter_map(|e| e.fixed_revision)
            .collect();
        revisions.sort_unstable();
        revisions.dedup();
        let mut n = 0;
        for (lag, count) in LAG {
            let Some(rev) = revisions.len().checked_sub(lag + 1).map(|i| revisions[i]) else {
                continue;
            };
            for _ in 0..*count {
                n += 1;
                let name = format!("{}-{n:02}", platform.to_ascii_lowercase());
                out.push(Snapshot {
                    id: MachineId::parse(&name).ok(),
                    computer_dns_name: Some(format!("{name}.demo.contoso.com")),
                    last_seen: now,
                    os_platform: platform.to_string(),
                    os_build: format!("10.0.{build}.{rev}"),
                    os_architecture: "x64".into(),
                    os_edition: None,
                    installation_type: None,
                    hotpatch_enrolled: false,
                    software: Vec::new(),
                    installed_kbs: Vec::new(),
                    installed_kbs_complete: false,
                    installed_kbs_sources: Vec::new(),
                    pending_restart_kbs: Vec::new(),
                    device_group: Some("Demo".into()),
                });
            }
        }
    }
    out
}
