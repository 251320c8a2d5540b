//! `kbgap explain` as a person reads it, and `--json` against what `kbgap serve` answers for
//! the same machine; `kbgap catalog coverage --evaluation` on a catalog whose every fact is
//! known.
//!
//! The catalog restates three facts of MSRC's documents (the fixtures):
//! - 2023-Dec: KB5033372 for Windows 10 Version 21H2 x64, FixedBuild 10.0.19041.3803
//!   (branch 19041–19045), CVE-2023-36696;
//! - 2024-Jan: KB5034122 for the same product, FixedBuild 10.0.19044.3930, superseding
//!   KB5033372, CVE-2024-20674;
//! - 2024-Jan: KB5034274 for ".NET Framework 3.5 AND 4.8 on Windows 10 Version 21H2 for
//!   x64-based Systems", FixedBuild 4.8.04690.02 (a .NET file version, no Windows revision),
//!   CVE-2024-21312.

mod common;

use common::*;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A data directory with the three-KB catalog and two machines:
/// - `PC-Mixed`: Windows 10 21H2 x64 at 10.0.19044.3803 with .NET Framework 4.8, no KB list:
///   KB5033372 is satisfied by the build, KB5034122 is missing by it (3803 < 3930), and
///   KB5034274 is unknown (no Windows revision to compare, no complete list);
/// - `pc-chain`: the same Windows without a revision, KB5034122 installed: KB5034122 is
///   present, and KB5033372 through KB5034122's `Supercedence`.
fn with_machines() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = kbgap(
        dir.path(),
        &[
            "catalog",
            "import",
            &format!("{FIXTURES}/2024-Jan-explain.xml"),
            &format!("{FIXTURES}/2023-Dec-mini.xml"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let lines = [
        format!(
            r#"{{"id":"PC-Mixed","lastSeen":"{now}","osPlatform":"Windows10","osBuild":"10.0.19044.3803","osArchitecture":"x64","software":[{{"id":"microsoft-_-.net_framework","version":"4.8"}}]}}"#
        ),
        format!(
            r#"{{"id":"pc-chain","lastSeen":"{now}","osPlatform":"Windows10","osBuild":"10.0.19044","osArchitecture":"x64","installedKbs":["KB5034122"]}}"#
        ),
    ];
    let file = dir.path().join("machines.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let o = kbgap(
        dir.path(),
        &[
            "inventory",
            "import",
            "--tenant",
            TENANT,
            file.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

fn explain(dir: &Path, machine: &str, extra: &[&str]) -> String {
    let mut args = vec!["explain", "--tenant", TENANT, "--machine", machine];
    args.extend_from_slice(extra);
    let o = kbgap(dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn the_text_shows_what_is_missing_and_unknown_with_its_evidence_and_counts_the_satisfied() {
    let dir = with_machines();
    // Asked in another case than it was stored: the machine is found and named as stored.
    let out = explain(dir.path(), "pc-MIXED", &[]);
    let expected = format!(
        "machine PC-Mixed of tenant {TENANT}, catalog generation 1
OS microsoft-_-windows_10 build 19044.3803 x64
edition not reported: some editions of Windows 10, version 21H2 left servicing on 2023-06-13, Windows 10 Enterprise LTSC 2021 is serviced (until 2032-01-13 at the longest); updates are counted as for the editions still serviced (import systeminfo or give osEdition to decide)

microsoft-_-.net_framework
  unknown KB5034274 (January 2024 Security Updates)
    unknown: the catalog has no FixedBuild for this KB on the machine's branch, the KB list is not complete, and no installed KB supersedes it
    products: Microsoft .NET Framework 3.5 AND 4.8 on Windows 10 Version 21H2 for x64-based Systems
    closes 1 open CVE: CVE-2024-21312
  indeterminate: an unknown KB could change the answer
  0 applicable KBs satisfied

microsoft-_-windows_10
  missing KB5034122 (January 2024 Security Updates)
    rule b: machine revision 3803 < FixedBuild revision 3930
    products: Windows 10 Version 21H2 for x64-based Systems
    closes 1 open CVE: CVE-2024-20674
  1 applicable KB satisfied
"
    );
    assert_eq!(out, expected);
    // --all adds the satisfied KB with its evidence, and nothing else.
    let all = explain(dir.path(), "PC-Mixed", &["--all"]);
    assert_eq!(
        all,
        format!(
            "{expected}  satisfied KB5033372 (December 2023 Security Updates)
    rule b: machine revision 3803 >= FixedBuild revision 3803
    products: Windows 10 Version 21H2 for x64-based Systems
"
        )
    );
    let o = kbgap(
        dir.path(),
        &["explain", "--tenant", TENANT, "--machine", "pc-3"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("tenant {TENANT} has no machine pc-3")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn satisfied_kbs_are_counted_and_all_shows_the_chain_that_covers_them() {
    let dir = with_machines();
    let head = format!(
        "machine pc-chain of tenant {TENANT}, catalog generation 1
OS microsoft-_-windows_10 build 19044 x64
edition not reported: some editions of Windows 10, version 21H2 left servicing on 2023-06-13, Windows 10 Enterprise LTSC 2021 is serviced (until 2032-01-13 at the longest); updates are counted as for the editions still serviced (import systeminfo or give osEdition to decide)

microsoft-_-windows_10
  nothing missing
  2 applicable KBs satisfied
"
    );
    assert_eq!(explain(dir.path(), "PC-CHAIN", &[]), head);
    assert_eq!(
        explain(dir.path(), "pc-chain", &["--all"]),
        format!(
            "{head}  satisfied KB5033372 (December 2023 Security Updates)
    rule c: installed KB5034122 supersedes it (KB5034122 → KB5033372)
    products: Windows 10 Version 21H2 for x64-based Systems
  satisfied KB5034122 (January 2024 Security Updates)
    rule c: installed
    products: Windows 10 Version 21H2 for x64-based Systems
"
        )
    );
    // --kb narrows to one KB; the summary counts only it.
    assert_eq!(
        explain(dir.path(), "pc-chain", &["--kb", "KB5033372"]),
        format!(
            "machine pc-chain of tenant {TENANT}, catalog generation 1
OS microsoft-_-windows_10 build 19044 x64
edition not reported: some editions of Windows 10, version 21H2 left servicing on 2023-06-13, Windows 10 Enterprise LTSC 2021 is serviced (until 2032-01-13 at the longest); updates are counted as for the editions still serviced (import systeminfo or give osEdition to decide)

microsoft-_-windows_10
  nothing missing
  1 applicable KB satisfied
"
        )
    );
}

/// Every object key in a JSON value, at any depth.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

/// `kbgap serve` on 127.0.0.1:0; its address is read from its JSON log.
struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .env_remove("KBGAP_CONFIG")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("kbgap serve ended before listening")
            .unwrap();
        let Ok(log) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if log["fields"]["message"] == "kbgap listening" {
            break log["fields"]["addr"].as_str().unwrap().to_string();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        base: format!("http://{addr}"),
    }
}

#[test]
fn json_is_what_the_api_answers_camel_case_throughout_and_ids_match_ignoring_case() {
    let dir = with_machines();
    let o = kbgap(
        dir.path(),
        &["token", "--tenant", TENANT, "--role", "Software.Read.All"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_string();
    let server = serve(dir.path());
    let client = reqwest::blocking::Client::new();
    for (machine, asked) in [("PC-Mixed", "pc-mixed"), ("pc-chain", "Pc-Chain")] {
        let cli: Value = serde_json::from_str(&explain(dir.path(), asked, &["--json"]))
            .unwrap_or_else(|e| {
                panic!("{e}");
            });
        let r = client
            .get(format!(
                "{}/api/machines/{asked}/missingkbs/explain",
                server.base
            ))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        let api: Value = r.json().unwrap();
        assert_eq!(cli, api, "{machine}");
        assert_eq!(api["machineId"], machine);
        let mut all = Vec::new();
        keys(&api, &mut all);
        assert!(all.iter().any(|k| k == "installType"), "{all:?}");
        let snake: Vec<&String> = all
            .iter()
            .filter(|k| k.contains('_') || k.starts_with(|c: char| c.is_ascii_uppercase()))
            .collect();
        assert!(snake.is_empty(), "{machine}: {snake:?}");
    }
    // The JSON carries what the text shows: per software its missing, unknown and satisfied.
    let cli: Value = serde_json::from_str(&explain(dir.path(), "PC-Mixed", &["--json"])).unwrap();
    assert_eq!(
        cli["bySoftware"],
        serde_json::json!([
            {"software": "microsoft-_-.net_framework", "missing": [], "unknown": ["5034274"],
             "notReported": [], "satisfied": 0, "indeterminate": true},
            {"software": "microsoft-_-windows_10", "missing": ["5034122"], "unknown": [],
             "notReported": [], "satisfied": 1, "indeterminate": false},
        ])
    );
    assert_eq!(
        cli["os"],
        serde_json::json!({"software": "microsoft-_-windows_10", "build": 19044,
            "revision": 3803, "arch": "x64", "installType": "full", "hotpatchEnrolled": false,
            "edition": null})
    );
    // Windows 10 21H2 Home and Pro left servicing on 2023-06-13, LTSC 2021 did not: without
    // an edition the lifecycle cannot decide, and the explanation says so.
    assert_eq!(
        cli["endOfServicing"],
        serde_json::json!({"status": "dependsOnEdition", "version": "Windows 10, version 21H2",
            "since": "2023-06-13", "servicedEdition": "Windows 10 Enterprise LTSC 2021",
            "servicedUntil": "2032-01-13"})
    );
    // The chain of a KB covered by supersedence is in the JSON without --all.
    let chain: Value = serde_json::from_str(&explain(dir.path(), "pc-chain", &["--json"])).unwrap();
    let dec = chain["kbs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kb"] == "5033372")
        .unwrap();
    assert_eq!(dec["coveredBy"], "5034122");
    assert_eq!(dec["chain"], serde_json::json!(["5034122", "5033372"]));
}

#[test]
fn coverage_evaluation_says_how_each_family_is_judged() {
    let dir = with_machines();
    let o = kbgap(dir.path(), &["catalog", "coverage", "--evaluation"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // Windows 10: KB5033372 and KB5034122 carry a revision on the product's branch (build),
    // one product. .NET: KB5034274's FixedBuild is no Windows revision and .NET Framework is
    // named on a Windows host, so only update lists judge it.
    let table = "  family                                   mode             pairs    KBs  products
  .NET Framework                           update list          1      1         1
  Windows 10                               build                2      2         1

  all families                             build                2      2         1
                                           update list          1      1         1
";
    assert!(
        out.starts_with("Evaluation coverage of 2 documents: how each family's KBs are judged\n"),
        "{out}"
    );
    assert!(out.ends_with(table), "{out}");
    let o = kbgap(
        dir.path(),
        &["catalog", "coverage", "--evaluation", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        json["families"],
        serde_json::json!([
            {"family": ".NET Framework", "modes": [
                {"mode": "updateList", "pairs": 1, "kbs": 1, "products": 1}]},
            {"family": "Windows 10", "modes": [
                {"mode": "build", "pairs": 2, "kbs": 2, "products": 1}]},
        ])
    );
    assert_eq!(json["documents"], 2);
    assert_eq!(json["asOf"], Value::Null);
    // The same documents read from files give the same report.
    let o = kbgap(
        dir.path(),
        &[
            "catalog",
            "coverage",
            "--evaluation",
            "--json",
            &format!("{FIXTURES}/2024-Jan-explain.xml"),
            &format!("{FIXTURES}/2023-Dec-mini.xml"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap(), json);
}

#[test]
fn help_names_the_new_flags() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            vec!["explain", "--help"],
            "Also show the evidence of every satisfied KB",
        ),
        (vec!["explain", "--help"], "matched ignoring case"),
        (vec!["explain", "--help"], "the API's explanation"),
        (
            vec!["catalog", "coverage", "--help"],
            "how each family's KBs are evaluated",
        ),
    ] {
        let o = kbgap(dir.path(), &args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        // clap wraps long help lines; compare with whitespace collapsed.
        let text = stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(text.contains(needle), "{args:?}: {text}");
    }
}

/// `kbgap explain … | head`: the reader goes away before the answer is written, and kbgap
/// ends as Unix tools do (SIGPIPE), without a panic on stderr.
#[cfg(unix)]
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = with_machines();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "explain",
            "--tenant",
            TENANT,
            "--machine",
            "pc-mixed",
            "--json",
        ])
        .env_remove("KBGAP_CONFIG")
        .env_remove("KBGAP_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.signal(), Some(13), "{:?}: {err}", o.status);
}
