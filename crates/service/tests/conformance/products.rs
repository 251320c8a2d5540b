//! Products other than Windows itself, each judged by the evidence that can prove it
//! (`docs/semantics-products.md`): SQL Server's GDR and CU paths, Exchange cumulative
//! updates, SharePoint and Office MSI component chains, .NET Framework's cumulative chain,
//! and the scope of a Windows installed-update list. Every KB number and build below is the
//! real archive's.

use super::*;
use kbgap_domain::catalog::RepairKind;
use kbgap_domain::ProductBuild;

/// The catalog as it stood on 2024-03-31: Exchange's March 2024 update is the newest.
fn mar_2024() -> &'static Catalog {
    static CAT: OnceLock<Catalog> = OnceLock::new();
    CAT.get_or_init(|| {
        kbgap_service::compile(documents(), Some(time::macros::date!(2024 - 03 - 31)))
    })
}

/// Windows 10 22H2 at 10.0.19045.3570 with a complete Win32_QuickFixEngineering list, and
/// the given products at the given versions.
fn workstation(products: &[(&str, &str)]) -> MachineFacts {
    let mut m = with_kbs(
        machine("windows_10", "10.0.19045.3570", Arch::X64),
        &[5031356, 5030211],
        true,
    );
    for (product, version) in products {
        m.software.insert(sw(product), Some(version.to_string()));
    }
    m
}

fn fixed_build(e: &Explanation, n: u32) -> Option<ProductBuild> {
    e.kbs
        .iter()
        .find(|v| v.verdict.kb == kb(n))
        .and_then(|v| v.verdict.fixed_build)
}

fn build(s: &str) -> ProductBuild {
    ProductBuild::parse(s).unwrap()
}

#[test]
fn a_windows_update_list_proves_nothing_about_msi_products() {
    // Versions given as lines only: no build, and the complete QFE list cannot show MSI
    // updates. Indeterminate, never "missing by rule e".
    let m = workstation(&[
        ("office", "2016"),
        ("sql_server", "2019"),
        ("exchange_server", "2019"),
        ("sharepoint_server", "2019"),
    ]);
    let e = explain(full(), &m);
    for product in [
        "office",
        "sql_server",
        "exchange_server",
        "sharepoint_server",
    ] {
        assert_eq!(missing(&e, product), Vec::<u32>::new(), "{product}");
        assert!(
            e.evaluation.indeterminate.contains(&sw(product)),
            "{product}"
        );
    }
    // SQL Server 2019's GDR update of October 2023 is unknown, and the explanation says why.
    assert_eq!(verdict(&e, 5029377), (Satisfied::Unknown, Rule::NoEvidence));
    let why = e
        .kbs
        .iter()
        .find(|v| v.verdict.kb == kb(5029377))
        .and_then(|v| v.unknown_because.clone())
        .unwrap();
    assert!(why.contains("MSI-installed"), "{why}");
    // Windows itself is still decided by the list and the build.
    assert!(!e.evaluation.indeterminate.contains(&sw("windows_10")));

    // A complete list of the product's own updates is evidence: a never-patched Office 2016
    // misses the newest update of each component chain, not every update ever released.
    let mut m = workstation(&[("office", "2016")]);
    m.complete_update_lists.insert(sw("office"));
    let e = explain(full(), &m);
    let office = missing(&e, "office");
    assert!(!e.evaluation.indeterminate.contains(&sw("office")));
    let word: Vec<u32> = office
        .iter()
        .copied()
        .filter(|&n| {
            full()
                .entries()
                .iter()
                .any(|x| x.kb == kb(n) && x.product_name.starts_with("Microsoft Word 2016"))
        })
        .collect();
    assert_eq!(word, vec![newest_of(full(), "Microsoft Word 2016")]);
    let all_office_kbs: BTreeSet<KbId> = full()
        .entries_for(&sw("office"))
        .filter(|x| x.class.version_line.as_deref() == Some("2016"))
        .map(|x| x.kb)
        .collect();
    assert!(
        office.len() * 10 < all_office_kbs.len(),
        "{} of {} Office 2016 KBs reported",
        office.len(),
        all_office_kbs.len()
    );
}

/// The KB of a product (by name prefix) with the highest FixedBuild in the catalog.
fn newest_of(catalog: &Catalog, product: &str) -> u32 {
    catalog
        .entries()
        .iter()
        .filter(|x| x.product_name.starts_with(product))
        .filter_map(|x| Some((*x.product_builds.iter().max()?, x.kb)))
        .max()
        .map(|(_, k)| k.number())
        .unwrap()
}

#[test]
fn sql_server_gdr_and_cu_paths() {
    // The archive, 2023-Oct: SQL Server 2019 x64 GDR KB5029377 = 15.0.2104.1 (supersedes the
    // February GDR KB5021125 = 15.0.2101.7), CU path KB5029378 = 15.0.4326.1 (supersedes
    // KB5021124 = 15.0.4280.7). The next SQL Server 2019 updates came in April 2024.
    let gdr = explain(jan_2024(), &workstation(&[("sql_server", "15.0.2101.7")]));
    assert_eq!(missing(&gdr, "sql_server"), vec![5029377]);
    assert_eq!(verdict(&gdr, 5029377), (Satisfied::No, Rule::Build));
    assert_eq!(fixed_build(&gdr, 5029377), Some(build("15.0.2104.1")));
    assert_eq!(verdict(&gdr, 5021125), (Satisfied::Yes, Rule::Build));
    assert!(
        !gdr.kbs.iter().any(|v| v.verdict.kb == kb(5029378)),
        "the CU-path update does not apply on the GDR path"
    );
    assert!(!gdr.evaluation.indeterminate.contains(&sw("sql_server")));

    let cu = explain(jan_2024(), &workstation(&[("sql_server", "15.0.4280.7")]));
    assert_eq!(missing(&cu, "sql_server"), vec![5029378]);
    assert_eq!(fixed_build(&cu, 5029378), Some(build("15.0.4326.1")));
    assert!(!cu.kbs.iter().any(|v| v.verdict.kb == kb(5029377)));

    // A CU-path build below every CU-path FixedBuild (CU 1, 15.0.4003) is on the CU path.
    let cu1 = explain(jan_2024(), &workstation(&[("sql_server", "15.0.4003.23")]));
    assert_eq!(missing(&cu1, "sql_server"), vec![5029378]);

    // Up to date on its path: nothing missing, nothing unknown.
    let patched = explain(jan_2024(), &workstation(&[("sql_server", "15.0.2104.1")]));
    assert_eq!(missing(&patched, "sql_server"), Vec::<u32>::new());
    assert!(!patched.evaluation.indeterminate.contains(&sw("sql_server")));
}

#[test]
fn sql_server_2014_builds_swapped_in_2023_feb_are_repaired() {
    // 2023-Feb lists KB5021037 for the SP3 (GDR) products with FixedBuild 12.0.6444.4 and
    // KB5021045 for the SP3 (CU 4) products with 12.0.6174.8: the GDR path is 12.0.6169–6179
    // (KB5014165 .6169.19, KB5029184 .6179.1), the CU path 12.0.6439–6449.
    let swapped: Vec<(u32, &str)> = jan_2024()
        .repairs()
        .iter()
        .filter(|r| r.kind == RepairKind::SwappedFixedBuild && r.product_name.contains("SQL"))
        .map(|r| (r.kb.number(), r.product_name.as_str()))
        .collect();
    assert!(swapped.contains(&(
        5021037,
        "Microsoft SQL Server 2014 Service Pack 3 for x64-based Systems (GDR)"
    )));
    assert!(swapped.contains(&(
        5021045,
        "Microsoft SQL Server 2014 Service Pack 3 for x64-based Systems (CU 4)"
    )));
    // A GDR machine at the June 2022 GDR build is missing the GDR update KB5021037 at the
    // GDR build; the October 2023 GDR update KB5029184 (.6179.1) came later than this cut.
    let e = explain(
        &cut(2023, 3, 31),
        &workstation(&[("sql_server", "12.0.6169.19")]),
    );
    assert_eq!(missing(&e, "sql_server"), vec![5021037]);
    assert_eq!(fixed_build(&e, 5021037), Some(build("12.0.6174.8")));
}

#[test]
fn exchange_cumulative_updates_and_the_swapped_march_2024_builds() {
    // 2024-Mar: KB5037224 gives the Exchange 2019 CU14 product FixedBuild 15.02.1258.034 and
    // CU13 15.02.1544.011, while CU13 is 15.2.1258.x and CU14 15.2.1544.x.
    let repair = mar_2024()
        .repairs()
        .iter()
        .find(|r| {
            r.kind == RepairKind::SwappedFixedBuild
                && r.kb == kb(5037224)
                && r.product_name == "Microsoft Exchange Server 2019 Cumulative Update 14"
        })
        .expect("the swap is repaired");
    assert!(
        repair.evidence.contains("15.02.1258.034"),
        "{}",
        repair.evidence
    );

    // CU13 at its November 2023 update (KB5032146, 15.2.1258.28): March's update at CU13's
    // own build.
    let cu13 = explain(
        mar_2024(),
        &workstation(&[("exchange_server", "15.2.1258.28")]),
    );
    assert_eq!(missing(&cu13, "exchange_server"), vec![5037224]);
    assert_eq!(fixed_build(&cu13, 5037224), Some(build("15.2.1258.34")));
    // February's CU14 itself (KB5035606, 15.2.1544.4) is for CU14 machines, not CU13's.
    assert!(!cu13.kbs.iter().any(|v| v.verdict.kb == kb(5035606)));
    assert!(!cu13
        .evaluation
        .indeterminate
        .contains(&sw("exchange_server")));

    let cu14 = explain(
        mar_2024(),
        &workstation(&[("exchange_server", "15.2.1544.4")]),
    );
    assert_eq!(missing(&cu14, "exchange_server"), vec![5037224]);
    assert_eq!(fixed_build(&cu14, 5037224), Some(build("15.2.1544.11")));

    // The full archive: CU13's last update is November 2024's KB5049233 (15.2.1258.39).
    let now = explain(full(), &workstation(&[("exchange_server", "15.2.1258.12")]));
    assert_eq!(missing(&now, "exchange_server"), vec![5049233]);
}

#[test]
fn sharepoint_2019_component_chains() {
    // SharePoint Server 2019 gets two packages a month; June 2026's are KB5002874 and
    // KB5002876 (16.0.10417.20153). KB5002650 (Nov 2024) is cited only by an advisory yet
    // links its chain, and KB5002754 (July 2025) names no predecessor although it continues
    // KB5002741's chain.
    let e = explain(
        full(),
        &workstation(&[("sharepoint_server", "16.0.10408.20000")]),
    );
    assert_eq!(missing(&e, "sharepoint_server"), vec![5002874, 5002876]);
    assert!(full().repairs().iter().any(|r| {
        r.kind == RepairKind::ChainLinkMissing
            && r.kb == kb(5002754)
            && r.evidence.contains("KB5002741")
    }));
    // At the March 2024 build (KB5002562 = 16.0.10408.20000) that update is satisfied.
    assert_eq!(verdict(&e, 5002562), (Satisfied::Yes, Rule::Build));
}

#[test]
fn office_2016_with_a_build_misses_the_newest_update_of_each_application() {
    // Office 2016 at 16.0.5413.1000: each application's newest update (Word 2016 and Excel
    // 2016 are one package each) is missing, none of its older ones.
    let e = explain(full(), &workstation(&[("office", "16.0.5413.1000")]));
    let office = missing(&e, "office");
    for app in ["Microsoft Word 2016", "Microsoft Excel 2016"] {
        let of_app: Vec<u32> = office
            .iter()
            .copied()
            .filter(|&n| {
                full().entries().iter().any(|x| {
                    x.kb == kb(n) && x.product_name.starts_with(app) && x.class.package.is_some()
                })
            })
            .collect();
        assert_eq!(of_app, vec![newest_of(full(), app)], "{app}");
    }
    // KB5002730 (16.0.5504.1000) is below the newest Office 2016 builds: not reported.
    assert!(!office.contains(&5002730));
}

#[test]
fn dotnet_follows_the_machines_own_windows_version_and_line() {
    // January 2024: KB5034275 is .NET Framework 3.5 and 4.8 for Windows 10 22H2
    // (4.8.04690.02); KB5034274 is the same month's update for 21H2.
    let m = workstation(&[(".net_framework", "3.5|4.8")]);
    let e = explain(jan_2024(), &m);
    assert_eq!(missing(&e, ".net_framework"), vec![5034275]);
    // The full archive: May 2026's KB5087064 ("3.5 AND 4.8"), not KB5087053 ("3.5 AND
    // 4.8.1"), which is for machines with 4.8.1.
    let e = explain(full(), &m);
    assert_eq!(missing(&e, ".net_framework"), vec![5087064]);
    let e = explain(full(), &workstation(&[(".net_framework", "3.5|4.8.1")]));
    assert_eq!(missing(&e, ".net_framework"), vec![5087053]);
}

#[test]
fn a_product_is_not_patched_by_another_products_update_for_the_same_cve() {
    // February 2023: CVE-2023-21716 (Word remote code execution) is fixed in Word 2016 by
    // KB5002323 and in Office Online Server by KB5002309; each product carries its own copy
    // of the vulnerable code. A machine whose Office Online Server has KB5002309, and whose
    // Office 2016 has none of its updates (a complete list of its own), still misses Word
    // 2016's KB5002323: the CVE is open for Office, whatever another product installed.
    static FEB_2023: OnceLock<Catalog> = OnceLock::new();
    let catalog = FEB_2023.get_or_init(|| {
        kbgap_service::compile(documents(), Some(time::macros::date!(2023 - 02 - 28)))
    });
    let mut m = workstation(&[("office", "2016")]);
    m.software.insert(sw("office_online_server"), None);
    m.installed_kbs.insert(kb(5002309));
    m.complete_update_lists = [sw("office"), sw("office_online_server")].into();
    let e = explain(catalog, &m);
    assert_eq!(verdict(&e, 5002309), (Satisfied::Yes, Rule::InstalledKb));
    assert_eq!(verdict(&e, 5002323), (Satisfied::No, Rule::CompleteKbList));
    assert!(missing(&e, "office").contains(&5002323));
    let word = e.kbs.iter().find(|k| k.verdict.kb == kb(5002323)).unwrap();
    // It closes the CVE, and with it every older Word 2016 CVE it supersedes.
    assert!(word.closes_open_cves.iter().any(|c| c == "CVE-2023-21716"));
    // The evaluation the service stores agrees with the explanation.
    assert_eq!(kbgap_domain::evaluate(catalog, &m), e.evaluation);
}

#[test]
fn a_machine_is_evaluated_in_parts_that_agree_with_the_whole() {
    // Windows 10 22H2 with .NET Framework 3.5/4.8 (whose updates there are their own KBs,
    // never the OS's cumulative update), SQL Server and Office: the OS, the .NET component
    // and each product are separate parts, and the evaluation of the parts is the machine's.
    let m = workstation(&[
        (".net_framework", "3.5|4.8"),
        ("sql_server", "15.0.2101.7"),
        ("office", "16.0.5413.1000"),
    ]);
    let parts = kbgap_domain::parts::split(jan_2024(), &m);
    let kinds: Vec<String> = parts
        .iter()
        .map(|p| match p {
            kbgap_domain::Part::Os(f) => format!("os {}", f.software.len()),
            kbgap_domain::Part::Component(c) => format!("component {}", c.software),
            kbgap_domain::Part::Product(p) => format!("product {}", p.software),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "os 1",
            "component microsoft-_-.net_framework",
            "product microsoft-_-office",
            "product microsoft-_-sql_server",
        ]
    );
    let e = kbgap_domain::evaluate(jan_2024(), &m);
    assert_eq!(e.missing[&sw(".net_framework")], [kb(5034275)].into());
    assert_eq!(e.missing[&sw("sql_server")], [kb(5029377)].into());
    assert_eq!(e, explain(jan_2024(), &m).evaluation);
}
