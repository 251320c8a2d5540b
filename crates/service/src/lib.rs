//! kbgap's application services, shared by the HTTP API and the CLI: compiling and importing
//! the catalog, ingesting snapshots, re-evaluating machines and answering the missing-KB query.

use foldhash::{HashMap, HashMapExt};
use std::time::Duration;

use kbgap_domain::catalog::KbInfo;
use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::{Catalog, KbId, MachineFacts, MachineId, SoftwareId, TenantId};
use kbgap_inventory::{Snapshot, SnapshotError};
use kbgap_store::{CatalogState, ImportSummary, MachineRecord, Reevaluated, Store, StoreError};
use time::{Date, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("stored snapshot of machine {machine} of tenant {tenant} no longer parses: {error}")]
    StoredSnapshot {
        tenant: TenantId,
        machine: MachineId,
        error: String,
    },
    #[error("the store kept changing during {0}; gave up after several attempts")]
    Contention(&'static str),
    #[error(
        "machine id {given} matches several machines that differ only in case: {}",
        list_ids(candidates)
    )]
    AmbiguousMachine {
        given: MachineId,
        candidates: Vec<MachineId>,
    },
}

fn list_ids(ids: &[MachineId]) -> String {
    ids.iter()
        .map(MachineId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// How long a machine stays active after it was last seen (MDE counts the last 30 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Duration);

impl Default for Retention {
    fn default() -> Self {
        Retention(Duration::from_secs(30 * 24 * 3600))
    }
}

impl Retention {
    /// Machines last seen at or after this Unix time are active.
    pub fn active_since(&self, now: OffsetDateTime) -> i64 {
        now.unix_timestamp() - self.0.as_secs() as i64
    }
}

/// What a catalog import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub summary: ImportSummary,
    pub documents: usize,
    pub kbs: usize,
    pub machines_reevaluated: usize,
    /// Of those, the machines stored or rewritten while the import ran, re-evaluated inside
    /// its transaction.
    pub machines_changed_during_import: usize,
    pub generation: i64,
    pub as_of: Option<Date>,
}

const ATTEMPTS: usize = 3;

/// How far in the future a snapshot's `lastSeen` may lie (clocks drift) before it is refused.
const MAX_CLOCK_SKEW: time::Duration = time::Duration::days(1);

/// Imports documents: newer revisions replace stored ones, the catalog is recompiled (cut at
/// `as_of` when given), every machine is re-evaluated, and all of it becomes visible in one
/// transaction. Nothing is written when nothing would change.
///
/// Ingestion goes on meanwhile: the machines are re-evaluated outside any transaction, and
/// the few stored or rewritten after they were read are re-evaluated again inside the
/// import's transaction, which inventory writes wait for. When it commits every machine is
/// evaluated against the new generation; a write evaluated against the old one and
/// committing after it is refused as stale and re-evaluated by [`ingest`]. Imports wait for
/// each other ([`Store::lock_catalog_imports`]): the second finds the documents stored and,
/// with nothing left to change, writes nothing.
pub fn import_catalog(
    store: &dyn Store,
    docs: &[CvrfDocument],
    as_of: Option<Date>,
    now: OffsetDateTime,
    retention: Retention,
) -> Result<ImportReport> {
    let _lock = store.lock_catalog_imports()?;
    for _ in 0..ATTEMPTS {
        let state = store.catalog_state()?;
        let summary = store.plan_import(docs)?;
        let mut merged = store.load_documents()?;
        if summary.stored.is_empty() && state.as_of == as_of && state.generation > 0 {
            let catalog = compile(&merged, as_of);
            return Ok(ImportReport {
                summary,
                documents: catalog.document_count(),
                kbs: catalog.kb_count(),
                machines_reevaluated: 0,
                machines_changed_during_import: 0,
                generation: state.generation,
                as_of,
            });
        }
        merged.retain(|d| !summary.stored.contains(&d.id));
        for d in docs {
            if summary.stored.contains(&d.id) && !merged.iter().any(|m| m.id == d.id) {
                merged.push(d.clone());
            }
        }
        // A batch may hold two revisions of one document: keep the newest.
        merged.sort_by(|a, b| (&a.id, b.current_release).cmp(&(&b.id, a.current_release)));
        merged.dedup_by(|later, first| later.id == first.id);
        let compiled = CompiledCatalog::new(compile(&merged, as_of), state.generation + 1);
        let catalog = &compiled.catalog;
        let results = reevaluate_all(store, &compiled)?;
        let kbs: Vec<KbInfo> = catalog.kb_infos().cloned().collect();
        let mut late = |tenant: &TenantId, machine: MachineId, json: String| {
            let snapshot = parse_stored(tenant, &machine, &json)?;
            record(&compiled, machine, &snapshot, json).map_err(kbgap_store::BoxError::from)
        };
        match store.import_catalog(
            docs,
            &kbs,
            as_of,
            state.generation,
            &results,
            retention.active_since(now),
            &mut late,
        ) {
            Ok(outcome) => {
                return Ok(ImportReport {
                    summary: outcome.summary,
                    documents: catalog.document_count(),
                    kbs: catalog.kb_count(),
                    machines_reevaluated: outcome.machines,
                    machines_changed_during_import: outcome.reevaluated_late,
                    generation: state.generation + 1,
                    as_of,
                })
            }
            // Another process imported first (imports of SQLite stores of other processes
            // do not wait for each other): plan again from what it stored.
            Err(StoreError::StaleCatalog { .. }) => continue,
            Err(StoreError::Reevaluation(e)) => {
                return Err(match e.downcast::<ServiceError>() {
                    Ok(e) => *e,
                    Err(e) => ServiceError::Store(StoreError::Reevaluation(e)),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Contention("the catalog import"))
}

/// Re-evaluates every stored machine: once per equivalence class, not once per machine, and
/// every class at once (`CompiledCatalog::evaluate_classes`). Each result carries the write
/// that stored the machine as read, so the import can tell the machines written since.
fn reevaluate_all(store: &dyn Store, catalog: &CompiledCatalog) -> Result<Vec<Reevaluated>> {
    let mut class_of: HashMap<MachineFacts, usize> = HashMap::new();
    let mut machines = Vec::new();
    for m in store.machines_for_reevaluation()? {
        let snapshot = parse_stored(&m.tenant, &m.id, &m.snapshot)?;
        let next = class_of.len();
        let class = *class_of.entry(snapshot.facts()?).or_insert(next);
        machines.push((m, snapshot.last_seen.unix_timestamp(), class));
    }
    let mut classes = vec![MachineFacts::default(); class_of.len()];
    for (facts, class) in class_of {
        classes[class] = facts;
    }
    let evaluations = catalog.evaluate_classes(&classes);
    Ok(machines
        .into_iter()
        .map(|(m, last_seen, class)| Reevaluated {
            tenant: m.tenant,
            write: m.write,
            record: MachineRecord {
                id: m.id,
                last_seen,
                snapshot: m.snapshot,
                evaluation: evaluations[class].clone(),
            },
        })
        .collect())
}

/// A stored snapshot, parsed again (for re-evaluation or an explanation).
fn parse_stored(tenant: &TenantId, machine: &MachineId, json: &str) -> Result<Snapshot> {
    kbgap_inventory::parse_snapshot(json.as_bytes()).map_err(|e| ServiceError::StoredSnapshot {
        tenant: tenant.clone(),
        machine: machine.clone(),
        error: e.to_string(),
    })
}

fn record(
    catalog: &CompiledCatalog,
    id: MachineId,
    snapshot: &Snapshot,
    json: String,
) -> Result<MachineRecord> {
    let facts = snapshot.facts()?;
    Ok(MachineRecord {
        id,
        last_seen: snapshot.last_seen.unix_timestamp(),
        snapshot: json,
        evaluation: catalog.evaluate(&facts),
    })
}

/// An OS named by a software id the catalog does not know (`microsoft-_-windows_sever_2019`)
/// is refused, naming the closest ids it knows: evaluated, it would be silently "nothing
/// missing". Nothing is checked before a catalog is imported.
fn check_os(catalog: &Catalog, snapshot: &Snapshot) -> std::result::Result<(), String> {
    let known = catalog.os_software();
    if known.is_empty()
        || !kbgap_inventory::snapshot::platform_is_free_software_id(&snapshot.os_platform)
    {
        return Ok(());
    }
    let given = snapshot.os_platform.trim().to_ascii_lowercase();
    if known.iter().any(|k| k.as_str() == given) {
        return Ok(());
    }
    let mut closest: Vec<(usize, &str)> = known
        .iter()
        .map(|k| (edit_distance(&given, k.as_str()), k.as_str()))
        .collect();
    closest.sort();
    let names: Vec<&str> = closest.iter().take(3).map(|(_, k)| *k).collect();
    Err(format!(
        "the catalog has no operating system '{given}'; the closest it knows: {}",
        names.join(", ")
    ))
}

/// Levenshtein distance over bytes (software ids are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Evaluates and stores snapshots of one tenant, atomically. Each snapshot's `id` must be set.
pub fn ingest(
    store: &dyn Store,
    catalog: &CatalogHolder,
    tenant: &TenantId,
    snapshots: &[Snapshot],
    now: OffsetDateTime,
    retention: Retention,
) -> Result<()> {
    for _ in 0..ATTEMPTS {
        let compiled = catalog.current();
        let mut records = Vec::with_capacity(snapshots.len());
        for (i, s) in snapshots.iter().enumerate() {
            let id = s.id.clone().ok_or_else(|| SnapshotError {
                path: if snapshots.len() == 1 {
                    "id".into()
                } else {
                    format!("[{i}].id")
                },
                message: "missing machine id".into(),
            })?;
            if s.last_seen > now + MAX_CLOCK_SKEW {
                return Err(SnapshotError {
                    path: if snapshots.len() == 1 {
                        "lastSeen".into()
                    } else {
                        format!("[{i}].lastSeen")
                    },
                    message: format!("{} is in the future", s.last_seen),
                }
                .into());
            }
            check_os(&compiled.catalog, s).map_err(|message| SnapshotError {
                path: if snapshots.len() == 1 {
                    "osPlatform".into()
                } else {
                    format!("[{i}].osPlatform")
                },
                message,
            })?;
            let json = serde_json::to_string(s).map_err(|e| SnapshotError {
                path: ".".into(),
                message: e.to_string(),
            })?;
            records.push(record(&compiled, id, s, json)?);
        }
        match store.put_machines(
            tenant,
            &records,
            compiled.generation,
            retention.active_since(now),
        ) {
            Ok(()) => return Ok(()),
            Err(StoreError::StaleCatalog { .. }) => {
                catalog.refresh(store)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Contention("ingestion"))
}

/// One KB of a `getmissingkbs` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingKb {
    pub kb: KbId,
    pub name: String,
    pub url: String,
    pub machines: u32,
    pub cve_addressed: u32,
}

/// The missing KBs of one software across the tenant's active machines, in MDE's order
/// (`machineMissedOn` desc, `cveAddressed` desc, KB asc). `None` when no active machine of
/// the tenant has the software.
pub fn missing_kbs(
    store: &dyn Store,
    catalog: &Catalog,
    tenant: &TenantId,
    software: &SoftwareId,
) -> Result<Option<Vec<MissingKb>>> {
    if !store.software_known(tenant, software)? {
        return Ok(None);
    }
    let mut rows: Vec<MissingKb> = store
        .missing_counts(tenant, software)?
        .into_iter()
        .filter_map(|c| {
            let Some(info) = catalog.kb(c.kb) else {
                // Counts are rewritten with every catalog import; a KB the catalog no longer
                // has can only be seen between an import and this replica's reload.
                tracing::warn!(kb = %c.kb, "count for a KB the loaded catalog does not have");
                return None;
            };
            Some(MissingKb {
                kb: c.kb,
                name: info.name.clone(),
                url: info.url(),
                machines: c.machines,
                cve_addressed: catalog.cve_addressed(software, c.kb),
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.machines
            .cmp(&a.machines)
            .then(b.cve_addressed.cmp(&a.cve_addressed))
            .then(a.kb.cmp(&b.kb))
    });
    Ok(Some(rows))
}

/// Takes machines that left the retention window out of the counts.
pub fn sweep(store: &dyn Store, now: OffsetDateTime, retention: Retention) -> Result<usize> {
    Ok(store.sweep(retention.active_since(now))?)
}

/// The catalog state as stored, for status output.
pub fn catalog_state(store: &dyn Store) -> Result<CatalogState> {
    Ok(store.catalog_state()?)
}

// ---------------------------------------------------------------------------------------------
// Catalog sync from the MSRC API (`kbgap catalog sync`).
// ---------------------------------------------------------------------------------------------

/// What a catalog sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Documents in the API's listing.
    pub listed: usize,
    /// Whether the listing answered 304 Not Modified (the remembered listing was used).
    pub listing_not_modified: bool,
    /// Documents fetched because the store lacks them or holds an older revision.
    pub fetched: Vec<String>,
    /// The import of the fetched documents; `None` when nothing changed.
    pub import: Option<ImportReport>,
    /// The catalog generation active after the sync.
    pub generation: i64,
}

/// A failed sync. Nothing was stored: the previous catalog generation stays active.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    #[error("catalog sync failed; catalog generation {generation} stays active: {source}")]
    Fetch {
        generation: i64,
        #[source]
        source: kbgap_catalog::sync::SyncError,
    },
    #[error("catalog sync failed; the previous catalog stays active: {0}")]
    Service(#[from] ServiceError),
}

/// Syncs the catalog with the MSRC API: reads the updates listing (conditionally, with the
/// validator remembered in `state`), fetches every document whose `CurrentReleaseDate` is
/// newer than the stored revision (or that is not stored), and imports them with
/// [`import_catalog`]: one transaction, one new generation. Any failure — a document that
/// does not download or parse — stores nothing and names the document. `state` is updated
/// only when the sync succeeds. `progress` is told each document as it is fetched.
pub fn sync_catalog(
    store: &dyn Store,
    client: &kbgap_catalog::sync::MsrcClient,
    state: &mut kbgap_catalog::sync::SyncState,
    as_of: Option<Date>,
    now: OffsetDateTime,
    retention: Retention,
    progress: &mut dyn FnMut(&str),
) -> std::result::Result<SyncReport, SyncFailure> {
    use kbgap_catalog::sync::{Fetched, SyncState, Validator};

    let before = store.catalog_state().map_err(ServiceError::from)?;
    let fail = |source| SyncFailure::Fetch {
        generation: before.generation,
        source,
    };
    // Validators and the remembered listing belong to the server that gave them.
    let base = client.config().base_url.clone();
    let mut next = if state.base_url == base {
        state.clone()
    } else {
        SyncState {
            base_url: base,
            ..SyncState::default()
        }
    };
    let previous = if next.entries.is_empty() {
        Validator::default()
    } else {
        next.listing.clone()
    };
    let listing_not_modified = match client.updates(&previous).map_err(fail)? {
        Fetched::NotModified => true,
        Fetched::Fresh { value, validator } => {
            next.entries = value;
            next.listing = validator;
            false
        }
    };

    let stubs: Vec<CvrfDocument> = next.entries.iter().map(|e| e.stub()).collect();
    let plan = store.plan_import(&stubs).map_err(ServiceError::from)?;
    if plan.stored.is_empty() && before.as_of == as_of && before.generation > 0 {
        *state = next;
        return Ok(SyncReport {
            listed: stubs.len(),
            listing_not_modified,
            fetched: Vec::new(),
            import: None,
            generation: before.generation,
        });
    }

    // Oldest first, so progress and the report read in release order.
    let mut todo: Vec<kbgap_catalog::sync::UpdateEntry> = next
        .entries
        .iter()
        .filter(|e| plan.stored.contains(&e.id))
        .cloned()
        .collect();
    todo.sort_by(|a, b| (a.initial_release, &a.id).cmp(&(b.initial_release, &b.id)));
    let mut docs = Vec::with_capacity(todo.len());
    for entry in &todo {
        progress(&entry.id);
        let remembered = next.documents.get(&entry.id).cloned().unwrap_or_default();
        let fetched = match client.document(entry, &remembered).map_err(fail)? {
            // The listing says the store lacks this revision, so a 304 means the remembered
            // validator is stale: ask again without it.
            Fetched::NotModified => client
                .document(entry, &Validator::default())
                .map_err(fail)?,
            fresh => fresh,
        };
        match fetched {
            Fetched::Fresh { value, validator } => {
                next.documents.insert(entry.id.clone(), validator);
                docs.push(value);
            }
            Fetched::NotModified => {
                return Err(fail(kbgap_catalog::sync::SyncError::Http {
                    url: entry.cvrf_url.clone(),
                    what: "answered 304 Not Modified to an unconditional request".into(),
                    attempts: 1,
                }))
            }
        }
    }
    let report = import_catalog(store, &docs, as_of, now, retention)?;
    *state = next;
    Ok(SyncReport {
        listed: stubs.len(),
        listing_not_modified,
        fetched: docs.iter().map(|d| d.id.clone()).collect(),
        generation: report.generation,
        import: Some(report),
    })
}

// ---------------------------------------------------------------------------------------------
// Explanations (`kbgap explain`, `GET /api/machines/{id}/missingkbs/explain`): `explain.rs`.
// ---------------------------------------------------------------------------------------------

mod compiled;
pub use compiled::{compile, CatalogHolder, CompiledCatalog};

mod machine_kbs;
pub use machine_kbs::{machine_missing_kbs, MachineMissingKb};

mod machine_list;
pub use machine_list::{list_machines, machine_entity, MachineEntity};

mod software_list;
pub use software_list::{machine_software, software_entity, tenant_software, SoftwareEntity};

mod explain;
pub use explain::{
    end_of_servicing_machines, explain_machine, find_machine, indeterminate_machines,
    EndOfServicingMachine, ExplanationReport, KbReport, MachineExplanation, OsReport,
    ServicingReport, SoftwareKbs, SoftwareSummary,
};
