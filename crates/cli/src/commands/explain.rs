//! `kbgap explain`: why each KB is or is not missing on one stored machine, and which machines
//! kbgap cannot decide for a software. `--json` prints what the API answers.

use anyhow::{bail, Context};
use kbgap_domain::engine::{Outcome, Rule, Satisfied};
use kbgap_domain::{KbId, MachineId, SoftwareId, TenantId};
use kbgap_service::{
    CatalogHolder, EndOfServicingMachine, ExplanationReport, KbReport, ServicingReport,
    SoftwareSummary,
};

use crate::config::Storage;
use crate::open_store;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The tenant that owns the machine.
    #[arg(long)]
    pub tenant: String,
    /// The machine to explain (matched ignoring case: PC-0001 finds pc-0001).
    #[arg(long, required_unless_present_any = ["indeterminate", "end_of_servicing"])]
    pub machine: Option<String>,
    /// Only this KB (e.g. 5034122 or KB5034122).
    #[arg(long)]
    pub kb: Option<String>,
    /// Instead: list the active machines that are indeterminate for this software id.
    #[arg(long, value_name = "SOFTWARE", conflicts_with_all = ["machine", "kb"])]
    pub indeterminate: Option<String>,
    /// Instead: list the active machines with this software (e.g. microsoft-_-windows_10)
    /// whose Windows version, for their edition, left servicing, with the last update each
    /// could get.
    #[arg(
        long,
        value_name = "SOFTWARE",
        conflicts_with_all = ["machine", "kb", "indeterminate"]
    )]
    pub end_of_servicing: Option<String>,
    /// Also show the evidence of every satisfied KB (the installed KB and the supersedence
    /// chain that cover it) and of unsatisfied KBs that are not reported.
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of text: the API's explanation, every KB with its evidence.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ExplainArgs, storage: &Storage) -> anyhow::Result<()> {
    let store = open_store(storage)?;
    let tenant = TenantId::parse(&args.tenant).context("--tenant")?;
    if let Some(software) = &args.indeterminate {
        let software = SoftwareId::parse(software).context("--indeterminate")?;
        let machines = kbgap_service::indeterminate_machines(store.as_ref(), &tenant, &software)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&machines)?);
        } else {
            println!(
                "{} active machine(s) indeterminate for {software}{}",
                machines.len(),
                if machines.is_empty() { "" } else { ":" }
            );
            for m in machines {
                println!("  {m}");
            }
        }
        return Ok(());
    }
    if let Some(software) = &args.end_of_servicing {
        let software = SoftwareId::parse(software).context("--end-of-servicing")?;
        let machines =
            kbgap_service::end_of_servicing_machines(store.as_ref(), &tenant, &software)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&machines)?);
        } else {
            print!("{}", end_of_servicing_text(&software, &machines));
        }
        return Ok(());
    }
    let Some(machine) = &args.machine else {
        bail!("give --machine (or --indeterminate SOFTWARE, or --end-of-servicing SOFTWARE)");
    };
    let machine = MachineId::parse(machine).context("--machine")?;
    let kb = args
        .kb
        .as_deref()
        .map(KbId::parse)
        .transpose()
        .context("--kb")?;
    let holder = CatalogHolder::load(store.as_ref())?;
    let compiled = holder.current();
    let Some(found) =
        kbgap_service::explain_machine(store.as_ref(), &compiled, &tenant, &machine, kb)?
    else {
        bail!("tenant {tenant} has no machine {machine}");
    };
    let report = found.report(&compiled.catalog);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report, &tenant, args.all));
    }
    Ok(())
}

/// The machines out of servicing, one per line.
pub fn end_of_servicing_text(software: &SoftwareId, machines: &[EndOfServicingMachine]) -> String {
    let mut out = format!(
        "{} with {software} on a Windows version that left servicing{}\n",
        plural(machines.len(), "active machine"),
        if machines.is_empty() { "" } else { ":" }
    );
    for m in machines {
        out.push_str(&format!(
            "  {}: {}{} since {}, last update {}{}\n",
            m.id,
            m.version,
            m.edition.map(|e| format!(" {e}")).unwrap_or_default(),
            m.since,
            m.last_update
                .map(|k| format!("KB{k}"))
                .unwrap_or_else(|| "unknown".into()),
            m.esu_until
                .as_deref()
                .map(|d| format!(", Extended Security Updates until {d}"))
                .unwrap_or_default()
        ));
    }
    out
}

/// The explanation as text: per software what is missing and what is unknown with the
/// evidence that decided each, and how many applicable KBs are satisfied; `all` adds the
/// evidence of the satisfied and of the unsatisfied KBs that are not reported.
pub fn text(r: &ExplanationReport, tenant: &TenantId, all: bool) -> String {
    let mut out = format!(
        "machine {} of tenant {tenant}, catalog generation {}\n",
        r.machine_id, r.catalog_generation
    );
    if let Some(os) = &r.os {
        out.push_str(&format!(
            "OS {} build {}{} {}{}\n",
            os.software,
            os.build,
            os.revision.map(|r| format!(".{r}")).unwrap_or_default(),
            os.arch.as_str(),
            if os.hotpatch_enrolled {
                ", hotpatch-enrolled"
            } else {
                ""
            }
        ));
    } else {
        out.push_str("OS not reported: nothing can be evaluated\n");
    }
    if r.pending_restart {
        out.push_str("pending restart: an installed update waits for a reboot\n");
    }
    if let Some(s) = &r.end_of_servicing {
        out.push_str(&servicing(s));
    }
    let kb_of = |kb: KbId| r.kbs.iter().find(|k| k.explanation.verdict.kb == kb);
    for s in &r.by_software {
        out.push_str(&format!("\n{}\n", s.software));
        if s.missing.is_empty() && s.unknown.is_empty() {
            out.push_str("  nothing missing\n");
        }
        for (label, kbs) in [("missing", &s.missing), ("unknown", &s.unknown)] {
            for k in kbs.iter().filter_map(|kb| kb_of(*kb)) {
                describe_kb(&mut out, label, k, all);
            }
        }
        if s.indeterminate {
            out.push_str("  indeterminate: an unknown KB could change the answer\n");
        }
        if !s.not_reported.is_empty() {
            out.push_str(&format!(
                "  {} not reported: {}\n",
                plural(s.not_reported.len(), "unsatisfied KB"),
                not_reported_counts(s, r)
            ));
            if all {
                for k in s.not_reported.iter().filter_map(|kb| kb_of(*kb)) {
                    describe_kb(&mut out, "not reported", k, all);
                }
            }
        }
        out.push_str(&format!(
            "  {} satisfied\n",
            plural(s.satisfied, "applicable KB")
        ));
        if all {
            for k in r.kbs.iter().filter(|k| {
                k.explanation
                    .outcomes
                    .iter()
                    .any(|o| o.software == s.software && o.outcome == Outcome::Satisfied)
            }) {
                describe_kb(&mut out, "satisfied", k, all);
            }
        }
    }
    out
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Why unsatisfied KBs of a software are not reported, counted by reason.
fn not_reported_counts(s: &SoftwareSummary, r: &ExplanationReport) -> String {
    let (mut superseded, mut closed, mut alternative) = (0, 0, 0);
    for k in &r.kbs {
        for o in &k.explanation.outcomes {
            if o.software != s.software {
                continue;
            }
            match o.outcome {
                Outcome::Superseded { .. } => superseded += 1,
                Outcome::NoOpenCve => closed += 1,
                Outcome::Alternative { .. } => alternative += 1,
                _ => {}
            }
        }
    }
    [
        (superseded, "superseded by a newer unsatisfied KB"),
        (closed, "every CVE closed by other updates"),
        (alternative, "alternative to a reported KB"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, why)| format!("{n} {why}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// Open CVEs listed per KB in text unless `--all` is given: an update that has not been
/// installed for years closes hundreds.
const MAX_CVES_SHOWN: usize = 10;

/// The machine's end of servicing, in words.
fn servicing(s: &ServicingReport) -> String {
    match s {
        ServicingReport::Ended {
            version,
            edition,
            since,
            esu_until,
            last_update,
        } => {
            let who = match edition {
                Some(e) => format!("{version} {e}"),
                None => format!("{version} (every edition)"),
            };
            let last = match last_update {
                Some(kb) => format!("its last cumulative update is KB{kb}"),
                None => "the catalog has no cumulative update of it".to_string(),
            };
            match esu_until {
                Some(esu) => format!(
                    "end of servicing: {who} left servicing on {since}; {last}. Extended \
                     Security Updates continue until {esu} for enrolled devices: kbgap cannot \
                     see enrolment and counts them as missing\n"
                ),
                None => format!(
                    "end of servicing: {who} left servicing on {since}; {last}. Updates \
                     listed for the version since are for editions still serviced and are not \
                     counted; upgrade to a serviced version\n"
                ),
            }
        }
        ServicingReport::DependsOnEdition {
            version,
            since,
            serviced_edition,
            serviced_until,
        } => format!(
            "edition not reported: some editions of {version} left servicing on {since}, \
             {serviced_edition} is serviced (until {serviced_until} at the longest); updates \
             are counted as for the editions still serviced (import systeminfo or give \
             osEdition to decide)\n"
        ),
    }
}

fn describe_kb(out: &mut String, label: &str, k: &KbReport, all: bool) {
    let v = &k.explanation.verdict;
    out.push_str(&format!(
        "  {label} KB{} ({})\n",
        v.kb,
        k.name.as_deref().unwrap_or("?")
    ));
    let others: Vec<String> = k
        .explanation
        .outcomes
        .iter()
        .filter(|o| {
            !matches!(
                o.outcome,
                Outcome::Missing | Outcome::Unknown | Outcome::Satisfied
            )
        })
        .map(|o| format!("for {}: {}", o.software, describe(&o.outcome)))
        .collect();
    for o in others {
        out.push_str(&format!("    {o}\n"));
    }
    out.push_str(&format!("    {}\n", why(k)));
    out.push_str(&format!(
        "    products: {}\n",
        k.explanation.products.join("; ")
    ));
    let cves = &k.explanation.closes_open_cves;
    if !cves.is_empty() {
        let shown = if all {
            cves.len()
        } else {
            cves.len().min(MAX_CVES_SHOWN)
        };
        out.push_str(&format!(
            "    closes {}: {}{}\n",
            plural(cves.len(), "open CVE"),
            cves[..shown].join(", "),
            if shown < cves.len() {
                format!(", … ({} more with --all or --json)", cves.len() - shown)
            } else {
                String::new()
            }
        ));
    }
    for r in &k.explanation.repairs {
        out.push_str(&format!("    repair: {r}\n"));
    }
}

/// The rule that decided a KB and its evidence.
fn why(k: &KbReport) -> String {
    let v = &k.explanation.verdict;
    let cmp = if v.satisfied == Satisfied::Yes {
        ">="
    } else {
        "<"
    };
    match v.rule {
        Rule::PendingRestart => "rule a: pending a restart, build below the fix".to_string(),
        Rule::Build => match v.fixed_build {
            Some(fixed) => format!("rule b: the product's build {cmp} FixedBuild {fixed}"),
            None => format!(
                "rule b: machine revision {} {cmp} FixedBuild revision {}",
                k.machine_revision
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
                v.fixed_revision.map(|r| r.to_string()).unwrap_or_default()
            ),
        },
        Rule::InstalledKb => match v.covered_by {
            Some(by) if by != v.kb => format!(
                "rule c: installed KB{by} supersedes it ({})",
                k.explanation
                    .chain
                    .iter()
                    .map(|c| format!("KB{c}"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            _ => "rule c: installed".to_string(),
        },
        Rule::NewerThanCatalog => {
            "rule d: the machine is newer than every cumulative build the catalog knows".to_string()
        }
        Rule::CompleteKbList => "rule e: not in the complete KB list".to_string(),
        Rule::NoEvidence => format!(
            "unknown: {}",
            k.explanation
                .unknown_because
                .as_deref()
                .unwrap_or("no evidence")
        ),
    }
}
fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Missing => "missing".into(),
        Outcome::Satisfied => "present".into(),
        Outcome::Unknown => "unknown".into(),
        Outcome::Superseded { by } => format!("not reported, KB{by} supersedes it"),
        Outcome::NoOpenCve => "not reported, its CVEs are closed by other updates".into(),
        Outcome::Alternative { reported } => format!(
            "not reported, alternative to {}",
            reported
                .iter()
                .map(|k| format!("KB{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
