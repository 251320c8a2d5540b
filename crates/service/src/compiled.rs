//! The catalog in memory: compiled from the stored documents, swapped whole when the stored
//! generation changes, and the memo of evaluations (machine classes and their parts) that
//! makes ingestion and re-evaluation cheap.

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, Mutex, RwLock};

use kbgap_domain::cvrf::CvrfDocument;
use kbgap_domain::{Catalog, Evaluation, MachineFacts, Part, PartKey, SoftwareId};
use kbgap_store::Store;
use time::Date;

use crate::Result;

/// Compiles catalog documents with kbgap's product normalization.
pub fn compile(docs: &[CvrfDocument], as_of: Option<Date>) -> Catalog {
    Catalog::build(
        docs,
        kbgap_catalog::normalize,
        kbgap_catalog::parse_supersedence,
        as_of,
    )
}

/// A compiled catalog, the stored generation it was compiled from, and the evaluations of the
/// machine classes seen with it.
#[derive(Debug)]
pub struct CompiledCatalog {
    pub catalog: Catalog,
    pub generation: i64,
    classes: EvaluationClasses,
}

impl CompiledCatalog {
    pub fn new(catalog: Catalog, generation: i64) -> CompiledCatalog {
        CompiledCatalog {
            catalog,
            generation,
            classes: EvaluationClasses::default(),
        }
    }

    /// Evaluates a machine, once per equivalence class: machines with identical evaluation
    /// inputs share one evaluation.
    pub fn evaluate(&self, facts: &MachineFacts) -> Arc<Evaluation> {
        self.classes.evaluate(&self.catalog, facts)
    }

    /// Evaluates many machine classes at once, as a new catalog generation does: every class
    /// is split into its parts, each distinct part is evaluated once (on every core), and each
    /// class adds up its parts' evaluations. The answers are in the order of `classes`, each
    /// the one [`CompiledCatalog::evaluate`] gives. The parts are remembered for later
    /// snapshots; the classes are not (the caller holds them).
    pub fn evaluate_classes(&self, classes: &[MachineFacts]) -> Vec<Arc<Evaluation>> {
        self.classes.evaluate_all(&self.catalog, classes, threads())
    }

    /// How many distinct machine classes have been evaluated with this catalog.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// How many distinct parts of machines have been evaluated with this catalog.
    pub fn part_count(&self) -> usize {
        self.classes.parts.len()
    }

    /// Forgets every evaluation, as a new catalog generation starts with none (for
    /// measuring re-evaluation).
    pub fn forget_evaluations(&self) {
        self.classes.classes.clear();
        self.classes.parts.clear();
    }
}

/// The most classes (and, apart, the most parts) kept per catalog; past it the memo starts
/// over (a fleet rarely has more than a few tens of thousands of classes, so this only bounds
/// pathological input).
const MAX_CLASSES: usize = 200_000;

/// Evaluations by machine class, and by part of a machine ([`kbgap_domain::parts`]). The keys
/// are everything evaluation reads, so a hit is exactly the evaluation the machine (or part)
/// would get. A new class is evaluated from its parts: most of them were seen before, on
/// machines with other applications or another OS.
#[derive(Debug, Default)]
struct EvaluationClasses {
    classes: Memo<MachineFacts>,
    parts: Memo<Part>,
}

impl EvaluationClasses {
    fn evaluate(&self, catalog: &Catalog, facts: &MachineFacts) -> Arc<Evaluation> {
        if let Some(hit) = self.classes.get(facts) {
            return hit;
        }
        // Evaluate outside the locks: two threads may evaluate one class at once, both get
        // the same answer.
        let parts: Vec<Arc<Evaluation>> = kbgap_domain::parts::split(catalog, facts)
            .into_iter()
            .map(|part| match self.parts.get(&part) {
                Some(hit) => hit,
                None => {
                    let e = Arc::new(kbgap_domain::evaluate_part(catalog, &part));
                    self.parts.insert(part, e.clone());
                    e
                }
            })
            .collect();
        let evaluation = Arc::new(kbgap_domain::parts::merge(
            facts,
            parts.iter().map(|p| p.as_ref()),
        ));
        self.classes.insert(facts.clone(), evaluation.clone());
        evaluation
    }

    /// Evaluates classes in four steps: each thread splits its share of the classes into
    /// parts and numbers the distinct ones; the numberings become one; every distinct part
    /// is taken from the memo or evaluated once, the threads taking the next part as they
    /// finish one; each thread adds up its classes' parts by number.
    fn evaluate_all(
        &self,
        catalog: &Catalog,
        classes: &[MachineFacts],
        threads: usize,
    ) -> Vec<Arc<Evaluation>> {
        let chunk = classes.len().div_ceil(threads.max(1)).max(1);
        let chunks: Vec<&[MachineFacts]> = classes.chunks(chunk).collect();
        let split: Vec<SplitChunk<'_>> =
            in_parallel(&chunks, |&chunk| SplitChunk::new(catalog, chunk));

        // One numbering of the distinct parts of every chunk.
        let mut numbers: HashMap<PartKey<'_>, u32> = HashMap::new();
        let mut keys: Vec<PartKey<'_>> = Vec::new();
        let mut renumbered: Vec<Vec<u32>> = Vec::with_capacity(split.len());
        for chunk in &split {
            let mut to_global = vec![0u32; chunk.keys.len()];
            for (local, key) in chunk.keys.iter().enumerate() {
                to_global[local] = *numbers.entry(key.clone()).or_insert_with(|| {
                    keys.push(key.clone());
                    (keys.len() - 1) as u32
                });
            }
            renumbered.push(to_global);
        }
        drop(numbers);

        // Each distinct part's evaluation: remembered, or evaluated now.
        let parts: Vec<Part> = keys.iter().map(PartKey::to_part).collect();
        let mut evaluations: Vec<Option<Arc<Evaluation>>> = {
            let memo = self.parts.lock();
            parts.iter().map(|p| memo.get(p).cloned()).collect()
        };
        // The OS parts first: they cost the most, and the cheap ones fill the end.
        let mut todo: Vec<usize> = (0..parts.len())
            .filter(|&i| evaluations[i].is_none())
            .collect();
        todo.sort_by_key(|&i| !matches!(parts[i], Part::Os(_)));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers: Vec<usize> = (0..threads.clamp(1, todo.len().max(1))).collect();
        let evaluated = in_parallel(&workers, |_| {
            let mut done = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&i) = todo.get(n) else { break };
                done.push((i, Arc::new(kbgap_domain::evaluate_part(catalog, &parts[i]))));
            }
            done
        });
        for (i, e) in evaluated.into_iter().flatten() {
            self.parts.insert(parts[i].clone(), e.clone());
            evaluations[i] = Some(e);
        }
        let evaluations: Vec<Arc<Evaluation>> = evaluations.into_iter().flatten().collect();
        debug_assert_eq!(evaluations.len(), parts.len());
        // Parts with equal evaluations get one number: classes whose parts' evaluations are
        // equal, with the same software, have equal evaluations, and share one.
        let same = first_equal(&evaluations);

        // Each class from its parts' evaluations, by number.
        let merged: Vec<Vec<Arc<Evaluation>>> = {
            let jobs: Vec<usize> = (0..split.len()).collect();
            in_parallel(&jobs, |&c| {
                let chunk = &split[c];
                let to_global = &renumbered[c];
                let mut merged: HashMap<MergeKey<'_>, Arc<Evaluation>> = HashMap::new();
                chunks[c]
                    .iter()
                    .enumerate()
                    .map(|(k, facts)| {
                        let ids = &chunk.parts[chunk.offsets[k]..chunk.offsets[k + 1]];
                        let key = MergeKey {
                            machine: facts,
                            evaluations: ids
                                .iter()
                                .map(|&local| same[to_global[local as usize] as usize])
                                .collect(),
                        };
                        merged
                            .entry(key)
                            .or_insert_with_key(|key| {
                                Arc::new(kbgap_domain::parts::merge(
                                    key.machine,
                                    key.evaluations
                                        .iter()
                                        .map(|&i| evaluations[i as usize].as_ref()),
                                ))
                            })
                            .clone()
                    })
                    .collect()
            })
        };
        merged.into_iter().flatten().collect()
    }

    fn len(&self) -> usize {
        self.classes.len()
    }
}

/// What the evaluation of a class is made of: the software of the machine (which
/// [`kbgap_domain::parts::merge`] lists) and its parts' evaluations, in the order of its
/// parts, each by the number of the first equal one.
struct MergeKey<'a> {
    machine: &'a MachineFacts,
    evaluations: Vec<u32>,
}

impl MergeKey<'_> {
    fn os(&self) -> Option<&SoftwareId> {
        self.machine.os.as_ref().map(|os| &os.software)
    }
}

impl PartialEq for MergeKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.evaluations == other.evaluations
            && self.os() == other.os()
            && self
                .machine
                .software
                .keys()
                .eq(other.machine.software.keys())
    }
}

impl Eq for MergeKey<'_> {}

impl std::hash::Hash for MergeKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.evaluations.hash(state);
        self.os().hash(state);
        state.write_usize(self.machine.software.len());
        for software in self.machine.software.keys() {
            software.hash(state);
        }
    }
}

/// For each evaluation, the index of the first one equal to it.
fn first_equal(evaluations: &[Arc<Evaluation>]) -> Vec<u32> {
    use std::hash::BuildHasher;
    // Equal evaluations have equal missing KBs, indeterminate software and restart flag: a
    // hash of those finds the candidates, equality decides.
    let hasher = foldhash::fast::RandomState::default();
    let mut by_hash: HashMap<u64, Vec<u32>> = HashMap::new();
    evaluations
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let hash = hasher.hash_one((&e.missing, &e.indeterminate, e.pending_restart));
            let candidates = by_hash.entry(hash).or_default();
            match candidates.iter().find(|&&c| evaluations[c as usize] == *e) {
                Some(&c) => c,
                None => {
                    candidates.push(i as u32);
                    i as u32
                }
            }
        })
        .collect()
}

/// One thread's share of the classes, split into parts: the distinct parts, numbered in the
/// order first seen, and each class's parts by number.
struct SplitChunk<'a> {
    keys: Vec<PartKey<'a>>,
    /// The parts of class `k` are `parts[offsets[k]..offsets[k + 1]]`.
    parts: Vec<u32>,
    offsets: Vec<usize>,
}

impl<'a> SplitChunk<'a> {
    fn new(catalog: &Catalog, classes: &'a [MachineFacts]) -> SplitChunk<'a> {
        let mut numbers: HashMap<PartKey<'a>, u32> = HashMap::new();
        let mut splitter = kbgap_domain::Splitter::new(catalog);
        let mut parts = Vec::new();
        let mut offsets = Vec::with_capacity(classes.len() + 1);
        offsets.push(0);
        for class in classes {
            for key in splitter.split(class) {
                let n = numbers.len() as u32;
                parts.push(*numbers.entry(key).or_insert(n));
            }
            offsets.push(parts.len());
        }
        let mut keys: Vec<Option<PartKey<'a>>> = vec![None; numbers.len()];
        for (key, n) in numbers {
            keys[n as usize] = Some(key);
        }
        SplitChunk {
            keys: keys.into_iter().flatten().collect(),
            parts,
            offsets,
        }
    }
}

/// How many threads a batch evaluation uses: one per core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `work` applied to every item, on a thread per item (the first on the calling thread), the
/// answers in the items' order.
fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let Some((first, rest)) = items.split_first() else {
        return Vec::new();
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = rest.iter().map(|item| s.spawn(|| work(item))).collect();
        let mut out = vec![work(first)];
        out.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
        );
        out
    })
}

/// A bounded map of evaluations, shared by threads.
#[derive(Debug)]
struct Memo<K> {
    map: Mutex<HashMap<K, Arc<Evaluation>>>,
}

impl<K> Default for Memo<K> {
    fn default() -> Self {
        Memo {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: std::hash::Hash + Eq> Memo<K> {
    fn get(&self, key: &K) -> Option<Arc<Evaluation>> {
        self.lock().get(key).cloned()
    }

    fn insert(&self, key: K, evaluation: Arc<Evaluation>) {
        let mut map = self.lock();
        if map.len() >= MAX_CLASSES {
            map.clear();
        }
        map.insert(key, evaluation);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<Evaluation>>> {
        match self.map.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The catalog in memory, swapped whole when the stored generation changes, so readers
/// always see one consistent catalog.
#[derive(Debug)]
pub struct CatalogHolder {
    current: RwLock<Arc<CompiledCatalog>>,
}

impl CatalogHolder {
    pub fn load(store: &dyn Store) -> Result<CatalogHolder> {
        Ok(CatalogHolder {
            current: RwLock::new(Arc::new(load_compiled(store)?)),
        })
    }

    /// No catalog yet (generation 0): what a server holds while its database cannot be
    /// reached; the change poll loads the stored catalog once it can.
    pub fn empty() -> CatalogHolder {
        CatalogHolder {
            current: RwLock::new(Arc::new(CompiledCatalog::new(Catalog::default(), 0))),
        }
    }

    pub fn current(&self) -> Arc<CompiledCatalog> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Recompiles when the stored generation differs from the one in memory; returns
    /// whether it did.
    pub fn refresh(&self, store: &dyn Store) -> Result<bool> {
        let stored = store.catalog_state()?.generation;
        if stored == self.current().generation {
            return Ok(false);
        }
        let compiled = Arc::new(load_compiled(store)?);
        tracing::info!(
            generation = compiled.generation,
            kbs = compiled.catalog.kb_count(),
            "catalog reloaded"
        );
        match self.current.write() {
            Ok(mut g) => *g = compiled,
            Err(poisoned) => *poisoned.into_inner() = compiled,
        }
        Ok(true)
    }
}

fn load_compiled(store: &dyn Store) -> Result<CompiledCatalog> {
    // Read the state before the documents: if an import lands in between, the generation is
    // older than the documents and the next refresh compiles again.
    let state = store.catalog_state()?;
    let docs = store.load_documents()?;
    Ok(CompiledCatalog::new(
        compile(&docs, state.as_of),
        state.generation,
    ))
}
