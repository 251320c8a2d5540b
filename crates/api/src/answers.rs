//! The `getmissingkbs` answers already computed, per (tenant, software), so that a repeated
//! call costs a map lookup instead of a store query.
//!
//! An answer depends on the tenant's counts and on the loaded catalog. Every answer carries
//! the cache's *epoch*; the epoch moves on, and every answer is dropped, when
//! - this server changes the inventory (ingestion, deletion, the retention sweep), before the
//!   change is acknowledged, so a client that wrote and then reads sees its write;
//! - the change poll ([`crate::ApiConfig::change_poll`], 1 s by default) sees that the store
//!   changed underneath: another process or replica wrote machines or imported a catalog, or
//!   this server loaded a new catalog.
//!
//! A query that started before an invalidation stores its answer under the old epoch, so it
//! is never served afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use foldhash::quality::RandomState as Hasher;
use kbgap_domain::{SoftwareId, TenantId};

/// What the cache knows of one (tenant, software).
#[derive(Debug, Clone)]
pub enum Answer {
    /// No active machine of the tenant has the software (a 404).
    Unknown,
    Value(Arc<Body>),
}

/// A computed answer: its serialized `value` array, and the whole response body for the base
/// URL it was first asked under (`@odata.context` names the base URL; nearly every call
/// comes under the same one).
#[derive(Debug)]
pub struct Body {
    pub value: Bytes,
    pub base: String,
    pub body: Bytes,
}

#[derive(Debug)]
struct Entry {
    epoch: u64,
    answer: Answer,
}

/// What the change poll saw last: stored catalog generation, stored inventory counter and the
/// generation of the catalog loaded in memory.
type Seen = (i64, i64, i64);

/// One tenant's answers, by software.
type TenantAnswers = HashMap<SoftwareId, Arc<Entry>, Hasher>;

#[derive(Debug)]
pub struct AnswerCache {
    epoch: AtomicU64,
    seen: Mutex<Option<Seen>>,
    entries: RwLock<HashMap<TenantId, TenantAnswers, Hasher>>,
    /// Most answers kept; beyond it the cache starts afresh.
    capacity: usize,
    len: AtomicU64,
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache::new(100_000)
    }
}

impl AnswerCache {
    pub fn new(capacity: usize) -> AnswerCache {
        AnswerCache {
            epoch: AtomicU64::new(0),
            seen: Mutex::new(None),
            entries: RwLock::new(HashMap::default()),
            capacity: capacity.max(1),
            len: AtomicU64::new(0),
        }
    }

    /// The current epoch; read it before querying the store for an answer to insert.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The answer for (tenant, software) if one is current.
    pub fn get(&self, tenant: &TenantId, software: &SoftwareId) -> Option<Answer> {
        let epoch = self.epoch();
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(tenant)?.get(software)?;
        (entry.epoch == epoch).then(|| entry.answer.clone())
    }

    /// Keeps an answer computed from what the store held at `epoch`.
    pub fn insert(&self, tenant: &TenantId, software: &SoftwareId, epoch: u64, answer: Answer) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if epoch != self.epoch() {
            return;
        }
        if self.len.load(Ordering::Relaxed) >= self.capacity as u64 {
            entries.clear();
            self.len.store(0, Ordering::Relaxed);
        }
        let previous = entries
            .entry(tenant.clone())
            .or_default()
            .insert(software.clone(), Arc::new(Entry { epoch, answer }));
        if previous.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops every answer: the inventory or the catalog changed.
    pub fn invalidate(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.len.store(0, Ordering::Relaxed);
    }

    /// Reports what the change poll read; invalidates when it differs from the last reading.
    pub fn observe(&self, stored_generation: i64, stored_inventory: i64, loaded_generation: i64) {
        let now = (stored_generation, stored_inventory, loaded_generation);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.replace(now).is_some_and(|before| before != now) {
            drop(seen);
            self.invalidate();
        }
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (TenantId, SoftwareId) {
        (
            TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db47").unwrap(),
            SoftwareId::parse("microsoft-_-windows_10").unwrap(),
        )
    }

    fn value(a: &Option<Answer>) -> Option<&[u8]> {
        match a {
            Some(Answer::Value(b)) => Some(&b.value),
            _ => None,
        }
    }

    fn answer(value: &'static [u8]) -> Answer {
        Answer::Value(Arc::new(Body {
            value: Bytes::from_static(value),
            base: String::new(),
            body: Bytes::new(),
        }))
    }

    #[test]
    fn an_answer_is_served_until_invalidated() {
        let (t, s) = ids();
        let cache = AnswerCache::default();
        assert!(cache.get(&t, &s).is_none());
        cache.insert(&t, &s, cache.epoch(), answer(b"[]"));
        assert_eq!(value(&cache.get(&t, &s)), Some(&b"[]"[..]));
        cache.invalidate();
        assert!(cache.get(&t, &s).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_query_that_raced_an_invalidation_is_not_kept() {
        let (t, s) = ids();
        let cache = AnswerCache::default();
        let epoch = cache.epoch();
        cache.invalidate();
        cache.insert(&t, &s, epoch, Answer::Unknown);
        assert!(cache.get(&t, &s).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn the_poll_invalidates_only_on_change() {
        let (t, s) = ids();
        let cache = AnswerCache::default();
        cache.observe(1, 10, 1);
        cache.insert(&t, &s, cache.epoch(), Answer::Unknown);
        cache.observe(1, 10, 1);
        assert!(matches!(cache.get(&t, &s), Some(Answer::Unknown)));
        cache.observe(1, 11, 1);
        assert!(cache.get(&t, &s).is_none());
        cache.insert(&t, &s, cache.epoch(), Answer::Unknown);
        cache.observe(2, 11, 1);
        assert!(cache.get(&t, &s).is_none());
        cache.insert(&t, &s, cache.epoch(), Answer::Unknown);
        cache.observe(2, 11, 2);
        assert!(cache.get(&t, &s).is_none());
    }

    #[test]
    fn capacity_bounds_memory() {
        let (t, _) = ids();
        let cache = AnswerCache::new(3);
        for i in 0..7 {
            let s = SoftwareId::parse(&format!("microsoft-_-product_{i}")).unwrap();
            cache.insert(&t, &s, cache.epoch(), Answer::Unknown);
            assert!(cache.len() <= 3, "{}", cache.len());
        }
        assert_eq!(cache.len(), 1);
    }
}
