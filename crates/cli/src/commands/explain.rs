//! `kbgap explain`: why each KB is or is not missing on one stored machine, and which machines
//! kbgap cannot decide for a software.

use anyhow::{bail, Context};
use kbgap_domain::engine::{Outcome, Rule, Satisfied};
use kbgap_domain::{KbId, MachineId, SoftwareId, TenantId};
use kbgap_service::CatalogHolder;

use crate::config::Storage;
use crate::open_store;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The tenant that owns the machine.
    #[arg(long)]
    pub tenant: String,
    /// The machine to explain.
    #[arg(long, required_unless_present = "indeterminate")]
    pub machine: Option<String>,
    /// Only this KB (e.g. 5034122 or KB5034122).
    #[arg(long)]
    pub kb: Option<String>,
    /// Instead: list the active machines that are indeterminate for this software id.
    #[arg(long, value_name = "SOFTWARE", conflicts_with_all = ["machine", "kb"])]
    pub indeterminate: Option<String>,
    /// Print JSON instead of text.
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
    let Some(machine) = &args.machine else {
        bail!("give --machine (or --indeterminate SOFTWARE)");
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found.explanation)?);
        return Ok(());
    }
    let catalog = &compiled.catalog;
    let ev = &found.explanation.evaluation;
    println!(
        "machine {machine} of tenant {tenant}, catalog generation {}",
        found.generation
    );
    let revision = found.facts.os.as_ref().and_then(|o| o.revision);
    if let Some(os) = &found.facts.os {
        println!(
            "OS {} build {}{} {}{}",
            os.software,
            os.build,
            os.revision.map(|r| format!(".{r}")).unwrap_or_default(),
            os.arch.as_str(),
            if os.hotpatch_enrolled {
                ", hotpatch-enrolled"
            } else {
                ""
            }
        );
    }
    for (software, kbs) in &ev.missing {
        let list: Vec<String> = kbs.iter().map(|k| format!("KB{k}")).collect();
        println!("missing for {software}: {}", list.join(", "));
    }
    for software in &ev.indeterminate {
        println!("indeterminate for {software}: some applicable KB could not be decided");
    }
    if ev.pending_restart {
        println!("pending restart: an installed update waits for a reboot");
    }
    for k in &found.explanation.kbs {
        let v = &k.verdict;
        let name = catalog.kb(v.kb).map(|i| i.name.as_str()).unwrap_or("?");
        let outcomes: Vec<String> = k
            .outcomes
            .iter()
            .map(|o| format!("{}: {}", o.software.product_name(), describe(&o.outcome)))
            .collect();
        println!("\nKB{} ({name}) — {}", v.kb, outcomes.join("; "));
        let why = match v.rule {
            Rule::PendingRestart => "rule a: pending a restart, build below the fix".to_string(),
            Rule::Build => format!(
                "rule b: machine revision {} {} FixedBuild revision {}",
                revision.map(|r| r.to_string()).unwrap_or_default(),
                if v.satisfied == Satisfied::Yes {
                    ">="
                } else {
                    "<"
                },
                v.fixed_revision.map(|r| r.to_string()).unwrap_or_default()
            ),
            Rule::InstalledKb => match v.covered_by {
                Some(by) if by != v.kb => format!(
                    "rule c: installed KB{by} supersedes it ({})",
                    k.chain
                        .iter()
                        .map(|c| format!("KB{c}"))
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
                _ => "rule c: installed".to_string(),
            },
            Rule::NewerThanCatalog => {
                "rule d: the machine is newer than every cumulative build the catalog knows"
                    .to_string()
            }
            Rule::CompleteKbList => "rule e: not in the complete KB list".to_string(),
            Rule::NoEvidence => format!(
                "unknown: {}",
                k.unknown_because.as_deref().unwrap_or("no evidence")
            ),
        };
        println!("  {why}");
        println!("  products: {}", k.products.join("; "));
        for r in &k.repairs {
            println!("  repair: {r}");
        }
    }
    Ok(())
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
