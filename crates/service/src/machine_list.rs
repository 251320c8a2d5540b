//! The tenant's machines as MDE's machine entity describes them (`GET /api/machines`,
//! `GET /api/machines/{id}`), read page by page from the store, so that listing a large fleet
//! never holds its whole inventory.

use kbgap_domain::build::WindowsBuild;
use kbgap_domain::{lifecycle, MachineId, TenantId};
use kbgap_store::{ListedMachine, Store};
use time::OffsetDateTime;

use crate::{find_machine, parse_stored, Result};

/// What kbgap knows of one machine, in the terms of MDE's machine entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineEntity {
    pub id: MachineId,
    pub computer_dns_name: Option<String>,
    pub last_seen: OffsetDateTime,
    /// `Windows10`, `WindowsServer2022`, … as reported.
    pub os_platform: String,
    /// The Windows build as reported, `10.0.19045.3570`.
    pub os_version: String,
    /// Its build number, 19045, when the build is a Windows build.
    pub os_build: Option<u32>,
    /// The Windows version's name, `22H2`, when kbgap knows the version of the build.
    pub version: Option<String>,
    /// `x64`, `x86` or `arm64`, as reported.
    pub os_architecture: String,
    /// The snapshot's `deviceGroup`.
    pub device_group: Option<String>,
    /// Seen within the retention period: counted in the answers.
    pub active: bool,
}

/// Machines read from the store at a time while listing.
const PAGE: usize = 500;

impl MachineEntity {
    fn from_snapshot(
        tenant: &TenantId,
        id: MachineId,
        json: &str,
        active_since: i64,
    ) -> Result<MachineEntity> {
        let snapshot = parse_stored(tenant, &id, json)?;
        let build = WindowsBuild::parse(&snapshot.os_build);
        let version = snapshot
            .facts()
            .ok()
            .and_then(|f| f.os)
            .and_then(|os| lifecycle::version(&os.software, os.build))
            .and_then(|v| v.name.rsplit_once("version "))
            .map(|(_, name)| name.to_string());
        Ok(MachineEntity {
            id,
            computer_dns_name: snapshot.computer_dns_name,
            active: snapshot.last_seen.unix_timestamp() >= active_since,
            last_seen: snapshot.last_seen,
            os_platform: snapshot.os_platform,
            os_version: snapshot.os_build,
            os_build: build.map(|b| b.build),
            version,
            os_architecture: snapshot.os_architecture,
            device_group: snapshot.device_group,
        })
    }
}

/// One page of the tenant's machines (active or not) in id byte order: those `keep` accepts,
/// after skipping `skip` of them, at most `take`; and whether more follow.
pub fn list_machines(
    store: &dyn Store,
    tenant: &TenantId,
    active_since: i64,
    mut keep: impl FnMut(&MachineEntity) -> bool,
    skip: usize,
    take: usize,
) -> Result<(Vec<MachineEntity>, bool)> {
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut after: Option<MachineId> = None;
    loop {
        let page = store.machines_after(tenant, after.as_ref(), PAGE)?;
        let full = page.len() == PAGE;
        after = page.last().map(|m| m.id.clone());
        for ListedMachine { id, snapshot, .. } in page {
            let machine = MachineEntity::from_snapshot(tenant, id, &snapshot, active_since)?;
            if !keep(&machine) {
                continue;
            }
            if skipped < skip {
                skipped += 1;
            } else if out.len() < take {
                out.push(machine);
            } else {
                return Ok((out, true));
            }
        }
        if !full {
            return Ok((out, false));
        }
    }
}

/// One stored machine of the tenant, its id matched ignoring case (see [`find_machine`]).
pub fn machine_entity(
    store: &dyn Store,
    tenant: &TenantId,
    id: &MachineId,
    active_since: i64,
) -> Result<Option<MachineEntity>> {
    find_machine(store, tenant, id)?
        .map(|(id, json)| MachineEntity::from_snapshot(tenant, id, &json, active_since))
        .transpose()
}
