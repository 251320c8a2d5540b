//! A store opened in the background: a server started while its database is down comes up,
//! answers that the storage is unreachable (and why) until the database answers, and then
//! serves from it without a restart.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kbgap_domain::catalog::KbInfo;
use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::{MachineId, SoftwareId, TenantId};
use time::Date;

use crate::{
    CatalogState, ImportLock, ImportOutcome, ImportSummary, ListedMachine, MachineRecord,
    MissingCount, Reevaluate, Reevaluated, Result, ServicingEnded, Store, StoreError,
    StoredMachine,
};

/// A store that is opened by a background thread, retrying while the database cannot be
/// reached. Until it is open every call fails with [`StoreError::Unreachable`] and the
/// reason of the last attempt.
pub struct DeferredStore {
    target: String,
    inner: OnceLock<Arc<dyn Store>>,
    /// Why the last attempt failed.
    waiting: Mutex<String>,
    /// Subscribers to hand to the store once it is open.
    subscribers: Mutex<Vec<Arc<dyn Fn() + Send + Sync>>>,
}

impl DeferredStore {
    /// Starts opening with `open` every `retry` until it succeeds. `first_error` is why the
    /// caller's own first attempt failed ([`StoreError::reason`]); `target` names the server (never
    /// credentials).
    pub fn open_in_background(
        target: String,
        first_error: String,
        retry: Duration,
        open: impl Fn() -> Result<Arc<dyn Store>> + Send + 'static,
    ) -> Arc<DeferredStore> {
        let store = Arc::new(DeferredStore {
            target,
            inner: OnceLock::new(),
            waiting: Mutex::new(first_error),
            subscribers: Mutex::new(Vec::new()),
        });
        let s = store.clone();
        std::thread::Builder::new()
            .name("kbgap-store-open".into())
            .spawn(move || loop {
                std::thread::sleep(retry);
                match open() {
                    Ok(opened) => {
                        // Subscribers wait under the lock, so none is missed or given twice.
                        let waiting = match s.subscribers.lock() {
                            Ok(mut w) => {
                                let _ = s.inner.set(opened.clone());
                                std::mem::take(&mut *w)
                            }
                            Err(_) => Vec::new(),
                        };
                        for changed in waiting {
                            if let Err(e) = opened.subscribe(changed.clone()) {
                                tracing::warn!(error = %e, "cannot listen for changes; polling");
                            }
                            // What changed while the store was being opened.
                            changed();
                        }
                        tracing::info!(target = %s.target, "the database answers; storage is ready");
                        return;
                    }
                    Err(e) => {
                        let message = e.reason();
                        if let Ok(mut w) = s.waiting.lock() {
                            if *w != message {
                                tracing::warn!(error = %message, "still waiting for the database");
                            }
                            *w = message;
                        }
                    }
                }
            })
            .expect("a thread to open the store");
        store
    }

    /// Whether the database has been opened.
    pub fn is_open(&self) -> bool {
        self.inner.get().is_some()
    }

    fn get(&self) -> Result<&Arc<dyn Store>> {
        self.inner.get().ok_or_else(|| StoreError::Unreachable {
            target: self.target.clone(),
            message: self.waiting.lock().map(|w| w.clone()).unwrap_or_default(),
        })
    }
}

impl Store for DeferredStore {
    fn catalog_state(&self) -> Result<CatalogState> {
        self.get()?.catalog_state()
    }

    fn load_documents(&self) -> Result<Vec<CvrfDocument>> {
        self.get()?.load_documents()
    }

    fn plan_import(&self, docs: &[CvrfDocument]) -> Result<ImportSummary> {
        self.get()?.plan_import(docs)
    }

    fn lock_catalog_imports(&self) -> Result<ImportLock<'_>> {
        self.get()?.lock_catalog_imports()
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
        self.get()?.import_catalog(
            docs,
            kbs,
            as_of,
            generation,
            results,
            active_since,
            reevaluate,
        )
    }

    fn all_machines(&self) -> Result<Vec<(TenantId, MachineId, String)>> {
        self.get()?.all_machines()
    }

    fn machines_for_reevaluation(&self) -> Result<Vec<StoredMachine>> {
        self.get()?.machines_for_reevaluation()
    }

    fn put_machines(
        &self,
        tenant: &TenantId,
        machines: &[MachineRecord],
        generation: i64,
        active_since: i64,
    ) -> Result<()> {
        self.get()?
            .put_machines(tenant, machines, generation, active_since)
    }

    fn delete_machine(&self, tenant: &TenantId, id: &MachineId) -> Result<bool> {
        self.get()?.delete_machine(tenant, id)
    }

    fn sweep(&self, active_since: i64) -> Result<usize> {
        self.get()?.sweep(active_since)
    }

    fn software_known(&self, tenant: &TenantId, software: &SoftwareId) -> Result<bool> {
        self.get()?.software_known(tenant, software)
    }

    fn missing_counts(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<MissingCount>> {
        self.get()?.missing_counts(tenant, software)
    }

    fn indeterminate_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<MachineId>> {
        self.get()?.indeterminate_machines(tenant, software)
    }

    fn end_of_servicing_machines(
        &self,
        tenant: &TenantId,
        software: &SoftwareId,
    ) -> Result<Vec<ServicingEnded>> {
        self.get()?.end_of_servicing_machines(tenant, software)
    }

    fn tenant_software(&self, tenant: &TenantId) -> Result<Vec<SoftwareId>> {
        self.get()?.tenant_software(tenant)
    }

    fn exposed_machines(&self, tenant: &TenantId, software: &SoftwareId) -> Result<u64> {
        self.get()?.exposed_machines(tenant, software)
    }

    fn machine_snapshot(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<String>> {
        self.get()?.machine_snapshot(tenant, id)
    }

    fn machines_after(
        &self,
        tenant: &TenantId,
        after: Option<&MachineId>,
        limit: usize,
    ) -> Result<Vec<ListedMachine>> {
        self.get()?.machines_after(tenant, after, limit)
    }

    fn machines_named(&self, tenant: &TenantId, id: &MachineId) -> Result<Vec<MachineId>> {
        self.get()?.machines_named(tenant, id)
    }

    fn subscribe(&self, changed: Arc<dyn Fn() + Send + Sync>) -> Result<bool> {
        let mut waiting = self
            .subscribers
            .lock()
            .map_err(|_| StoreError::Corrupt("subscriber list poisoned".into()))?;
        match self.inner.get() {
            Some(store) => store.subscribe(changed),
            None => {
                waiting.push(changed);
                Ok(true)
            }
        }
    }

    fn ping(&self) -> Result<()> {
        self.get()?.ping()
    }
}
