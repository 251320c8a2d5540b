//! osquery results, osqueryi output, MDE's software inventory export and kbgap's own
//! snapshot files through `import_files`: small hand-written captures in each tool's
//! published format, and the facts they must give.

use std::io::Write;
use std::path::PathBuf;

use kbgap_domain::Arch;
use kbgap_inventory::import::LastSeen;
use kbgap_inventory::{
    import_files, Format, ImportError, ImportOptions, Imported, InputFile, KbSource,
};
use time::macros::datetime;

fn file(name: &str, text: &str) -> InputFile {
    InputFile {
        path: PathBuf::from(name),
        bytes: text.as_bytes().to_vec(),
        modified: Some(datetime!(2024-01-29 08:00 UTC)),
    }
}

fn opts() -> ImportOptions {
    ImportOptions {
        format: Format::Auto,
        last_seen: None,
        now: datetime!(2024-01-30 12:00 UTC),
        arch: None,
    }
}

fn run(files: &[InputFile], o: &ImportOptions) -> Result<Imported, ImportError> {
    import_files(files, o)
}

const OSQUERY_LOG: &str = concat!(
    r#"{"name":"pack_kbgap_os","hostIdentifier":"WIN10-01","calendarTime":"Mon Jan 29 10:00:00 2024 UTC","unixTime":1706522400,"epoch":0,"counter":0,"numerics":false,"decorations":{"host_uuid":"4C4C4544"},"columns":{"name":"Microsoft Windows 10 Enterprise","version":"10.0.19045","major":"10","minor":"0","patch":"","build":"19045","platform":"windows","platform_like":"windows","codename":"Microsoft Windows 10 Enterprise","arch":"64-bit","install_date":"1672531200"},"action":"added"}"#,
    "\n",
    r#"{"name":"pack_kbgap_ubr","hostIdentifier":"WIN10-01","unixTime":1706522400,"epoch":0,"counter":0,"numerics":false,"columns":{"key":"HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion","path":"HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\UBR","name":"UBR","type":"REG_DWORD","data":"3570","mtime":"0"},"action":"added"}"#,
    "\n",
    r#"{"name":"pack_kbgap_patches","hostIdentifier":"WIN10-01","unixTime":1706522400,"epoch":0,"counter":0,"numerics":false,"columns":{"csname":"WIN10-01","hotfix_id":"KB5031356","caption":"http://support.microsoft.com/?kbid=5031356","description":"Security Update","fix_comments":"","installed_by":"NT AUTHORITY\\SYSTEM","install_date":"","installed_on":"10/11/2023"},"action":"added"}"#,
    "\n",
    r#"{"name":"pack_kbgap_patches","hostIdentifier":"WIN10-01","unixTime":1706522400,"epoch":0,"counter":0,"numerics":false,"columns":{"csname":"WIN10-01","hotfix_id":"KB5030841","caption":"","description":"Update","fix_comments":"","installed_by":"NT AUTHORITY\\SYSTEM","install_date":"","installed_on":"10/11/2023"},"action":"added"}"#,
    "\n",
    r#"{"name":"pack_kbgap_programs","hostIdentifier":"WIN10-01","unixTime":1706522400,"epoch":0,"counter":0,"numerics":false,"columns":{"name":"Microsoft Edge","version":"120.0.2210.144","install_location":"","install_source":"","language":"","publisher":"Microsoft Corporation","uninstall_string":"","install_date":"20240110","identifying_number":""},"action":"added"}"#,
    "\n",
    r#"{"name":"pack_kbgap_programs","hostIdentifier":"WIN10-01","unixTime":1706522400,"epoch":0,"counter":0,"numerics":false,"columns":{"name":"7-Zip 23.01 (x64)","version":"23.01","install_location":"","install_source":"","language":"","publisher":"Igor Pavlov","uninstall_string":"","install_date":"","identifying_number":""},"action":"added"}"#,
    "\n",
    // The next day: the LCU replaced; batch format.
    r#"{"name":"pack_kbgap_patches","hostIdentifier":"WIN10-01","calendarTime":"","unixTime":1706608800,"epoch":0,"counter":1,"numerics":false,"decorations":{},"diffResults":{"added":[{"csname":"WIN10-01","hotfix_id":"KB5034122","caption":"","description":"Security Update","fix_comments":"","installed_by":"","install_date":"","installed_on":"1/9/2024"}],"removed":[{"csname":"WIN10-01","hotfix_id":"KB5031356","caption":"http://support.microsoft.com/?kbid=5031356","description":"Security Update","fix_comments":"","installed_by":"NT AUTHORITY\\SYSTEM","install_date":"","installed_on":"10/11/2023"}]}}"#,
    "\n",
    // A Linux host in the same log.
    r#"{"snapshot":[{"name":"Ubuntu","version":"22.04.3 LTS (Jammy Jellyfish)","major":"22","minor":"4","patch":"0","build":"","platform":"ubuntu","platform_like":"debian","codename":"jammy","arch":"x86_64"}],"action":"snapshot","name":"pack_kbgap_os","hostIdentifier":"web-01","calendarTime":"","unixTime":1706608800,"epoch":0,"counter":0,"numerics":false}"#,
    "\n",
);

#[test]
fn osquery_results_log() {
    let i = run(&[file("osqueryd.results.log", OSQUERY_LOG)], &opts()).unwrap();
    assert_eq!(i.snapshots.len(), 1);
    let s = &i.snapshots[0];
    assert_eq!(s.id.as_ref().unwrap().as_str(), "win10-01");
    assert_eq!(
        (
            s.os_platform.as_str(),
            s.os_build.as_str(),
            s.os_architecture.as_str()
        ),
        ("Windows10", "10.0.19045.3570", "x64")
    );
    // os_version's name is the edition.
    assert_eq!(
        s.os_edition.as_deref(),
        Some("Microsoft Windows 10 Enterprise")
    );
    assert_eq!(
        s.edition(),
        Some(kbgap_domain::Edition::EnterpriseEducation)
    );
    assert_eq!(s.installed_kbs, vec!["KB5030841", "KB5034122"]);
    assert!(s.installed_kbs_complete);
    assert_eq!(s.installed_kbs_sources, vec![KbSource::OsqueryPatches]);
    assert_eq!(s.last_seen, datetime!(2024-01-30 10:00 UTC));
    let mut sw: Vec<String> = s
        .software
        .iter()
        .map(|x| x.id.as_ref().unwrap().to_string())
        .collect();
    sw.sort();
    assert_eq!(
        sw,
        vec![
            "igor_pavlov-_-7-zip_23.01_(x64)",
            "microsoft-_-edge_chromium-based",
            "microsoft-_-internet_explorer"
        ]
    );
    assert!(
        i.notes
            .iter()
            .any(|n| n.contains("web-01") && n.contains("ubuntu")),
        "{:?}",
        i.notes
    );
    let f = s.facts().unwrap();
    assert_eq!(f.os.unwrap().revision, Some(3570));
}

#[test]
fn osqueryi_files_of_one_host() {
    let os = r#"[{"arch":"64-bit","build":"22631","codename":"Microsoft Windows 11 Pro","install_date":"1700000000","major":"10","minor":"0","name":"Microsoft Windows 11 Pro","patch":"","platform":"windows","platform_like":"windows","version":"10.0.22631"}]"#;
    let sys = r#"[{"hostname":"LAPTOP-7","uuid":"4C4C4544-0042","cpu_brand":"Intel","computer_name":"LAPTOP-7"}]"#;
    let patches = r#"[
  {"caption":"","csname":"LAPTOP-7","description":"Update","fix_comments":"","hotfix_id":"KB5033055","install_date":"","installed_by":"","installed_on":"12/12/2023"},
  {"caption":"","csname":"LAPTOP-7","description":"Security Update","fix_comments":"","hotfix_id":"KB5033375","install_date":"","installed_by":"","installed_on":"12/12/2023"}
]"#;
    let o = ImportOptions {
        last_seen: Some(LastSeen::FileModified),
        ..opts()
    };
    let i = run(
        &[
            file("os.json", os),
            file("sys.json", sys),
            file("patches.json", patches),
        ],
        &o,
    )
    .unwrap();
    assert_eq!(i.snapshots.len(), 1);
    let s = &i.snapshots[0];
    assert_eq!(s.id.as_ref().unwrap().as_str(), "laptop-7");
    assert_eq!(
        (s.os_platform.as_str(), s.os_build.as_str()),
        ("Windows11", "10.0.22631")
    );
    assert_eq!(s.installed_kbs, vec!["KB5033055", "KB5033375"]);
    assert!(s.installed_kbs_complete);
    assert_eq!(s.last_seen, datetime!(2024-01-29 08:00 UTC));
    // Without a host name anywhere, the machine has no id.
    let e = run(&[file("os.json", os)], &opts()).unwrap_err();
    assert!(e.message.contains("system_info"), "{e}");
}

#[test]
fn osquery_programs_carry_msi_products_and_their_updates() {
    let os = r#"[{"arch":"64-bit","build":"19045","codename":"Microsoft Windows 10 Pro","major":"10","minor":"0","name":"Microsoft Windows 10 Pro","patch":"","platform":"windows","platform_like":"windows","version":"10.0.19045"}]"#;
    let sys = r#"[{"hostname":"OFFICE-7","uuid":"4C4C4544-0043","cpu_brand":"Intel","computer_name":"OFFICE-7"}]"#;
    let patches = r#"[{"caption":"","csname":"OFFICE-7","description":"Security Update","fix_comments":"","hotfix_id":"KB5034122","install_date":"","installed_by":"","installed_on":"1/9/2024"}]"#;
    // Office's ARP version stays at its release build (16.0.4266.1001) however patched it is.
    let programs = r#"[
  {"name":"Microsoft Office Professional Plus 2016","version":"16.0.4266.1001","publisher":"Microsoft Corporation","install_location":"C:\\Program Files\\Microsoft Office\\"},
  {"name":"Security Update for Microsoft Word 2016 (KB5002879) 64-Bit Edition","version":"","publisher":"Microsoft","install_location":""},
  {"name":"Security Update for Microsoft Office 2016 (KB5002878) 64-Bit Edition","version":"","publisher":"Microsoft","install_location":""},
  {"name":"Microsoft SQL Server 2019 (64-bit)","version":"","publisher":"Microsoft Corporation","install_location":""},
  {"name":"7-Zip 23.01 (x64)","version":"23.01","publisher":"Igor Pavlov","install_location":""}
]"#;
    let i = run(
        &[
            file("os.json", os),
            file("sys.json", sys),
            file("patches.json", patches),
            file("programs.json", programs),
        ],
        &opts(),
    )
    .unwrap();
    let s = &i.snapshots[0];
    let by_id = |id: &str| {
        s.software
            .iter()
            .find(|x| x.id.as_ref().map(|i| i.as_str()) == Some(id))
            .unwrap_or_else(|| panic!("{id}: {:?}", s.software))
    };
    let office = by_id("microsoft-_-office");
    assert_eq!(office.version.as_deref(), Some("2016"));
    assert_eq!(office.updates, vec!["KB5002879", "KB5002878"]);
    assert!(office.updates_complete);
    let sql = by_id("microsoft-_-sql_server");
    assert_eq!(
        (
            sql.version.as_deref(),
            sql.updates.len(),
            sql.updates_complete
        ),
        (Some("2019"), 0, false)
    );
    assert_eq!(
        by_id("igor_pavlov-_-7-zip_23.01_(x64)").version.as_deref(),
        Some("23.01")
    );
    // The facts: Windows' list is complete for Windows servicing, Office's own list for
    // Office, and SQL Server's is not known.
    let f = s.facts().unwrap();
    assert_eq!(f.kb_list, kbgap_domain::KbListScope::WindowsServicing);
    assert_eq!(
        f.complete_update_lists
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        vec!["microsoft-_-office"]
    );
    assert_eq!(
        f.installed_kbs
            .iter()
            .map(|k| k.number())
            .collect::<Vec<_>>(),
        vec![5002878, 5002879, 5034122]
    );
}

const MDE: &str = concat!(
    r#"{"DeviceId":"00044f68765bbaf712342dbe6db733b6a9c59ab4","RbacGroupName":"Servers","DeviceName":"sql01.contoso.com","OSPlatform":"WindowsServer2019","SoftwareVendor":"microsoft","SoftwareName":"windows_server_2019","SoftwareVersion":"10.0.17763.5329","NumberOfWeaknesses":0,"DiskPaths":[],"RegistryPaths":[],"SoftwareFirstSeenTimestamp":"2023-12-30 11:07:15","EndOfSupportStatus":"None","EndOfSupportDate":null}"#,
    "\n",
    r#"{"DeviceId":"00044f68765bbaf712342dbe6db733b6a9c59ab4","RbacGroupName":"Servers","DeviceName":"sql01.contoso.com","OSPlatform":"WindowsServer2019","SoftwareVendor":"microsoft","SoftwareName":".net_framework","SoftwareVersion":"4.0.0.0","NumberOfWeaknesses":0,"DiskPaths":[],"RegistryPaths":["SOFTWARE\\Microsoft\\NET Framework Setup\\NDP\\v4.0\\Client\\Install"],"SoftwareFirstSeenTimestamp":"2023-12-30 11:07:15","EndOfSupportStatus":"None","EndOfSupportDate":null}"#,
    "\n",
    r#"{"DeviceId":"00044f68765bbaf712342dbe6db733b6a9c59ab4","RbacGroupName":"Servers","DeviceName":"sql01.contoso.com","OSPlatform":"WindowsServer2019","SoftwareVendor":"microsoft","SoftwareName":".net_framework","SoftwareVersion":"4.8.3761.0","NumberOfWeaknesses":0,"DiskPaths":[],"RegistryPaths":[],"SoftwareFirstSeenTimestamp":"2023-12-30 11:07:15","EndOfSupportStatus":"None","EndOfSupportDate":null}"#,
    "\n",
    r#"{"DeviceId":"9eaf3a8b5962e0e6b1af9ec756664a9b823df2d1","RbacGroupName":"Unassigned","DeviceName":"johnlaptop.europe.contoso.com","OSPlatform":"Windows11","SoftwareVendor":"microsoft","SoftwareName":"windows_11","SoftwareVersion":"10.0.22631.3007","NumberOfWeaknesses":3,"DiskPaths":[],"RegistryPaths":[],"SoftwareFirstSeenTimestamp":"2023-11-02 09:00:00","EndOfSupportStatus":"None","EndOfSupportDate":null}"#,
    "\n",
    r#"{"DeviceId":"1111111111111111111111111111111111111111","RbacGroupName":"Macs","DeviceName":"mac01","OSPlatform":"macOS","SoftwareVendor":"apple","SoftwareName":"macos","SoftwareVersion":"14.2","NumberOfWeaknesses":0,"DiskPaths":[],"RegistryPaths":[],"SoftwareFirstSeenTimestamp":"2023-11-02 09:00:00","EndOfSupportStatus":"None","EndOfSupportDate":null}"#,
    "\n",
);

#[test]
fn mde_software_inventory_export() {
    // A client's architecture is not in the export.
    let e = run(&[file("export.json", MDE)], &opts()).unwrap_err();
    assert_eq!(e.line, Some(4));
    assert!(e.message.contains("--arch"), "{e}");
    let o = ImportOptions {
        arch: Some(Arch::Arm64),
        ..opts()
    };
    // Export files come gzip-compressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(MDE.as_bytes()).unwrap();
    let gz = InputFile {
        path: PathBuf::from("part-00000.json.gz"),
        bytes: gz.finish().unwrap(),
        modified: None,
    };
    let i = run(&[gz], &o).unwrap();
    assert_eq!(i.snapshots.len(), 2);
    let sql = &i.snapshots[0];
    assert_eq!(
        sql.id.as_ref().unwrap().as_str(),
        "00044f68765bbaf712342dbe6db733b6a9c59ab4"
    );
    assert_eq!(
        (
            sql.os_platform.as_str(),
            sql.os_build.as_str(),
            sql.os_architecture.as_str()
        ),
        ("microsoft-_-windows_server_2019", "10.0.17763.5329", "x64")
    );
    assert_eq!(sql.device_group.as_deref(), Some("Servers"));
    assert_eq!(sql.computer_dns_name.as_deref(), Some("sql01.contoso.com"));
    assert_eq!(sql.software.len(), 1);
    assert_eq!(sql.software[0].version.as_deref(), Some("4.8.3761.0"));
    assert!(sql.installed_kbs.is_empty() && !sql.installed_kbs_complete);
    let laptop = &i.snapshots[1];
    assert_eq!(
        (
            laptop.os_architecture.as_str(),
            laptop.device_group.as_deref()
        ),
        ("arm64", None)
    );
    assert_eq!(laptop.last_seen, datetime!(2024-01-30 12:00 UTC));
    assert!(i.notes.iter().any(|n| n.contains("macOS")), "{:?}", i.notes);
    // An API page of the same rows.
    let page = format!(
        r#"{{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Collection(microsoft.windowsDefenderATP.api.AssetSoftware)","value":[{}]}}"#,
        MDE.lines().take(3).collect::<Vec<_>>().join(",")
    );
    assert_eq!(
        run(&[file("page.json", &page)], &opts())
            .unwrap()
            .snapshots
            .len(),
        1
    );
}

#[test]
fn kbgap_snapshot_files_and_format_errors() {
    let line = |id: &str| {
        format!(
            r#"{{"id":"{id}","lastSeen":"2024-01-30T10:00:00Z","osPlatform":"Windows10","osBuild":"10.0.19045.3570","osArchitecture":"x64","software":[{{"vendor":"Microsoft","name":"Internet Explorer","version":"11.0"}}]}}"#
        )
    };
    let nd = format!("{}\n\n{}\n", line("a"), line("b"));
    let i = run(&[file("m.ndjson", &nd)], &opts()).unwrap();
    assert_eq!(i.snapshots.len(), 2);
    let bad = format!(
        "{}\n{}\n",
        line("a"),
        line("b").replace("10.0.19045.3570", "ten")
    );
    let e = run(&[file("m.ndjson", &bad)], &opts()).unwrap_err();
    assert_eq!(
        (e.line, e.message.starts_with("osBuild:")),
        (Some(2), true),
        "{e}"
    );
    let arr = format!("[{},{}]", line("a"), line("b").replace(r#""id":"b","#, ""));
    let e = run(&[file("m.json", &arr)], &opts()).unwrap_err();
    assert!(e.message.starts_with("[1]: id"), "{e}");
    let e = run(&[file("notes.txt", "hello\nworld\n")], &opts()).unwrap_err();
    assert!(e.message.contains("--format"), "{e}");
    // Forced format: a systeminfo parser on a qfe file.
    let o = ImportOptions {
        format: Format::Systeminfo,
        ..opts()
    };
    let e = run(
        &[file("q.txt", "CSName  HotFixID\r\nPC-1    KB5034122\r\n")],
        &o,
    )
    .unwrap_err();
    assert_eq!(e.line, Some(1));
}
