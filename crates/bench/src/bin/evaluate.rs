//! Evaluation engine benchmark (issue targets: re-evaluating a 1,000,000-machine fleet for a
//! new catalog generation ≤ 5 s; one snapshot, class lookup or evaluation, ≤ 100 µs median;
//! engine memory for 1,000,000 machines ≤ 1 GB).
//!
//! The fleet is synthetic but drawn from the real catalog: Windows 10/11 and Server
//! 2016/2019/2022 machines at cumulative updates lagging 0–12 months, with and without build
//! revision, complete and partial KB lists, Internet Explorer on some, a few pending a restart.
//! Machines are held as equivalence-class ids, as the service holds them.
//!
//! `cargo run --release -p kbgap-bench --bin evaluate [-- MACHINES]`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kbgap_bench::{median, peak_rss_bytes, shared_data};
use kbgap_domain::catalog::Track;
use kbgap_domain::{
    evaluate, Arch, Catalog, Evaluation, InstallType, KbId, KbListScope, MachineFacts, OsFacts,
    SoftwareId,
};

/// Deterministic xorshift, so every run draws the same fleet.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// One OS line of the fleet: its rollups (revision, KB), oldest first, and its share.
struct OsLine {
    software: SoftwareId,
    build: u32,
    rollups: Vec<(u32, KbId)>,
    share: usize,
}

fn os_lines(catalog: &Catalog) -> Vec<OsLine> {
    let spec: [(&str, u32, usize); 8] = [
        ("windows_10", 19045, 30),
        ("windows_10", 19044, 10),
        ("windows_11", 22631, 20),
        ("windows_11", 22621, 8),
        ("windows_11", 26100, 12),
        ("windows_server_2016", 14393, 5),
        ("windows_server_2019", 17763, 8),
        ("windows_server_2022", 20348, 7),
    ];
    spec.iter()
        .map(|(product, build, share)| {
            let software = SoftwareId::microsoft(product);
            let mut rollups: Vec<(u32, KbId)> = catalog
                .entries_for(&software)
                .filter(|e| e.track == Track::Cumulative && !e.wrong_branch)
                .filter(|e| {
                    e.class
                        .host
                        .as_ref()
                        .is_some_and(|h| h.build == *build && h.arch == Arch::X64)
                })
                .filter_map(|e| Some((e.fixed_revision?, e.kb)))
                .collect();
            rollups.sort();
            rollups.dedup_by_key(|r| r.0);
            OsLine {
                software,
                build: *build,
                rollups,
                share: *share,
            }
        })
        .filter(|l| l.rollups.len() > 13)
        .collect()
}

fn machine(lines: &[OsLine], rng: &mut Rng) -> MachineFacts {
    let total: usize = lines.iter().map(|l| l.share).sum();
    let mut pick = rng.below(total);
    let line = lines
        .iter()
        .find(|l| {
            if pick < l.share {
                true
            } else {
                pick -= l.share;
                false
            }
        })
        .unwrap_or(&lines[0]);
    let level = line.rollups.len() - 1 - rng.below(13);
    let (rev, kb) = line.rollups[level];
    let mut installed = std::collections::BTreeSet::new();
    let complete = rng.chance(40);
    if rng.chance(70) {
        installed.insert(kb);
        if rng.chance(30) {
            installed.insert(line.rollups[level - 1].1);
        }
    }
    let mut software = std::collections::BTreeMap::new();
    software.insert(
        line.software.clone(),
        Some(format!("10.0.{}.{rev}", line.build)),
    );
    if line.software.as_str() == "microsoft-_-windows_10" && rng.chance(60) {
        software.insert(
            SoftwareId::microsoft("internet_explorer"),
            Some("11.0".into()),
        );
    }
    let pending = if rng.chance(2) && level + 1 < line.rollups.len() {
        [line.rollups[level + 1].1].into_iter().collect()
    } else {
        Default::default()
    };
    MachineFacts {
        os: Some(OsFacts {
            software: line.software.clone(),
            build: line.build,
            revision: rng.chance(85).then_some(rev),
            arch: Arch::X64,
            install_type: if line.software.as_str().contains("server") && rng.chance(30) {
                InstallType::ServerCore
            } else {
                InstallType::Full
            },
            hotpatch_enrolled: false,
        }),
        software,
        installed_kbs: installed,
        kb_list: if complete {
            KbListScope::WindowsServicing
        } else {
            KbListScope::Partial
        },
        complete_update_lists: Default::default(),
        pending_kbs: pending,
    }
}

fn main() {
    let machines: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let t = Instant::now();
    let docs = kbgap_catalog::read_documents(&[shared_data().join("msrc-cvrf")])
        .expect("the MSRC archive in ../shared/data/msrc-cvrf");
    let catalog = kbgap_service::compile(&docs, None);
    drop(docs);
    println!(
        "catalog: {} KBs, {} entries, compiled in {:.2} s",
        catalog.kb_count(),
        catalog.entries().len(),
        t.elapsed().as_secs_f64()
    );
    let lines = os_lines(&catalog);
    let rss_before = peak_rss_bytes().unwrap_or(0);

    // The fleet, interned into equivalence classes as it arrives.
    let t = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut class_of: HashMap<MachineFacts, u32> = HashMap::new();
    let mut classes: Vec<MachineFacts> = Vec::new();
    let mut fleet: Vec<u32> = Vec::with_capacity(machines);
    for _ in 0..machines {
        let m = machine(&lines, &mut rng);
        let next = classes.len() as u32;
        let id = *class_of.entry(m).or_insert_with_key(|m| {
            classes.push(m.clone());
            next
        });
        fleet.push(id);
    }
    println!(
        "fleet: {machines} machines in {} classes, generated and classed in {:.2} s",
        classes.len(),
        t.elapsed().as_secs_f64()
    );

    // A new catalog generation: evaluate every class once (both cores), then count. Classing
    // happens at ingestion, so it is not part of this figure.
    let mut runs = Vec::new();
    let mut counts: HashMap<(SoftwareId, KbId), u64> = HashMap::new();
    for _ in 0..3 {
        let t = Instant::now();
        let evaluations: Vec<Arc<Evaluation>> = evaluate_classes(&catalog, &classes);
        let mut members = vec![0u64; classes.len()];
        for &c in &fleet {
            members[c as usize] += 1;
        }
        counts.clear();
        for (e, n) in evaluations.iter().zip(&members) {
            for (s, kbs) in &e.missing {
                for kb in kbs {
                    *counts.entry((s.clone(), *kb)).or_default() += n;
                }
            }
        }
        runs.push(t.elapsed());
    }
    runs.sort();
    let reeval = median(&runs);
    let missing_total: u64 = counts.values().sum();
    println!(
        "re-evaluation of {machines} machines: median {:.3} s over {} runs (target ≤ 5 s: {:.2}× the budget); {} (software, KB) counts, {missing_total} machine-KB pairs",
        reeval.as_secs_f64(),
        runs.len(),
        reeval.as_secs_f64() / 5.0,
        counts.len()
    );
    let rss_after = peak_rss_bytes().unwrap_or(0);
    println!(
        "memory: whole process peak {:.0} MB, including parsing the whole archive ({:.0} MB before the fleet existed); the engine's fleet, classes and evaluations fit in that (target ≤ 1024 MB)",
        rss_after as f64 / 1e6,
        rss_before as f64 / 1e6
    );

    // One snapshot at a time, as ingestion does it: class lookup, or evaluation on a miss.
    let compiled = kbgap_service::CompiledCatalog::new(catalog, 1);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut singles = Vec::new();
    let mut misses = Vec::new();
    for i in 0..20_000 {
        let m = machine(&lines, &mut rng);
        let before = compiled.class_count();
        let t = Instant::now();
        let e = compiled.evaluate(&m);
        let d = t.elapsed();
        std::hint::black_box(e);
        if i >= 1000 {
            singles.push(d);
        }
        if compiled.class_count() > before {
            misses.push(d);
        }
    }
    singles.sort();
    misses.sort();
    println!(
        "one snapshot (class lookup or evaluation): median {:.1} µs over {} snapshots (target ≤ 100 µs); evaluation on a class miss: median {:.1} µs over {}",
        micros(median(&singles)),
        singles.len(),
        micros(median(&misses)),
        misses.len()
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn evaluate_classes(catalog: &Catalog, classes: &[MachineFacts]) -> Vec<Arc<Evaluation>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = classes.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = classes
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|m| Arc::new(evaluate(catalog, m)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("evaluation thread"))
            .collect()
    })
}
