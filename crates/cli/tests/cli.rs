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
