//! The embedded SQLite store: one file in the data directory, WAL mode, a single writer
//! connection and a small pool of readers, migrations applied when opened.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kbgap_domain::catalog::KbInfo;
use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::{Edition, KbId, MachineId, SoftwareId, TenantId};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use time::macros::format_description;
use time::{Date, PrimitiveDateTime};

use crate::rows::{
    self, check_generation, CountDeltas, ResultTables, StoredFix, StoredState, LIVE, STAGED,
};
use crate::{
    CatalogState, ImportLock, ImportOutcome, ImportSummary, ListedMachine, MachineRecord,
    MissingCount, Reevaluate, Reevaluated, Result, ServicingEnded, StagedHook, Store, StoreError,
    StoredMachine,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_change_markers.sql"),
    include_str!("../migrations/sqlite/0003_machine_servicing.sql"),
];

const DATE_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

/// Readers kept open for reuse; more are opened on demand.
const IDLE_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Held by a catalog import of this process from start to end, beside the lock file
    /// that holds back the imports of other processes.
    imports: Mutex<()>,
    staged: StagedHook,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) `kbgap.sqlite` in `data_dir` and applies migrations.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join("kbgap.sqlite");
        let mut writer = Self::connect(&path)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            imports: Mutex::new(()),
            staged: StagedHook::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in every catalog import between staging its results and its final
    /// transaction.
    #[cfg(feature = "test-support")]
    pub fn on_staged(&self, f: impl Fn() + Send + Sync + 'static) {
        self.staged.set(f);
    }

    fn connect(path: &Path) -> Result<Connection> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(conn)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self
            .readers
            .lock()
            .map_err(|_| corrupt("reader pool poisoned"))?
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => Self::connect(&self.path)?,
        };
        let out = f(&conn);
        let mut pool = self
            .readers
            .lock()
            .map_err(|_| corrupt("reader pool poisoned"))?;
        if pool.len() < IDLE_READERS {
            pool.push(conn);
        }
        out
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().map_err(|_| corrupt("writer poisoned"))?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Applies the migrations this kbgap knows and the file lacks, each in a write transaction
/// that reads the version first: processes opening the file together apply each once.
fn migrate(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known,
            });
        }
        let Some(sql) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        tracing::info!(migration = version + 1, "applied database migration");
    }
}

fn meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM catalog_meta WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()?)
}

fn set_meta(tx: &Transaction, key: &str, value: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO catalog_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

fn catalog_state(conn: &Connection) -> Result<CatalogState> {
    let generation = match meta(conn, "generation")? {
        Some(g) => g
            .parse()
            .map_err(|_| corrupt("catalog generation is not a number"))?,
        None => 0,
    };
    let as_of = match meta(conn, "as_of")? {
        Some(d) if !d.is_empty() => {
            Some(Date::parse(&d, DATE).map_err(|_| corrupt("catalog as-of date is not a date"))?)
        }
        _ => None,
    };
    let inventory = match meta(conn, "inventory")? {
        Some(g) => g
            .parse()
            .map_err(|_| corrupt("inventory generation is not a number"))?,
        None => 0,
    };
    Ok(CatalogState {
        generation,
        as_of,
        inventory,
    })
}

fn bump_inventory(tx: &Transaction, state: &CatalogState) -> Result<()> {
    set_meta(tx, "inventory", &(state.inventory + 1).to_string())
}

fn format_dt(dt: PrimitiveDateTime) -> String {
    dt.format(DATE_TIME).unwrap_or_default()
}

fn parse_dt(s: &str) -> Result<PrimitiveDateTime> {
    PrimitiveDateTime::parse(s, DATE_TIME).map_err(|_| corrupt(format!("bad date {s}")))
}

/// Stored revisions of documents: id → current release.
fn stored_revisions(conn: &Connection) -> Result<HashMap<String, PrimitiveDateTime>> {
    let mut stmt = conn.prepare("SELECT id, current_release FROM documents")?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next()? {
        out.insert(r.get::<_, String>(0)?, parse_dt(&r.get::<_, String>(1)?)?);
    }
    Ok(out)
}

fn plan(conn: &Connection, docs: &[CvrfDocument]) -> Result<ImportSummary> {
    Ok(rows::plan(&stored_revisions(conn)?, docs))
}

fn write_document(tx: &Transaction, doc: &CvrfDocument) -> Result<()> {
    tx.execute("DELETE FROM documents WHERE id = ?1", [&doc.id])?;
    tx.execute(
        "INSERT INTO documents (id, title, initial_release, current_release) VALUES (?1, ?2, ?3, ?4)",
        params![
            doc.id,
            doc.title,
            format_dt(doc.initial_release),
            format_dt(doc.current_release)
        ],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO document_fixes
         (document_id, kb, product_id, product_name, sub_type, fixed_build, supersedence, cves)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for g in rows::fix_groups(doc) {
        stmt.execute(params![
            doc.id,
            g.kb.number(),
            g.product_id,
            g.product_name,
            g.sub_type,
            g.fixed_build,
            g.supersedence,
            g.cves_joined()
        ])?;
    }
    Ok(())
}

/// Subtracts a counted machine's contribution from the counts.
fn uncount(tx: &Transaction, tenant: &str, machine: &str) -> Result<()> {
    // Cached statements: ingestion runs these once per replaced machine.
    tx.prepare_cached(
        "UPDATE software_counts SET machines = machines - 1
         WHERE tenant_id = ?1 AND software IN
           (SELECT software FROM machine_software WHERE tenant_id = ?1 AND machine_id = ?2)",
    )?
    .execute(params![tenant, machine])?;
    tx.prepare_cached(
        "UPDATE missing_counts SET machines = machines - 1
         WHERE tenant_id = ?1 AND (software, kb) IN
           (SELECT software, kb FROM machine_missing WHERE tenant_id = ?1 AND machine_id = ?2)",
    )?
    .execute(params![tenant, machine])?;
    Ok(())
}

/// Deletes a machine's results from `tables`.
fn delete_results(
    tx: &Transaction,
    tables: ResultTables,
    tenant: &str,
    machine: &str,
) -> Result<()> {
    for table in tables.all() {
        tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE tenant_id = ?1 AND machine_id = ?2"
        ))?
        .execute(params![tenant, machine])?;
    }
    Ok(())
}

/// Writes a machine's results into `tables`.
fn write_results(
    tx: &Transaction,
    tables: ResultTables,
    tenant: &str,
    m: &MachineRecord,
) -> Result<()> {
    let mut sw = tx.prepare_cached(&format!(
        "INSERT INTO {} (tenant_id, machine_id, software, indeterminate) VALUES (?1, ?2, ?3, ?4)",
        tables.software
    ))?;
    for s in &m.evaluation.software {
        let indeterminate = m.evaluation.indeterminate.contains(s);
        sw.execute(params![tenant, m.id.as_str(), s.as_str(), indeterminate])?;
    }
    let mut missing = tx.prepare_cached(&format!(
        "INSERT INTO {} (tenant_id, machine_id, software, kb) VALUES (?1, ?2, ?3, ?4)",
        tables.missing
    ))?;
    for (s, kbs) in &m.evaluation.missing {
        for kb in kbs {
            missing.execute(params![tenant, m.id.as_str(), s.as_str(), kb.number()])?;
        }
    }
    if let Some(e) = &m.evaluation.end_of_servicing {
        let date = |d: Date| d.format(DATE).unwrap_or_default();
        tx.prepare_cached(&format!(
            "INSERT INTO {} (tenant_id, machine_id, version, edition, since, esu_until, last_kb)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            tables.servicing
        ))?
        .execute(params![
            tenant,
            m.id.as_str(),
            e.version,
            e.edition.map(|x| x.id()),
            date(e.since),
            e.esu_until.map(date),
            e.last_update.map(|k| k.number())
        ])?;
    }
    Ok(())
}

fn apply_deltas(deltas: &CountDeltas, tx: &Transaction, tenant: &str) -> Result<()> {
    let mut sw = tx.prepare_cached(
        "INSERT INTO software_counts (tenant_id, software, machines) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id, software)
         DO UPDATE SET machines = software_counts.machines + excluded.machines",
    )?;
    for (s, d) in deltas.software_changes() {
        sw.execute(params![tenant, s, d])?;
    }
    let mut missing = tx.prepare_cached(
        "INSERT INTO missing_counts (tenant_id, software, kb, machines) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id, software, kb)
         DO UPDATE SET machines = missing_counts.machines + excluded.machines",
    )?;
    for (s, kb, d) in deltas.missing_changes() {
        missing.execute(params![tenant, s, kb, d])?;
    }
    Ok(())
}

/// Subtracts a stored, counted machine's contribution, read from its stored results, from
/// the batch's count changes (`uncount` does the same directly, for single deletions).
fn uncount_into(
    deltas: &mut CountDeltas,
    tx: &Transaction,
    tenant: &str,
    machine: &str,
) -> Result<()> {
    let mut sw = tx.prepare_cached(
        "SELECT software FROM machine_software WHERE tenant_id = ?1 AND machine_id = ?2",
    )?;
    for s in sw.query_map(params![tenant, machine], |r| r.get::<_, String>(0))? {
        deltas.uncount_software(s?);
    }
    let mut missing = tx.prepare_cached(
        "SELECT software, kb FROM machine_missing WHERE tenant_id = ?1 AND machine_id = ?2",
    )?;
    for row in missing.query_map(params![tenant, machine], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
    })? {
        let (s, kb) = row?;
        deltas.uncount_missing(s, kb);
    }
    Ok(())
}

fn prune_counts(tx: &Transaction) -> Result<()> {
    tx.execute("DELETE FROM software_counts WHERE machines <= 0", [])?;
    tx.execute("DELETE FROM missing_counts WHERE machines <= 0", [])?;
    Ok(())
}

fn is_counted(tx: &Transaction, tenant: &str, machine: &str) -> Result<Option<bool>> {
    Ok(tx
        .query_row(
            "SELECT counted FROM machines WHERE tenant_id = ?1 AND machine_id = ?2",
            params![tenant, machine],
            |r| r.get::<_, bool>(0),
        )
        .optional()?)
}

fn put_machine(
    tx: &Transaction,
    tenant: &str,
    m: &MachineRecord,
    active_since: i64,
    write: i64,
    deltas: &mut CountDeltas,
) -> Result<()> {
    let id = m.id.as_str();
    let stored: Option<bool> = tx
        .prepare_cached("SELECT counted FROM machines WHERE tenant_id = ?1 AND machine_id = ?2")?
        .query_row(params![tenant, id], |r| r.get(0))
        .optional()?;
    // A machine not stored has no results to remove: every path that deletes a machine
    // deletes its results in the same transaction.
    if let Some(counted) = stored {
        if counted {
            uncount_into(deltas, tx, tenant, id)?;
        }
        delete_results(tx, LIVE, tenant, id)?;
    }
    let counted = m.last_seen >= active_since;
    tx.prepare_cached(
        "INSERT INTO machines (tenant_id, machine_id, last_seen, snapshot, counted, pending_restart,
                               write_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant_id, machine_id) DO UPDATE SET
           last_seen = excluded.last_seen, snapshot = excluded.snapshot,
           counted = excluded.counted, pending_restart = excluded.pending_restart,
           write_seq = excluded.write_seq",
    )?
    .execute(params![
        tenant,
        id,
        m.last_seen,
        m.snapshot,
        counted,
        m.evaluation.pending_restart,
        write
    ])?;
    write_results(tx, LIVE, tenant, m)?;
    if counted {
        deltas.count(m);
    }
    Ok(())
}

/// Every stored machine with the write that stored it and its flags.
fn machine_states(tx: &Transaction) -> Result<Vec<StoredState>> {
    let mut stmt = tx.prepare(
        "SELECT tenant_id, machine_id, write_seq, counted, pending_restart FROM machines",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredState {
            tenant: r.get(0)?,
            machine: r.get(1)?,
            write: r.get(2)?,
            counted: r.get(3)?,
            pending_restart: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Creates the staged result tables empty, from the live tables' own definitions (and their
/// indexes', under names that alternate between imports), after dropping what an import
/// that did not finish left.
fn create_staged(tx: &Transaction) -> Result<()> {
    drop_tables(tx, STAGED)?;
    drop_tables(tx, RETIRED)?;
    for (live, staged) in LIVE.all().into_iter().zip(STAGED.all()) {
        let mut defs: Vec<(String, String, String)> = Vec::new();
        {
            let mut stmt = tx.prepare(
                "SELECT type, name, sql FROM sqlite_master
                 WHERE tbl_name = ?1 AND sql IS NOT NULL ORDER BY type = 'index'",
            )?;
            for row in stmt.query_map([live], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
                defs.push(row?);
            }
        }
        for (kind, name, sql) in defs {
            let sql = if kind == "table" {
                sql.replacen(live, staged, 1)
            } else {
                let renamed = match name.strip_prefix(rows::STAGED_PREFIX) {
                    Some(base) => base.to_string(),
                    None => format!("{}{name}", rows::STAGED_PREFIX),
                };
                sql.replacen(&name, &renamed, 1)
                    .replacen(&format!(" ON {live} "), &format!(" ON {staged} "), 1)
                    .replacen(&format!(" ON {live}("), &format!(" ON {staged}("), 1)
            };
            tx.execute_batch(&sql)?;
        }
    }
    Ok(())
}

/// The live result tables an import replaced, dropped after it commits.
const RETIRED: ResultTables = ResultTables {
    software: "retired_machine_software",
    missing: "retired_machine_missing",
    servicing: "retired_machine_servicing",
};

fn drop_tables(tx: &Transaction, tables: ResultTables) -> Result<()> {
    for table in tables.all() {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
    }
    Ok(())
}

/// Machines whose results one staging transaction writes: short enough that inventory
/// writes waiting between two of them wait well under the busy timeout.
const STAGE_CHUNK: usize = 2_000;

impl Store for SqliteStore {
    fn catalog_state(&self) -> Result<CatalogState> {
        self.read(catalog_state)
    }

    fn load_documents(&self) -> Result<Vec<CvrfDocument>> {
        self.read(|conn| {
            let mut docs: BTreeMap<String, CvrfDocument> = BTreeMap::new();
            let mut stmt =
                conn.prepare("SELECT id, title, initial_release, current_release FROM documents")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let id: String = r.get(0)?;
                docs.insert(
                    id.clone(),
                    CvrfDocument {
                        id,
                        title: r.get(1)?,
                        initial_release: parse_dt(&r.get::<_, String>(2)?)?,
                        current_release: parse_dt(&r.get::<_, String>(3)?)?,
                        fixes: Vec::new(),
                    },
                );
            }
            let mut stmt = conn.prepare(
                "SELECT document_id, kb, product_id, product_name, sub_type, fixed_build,
                        supersedence, cves
                 FROM document_fixes ORDER BY rowid",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let doc_id: String = r.get(0)?;
                let kb = KbId::from_number(r.get(1)?).map_err(corrupt)?;
                let doc = docs
                    .get_mut(&doc_id)
                    .ok_or_else(|| corrupt(format!("fix of unknown document {doc_id}")))?;
                StoredFix {
                    kb,
                    product_id: r.get(2)?,
                    product_name: r.get(3)?,
                    sub_type: r.get(4)?,
                    fixed_build: r.get(5)?,
                    supersedence: r.get(6)?,
                    cves: r.get(7)?,
                }
                .expand_into(doc);
            }
            Ok(docs.into_values().collect())
        })
    }

    fn plan_import(&self, docs: &[CvrfDocument]) -> Result<ImportSummary> {
        self.read(|conn| plan(conn, docs))
    }

    fn lock_catalog_imports(&self) -> Result<ImportLock<'_>> {
        // Threads of this process wait on the mutex, other processes on the lock file (an
        // import's staged tables are shared by every process on the database file).
        let guard = self
            .imports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = self.path.with_extension("sqlite-import-lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|file| file.lock().map(|()| file))
            .map_err(|source| StoreError::DataDir {
                path: path.display().to_string(),
                source,
            })?;
        Ok(ImportLock::new(move || {
            drop(file);
            drop(guard);
        }))
    }

    fn import_catalog(
        &self,
        docs: &[CvrfDocument],
        kbs: &[KbInfo],
        as_of: Option<Date>,
        generation: i64,
        results: &[Reevaluated],
        active_since: i64,
        reevaluate: &mut Reevaluate<'_>,
    ) -> Result<ImportOutcome> {
        // Every machine's results are written into staged tables first, a short transaction
        // at a time: inventory writes go on between them. Only what changed since the
        // machines were read is left for the final transaction.
        self.write(create_staged)?;
        for chunk in results.chunks(STAGE_CHUNK) {
            self.write(|tx| {
                for r in chunk {
                    write_results(tx, STAGED, r.tenant.as_str(), &r.record)?;
                }
                Ok(())
            })?;
        }
        self.staged.call();
        // The write lock keeps every other writer out until the import commits.
        let outcome = self.write(|tx| {
            let state = catalog_state(tx)?;
            check_generation(state.generation, generation)?;
            let summary = plan(tx, docs)?;
            for doc in docs {
                if summary.stored.contains(&doc.id) {
                    write_document(tx, doc)?;
                }
            }
            tx.execute("DELETE FROM catalog_kbs", [])?;
            {
                let mut stmt = tx.prepare(
                    "INSERT INTO catalog_kbs (kb, name, document_id, release_date, url)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for k in kbs {
                    stmt.execute(params![
                        k.kb.number(),
                        k.name,
                        k.document_id,
                        k.release_date.format(DATE).unwrap_or_default(),
                        k.url()
                    ])?;
                }
            }
            set_meta(tx, "generation", &(state.generation + 1).to_string())?;
            let as_of = as_of
                .map(|d| d.format(DATE).unwrap_or_default())
                .unwrap_or_default();
            set_meta(tx, "as_of", &as_of)?;
            let settled = rows::settle(machine_states(tx)?, results, active_since);
            // Staged results of machines deleted or rewritten since they were read go.
            for r in &settled.stale {
                delete_results(tx, STAGED, r.tenant.as_str(), r.record.id.as_str())?;
            }
            // Machines stored or rewritten since they were read are re-evaluated now.
            let late = {
                let mut stmt = tx.prepare_cached(
                    "SELECT snapshot FROM machines WHERE tenant_id = ?1 AND machine_id = ?2",
                )?;
                let mut late = Vec::with_capacity(settled.late.len());
                for (t, m) in settled.late {
                    let snapshot: String = stmt.query_row(params![t, m], |r| r.get(0))?;
                    late.push((t, m, snapshot));
                }
                rows::reevaluate_late(late, reevaluate)?
            };
            let mut flags = tx.prepare_cached(
                "UPDATE machines SET counted = ?3, pending_restart = ?4
                 WHERE tenant_id = ?1 AND machine_id = ?2",
            )?;
            for &(tenant, machine, counted, pending) in &settled.flags {
                flags.execute(params![tenant, machine, counted, pending])?;
            }
            for (tenant, m) in &late {
                write_results(tx, STAGED, tenant.as_str(), m)?;
                let counted = m.last_seen >= active_since;
                let pending = m.evaluation.pending_restart;
                flags.execute(params![tenant.as_str(), m.id.as_str(), counted, pending])?;
            }
            drop(flags);
            // The staged results become the live ones, and the counts are rebuilt from them.
            for ((live, staged), retired) in
                LIVE.all().into_iter().zip(STAGED.all()).zip(RETIRED.all())
            {
                tx.execute_batch(&format!(
                    "ALTER TABLE {live} RENAME TO {retired}; ALTER TABLE {staged} RENAME TO {live};"
                ))?;
            }
            let all = settled
                .current
                .iter()
                .map(|r| (r.tenant.as_str(), &r.record))
                .chain(late.iter().map(|(t, m)| (t.as_str(), m)));
            let counts = rows::recount(all, active_since);
            tx.execute("DELETE FROM software_counts", [])?;
            tx.execute("DELETE FROM missing_counts", [])?;
            for (tenant, deltas) in &counts {
                apply_deltas(deltas, tx, tenant)?;
            }
            Ok(ImportOutcome {
                summary,
                machines: settled.current.len() + late.len(),
                reevaluated_late: late.len(),
            })
        });
        // What the import replaced, or what it staged if it failed, is dropped.
        let cleanup = self.write(|tx| {
            drop_tables(tx, RETIRED)?;
            drop_tables(tx, STAGED)
        });
        let outcome = outcome?;
        if let Err(e) = cleanup {
            tracing::warn!(error = %e, "could not drop the result tables the catalog import replaced; the next import drops them");
        }
        Ok(outcome)
    }

    fn all_machines(&self) -> Result<Vec<(TenantId, MachineId, String)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT tenant_id, machine_id, snapshot FROM machines ORDER BY tenant_id, machine_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (t, m, s) = row?;
                out.push((
                    TenantId::parse(&t).map_err(corrupt)?,
                    MachineId::parse(&m).map_err(corrupt)?,
                    s,
                ));
            }
            Ok(out)
        })
    }

    fn machines_for_reevaluation(&self) -> Result<Vec<StoredMachine>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT tenant_id, machine_id, snapshot, write_seq FROM machines
                 ORDER BY tenant_id, machine_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (t, m, snapshot, write) = row?;
                out.push(StoredMachine {
                    tenant: TenantId::parse(&t).map_err(corrupt)?,
                    id: MachineId::parse(&m).map_err(corrupt)?,
                    snapshot,
                    write,
                });
            }
            Ok(out)
        })
    }

    fn put_machines(
        &self,
        tenant: &TenantId,
        machines: &[MachineRecord],
        generation: i64,
        active_since: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let state = catalog_state(tx)?;
            if state.generation != generation {
                return Err(StoreError::StaleCatalog {
                    expected: generation,
                    found: state.generation,
                });
            }
            let mut deltas = CountDeltas::default();
            // The inventory counter after this write numbers it (`bump_inventory` below).
            let write = state.inventory + 1;
            for m in machines {
                put_machine(tx, tenant.as_str(), m, active_since, write, &mut deltas)?;
            }
            apply_deltas(&deltas, tx, tenant.as_str())?;
            bump_inventory(tx, &state)?;
            prune_counts(tx)
        })
    }

    fn delete_machine(&self, tenant: &TenantId, id: &MachineId) -> Result<bool> {
        self.write(|tx| {
            let t = tenant.as_str();
            let Some(counted) = is_counted(tx, t, id.as_str())? else {
                return Ok(false);
            };
            if counted {
                uncount(tx, t, id.as_str())?;
            }
            delete_results(tx, LIVE, t, id.as_str())?;
            tx.execute(
                "DELETE FROM machines WHERE tenant_id = ?1 AND machine_id = ?2",
                params![t, id.as_str()],
            )?;
            bump_inventory(tx, &catalog_state(tx)?)?;
            prune_counts(tx)?;
            Ok(true)
        })
    }

    fn sweep(&self, active_since: i64) -> Result<usize> {
        self.write(|tx| {
            let expired: Vec<(String, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT tenant_id, machine_id FROM machines WHERE counted = 1 AND last_seen < ?1",
                )?;
                let rows = stmt.query_map([active_since], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for (t, m) in &expired {
                uncount(tx, t, m)?;
                tx.execute(
                    "UPDATE machines SET counted = 0 WHERE tenant_id = ?1 AND machine_id = ?2",
                    params![t, m],
                )?;
            }
            if !expired.is_empty() {
                bump_inventory(tx, &catalog_state(tx)?)?;
                prune_counts(tx)?;
            }
            Ok(expired.len())
        })
    }

    fn software_known(&self, tenant: &TenantId, software: &SoftwareId) -> Result<bool> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT machines FROM software_counts WHERE tenant_id = ?1 AND software = ?2",
                    params![tenant.as_str(), software.as_str()],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .is_some_and(|n| n > 0))
        })
    }

    fn tenant_software(&self, tenant: &TenantId) -> Result<Vec<SoftwareId>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT software FROM software_counts
                 WHERE tenant_id = ?1 AND machines > 0 ORDER BY software",
            )?;
            let rows = stmt.query_map(params![tenant.as_str()], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(SoftwareId::parse(&row?).map_err(corrupt)?);
            }
            Ok(out)
        })
    }

    fn exposed_machines(&self, tenant: &TenantId, software: &SoftwareId) -> Result<u64> {
        self.read(|conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(DISTINCT mm.machine_id) FROM machine_missing mm
                 JOIN machines m ON m.tenant_id = mm.tenant_id AND m.machine_id = mm.machine_id
                 WHERE mm.tenant_id = ?1 AND mm.software = ?2 AND m.counted = 1",
                params![tenant.as_str(), software.as_str()],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
    }

    fn missing_counts(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<MissingCount>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT kb, machines FROM missing_counts
                 WHERE tenant_id = ?1 AND software = ?2 AND machines > 0
                 ORDER BY kb",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), software.as_str()], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (kb, machines) = row?;
                out.push(MissingCount {
                    kb: KbId::from_number(kb).map_err(corrupt)?,
                    machines,
                });
            }
            Ok(out)
        })
    }

    fn machine_snapshot(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<String>> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT snapshot FROM machines WHERE tenant_id = ?1 AND machine_id = ?2",
                    params![tenant.as_str(), id.as_str()],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    fn machines_after(
        &self,
        tenant: &TenantId,
        after: Option<&MachineId>,
        limit: usize,
    ) -> Result<Vec<ListedMachine>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT machine_id, last_seen, snapshot FROM machines
                 WHERE tenant_id = ?1 AND machine_id > ?2
                 ORDER BY machine_id LIMIT ?3",
            )?;
            let after = after.map_or("", |a| a.as_str());
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![tenant.as_str(), after, limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, last_seen, snapshot) = row?;
                out.push(ListedMachine {
                    id: MachineId::parse(&id).map_err(corrupt)?,
                    last_seen,
                    snapshot,
                });
            }
            Ok(out)
        })
    }

    fn machines_named(&self, tenant: &TenantId, id: &MachineId) -> Result<Vec<MachineId>> {
        // SQLite folds only ASCII case; the ids are compared here with Unicode case folding.
        let wanted = id.as_str().to_lowercase();
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT machine_id FROM machines WHERE tenant_id = ?1")?;
            let rows = stmt.query_map(params![tenant.as_str()], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                let row = row?;
                if row.to_lowercase() == wanted {
                    out.push(MachineId::parse(&row).map_err(corrupt)?);
                }
            }
            out.sort();
            Ok(out)
        })
    }

    fn indeterminate_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<MachineId>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT s.machine_id FROM machine_software s
                 JOIN machines m ON m.tenant_id = s.tenant_id AND m.machine_id = s.machine_id
                 WHERE s.tenant_id = ?1 AND s.software = ?2 AND s.indeterminate = 1
                   AND m.counted = 1
                 ORDER BY s.machine_id",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), software.as_str()], |r| {
                r.get::<_, String>(0)
            })?;
            let mut out = Vec::new();
            for row in rows {
                out.push(MachineId::parse(&row?).map_err(corrupt)?);
            }
            Ok(out)
        })
    }

    fn end_of_servicing_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<ServicingEnded>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT e.machine_id, e.version, e.edition, e.since, e.esu_until, e.last_kb
                 FROM machine_servicing e
                 JOIN machine_software s ON s.tenant_id = e.tenant_id
                   AND s.machine_id = e.machine_id AND s.software = ?2
                 JOIN machines m ON m.tenant_id = e.tenant_id AND m.machine_id = e.machine_id
                 WHERE e.tenant_id = ?1 AND m.counted = 1
                 ORDER BY e.machine_id",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), software.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<u32>>(5)?,
                ))
            })?;
            let date = |d: &str| Date::parse(d, DATE).map_err(corrupt);
            let mut out = Vec::new();
            for row in rows {
                let (machine, version, edition, since, esu_until, last_kb) = row?;
                out.push(ServicingEnded {
                    machine: MachineId::parse(&machine).map_err(corrupt)?,
                    version,
                    edition: edition
                        .map(|e| Edition::from_id(&e).ok_or_else(|| corrupt(e)))
                        .transpose()?,
                    since: date(&since)?,
                    esu_until: esu_until.as_deref().map(date).transpose()?,
                    last_update: last_kb
                        .map(KbId::from_number)
                        .transpose()
                        .map_err(corrupt)?,
                });
            }
            Ok(out)
        })
    }

    fn ping(&self) -> Result<()> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
    }
}
