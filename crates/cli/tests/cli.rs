//! The `kbgap` binary as a user runs it: help texts, catalog and inventory imports that fail
//! cleanly and keep what was stored, and development tokens.

mod common;

use common::*;

use kbgap_auth::{DevIssuer, Validator, ValidatorConfig};
use kbgap_store::{SqliteStore, Store};

/// A Windows 10 x64 snapshot seen now, as one JSON line.
fn machine_json(id: &str, build: &str) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    format!(
        r#"{{"id":"{id}","lastSeen":"{now}","osPlatform":"Windows10","osBuild":"{build}","osArchitecture":"x64"}}"#
    )
}

#[test]
fn every_subcommand_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["catalog", "--help"],
        vec!["catalog", "import", "--help"],
        vec!["catalog", "status", "--help"],
        vec!["inventory", "--help"],
        vec!["inventory", "import", "--help"],
        vec!["token", "--help"],
        vec!["explain", "--help"],
        vec!["quickstart", "--help"],
    ] {
        let o = kbgap(dir.path(), &args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage: kbgap"), "{args:?}");
    }
}

#[test]
fn a_bad_catalog_file_stores_nothing_and_keeps_the_previous_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!("{FIXTURES}/2024-Jan-mini.xml");
    let o = kbgap(dir.path(), &["catalog", "import", &good]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("catalog generation 1: 1 documents stored"),
        "{}",
        stdout(&o)
    );
    let status = stdout(&kbgap(dir.path(), &["catalog", "status"]));
    assert!(
        status.contains("generation: 1\n") && status.contains("KBs: 1\n"),
        "{status}"
    );

    // Malformed XML: the error names the file and the line.
    let broken = format!("{FIXTURES}/broken.xml");
    let o = kbgap(dir.path(), &["catalog", "import", &good, &broken]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("broken.xml") && err.contains("line 6"),
        "{err}"
    );
    assert!(err.contains("nothing was stored"), "{err}");

    // A truncated .zst: the error names the file.
    let xml = std::fs::read(&good).unwrap();
    let zst = zstd::encode_all(&xml[..], 3).unwrap();
    let cut = dir.path().join("2024-Jan.xml.zst");
    std::fs::write(&cut, &zst[..zst.len() / 2]).unwrap();
    let o = kbgap(dir.path(), &["catalog", "import", cut.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("2024-Jan.xml.zst"), "{}", stderr(&o));

    let after = stdout(&kbgap(dir.path(), &["catalog", "status"]));
    assert_eq!(after, status);
}

#[test]
fn inventory_import_is_all_or_nothing() {
    let dir = with_mini_catalog();
    let machine = machine_json;
    let good = dir.path().join("good.ndjson");
    std::fs::write(
        &good,
        format!(
            "{}\n{}\n",
            machine("a", "10.0.19044.3803"),
            machine("b", "10.0.19044.3930")
        ),
    )
    .unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, machine("c", "10.0.x")).unwrap();
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    let o = kbgap(
        dir.path(),
        &[
            "inventory",
            "import",
            "--tenant",
            tenant,
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("bad.json") && err.contains("osBuild"), "{err}");
    let store = SqliteStore::open(dir.path()).unwrap();
    assert!(store.all_machines().unwrap().is_empty());

    let o = kbgap(
        dir.path(),
        &[
            "inventory",
            "import",
            "--tenant",
            tenant,
            good.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("stored 2 machine(s) for tenant {tenant}\n")
    );
    let ids: Vec<String> = store
        .all_machines()
        .unwrap()
        .into_iter()
        .map(|(t, m, _)| format!("{t}/{m}"))
        .collect();
    assert_eq!(ids, vec![format!("{tenant}/a"), format!("{tenant}/b")]);
    let t = kbgap_domain::TenantId::parse(tenant).unwrap();
    let counts = store
        .missing_counts(&t, &kbgap_domain::SoftwareId::microsoft("windows_10"))
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].kb.number(), counts[0].machines), (5034122, 1));
}

#[test]
fn tokens_from_the_cli_validate() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let o = kbgap(
        dir.path(),
        &[
            "token",
            "--tenant",
            tenant,
            "--role",
            "Software.Read.All",
            "--ttl",
            "10m",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_string();
    assert_eq!(token.split('.').count(), 3);
    let dev = DevIssuer::load_or_create(dir.path()).unwrap();
    let validator = Validator::new(
        ValidatorConfig {
            issuer_templates: vec![kbgap_auth::DEV_ISSUER_TEMPLATE.into()],
            ..ValidatorConfig::default()
        },
        dev.key_source(),
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let p = validator.validate(&token, now).unwrap();
    assert_eq!(p.tenant.as_str(), tenant);
    assert_eq!(p.roles, vec!["Software.Read.All".to_string()]);
    assert!((p.expires_at - now - 600).abs() <= 2);

    let o = kbgap(dir.path(), &["token", "--tenant", tenant]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--role"), "{}", stderr(&o));
}

#[test]
fn the_development_issuer_refuses_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let o = kbgap(dir.path(), &["serve", "--listen", "0.0.0.0:0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
}

#[test]
fn two_providers_whose_issuers_name_no_tenant_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    // Refused before any key is fetched (these hosts do not exist).
    let o = kbgap(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--auth-mode",
            "oidc",
            "--issuer",
            "https://idp.invalid/A/v2.0",
            "--issuer",
            "https://idp.invalid/B/v2.0",
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(
            "the provider of issuer https://idp.invalid/A/v2.0 could vouch for every tenant, \
             while other providers are configured: list the tenants it may vouch for \
             (`tenants = [...]` in its [[auth.providers]] entry) or, if it is a multi-tenant \
             provider that guarantees `tid` itself (such as Azure AD), allow it explicitly with \
             `any_tenant = true`"
        ),
        "{err}"
    );
}

#[test]
fn explain_tells_why() {
    let dir = with_mini_catalog();
    let file = dir.path().join("m.json");
    std::fs::write(&file, machine_json("pc-1", "10.0.19044.3803")).unwrap();
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let o = kbgap(
        dir.path(),
        &[
            "inventory",
            "import",
            "--tenant",
            tenant,
            file.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kbgap(
        dir.path(),
        &["explain", "--tenant", tenant, "--machine", "pc-1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "\nmicrosoft-_-windows_10\n  missing KB5034122 (January 2024 Security Updates)\n    \
             rule b: machine revision 3803 < FixedBuild revision 3930\n"
        ),
        "{out}"
    );
    let o = kbgap(
        dir.path(),
        &["explain", "--tenant", tenant, "--machine", "pc-2"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("has no machine pc-2"), "{}", stderr(&o));
    let o = kbgap(
        dir.path(),
        &[
            "explain",
            "--tenant",
            tenant,
            "--indeterminate",
            "microsoft-_-windows_10",
        ],
    );
    assert_eq!(
        stdout(&o),
        "0 active machine(s) indeterminate for microsoft-_-windows_10\n"
    );
}

#[test]
fn a_database_url_that_cannot_be_used_is_refused_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    for (url, says) in [
        (
            // Nothing listens on port 1.
            "postgres://kbgap:s3cret@127.0.0.1:1/kbgap",
            "cannot connect to PostgreSQL at 127.0.0.1:1: ",
        ),
        (
            "postgres://kbgap:s3cret@127.0.0.1:port/kbgap",
            "invalid database URL: ",
        ),
        (
            "mysql://kbgap:s3cret@127.0.0.1/kbgap",
            "invalid database URL: expected a URL starting with postgres:// or postgresql://",
        ),
        (
            "postgres://kbgap:s3cret@/kbgap",
            "invalid database URL: the URL names no host",
        ),
    ] {
        let o = kbgap(dir.path(), &["--database-url", url, "catalog", "status"]);
        assert!(!o.status.success(), "{url}");
        let err = stderr(&o);
        assert!(
            err.contains("cannot open the PostgreSQL store"),
            "{url}: {err}"
        );
        assert!(err.contains(says), "{url}: {err}");
        assert!(!err.contains("s3cret"), "{url}: {err}");
    }
    // Nothing was created in the data directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // The flag is documented, and --help never shows the variable's value.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .args(["serve", "--help"])
        .env(
            "KBGAP_DATABASE_URL",
            "postgres://kbgap:s3cret@127.0.0.1/kbgap",
        )
        .output()
        .unwrap();
    let help = stdout(&o);
    assert!(
        help.contains("--database-url <URL>") && help.contains("KBGAP_DATABASE_URL"),
        "{help}"
    );
    assert!(!help.contains("s3cret"), "{help}");
}

#[test]
fn every_command_works_on_a_postgres_store() {
    let Some(schema) = kbgap_store::test_support::TestSchema::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = schema.url();
    let with_url = |args: &[&str]| {
        let mut all = vec!["--database-url", url];
        all.extend_from_slice(args);
        kbgap(dir.path(), &all)
    };
    let o = with_url(&[
        "catalog",
        "import",
        &format!("{FIXTURES}/2024-Jan-mini.xml"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = dir.path().join("m.json");
    std::fs::write(&file, machine_json("pc-1", "10.0.19044.3803")).unwrap();
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let o = with_url(&[
        "inventory",
        "import",
        "--tenant",
        tenant,
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("stored 1 machine(s) for tenant {tenant}\n")
    );
    // The environment variable names the same store.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["explain", "--tenant", tenant, "--machine", "pc-1"])
        .env_remove("KBGAP_CONFIG")
        .env("KBGAP_DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "microsoft-_-windows_10\n  missing KB5034122 (January 2024 Security Updates)\n"
        ),
        "{}",
        stdout(&o)
    );
    let status = stdout(&with_url(&["catalog", "status"]));
    assert!(
        status.contains("generation: 1\n") && status.contains("KBs: 1\n"),
        "{status}"
    );
    // Everything is in PostgreSQL: the data directory holds no database.
    assert!(!dir.path().join("kbgap.sqlite").exists());
}

#[test]
fn a_malformed_redis_url_or_no_replicas_stops_serve_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let o = kbgap(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "cache:6379",
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--redis-url (KBGAP_REDIS_URL, rate_limits.redis_url)")
            && err.contains(
                "not a usable Redis URL (redis://[[user]:password@]host[:port][/db] or \
                 redis+unix:///path)"
            ),
        "{err}"
    );
    let o = kbgap(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:6379",
            "--replicas",
            "0",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("replicas must be at least 1"),
        "{}",
        stderr(&o)
    );
    let o = kbgap(dir.path(), &["serve", "--help"]);
    for flag in [
        "--redis-url",
        "KBGAP_REDIS_URL",
        "--replicas",
        "KBGAP_REPLICAS",
    ] {
        assert!(stdout(&o).contains(flag), "{flag}");
    }
}

#[test]
fn serve_starts_while_its_redis_is_unreachable_and_never_logs_the_password() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(["--replicas", "4"])
        .env(
            "KBGAP_REDIS_URL",
            format!("redis://:hunter2@127.0.0.1:{port}/0"),
        )
        .env_remove("KBGAP_CONFIG")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !lines.iter().any(|l: &String| l.contains("kbgap listening")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = lines.join("\n");
    assert!(log.contains("kbgap listening"), "{log}");
    let warned: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("Redis unreachable"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    let warning: serde_json::Value = serde_json::from_str(warned[0]).unwrap();
    assert_eq!(
        warning["fields"]["redis"],
        format!("redis://***@127.0.0.1:{port}/0")
    );
    assert_eq!(warning["fields"]["replicas"], 4);
    assert!(!log.contains("hunter2"), "{log}");
}
