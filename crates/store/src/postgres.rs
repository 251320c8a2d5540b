//! The PostgreSQL store, for several replicas sharing one database: a small pool of
//! connections, migrations applied when opened under an advisory lock, and writers serialized
//! the way the SQLite store's single writer serializes them — per tenant for inventory
//! changes, for everything when the catalog changes or the sweep runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fallible_iterator::FallibleIterator;
use kbgap_domain::catalog::KbInfo;
use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::{Edition, Evaluation, KbId, MachineId, SoftwareId, TenantId};
use postgres::config::Host;
use postgres::{Client, Config, IsolationLevel, NoTls, Transaction};
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
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_change_markers.sql"),
    include_str!("../migrations/postgres/0003_machine_servicing.sql"),
];

/// Connections kept open for reuse; more are opened on demand.
const IDLE_CONNECTIONS: usize = 8;

/// How long opening a connection may take unless the URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Advisory lock classes (the first key of PostgreSQL's two-key advisory locks); the second
/// key is a hash of the schema, so that deployments in different schemas of one database do
/// not wait for each other.
const LOCK_MIGRATIONS: i32 = 0x6b62_0001;
const LOCK_CATALOG: i32 = 0x6b62_0002;
const LOCK_TENANT: i32 = 0x6b62_0003;
/// Held by a catalog import from start to end (a session lock, which no inventory write
/// takes), so that two importers never re-evaluate the machines at once.
const LOCK_IMPORT: i32 = 0x6b62_0004;

/// Machines written per statement when a catalog import rewrites every machine's results.
const IMPORT_CHUNK: usize = 2_000;

pub struct PostgresStore {
    config: Config,
    target: String,
    idle: Mutex<Vec<Client>>,
    staged: StagedHook,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the configuration: it holds the password.
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // A synchronous client owns a small runtime, which cannot be dropped on an async
        // thread; the store may well be dropped on one when a server shuts down.
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A PostgreSQL error as one line: the server's message and SQLSTATE, or the client's.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                m.push_str(": ");
                m.push_str(d);
            }
            m
        }
        None => {
            // The client's own errors keep their cause apart from their message.
            let mut m = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                m.push_str(": ");
                m.push_str(&c.to_string());
                cause = c.source();
            }
            m
        }
    }
}

/// `message` without the password of `url`, should the message repeat it.
fn redact_password(message: &str, url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let password = rest
        .split_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message.to_string(),
    }
}

/// The servers a configuration names, as `host:port`: what an error may show of the URL.
fn target(config: &Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                Host::Tcp(h) if h.contains(':') => format!("[{h}]:{port}"),
                Host::Tcp(h) => format!("{h}:{port}"),
                Host::Unix(p) => format!("{}/.s.PGSQL.{port}", p.display()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How a write transaction is serialized with the others.
enum Lock<'a> {
    /// Alone: catalog imports and the sweep, which touch every tenant.
    Everything,
    /// Beside writes for other tenants, never beside a catalog import or the sweep.
    Tenant(&'a TenantId),
}

impl Lock<'_> {
    fn take(&self, tx: &mut Transaction) -> Result<()> {
        match self {
            Lock::Everything => tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
                &[&LOCK_CATALOG],
            )?,
            Lock::Tenant(t) => tx.execute(
                "SELECT pg_advisory_xact_lock_shared($1, hashtext(current_schema())),
                        pg_advisory_xact_lock($2, hashtext(current_schema() || '/' || $3))",
                &[&LOCK_CATALOG, &LOCK_TENANT, &t.as_str()],
            )?,
        };
        Ok(())
    }
}

impl PostgresStore {
    /// Runs `f` in every catalog import between staging its results and its final
    /// transaction.
    #[cfg(feature = "test-support")]
    pub fn on_staged(&self, f: impl Fn() + Send + Sync + 'static) {
        self.staged.set(f);
    }

    /// Connects to the database a `postgres://` (or `postgresql://`) URL names and applies
    /// migrations. Tables live in the connection's current schema (the first of its
    /// `search_path`, which the URL may set with `options=-csearch_path%3D…`).
    pub fn open(url: &str) -> Result<PostgresStore> {
        // Only the URL form: the client's other (key=value) form would repeat the text it
        // cannot parse, password included, in its error.
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::InvalidUrl(
                "expected a URL starting with postgres:// or postgresql://".into(),
            ));
        }
        let mut config: Config = url.parse().map_err(|e: postgres::Error| {
            StoreError::InvalidUrl(redact_password(&describe(&e), url))
        })?;
        if config.get_hosts().is_empty() {
            return Err(StoreError::InvalidUrl(
                "the URL names no host, e.g. postgres://user@127.0.0.1:5432/kbgap".into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("kbgap");
        }
        let store = PostgresStore {
            target: target(&config),
            config,
            idle: Mutex::new(Vec::new()),
            staged: StagedHook::default(),
        };
        let mut client = store.connect()?;
        migrate(&mut client)?;
        store.give_back(client);
        Ok(store)
    }

    /// The servers this store connects to, as `host:port`.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn connect(&self) -> Result<Client> {
        self.config
            .connect(NoTls)
            .map_err(|e| StoreError::Unreachable {
                target: self.target.clone(),
                message: describe(&e),
            })
    }

    fn client(&self) -> Result<Client> {
        loop {
            let pooled = self
                .idle
                .lock()
                .map_err(|_| corrupt("connection pool poisoned"))?
                .pop();
            match pooled {
                Some(c) if c.is_closed() => continue,
                Some(c) => return Ok(c),
                None => return self.connect(),
            }
        }
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(client);
            }
        }
    }

    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut client = self.client()?;
        let out = f(&mut client);
        self.give_back(client);
        out
    }

    /// A read of several statements that sees one state of the database.
    fn snapshot<T>(&self, f: impl FnOnce(&mut Transaction) -> Result<T>) -> Result<T> {
        self.with_client(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// A write in one transaction: all of it or, on any error, nothing.
    fn write<T>(&self, lock: Lock, f: impl FnOnce(&mut Transaction) -> Result<T>) -> Result<T> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            lock.take(&mut tx)?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

/// Applies the migrations this kbgap knows and the database lacks, in one transaction, under
/// an advisory lock: replicas starting together apply each migration once.
fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&LOCK_MIGRATIONS],
    )?;
    // Without the notice that the table exists, at every start.
    tx.batch_execute(
        "SET LOCAL client_min_messages TO warning;
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )?;
        tracing::info!(migration = i + 1, "applied database migration");
    }
    tx.commit()?;
    Ok(())
}

fn catalog_state(c: &mut impl postgres::GenericClient) -> Result<CatalogState> {
    let row = c.query_one(
        "SELECT generation, as_of, inventory FROM catalog_state",
        &[],
    )?;
    Ok(CatalogState {
        generation: row.get(0),
        as_of: row.get::<_, Option<Date>>(1),
        inventory: row.get(2),
    })
}

fn bump_inventory(tx: &mut Transaction) -> Result<()> {
    tx.execute("UPDATE catalog_state SET inventory = inventory + 1", &[])?;
    announce(tx)
}

/// The channel every committed change is announced on (LISTEN/NOTIFY). The payload is the
/// schema, so that stores of several schemas in one database hear only their own.
const CHANGES: &str = "kbgap_changes";

/// Announces the change to every listening replica when the transaction commits (a rolled
/// back transaction announces nothing).
fn announce(tx: &mut Transaction) -> Result<()> {
    tx.execute("SELECT pg_notify($1, current_schema())", &[&CHANGES])?;
    Ok(())
}

/// How long a listener waits before connecting again after losing its connection.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Listens for announced changes on a connection of its own, calling `changed` for each of
/// this schema's; after a lost connection it connects again and calls `changed` once, since
/// announcements may have been missed meanwhile.
fn listen(config: Config, target: String, changed: Arc<dyn Fn() + Send + Sync>) {
    let mut lost = false;
    loop {
        let attempt = (|| -> std::result::Result<(), postgres::Error> {
            let mut client = config.connect(NoTls)?;
            client.batch_execute(&format!("LISTEN {CHANGES}"))?;
            let schema: String = client.query_one("SELECT current_schema()", &[])?.get(0);
            if lost {
                tracing::info!(target = %target, "listening for changes again");
                changed();
            }
            let mut notifications = client.notifications();
            let mut it = notifications.blocking_iter();
            while let Some(n) = it.next()? {
                if n.channel() == CHANGES && n.payload() == schema {
                    changed();
                }
            }
            Ok(())
        })();
        if let Err(e) = attempt {
            if !lost {
                tracing::warn!(target = %target, error = %describe(&e), "lost the change notifications; polling until they are back");
            }
        }
        lost = true;
        std::thread::sleep(LISTEN_RETRY);
    }
}

fn plan(c: &mut impl postgres::GenericClient, docs: &[CvrfDocument]) -> Result<ImportSummary> {
    let stored: HashMap<String, PrimitiveDateTime> = c
        .query("SELECT id, current_release FROM documents", &[])?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(rows::plan(&stored, docs))
}

fn write_document(tx: &mut Transaction, doc: &CvrfDocument) -> Result<()> {
    tx.execute("DELETE FROM documents WHERE id = $1", &[&doc.id])?;
    tx.execute(
        "INSERT INTO documents (id, title, initial_release, current_release)
         VALUES ($1, $2, $3, $4)",
        &[
            &doc.id,
            &doc.title,
            &rows::to_second(doc.initial_release),
            &rows::to_second(doc.current_release),
        ],
    )?;
    let groups = rows::fix_groups(doc);
    let position: Vec<i32> = (0..groups.len() as i32).collect();
    let kb: Vec<i64> = groups.iter().map(|g| i64::from(g.kb.number())).collect();
    let product_id: Vec<&str> = groups.iter().map(|g| g.product_id).collect();
    let product_name: Vec<&str> = groups.iter().map(|g| g.product_name).collect();
    let sub_type: Vec<Option<&str>> = groups.iter().map(|g| g.sub_type).collect();
    let fixed_build: Vec<Option<&str>> = groups.iter().map(|g| g.fixed_build).collect();
    let supersedence: Vec<Option<&str>> = groups.iter().map(|g| g.supersedence).collect();
    let cves: Vec<String> = groups.iter().map(|g| g.cves_joined()).collect();
    tx.execute(
        "INSERT INTO document_fixes
         (document_id, position, kb, product_id, product_name, sub_type, fixed_build,
          supersedence, cves)
         SELECT $1, * FROM UNNEST($2::int4[], $3::int8[], $4::text[], $5::text[], $6::text[],
                                  $7::text[], $8::text[], $9::text[])",
        &[
            &doc.id,
            &position,
            &kb,
            &product_id,
            &product_name,
            &sub_type,
            &fixed_build,
            &supersedence,
            &cves,
        ],
    )?;
    Ok(())
}

/// Inserts the results of machines (tenant, machine, evaluation) with one statement per
/// table.
/// Writes the machines' results into `tables`.
fn write_results(
    tx: &mut Transaction,
    tables: ResultTables,
    machines: &[(&str, &str, &Evaluation)],
) -> Result<()> {
    let (mut t, mut m, mut s, mut ind) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut mt, mut mm, mut ms, mut mk) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &(tenant, machine, e) in machines {
        for sw in &e.software {
            t.push(tenant);
            m.push(machine);
            s.push(sw.as_str());
            ind.push(e.indeterminate.contains(sw));
        }
        for (sw, kbs) in &e.missing {
            for kb in kbs {
                mt.push(tenant);
                mm.push(machine);
                ms.push(sw.as_str());
                mk.push(i64::from(kb.number()));
            }
        }
    }
    if !t.is_empty() {
        tx.execute(
            &format!(
                "INSERT INTO {} (tenant_id, machine_id, software, indeterminate)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[])",
                tables.software
            ),
            &[&t, &m, &s, &ind],
        )?;
    }
    if !mt.is_empty() {
        tx.execute(
            &format!(
                "INSERT INTO {} (tenant_id, machine_id, software, kb)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[])",
                tables.missing
            ),
            &[&mt, &mm, &ms, &mk],
        )?;
    }
    let ended: Vec<_> = machines
        .iter()
        .filter_map(|&(t, m, e)| Some((t, m, e.end_of_servicing.as_ref()?)))
        .collect();
    if !ended.is_empty() {
        let t: Vec<&str> = ended.iter().map(|r| r.0).collect();
        let m: Vec<&str> = ended.iter().map(|r| r.1).collect();
        let version: Vec<&str> = ended.iter().map(|r| r.2.version).collect();
        let edition: Vec<Option<&str>> =
            ended.iter().map(|r| r.2.edition.map(|e| e.id())).collect();
        let since: Vec<Date> = ended.iter().map(|r| r.2.since).collect();
        let esu: Vec<Option<Date>> = ended.iter().map(|r| r.2.esu_until).collect();
        let last: Vec<Option<i64>> = ended
            .iter()
            .map(|r| r.2.last_update.map(|k| i64::from(k.number())))
            .collect();
        tx.execute(
            &format!(
                "INSERT INTO {} (tenant_id, machine_id, version, edition, since, esu_until,
                                 last_kb)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                                      $5::date[], $6::date[], $7::int8[])",
                tables.servicing
            ),
            &[&t, &m, &version, &edition, &since, &esu, &last],
        )?;
    }
    Ok(())
}

/// Deletes the machines' (tenant, machine) results from `tables`.
fn delete_results(
    tx: &mut Transaction,
    tables: ResultTables,
    t: &[&str],
    m: &[&str],
) -> Result<()> {
    for table in tables.all() {
        tx.execute(
            &format!(
                "DELETE FROM {table} x USING UNNEST($1::text[], $2::text[]) AS u (t, m)
                 WHERE x.tenant_id = u.t AND x.machine_id = u.m"
            ),
            &[&t, &m],
        )?;
    }
    Ok(())
}

/// Creates the staged result tables empty, like the live ones (columns, collations,
/// constraints, indexes), after dropping what an import that did not finish left.
fn create_staged(tx: &mut Transaction) -> Result<()> {
    tx.batch_execute("SET LOCAL client_min_messages TO warning")?;
    for (live, staged) in LIVE.all().into_iter().zip(STAGED.all()) {
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {staged}; CREATE TABLE {staged} (LIKE {live} INCLUDING ALL);"
        ))?;
    }
    Ok(())
}

/// Replaces the live result tables with the staged ones. The staged tables' indexes were
/// named after the staged tables; they take the live names back, so that the next import's
/// staged indexes are free to use the staged names again.
fn swap_in_staged(tx: &mut Transaction) -> Result<()> {
    for (live, staged) in LIVE.all().into_iter().zip(STAGED.all()) {
        tx.batch_execute(&format!(
            "DROP TABLE {live}; ALTER TABLE {staged} RENAME TO {live};"
        ))?;
        let indexes: Vec<String> = tx
            .query(
                "SELECT indexname::text FROM pg_indexes
                 WHERE schemaname = current_schema() AND tablename = $1",
                &[&live],
            )?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        for index in indexes {
            if let Some(base) = index.strip_prefix(rows::STAGED_PREFIX) {
                tx.batch_execute(&format!("ALTER INDEX \"{index}\" RENAME TO \"{base}\""))?;
            }
        }
    }
    Ok(())
}

fn apply_deltas(tx: &mut Transaction, tenant: &str, deltas: &CountDeltas) -> Result<()> {
    let (s, d): (Vec<&str>, Vec<i64>) = deltas.software_changes().unzip();
    if !s.is_empty() {
        tx.execute(
            "INSERT INTO software_counts (tenant_id, software, machines)
             SELECT $1, * FROM UNNEST($2::text[], $3::int8[])
             ON CONFLICT (tenant_id, software)
             DO UPDATE SET machines = software_counts.machines + excluded.machines",
            &[&tenant, &s, &d],
        )?;
    }
    let (mut s, mut k, mut d) = (Vec::new(), Vec::new(), Vec::new());
    for (sw, kb, delta) in deltas.missing_changes() {
        s.push(sw);
        k.push(i64::from(kb));
        d.push(delta);
    }
    if !s.is_empty() {
        tx.execute(
            "INSERT INTO missing_counts (tenant_id, software, kb, machines)
             SELECT $1, * FROM UNNEST($2::text[], $3::int8[], $4::int8[])
             ON CONFLICT (tenant_id, software, kb)
             DO UPDATE SET machines = missing_counts.machines + excluded.machines",
            &[&tenant, &s, &k, &d],
        )?;
    }
    Ok(())
}

fn prune_counts(tx: &mut Transaction, tenant: Option<&str>) -> Result<()> {
    match tenant {
        Some(t) => {
            tx.execute(
                "DELETE FROM software_counts WHERE tenant_id = $1 AND machines <= 0",
                &[&t],
            )?;
            tx.execute(
                "DELETE FROM missing_counts WHERE tenant_id = $1 AND machines <= 0",
                &[&t],
            )?;
        }
        None => {
            tx.execute("DELETE FROM software_counts WHERE machines <= 0", &[])?;
            tx.execute("DELETE FROM missing_counts WHERE machines <= 0", &[])?;
        }
    }
    Ok(())
}

fn kb_of(n: i64) -> Result<KbId> {
    let n = u32::try_from(n).map_err(|_| corrupt(format!("KB number {n} out of range")))?;
    KbId::from_number(n).map_err(corrupt)
}

impl Store for PostgresStore {
    fn catalog_state(&self) -> Result<CatalogState> {
        self.with_client(catalog_state)
    }

    fn load_documents(&self) -> Result<Vec<CvrfDocument>> {
        self.snapshot(|tx| {
            let mut docs: BTreeMap<String, CvrfDocument> = BTreeMap::new();
            for r in tx.query(
                "SELECT id, title, initial_release, current_release FROM documents",
                &[],
            )? {
                let id: String = r.get(0);
                docs.insert(
                    id.clone(),
                    CvrfDocument {
                        id,
                        title: r.get(1),
                        initial_release: r.get(2),
                        current_release: r.get(3),
                        fixes: Vec::new(),
                    },
                );
            }
            for r in tx.query(
                "SELECT document_id, kb, product_id, product_name, sub_type, fixed_build,
                        supersedence, cves
                 FROM document_fixes ORDER BY document_id, position",
                &[],
            )? {
                let doc_id: String = r.get(0);
                let doc = docs
                    .get_mut(&doc_id)
                    .ok_or_else(|| corrupt(format!("fix of unknown document {doc_id}")))?;
                StoredFix {
                    kb: kb_of(r.get(1))?,
                    product_id: r.get(2),
                    product_name: r.get(3),
                    sub_type: r.get(4),
                    fixed_build: r.get(5),
                    supersedence: r.get(6),
                    cves: r.get(7),
                }
                .expand_into(doc);
            }
            Ok(docs.into_values().collect())
        })
    }

    fn plan_import(&self, docs: &[CvrfDocument]) -> Result<ImportSummary> {
        self.with_client(|c| plan(c, docs))
    }

    fn lock_catalog_imports(&self) -> Result<ImportLock<'_>> {
        let mut client = self.client()?;
        client.execute(
            "SELECT pg_advisory_lock($1, hashtext(current_schema()))",
            &[&LOCK_IMPORT],
        )?;
        Ok(ImportLock::new(move || {
            let unlocked = client.execute(
                "SELECT pg_advisory_unlock($1, hashtext(current_schema()))",
                &[&LOCK_IMPORT],
            );
            if unlocked.is_ok() {
                self.give_back(client);
            } else {
                // Closing the session releases its locks; a synchronous client is closed off
                // any async thread (see `Drop for PostgresStore`).
                let _ = std::thread::spawn(move || drop(client)).join();
            }
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
        // Every machine's results are written into staged tables first, outside the final
        // transaction: inventory writes go on meanwhile. Only what changed since the machines
        // were read is left for the final transaction.
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            create_staged(&mut tx)?;
            tx.commit()?;
            for chunk in results.chunks(IMPORT_CHUNK) {
                let rows: Vec<(&str, &str, &Evaluation)> = chunk
                    .iter()
                    .map(|r| {
                        (
                            r.tenant.as_str(),
                            r.record.id.as_str(),
                            r.record.evaluation.as_ref(),
                        )
                    })
                    .collect();
                let mut tx = c.transaction()?;
                write_results(&mut tx, STAGED, &rows)?;
                tx.commit()?;
            }
            Ok(())
        })?;
        self.staged.call();
        // The exclusive catalog lock waits for the inventory writes under way (they hold it
        // shared) and keeps new ones out until the import commits.
        let outcome = self.write(Lock::Everything, |tx| {
            let state = catalog_state(tx)?;
            check_generation(state.generation, generation)?;
            let summary = plan(tx, docs)?;
            for doc in docs {
                if summary.stored.contains(&doc.id) {
                    write_document(tx, doc)?;
                }
            }
            tx.execute("DELETE FROM catalog_kbs", &[])?;
            if !kbs.is_empty() {
                let kb: Vec<i64> = kbs.iter().map(|k| i64::from(k.kb.number())).collect();
                let name: Vec<&str> = kbs.iter().map(|k| k.name.as_str()).collect();
                let doc: Vec<&str> = kbs.iter().map(|k| k.document_id.as_str()).collect();
                let date: Vec<Date> = kbs.iter().map(|k| k.release_date).collect();
                let url: Vec<String> = kbs.iter().map(|k| k.url()).collect();
                tx.execute(
                    "INSERT INTO catalog_kbs (kb, name, document_id, release_date, url)
                     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::date[],
                                          $5::text[])",
                    &[&kb, &name, &doc, &date, &url],
                )?;
            }
            tx.execute(
                "UPDATE catalog_state SET generation = generation + 1, as_of = $1",
                &[&as_of],
            )?;
            announce(tx)?;
            let stored = tx
                .query(
                    "SELECT tenant_id, machine_id, write_seq, counted, pending_restart
                     FROM machines",
                    &[],
                )?
                .into_iter()
                .map(|r| StoredState {
                    tenant: r.get(0),
                    machine: r.get(1),
                    write: r.get(2),
                    counted: r.get(3),
                    pending_restart: r.get(4),
                })
                .collect();
            let settled = rows::settle(stored, results, active_since);
            // Staged results of machines deleted or rewritten since they were read go.
            if !settled.stale.is_empty() {
                let (t, m): (Vec<&str>, Vec<&str>) = settled
                    .stale
                    .iter()
                    .map(|r| (r.tenant.as_str(), r.record.id.as_str()))
                    .unzip();
                delete_results(tx, STAGED, &t, &m)?;
            }
            // Machines stored or rewritten since they were read are re-evaluated now.
            let late = if settled.late.is_empty() {
                Vec::new()
            } else {
                let (t, m): (Vec<&str>, Vec<&str>) = settled
                    .late
                    .iter()
                    .map(|(t, m)| (t.as_str(), m.as_str()))
                    .unzip();
                let snapshots = tx
                    .query(
                        "SELECT machines.tenant_id, machines.machine_id, machines.snapshot
                         FROM machines JOIN UNNEST($1::text[], $2::text[]) AS u (t, m)
                           ON machines.tenant_id = u.t AND machines.machine_id = u.m",
                        &[&t, &m],
                    )?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect();
                rows::reevaluate_late(snapshots, reevaluate)?
            };
            let late_rows: Vec<(&str, &str, &Evaluation)> = late
                .iter()
                .map(|(t, m)| (t.as_str(), m.id.as_str(), m.evaluation.as_ref()))
                .collect();
            for chunk in late_rows.chunks(IMPORT_CHUNK) {
                write_results(tx, STAGED, chunk)?;
            }
            let flags: Vec<(&str, &str, bool, bool)> = settled
                .flags
                .iter()
                .copied()
                .chain(late.iter().map(|(t, m)| {
                    let counted = m.last_seen >= active_since;
                    (
                        t.as_str(),
                        m.id.as_str(),
                        counted,
                        m.evaluation.pending_restart,
                    )
                }))
                .collect();
            for chunk in flags.chunks(IMPORT_CHUNK) {
                let t: Vec<&str> = chunk.iter().map(|f| f.0).collect();
                let m: Vec<&str> = chunk.iter().map(|f| f.1).collect();
                let c: Vec<bool> = chunk.iter().map(|f| f.2).collect();
                let p: Vec<bool> = chunk.iter().map(|f| f.3).collect();
                tx.execute(
                    "UPDATE machines SET counted = u.c, pending_restart = u.p
                     FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::bool[]) AS u (t, m, c, p)
                     WHERE machines.tenant_id = u.t AND machines.machine_id = u.m",
                    &[&t, &m, &c, &p],
                )?;
            }
            // The staged results become the live ones, and the counts are rebuilt from them.
            swap_in_staged(tx)?;
            let all = settled
                .current
                .iter()
                .map(|r| (r.tenant.as_str(), &r.record))
                .chain(late.iter().map(|(t, m)| (t.as_str(), m)));
            let counts = rows::recount(all, active_since);
            tx.execute("DELETE FROM software_counts", &[])?;
            tx.execute("DELETE FROM missing_counts", &[])?;
            for (tenant, deltas) in &counts {
                apply_deltas(tx, tenant, deltas)?;
            }
            Ok(ImportOutcome {
                summary,
                machines: settled.current.len() + late.len(),
                reevaluated_late: late.len(),
            })
        });
        if outcome.is_err() {
            // What a failed import staged goes; the next import would drop it too.
            let dropped = self.with_client(|c| {
                for staged in STAGED.all() {
                    c.batch_execute(&format!("DROP TABLE IF EXISTS {staged}"))?;
                }
                Ok(())
            });
            if let Err(e) = dropped {
                tracing::warn!(error = %e, "could not drop the staged results of a failed catalog import");
            }
        }
        outcome
    }

    fn all_machines(&self) -> Result<Vec<(TenantId, MachineId, String)>> {
        self.with_client(|c| {
            let mut out = Vec::new();
            for r in c.query(
                "SELECT tenant_id, machine_id, snapshot FROM machines
                 ORDER BY tenant_id, machine_id",
                &[],
            )? {
                out.push((
                    TenantId::parse(r.get(0)).map_err(corrupt)?,
                    MachineId::parse(r.get(1)).map_err(corrupt)?,
                    r.get(2),
                ));
            }
            Ok(out)
        })
    }

    fn machines_for_reevaluation(&self) -> Result<Vec<StoredMachine>> {
        self.with_client(|c| {
            let mut out = Vec::new();
            for r in c.query(
                "SELECT tenant_id, machine_id, snapshot, write_seq FROM machines
                 ORDER BY tenant_id, machine_id",
                &[],
            )? {
                out.push(StoredMachine {
                    tenant: TenantId::parse(r.get(0)).map_err(corrupt)?,
                    id: MachineId::parse(r.get(1)).map_err(corrupt)?,
                    snapshot: r.get(2),
                    write: r.get(3),
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
        self.write(Lock::Tenant(tenant), |tx| {
            let t = tenant.as_str();
            let state = catalog_state(tx)?;
            if state.generation != generation {
                return Err(StoreError::StaleCatalog {
                    expected: generation,
                    found: state.generation,
                });
            }
            // A machine given twice ends as its last record, as when written one by one.
            let mut latest: HashMap<&str, &MachineRecord> = HashMap::new();
            for m in machines {
                latest.insert(m.id.as_str(), m);
            }
            let batch: Vec<&MachineRecord> = machines
                .iter()
                .filter(|m| std::ptr::eq(latest[m.id.as_str()], *m))
                .collect();
            let ids: Vec<&str> = batch.iter().map(|m| m.id.as_str()).collect();

            // The stored machines of the batch: their results go, and the counted ones leave
            // the counts.
            let mut stored = Vec::new();
            let mut counted = Vec::new();
            for r in tx.query(
                "SELECT machine_id, counted FROM machines
                 WHERE tenant_id = $1 AND machine_id = ANY($2)",
                &[&t, &ids],
            )? {
                let id: String = r.get(0);
                if r.get::<_, bool>(1) {
                    counted.push(id.clone());
                }
                stored.push(id);
            }
            let mut deltas = CountDeltas::default();
            if !counted.is_empty() {
                for r in tx.query(
                    "SELECT software FROM machine_software
                     WHERE tenant_id = $1 AND machine_id = ANY($2)",
                    &[&t, &counted],
                )? {
                    deltas.uncount_software(r.get(0));
                }
                for r in tx.query(
                    "SELECT software, kb FROM machine_missing
                     WHERE tenant_id = $1 AND machine_id = ANY($2)",
                    &[&t, &counted],
                )? {
                    let kb = kb_of(r.get(1))?;
                    deltas.uncount_missing(r.get(0), kb.number());
                }
            }
            if !stored.is_empty() {
                tx.execute(
                    "DELETE FROM machine_software WHERE tenant_id = $1 AND machine_id = ANY($2)",
                    &[&t, &stored],
                )?;
                tx.execute(
                    "DELETE FROM machine_missing WHERE tenant_id = $1 AND machine_id = ANY($2)",
                    &[&t, &stored],
                )?;
                tx.execute(
                    "DELETE FROM machine_servicing WHERE tenant_id = $1 AND machine_id = ANY($2)",
                    &[&t, &stored],
                )?;
            }

            if !batch.is_empty() {
                let write: i64 = tx
                    .query_one("SELECT nextval('machine_writes')", &[])?
                    .get(0);
                let last_seen: Vec<i64> = batch.iter().map(|m| m.last_seen).collect();
                let snapshot: Vec<&str> = batch.iter().map(|m| m.snapshot.as_str()).collect();
                let is_counted: Vec<bool> =
                    batch.iter().map(|m| m.last_seen >= active_since).collect();
                let pending: Vec<bool> =
                    batch.iter().map(|m| m.evaluation.pending_restart).collect();
                tx.execute(
                    "INSERT INTO machines
                     (tenant_id, machine_id, last_seen, snapshot, counted, pending_restart,
                      write_seq)
                     SELECT $1, *, $7::int8 FROM UNNEST($2::text[], $3::int8[], $4::text[],
                                                  $5::bool[], $6::bool[])
                     ON CONFLICT (tenant_id, machine_id) DO UPDATE SET
                       last_seen = excluded.last_seen, snapshot = excluded.snapshot,
                       counted = excluded.counted, pending_restart = excluded.pending_restart,
                       write_seq = excluded.write_seq",
                    &[
                        &t,
                        &ids,
                        &last_seen,
                        &snapshot,
                        &is_counted,
                        &pending,
                        &write,
                    ],
                )?;
                let rows: Vec<(&str, &str, &Evaluation)> = batch
                    .iter()
                    .map(|m| (t, m.id.as_str(), m.evaluation.as_ref()))
                    .collect();
                write_results(tx, LIVE, &rows)?;
                for m in batch.iter().filter(|m| m.last_seen >= active_since) {
                    deltas.count(m);
                }
            }
            apply_deltas(tx, t, &deltas)?;
            prune_counts(tx, Some(t))?;
            bump_inventory(tx)
        })
    }

    fn delete_machine(&self, tenant: &TenantId, id: &MachineId) -> Result<bool> {
        self.write(Lock::Tenant(tenant), |tx| {
            let (t, m) = (tenant.as_str(), id.as_str());
            let Some(row) = tx.query_opt(
                "SELECT counted FROM machines WHERE tenant_id = $1 AND machine_id = $2",
                &[&t, &m],
            )?
            else {
                return Ok(false);
            };
            if row.get::<_, bool>(0) {
                tx.execute(
                    "UPDATE software_counts SET machines = machines - 1
                     WHERE tenant_id = $1 AND software IN
                       (SELECT software FROM machine_software
                        WHERE tenant_id = $1 AND machine_id = $2)",
                    &[&t, &m],
                )?;
                tx.execute(
                    "UPDATE missing_counts SET machines = machines - 1
                     WHERE tenant_id = $1 AND (software, kb) IN
                       (SELECT software, kb FROM machine_missing
                        WHERE tenant_id = $1 AND machine_id = $2)",
                    &[&t, &m],
                )?;
            }
            for sql in [
                "DELETE FROM machine_software WHERE tenant_id = $1 AND machine_id = $2",
                "DELETE FROM machine_missing WHERE tenant_id = $1 AND machine_id = $2",
                "DELETE FROM machine_servicing WHERE tenant_id = $1 AND machine_id = $2",
                "DELETE FROM machines WHERE tenant_id = $1 AND machine_id = $2",
            ] {
                tx.execute(sql, &[&t, &m])?;
            }
            bump_inventory(tx)?;
            prune_counts(tx, Some(t))?;
            Ok(true)
        })
    }

    fn sweep(&self, active_since: i64) -> Result<usize> {
        self.write(Lock::Everything, |tx| {
            // One statement: the CTEs see the results as they were, and all of them run.
            let expired: i64 = tx
                .query_one(
                    "WITH expired AS (
                         UPDATE machines SET counted = FALSE
                         WHERE counted AND last_seen < $1
                         RETURNING tenant_id, machine_id
                     ), software AS (
                         UPDATE software_counts c SET machines = c.machines - x.n
                         FROM (SELECT s.tenant_id, s.software, COUNT(*) AS n
                               FROM machine_software s
                               JOIN expired e USING (tenant_id, machine_id)
                               GROUP BY s.tenant_id, s.software) x
                         WHERE c.tenant_id = x.tenant_id AND c.software = x.software
                     ), missing AS (
                         UPDATE missing_counts c SET machines = c.machines - x.n
                         FROM (SELECT s.tenant_id, s.software, s.kb, COUNT(*) AS n
                               FROM machine_missing s
                               JOIN expired e USING (tenant_id, machine_id)
                               GROUP BY s.tenant_id, s.software, s.kb) x
                         WHERE c.tenant_id = x.tenant_id AND c.software = x.software
                           AND c.kb = x.kb
                     )
                     SELECT COUNT(*) FROM expired",
                    &[&active_since],
                )?
                .get(0);
            if expired > 0 {
                bump_inventory(tx)?;
                prune_counts(tx, None)?;
            }
            Ok(expired as usize)
        })
    }

    fn software_known(&self, tenant: &TenantId, software: &SoftwareId) -> Result<bool> {
        self.with_client(|c| {
            Ok(c.query_opt(
                "SELECT machines FROM software_counts WHERE tenant_id = $1 AND software = $2",
                &[&tenant.as_str(), &software.as_str()],
            )?
            .is_some_and(|r| r.get::<_, i64>(0) > 0))
        })
    }

    fn tenant_software(&self, tenant: &TenantId) -> Result<Vec<SoftwareId>> {
        let rows = self.with_client(|c| {
            Ok(c.query(
                "SELECT software FROM software_counts
                 WHERE tenant_id = $1 AND machines > 0 ORDER BY software",
                &[&tenant.as_str()],
            )?)
        })?;
        rows.iter()
            .map(|r| SoftwareId::parse(r.get(0)).map_err(corrupt))
            .collect()
    }

    fn exposed_machines(&self, tenant: &TenantId, software: &SoftwareId) -> Result<u64> {
        self.with_client(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(DISTINCT mm.machine_id) FROM machine_missing mm
                     JOIN machines m
                       ON m.tenant_id = mm.tenant_id AND m.machine_id = mm.machine_id
                     WHERE mm.tenant_id = $1 AND mm.software = $2 AND m.counted",
                    &[&tenant.as_str(), &software.as_str()],
                )?
                .get(0);
            Ok(n as u64)
        })
    }

    fn missing_counts(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<MissingCount>> {
        self.with_client(|c| {
            let mut out = Vec::new();
            for r in c.query(
                "SELECT kb, machines FROM missing_counts
                 WHERE tenant_id = $1 AND software = $2 AND machines > 0
                 ORDER BY kb",
                &[&tenant.as_str(), &software.as_str()],
            )? {
                let machines: i64 = r.get(1);
                out.push(MissingCount {
                    kb: kb_of(r.get(0))?,
                    machines: u32::try_from(machines)
                        .map_err(|_| corrupt(format!("count {machines} out of range")))?,
                });
            }
            Ok(out)
        })
    }

    fn indeterminate_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<MachineId>> {
        self.with_client(|c| {
            let mut out = Vec::new();
            for r in c.query(
                "SELECT s.machine_id FROM machine_software s
                 JOIN machines m ON m.tenant_id = s.tenant_id AND m.machine_id = s.machine_id
                 WHERE s.tenant_id = $1 AND s.software = $2 AND s.indeterminate AND m.counted
                 ORDER BY s.machine_id",
                &[&tenant.as_str(), &software.as_str()],
            )? {
                out.push(MachineId::parse(r.get(0)).map_err(corrupt)?);
            }
            Ok(out)
        })
    }

    fn end_of_servicing_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<ServicingEnded>> {
        self.with_client(|c| {
            let mut out = Vec::new();
            for r in c.query(
                "SELECT e.machine_id, e.version, e.edition, e.since, e.esu_until, e.last_kb
                 FROM machine_servicing e
                 JOIN machine_software s ON s.tenant_id = e.tenant_id
                   AND s.machine_id = e.machine_id AND s.software = $2
                 JOIN machines m ON m.tenant_id = e.tenant_id AND m.machine_id = e.machine_id
                 WHERE e.tenant_id = $1 AND m.counted
                 ORDER BY e.machine_id",
                &[&tenant.as_str(), &software.as_str()],
            )? {
                let edition: Option<&str> = r.get(2);
                let last_kb: Option<i64> = r.get(5);
                out.push(ServicingEnded {
                    machine: MachineId::parse(r.get(0)).map_err(corrupt)?,
                    version: r.get(1),
                    edition: edition
                        .map(|e| Edition::from_id(e).ok_or_else(|| corrupt(e)))
                        .transpose()?,
                    since: r.get(3),
                    esu_until: r.get(4),
                    last_update: last_kb
                        .map(|k| {
                            u32::try_from(k)
                                .map_err(corrupt)
                                .and_then(|k| KbId::from_number(k).map_err(corrupt))
                        })
                        .transpose()?,
                });
            }
            Ok(out)
        })
    }

    fn machine_snapshot(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<String>> {
        self.with_client(|c| {
            Ok(c.query_opt(
                "SELECT snapshot FROM machines WHERE tenant_id = $1 AND machine_id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn machines_after(
        &self,
        tenant: &TenantId,
        after: Option<&MachineId>,
        limit: usize,
    ) -> Result<Vec<ListedMachine>> {
        let after = after.map_or("", |a| a.as_str());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.with_client(|c| {
            Ok(c.query(
                "SELECT machine_id, last_seen, snapshot FROM machines
                 WHERE tenant_id = $1 AND machine_id > $2
                 ORDER BY machine_id LIMIT $3",
                &[&tenant.as_str(), &after, &limit],
            )?)
        })?;
        rows.iter()
            .map(|r| {
                Ok(ListedMachine {
                    id: MachineId::parse(r.get(0)).map_err(corrupt)?,
                    last_seen: r.get(1),
                    snapshot: r.get(2),
                })
            })
            .collect()
    }

    fn machines_named(&self, tenant: &TenantId, id: &MachineId) -> Result<Vec<MachineId>> {
        // Compared with Unicode case folding here, as the SQLite store does, over the
        // tenant's ids only (the primary key starts with the tenant).
        let wanted = id.as_str().to_lowercase();
        let rows = self.with_client(|c| {
            Ok(c.query(
                "SELECT machine_id FROM machines WHERE tenant_id = $1",
                &[&tenant.as_str()],
            )?)
        })?;
        let mut out = Vec::new();
        for row in rows {
            let name: String = row.get(0);
            if name.to_lowercase() == wanted {
                out.push(MachineId::parse(&name).map_err(corrupt)?);
            }
        }
        out.sort();
        Ok(out)
    }

    fn subscribe(&self, changed: Arc<dyn Fn() + Send + Sync>) -> Result<bool> {
        let (config, target) = (self.config.clone(), self.target.clone());
        std::thread::Builder::new()
            .name("kbgap-listen".into())
            .spawn(move || listen(config, target, changed))
            .map_err(|e| corrupt(format!("cannot start the change listener: {e}")))?;
        Ok(true)
    }

    fn ping(&self) -> Result<()> {
        self.with_client(|c| {
            c.query_one("SELECT 1", &[])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> String {
        match PostgresStore::open(url) {
            Err(e @ (StoreError::InvalidUrl(_) | StoreError::Unreachable { .. })) => e.to_string(),
            other => panic!("{url}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn unusable_urls_are_refused_without_their_password() {
        for (url, says) in [
            (
                "mysql://kbgap:s3cret@127.0.0.1/kbgap",
                "invalid database URL: expected a URL starting with postgres:// or postgresql://",
            ),
            (
                "postgres://kbgap:s3cret@/kbgap",
                "invalid database URL: the URL names no host, e.g. postgres://user@127.0.0.1:5432/kbgap",
            ),
            (
                "postgres://kbgap:s3cret@127.0.0.1:port/kbgap",
                "invalid database URL: invalid connection string: invalid value for option `port`",
            ),
            (
                "postgresql://kbgap:s3cret@127.0.0.1:1/kbgap?connect_timeout=2",
                "cannot connect to PostgreSQL at 127.0.0.1:1: error connecting to server: Connection refused",
            ),
            (
                "POSTGRES://kbgap:s3cret@127.0.0.1/kbgap?connect_timeout=2",
                "invalid database URL: expected a URL starting with postgres:// or postgresql://",
            ),
            (
                "postgres://kbgap:s3cret@127.0.0.1:1,[::1]/kbgap?connect_timeout=2",
                "cannot connect to PostgreSQL at 127.0.0.1:1,[::1]:5432: ",
            ),
            (
                "postgres://kbgap:s3cret@127.0.0.1/kbgap?s3cret=1",
                "invalid database URL: invalid connection string: unknown option `***`",
            ),
        ] {
            let e = refused(url);
            assert!(e.starts_with(says), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{url}: {e}");
        }
    }
}
