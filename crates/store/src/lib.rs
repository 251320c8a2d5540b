//! kbgap storage: the imported catalog documents, machine snapshots, per-machine results and
//! the per-(tenant, software, KB) counts the API reads. One interface, [`Store`], with two
//! backends that pass the same conformance suite: the embedded default, SQLite
//! ([`SqliteStore`]), and PostgreSQL ([`PostgresStore`]) for several replicas.

mod deferred;
mod postgres;
mod rows;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;

use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::{Evaluation, KbId, MachineId, SoftwareId, TenantId};
use time::Date;

pub use deferred::DeferredStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Which database a [`StoreError::Database`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A statement failed: the database refused it or the connection broke.
    #[error("{backend} error: {message}")]
    Database { backend: Backend, message: String },
    /// The database server cannot be reached (`target` is `host:port`, never credentials).
    #[error("cannot connect to PostgreSQL at {target}: {message}")]
    Unreachable { target: String, message: String },
    /// The database URL cannot be used; the message never repeats the URL (it may hold a
    /// password).
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("cannot open the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the database schema is version {found}, newer than this kbgap knows ({known}); upgrade kbgap")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the catalog changed (generation {expected} → {found}) while the change was prepared; retry")]
    StaleCatalog { expected: i64, found: i64 },
    /// The caller's re-evaluation of a machine that changed during a catalog import failed;
    /// nothing was written.
    #[error("{0}")]
    Reevaluation(BoxError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Why it failed, without the "cannot connect to …" that [`StoreError::Unreachable`] adds
    /// itself when displayed.
    pub fn reason(&self) -> String {
        match self {
            StoreError::Unreachable { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Whether the database, rather than the request, failed: the caller may retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database { .. } | StoreError::Unreachable { .. }
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database {
            backend: Backend::Sqlite,
            message: e.to_string(),
        }
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        StoreError::Database {
            backend: Backend::Postgres,
            message: postgres::describe(&e),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which catalog is stored: its generation (bumped by every import) and the date it is cut
/// at, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CatalogState {
    pub generation: i64,
    pub as_of: Option<Date>,
    /// Bumped by every inventory change (so that answers computed from the counts can tell
    /// they are stale).
    pub inventory: i64,
}

/// An error of the caller's evaluation, carried through the store unchanged.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A stored machine as read for re-evaluation.
#[derive(Debug, Clone)]
pub struct StoredMachine {
    pub tenant: TenantId,
    pub id: MachineId,
    pub snapshot: String,
    /// The write that stored this snapshot: a number no other write of any machine has, so a
    /// machine rewritten (or deleted and stored again) since it was read has another one.
    pub write: i64,
}

/// A stored machine as the machine list reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMachine {
    pub id: MachineId,
    /// Unix seconds.
    pub last_seen: i64,
    pub snapshot: String,
}

/// A machine re-evaluated against the catalog being imported, from the snapshot `write`
/// stored.
#[derive(Debug, Clone)]
pub struct Reevaluated {
    pub tenant: TenantId,
    pub write: i64,
    pub record: MachineRecord,
}

/// Re-evaluates a stored machine (tenant, id, snapshot JSON) against the catalog being
/// imported: what a catalog import calls, inside its transaction, for each machine stored or
/// rewritten after the machines were read.
pub type Reevaluate<'a> =
    dyn FnMut(&TenantId, MachineId, String) -> std::result::Result<MachineRecord, BoxError> + 'a;

/// What a catalog import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub summary: ImportSummary,
    /// Machines whose results were rewritten: every stored machine.
    pub machines: usize,
    /// Of those, the ones stored or rewritten after they were read, re-evaluated inside the
    /// import's transaction.
    pub reevaluated_late: usize,
}

/// Held while a catalog import runs (see [`Store::lock_catalog_imports`]); dropping it lets
/// the next import start.
pub struct ImportLock<'a> {
    release: Option<Box<dyn FnOnce() + 'a>>,
}

impl<'a> ImportLock<'a> {
    pub(crate) fn new(release: impl FnOnce() + 'a) -> ImportLock<'a> {
        ImportLock {
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for ImportLock<'_> {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for ImportLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImportLock")
    }
}

/// Called by a catalog import between staging its results and its final transaction, when
/// it holds no lock that inventory writes wait for; tests set it to write meanwhile.
#[derive(Default)]
pub(crate) struct StagedHook(std::sync::Mutex<Option<Box<dyn Fn() + Send + Sync>>>);

impl StagedHook {
    pub(crate) fn call(&self) {
        if let Some(f) = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            f();
        }
    }

    #[cfg(feature = "test-support")]
    pub(crate) fn set(&self, f: impl Fn() + Send + Sync + 'static) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(f));
    }
}

/// A machine with its evaluation, ready to be stored.
#[derive(Debug, Clone)]
pub struct MachineRecord {
    pub id: MachineId,
    /// Unix seconds.
    pub last_seen: i64,
    /// The snapshot as JSON, kept so that a new catalog can re-evaluate the machine.
    pub snapshot: String,
    /// Shared by every machine of the same equivalence class.
    pub evaluation: std::sync::Arc<Evaluation>,
}

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Documents stored (new, or newer revisions of stored ones).
    pub stored: Vec<String>,
    /// Documents skipped because the stored revision is the same or newer.
    pub skipped: Vec<String>,
}

/// One row of a `getmissingkbs` answer before the catalog adds names and CVE counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingCount {
    pub kb: KbId,
    pub machines: u32,
}

/// A stored machine whose Windows version, for its edition, left servicing: its evaluation's
/// [`kbgap_domain::lifecycle::EndOfServicing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicingEnded {
    pub machine: MachineId,
    pub version: String,
    pub edition: Option<kbgap_domain::Edition>,
    pub since: Date,
    pub esu_until: Option<Date>,
    pub last_update: Option<KbId>,
}

/// The storage interface. Every tenant-owned read and write takes the tenant first.
/// Implementations make every method atomic: readers never see half of a change.
pub trait Store: Send + Sync {
    fn catalog_state(&self) -> Result<CatalogState>;

    /// All stored documents, for compiling the catalog.
    fn load_documents(&self) -> Result<Vec<CvrfDocument>>;

    /// Which of `docs` would replace what is stored (a document is replaced only by a newer
    /// revision), without writing anything.
    fn plan_import(&self, docs: &[CvrfDocument]) -> Result<ImportSummary>;

    /// Waits until no other catalog import holds the import lock (of any process on the same
    /// database), then holds it until the returned guard is dropped: two importers never
    /// re-evaluate the machines at once, and the second finds the catalog the first stored.
    /// Inventory writes never wait for it.
    fn lock_catalog_imports(&self) -> Result<ImportLock<'_>>;

    /// Stores documents (newer revisions replace older ones), the per-KB release table, the
    /// cut date, and the re-evaluated results of every machine, and bumps the catalog
    /// generation if it is still `generation` (else [`StoreError::StaleCatalog`]: another
    /// import came first). The caller holds [`Store::lock_catalog_imports`].
    ///
    /// `results` are first written into staged result tables, in short transactions that
    /// inventory writes interleave with; then one final transaction, which inventory writes
    /// wait for, stores the catalog, settles what changed since the machines were read and
    /// swaps the staged results in. Readers see the old generation with its results, or the
    /// new one with its results, never a mix.
    ///
    /// `results` are the machines as read by [`Store::machines_for_reevaluation`], evaluated
    /// against the new catalog. A machine still stored by the same write gets its result; a
    /// machine stored or rewritten since is re-evaluated with `reevaluate` inside the
    /// transaction; a result of a machine deleted since is dropped. So when the import commits
    /// every stored machine is evaluated against the new generation. Any error, `reevaluate`'s
    /// included ([`StoreError::Reevaluation`]), writes nothing.
    #[allow(clippy::too_many_arguments)]
    fn import_catalog(
        &self,
        docs: &[CvrfDocument],
        kbs: &[kbgap_domain::catalog::KbInfo],
        as_of: Option<Date>,
        generation: i64,
        results: &[Reevaluated],
        active_since: i64,
        reevaluate: &mut Reevaluate<'_>,
    ) -> Result<ImportOutcome>;

    /// Every stored machine of every tenant, in (tenant, id) byte order.
    fn all_machines(&self) -> Result<Vec<(TenantId, MachineId, String)>>;

    /// Every stored machine of every tenant with the write that stored it, as one consistent
    /// read, for a catalog import's re-evaluation.
    fn machines_for_reevaluation(&self) -> Result<Vec<StoredMachine>>;

    /// Replaces the given machines of one tenant, atomically, if the catalog is still at
    /// `generation`. Machines last seen before `active_since` are stored but not counted.
    fn put_machines(
        &self,
        tenant: &TenantId,
        machines: &[MachineRecord],
        generation: i64,
        active_since: i64,
    ) -> Result<()>;

    /// Deletes one machine; returns whether it existed.
    fn delete_machine(&self, tenant: &TenantId, id: &MachineId) -> Result<bool>;

    /// Removes machines last seen before `active_since` from the counts; returns how many.
    fn sweep(&self, active_since: i64) -> Result<usize>;

    /// Whether at least one active machine of the tenant has the software installed.
    fn software_known(&self, tenant: &TenantId, software: &SoftwareId) -> Result<bool>;

    /// The software at least one active machine of the tenant has installed, sorted by id.
    fn tenant_software(&self, tenant: &TenantId) -> Result<Vec<SoftwareId>>;

    /// Active machines of the tenant on which at least one KB of the software is missing.
    fn exposed_machines(&self, tenant: &TenantId, software: &SoftwareId) -> Result<u64>;

    /// KBs missing on at least one active machine, with how many.
    fn missing_counts(&self, tenant: &TenantId, software: &SoftwareId)
        -> Result<Vec<MissingCount>>;

    /// Active machines of the tenant that are indeterminate for the software: an applicable
    /// KB could be neither proven present nor absent.
    fn indeterminate_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<MachineId>>;

    /// Active machines of the tenant with the software installed whose Windows version, for
    /// their edition, left servicing, sorted by id.
    fn end_of_servicing_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<ServicingEnded>>;

    /// The stored snapshot of one machine.
    fn machine_snapshot(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<String>>;

    /// Up to `limit` of the tenant's stored machines (active or not) whose ids come after
    /// `after` (from the first when `None`), in id byte order: one page of the machine list,
    /// so that listing never holds a tenant's whole inventory.
    fn machines_after(
        &self,
        tenant: &TenantId,
        after: Option<&MachineId>,
        limit: usize,
    ) -> Result<Vec<ListedMachine>>;

    /// The tenant's machines whose id equals `id` ignoring case (Windows host names are
    /// case-insensitive), sorted. Asked only when no machine has exactly that id; stores
    /// override this reading of every machine with a query of the tenant's ids.
    fn machines_named(&self, tenant: &TenantId, id: &MachineId) -> Result<Vec<MachineId>> {
        let wanted = id.as_str().to_lowercase();
        let mut out: Vec<MachineId> = self
            .all_machines()?
            .into_iter()
            .filter(|(t, m, _)| t == tenant && m.as_str().to_lowercase() == wanted)
            .map(|(_, m, _)| m)
            .collect();
        out.sort();
        Ok(out)
    }

    /// Calls `changed` soon after any process commits a change to the store (PostgreSQL's
    /// LISTEN/NOTIFY), from a thread of its own. Returns whether the backend announces
    /// changes at all; callers poll either way, as the fallback.
    fn subscribe(&self, changed: std::sync::Arc<dyn Fn() + Send + Sync>) -> Result<bool> {
        let _ = changed;
        Ok(false)
    }

    /// Whether the database answers.
    fn ping(&self) -> Result<()>;
}
