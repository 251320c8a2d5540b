//! The importers on the real captures in ../shared/data/inventory (read in place): every
//! sample imports, and the OS, build, architecture and KB list of at least one sample per
//! language and encoding are pinned; damaged copies fail with the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kbgap_inventory::import::LastSeen;
use kbgap_inventory::{
    import_files, qfe, Format, ImportError, ImportOptions, Imported, InputFile, KbSource, Snapshot,
};
use time::macros::datetime;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/inventory"
);

/// Every sample, read once per test process.
fn samples() -> &'static BTreeMap<String, Vec<u8>> {
    static S: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    S.get_or_init(|| {
        std::fs::read_dir(DIR)
            .expect("../shared/data/inventory is readable")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .filter(|p| !p.to_string_lossy().contains("LICENSE"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect()
    })
}

fn input(name: &str) -> InputFile {
    InputFile {
        path: PathBuf::from(name),
        bytes: samples()[name].clone(),
        modified: None,
    }
}

fn options() -> ImportOptions {
    ImportOptions {
        format: Format::Auto,
        last_seen: Some(LastSeen::At(datetime!(2024-01-30 10:00 UTC))),
        now: datetime!(2024-01-30 12:00 UTC),
        arch: None,
    }
}

fn import(names: &[&str]) -> Result<Imported, ImportError> {
    import_files(
        &names.iter().map(|n| input(n)).collect::<Vec<_>>(),
        &options(),
    )
}

fn one(names: &[&str]) -> Snapshot {
    let mut i = import(names).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(i.snapshots.len(), 1, "{names:?}");
    i.snapshots.remove(0)
}

fn kbs(s: &Snapshot) -> Vec<u32> {
    s.installed_kbs
        .iter()
        .map(|k| k.trim_start_matches("KB").parse().unwrap())
        .collect()
}

#[test]
fn every_sample_imports_with_its_wmic_qfe() {
    let names: Vec<&String> = samples().keys().collect();
    assert_eq!(
        names.iter().filter(|n| n.contains("_systeminfo")).count(),
        49
    );
    assert_eq!(names.iter().filter(|n| n.ends_with("_qfe.txt")).count(), 15);
    let mut qfe_used = 0;
    for n in names.iter().filter(|n| n.contains("_systeminfo")) {
        let mut files = vec![n.as_str()];
        let q = n.replace("systeminfo", "qfe");
        if samples().contains_key(&q) {
            files.push(&q);
            qfe_used += 1;
        }
        let i = import(&files).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(i.snapshots.len(), 1, "{n}");
        assert!(i.kb_updates.is_empty(), "{n}");
        let s = &i.snapshots[0];
        s.facts().unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(s.last_seen, datetime!(2024-01-30 10:00 UTC));
    }
    assert_eq!(qfe_used, 15);
}

/// (file, osPlatform, osBuild, osArchitecture, KBs, complete, id)
type Pin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [u32],
    bool,
    &'static str,
);

#[test]
fn pinned_facts_per_language_encoding_and_version() {
    let pins: &[Pin] = &[
        // English, ASCII, CRLF.
        (
            "10_22H2_x64_enterprise_en-us_systeminfo.txt",
            "Windows10",
            "10.0.19045",
            "x64",
            &[5022502],
            true,
            "desktop-92b51cv",
        ),
        // English, UTF-16LE with BOM.
        (
            "10_1803_x64_proforworkstations_en-us_A_20190305_systeminfo.txt",
            "Windows10",
            "10.0.17134",
            "x64",
            &[4462930, 4485449, 4487038, 4487017],
            true,
            "desktop-oof6nb5",
        ),
        // English in cp437/850: 0xFF (no-break space) as the thousands separator.
        (
            "10_1809_x64_pro_en-us_20190307_systeminfo.txt",
            "Windows10",
            "10.0.17763",
            "x64",
            &[4486553, 4470788, 4480056, 4487038, 4482887],
            true,
            "desktop-loq9l09",
        ),
        // LF line ends.
        (
            "10_21H2_x64_pro_systeminfo.txt",
            "Windows10",
            "10.0.19044",
            "x64",
            &[
                5012117, 4562830, 5003791, 5007401, 5012599, 5011651, 5005699,
            ],
            true,
            "desktop",
        ),
        // Italian, cp850.
        (
            "10_1803_x64_pro_it_systeminfo.txt",
            "Windows10",
            "10.0.17134",
            "x64",
            &[
                4100347, 4338853, 4343669, 4456655, 4465663, 4477137, 4480979, 4485449, 4487038,
                4487017,
            ],
            true,
            "pc044",
        ),
        // Spanish, cp850, host name redacted.
        (
            "10_1809_x64_education_es_systeminfo.txt",
            "Windows10",
            "10.0.17763",
            "x64",
            &[
                4486553, 4465477, 4465664, 4469041, 4470502, 4470788, 4480056, 4487038, 4482887,
            ],
            true,
            "",
        ),
        // Russian, UTF-8.
        (
            "srv_2012r2_x64_standard_ru_systeminfo.txt",
            "WindowsServer2012R2",
            "6.3.9600",
            "x64",
            &[
                2919355, 2919442, 2937220, 2938772, 2939471, 2949621, 2999226,
            ],
            true,
            "dc",
        ),
        // Simplified Chinese, GBK.
        (
            "10_1809_x64_enterprise_zh-cn_systeminfo.txt",
            "Windows10",
            "10.0.17763",
            "x64",
            &[4464455],
            true,
            "desktop-0cqh3p2",
        ),
        (
            "11_24H2_x64_enterprise_systeminfo.txt",
            "Windows11",
            "10.0.26100",
            "x64",
            &[5037589, 5037783, 5039449],
            true,
            "winxi24h2ltsc",
        ),
        (
            "11_23H2_x64_enterprise_systeminfo.txt",
            "Windows11",
            "10.0.22631",
            "x64",
            &[5029921, 5027397, 5031354, 5031592],
            true,
            "desktop-jnekk9u",
        ),
        (
            "srv_2022_systeminfo.txt",
            "WindowsServer2022",
            "10.0.20348",
            "x64",
            &[5004330, 5005039, 5005552],
            true,
            "win-ribn7sm07bk",
        ),
        (
            "srv_2019_rtm_datacenter_en-us_systeminfo.txt",
            "WindowsServer2019",
            "10.0.17763",
            "x64",
            &[4462930, 4470788, 4480056, 4480979, 4480116],
            true,
            "win-o863jaro7cm",
        ),
        (
            "srv_2016_1607_datacenter_en-us_systeminfo.txt",
            "WindowsServer2016",
            "10.0.14393",
            "x64",
            &[4049065, 4091664, 4132216, 4465659, 4483229],
            true,
            "myserver",
        ),
        (
            "8.1_u1_x64_enterprise_en-us_systeminfo.txt",
            "Windows8.1",
            "6.3.9600",
            "x64",
            &[2919355, 2919442, 2937220, 2938772, 2939471, 2949621],
            true,
            "win81u1x64",
        ),
        (
            "7_sp1_x86_enterprise_en-us_systeminfo.txt",
            "Windows7",
            "6.1.7601",
            "x86",
            &[2534111, 976902],
            true,
            "win7sp1x86",
        ),
        (
            "srv_2008r2_sp1_x64_standard_en-us_systeminfo.txt",
            "WindowsServer2008R2",
            "6.1.7601",
            "x64",
            &[958488, 976902],
            true,
            "srv2k8r2sp1x64",
        ),
        (
            "srv_2008_rtm_x86_standard_en-us_systeminfo.txt",
            "WindowsServer2008",
            "6.0.6001",
            "x86",
            &[956250],
            true,
            "srv2k8sp0x86",
        ),
        // "File 1" names an update without its KB: the list is not complete.
        (
            "srv_2003_rtm_x86_standard_en-us_systeminfo.txt",
            "WindowsServer2003",
            "5.2.3790",
            "x86",
            &[147222, 893803],
            false,
            "winsrv2k3sp0x86",
        ),
        (
            "xp_rtm_x86_professional_en-us_systeminfo.txt",
            "WindowsXP",
            "5.1.2600",
            "x86",
            &[147222, 893803],
            false,
            "winxpsp0",
        ),
        // XP x64 shares Server 2003's build.
        (
            "xp_sp2_x64_systeminfo.txt",
            "WindowsXP",
            "5.2.3790",
            "x64",
            &[],
            false,
            "user-8cef73c787",
        ),
    ];
    for &(file, platform, build, arch, want, complete, id) in pins {
        let s = one(&[file]);
        assert_eq!(
            (
                s.os_platform.as_str(),
                s.os_build.as_str(),
                s.os_architecture.as_str()
            ),
            (platform, build, arch),
            "{file}"
        );
        if !want.is_empty() {
            assert_eq!(kbs(&s), want, "{file}");
        }
        assert_eq!(s.installed_kbs_complete, complete, "{file}");
        assert_eq!(
            s.installed_kbs_sources,
            vec![KbSource::Systeminfo],
            "{file}"
        );
        if id.is_empty() {
            assert!(
                s.id.as_ref().unwrap().as_str().starts_with("sysinfo-"),
                "{file}"
            );
        } else {
            assert_eq!(s.id.as_ref().unwrap().as_str(), id, "{file}");
        }
    }
}

#[test]
fn long_lists_french_german_and_old_windows() {
    // French, cp850 with LF line ends, and the same host through PowerShell (UTF-16LE).
    let cmd = one(&["7_sp1_x64_enterprise_fr_systeminfo_cmd.txt"]);
    let ps = one(&["7_sp1_x64_enterprise_fr_systeminfo_powershell.txt"]);
    for (s, n) in [(&cmd, 73), (&ps, 93)] {
        assert_eq!(
            (s.os_platform.as_str(), s.os_build.as_str()),
            ("Windows7", "6.1.7601")
        );
        let k = kbs(s);
        assert_eq!((k.len(), k[0], k[k.len() - 1]), (n, 2491683, 4493472));
        assert!(s.installed_kbs_complete);
    }
    assert_eq!(cmd.id, ps.id);
    // German, UTF-8: systeminfo lists 245 of 263 (three twice): partial.
    let de = one(&["7_sp1_x64_ultimaten_de_systeminfo.txt"]);
    let k = kbs(&de);
    assert_eq!((k.len(), k[0], k[k.len() - 1]), (242, 2849697, 3162835));
    assert!(!de.installed_kbs_complete);
    assert_eq!(de.id.unwrap().as_str(), "oli7-pc");
    // Server 2003 R2: systeminfo's buffer cuts the list inside its 240th id ("KB2862").
    let s = one(&["srv_2003r2_sp2_x86_standard_en-us_systeminfo.txt"]);
    let k = kbs(&s);
    assert_eq!((k.len(), k[k.len() - 1]), (68, 2862152));
    assert!(!s.installed_kbs_complete);
    // Vista SP2: a component GUID in the list.
    let v = one(&["vista_x64_sp2_systeminfo.txt"]);
    assert_eq!(
        (v.os_platform.as_str(), v.os_build.as_str()),
        ("WindowsVista", "6.0.6002")
    );
    assert_eq!((kbs(&v).len(), v.installed_kbs_complete), (174, false));
}

#[test]
fn bundled_components_are_inferred() {
    let sw = |s: &Snapshot| {
        s.software
            .iter()
            .map(|x| {
                format!(
                    "{}@{}",
                    x.id.as_ref().unwrap(),
                    x.version.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sw(&one(&["10_1809_x64_pro_en-us_20190307_systeminfo.txt"])),
        vec![
            "microsoft-_-internet_explorer@11",
            "microsoft-_-edge@10.0.17763"
        ]
    );
    // LTSC has no EdgeHTML.
    assert_eq!(
        sw(&one(&["10_1809_x64_enterprise_zh-cn_systeminfo.txt"])),
        vec!["microsoft-_-internet_explorer@11"]
    );
    // Windows 7 with the IE 11 installer (KB2841134) listed.
    assert_eq!(
        sw(&one(&["7_sp1_x64_enterprise_en-us_A_systeminfo.txt"])),
        vec!["microsoft-_-internet_explorer@11"]
    );
    assert!(sw(&one(&["11_23H2_x64_enterprise_systeminfo.txt"])).is_empty());
}

#[test]
fn wmic_qfe_alone_and_merged() {
    let q = |n: &str| qfe::parse(&samples()[n]).unwrap_or_else(|e| panic!("{n}: {e}"));
    // The file that switches from ASCII to UTF-16LE after "Please wait while WMIC is being
    // installed.", with XP's Q-number.
    let x = q("xp_sp2_x86_qfe.txt");
    assert_eq!(x.encoding, "ASCII, then UTF-16LE");
    assert_eq!(x.hosts.len(), 1);
    assert_eq!(x.hosts[0].host.as_deref(), Some("WINXPSP2"));
    assert_eq!(
        x.hosts[0]
            .kbs
            .iter()
            .map(|k| k.number())
            .collect::<Vec<_>>(),
        vec![147222]
    );
    let x = q("xp_sp2_x64_qfe.txt");
    assert_eq!((x.hosts[0].rows, x.hosts[0].kbs.len()), (300, 150));
    // Russian UTF-8 with a stray shell line before the header.
    let r = q("srv_2012r2_x64_standard_ru_qfe.txt");
    assert_eq!(r.hosts[0].host.as_deref(), Some("DC"));
    assert_eq!(r.hosts[0].kbs.len(), 7);
    // Every qfe sample parses; the empty one has no host.
    for n in samples().keys().filter(|n| n.ends_with("_qfe.txt")) {
        q(n);
    }
    assert!(q("10_1803_x64_proforworkstations_en-us_B_20190306_qfe.txt")
        .hosts
        .is_empty());

    // An explicit zero: systeminfo says `Hotfix(s): N/A` and the same host's wmic qfe
    // capture is empty: the machine has no update installed, a complete and empty list.
    let zero = one(&[
        "10_1803_x64_proforworkstations_en-us_B_20190306_systeminfo.txt",
        "10_1803_x64_proforworkstations_en-us_B_20190306_qfe.txt",
    ]);
    assert_eq!((kbs(&zero).len(), zero.installed_kbs_complete), (0, true));
    assert_eq!(
        zero.installed_kbs_sources,
        vec![KbSource::Systeminfo, KbSource::WmicQfe]
    );
    // Either alone is no evidence: an empty list is a failed collection far more often.
    let alone = one(&["10_1803_x64_proforworkstations_en-us_B_20190306_systeminfo.txt"]);
    assert_eq!(
        (kbs(&alone).len(), alone.installed_kbs_complete),
        (0, false)
    );

    // systeminfo cuts this list at 245 of 273; wmic qfe has all 276 (three more since).
    let merged = one(&[
        "7_sp1_x64_enterprise_en-us_20190305_systeminfo.txt",
        "7_sp1_x64_enterprise_en-us_20190305_qfe.txt",
    ]);
    assert_eq!(kbs(&merged).len(), 276);
    assert!(merged.installed_kbs_complete);
    assert_eq!(
        merged.installed_kbs_sources,
        vec![KbSource::Systeminfo, KbSource::WmicQfe]
    );
    let alone = one(&["7_sp1_x64_enterprise_en-us_20190305_systeminfo.txt"]);
    assert!(!alone.installed_kbs_complete);
    assert!(kbs(&alone).iter().all(|k| kbs(&merged).contains(k)));

    // A qfe capture with a CSName and no systeminfo: a KB update for the stored machine.
    let i = import(&["srv_2012r2_u1_qfe.txt"]).unwrap();
    assert!(i.snapshots.is_empty());
    assert_eq!(i.kb_updates.len(), 1);
    assert_eq!(i.kb_updates[0].id.as_str(), "srv12r2u1x64");
    assert_eq!(
        (i.kb_updates[0].kbs.len(), i.kb_updates[0].complete),
        (154, true)
    );
    // Without a CSName and without its systeminfo, the host is unknown.
    let e = import(&["10_1809_x64_pro_en-us_20190307_qfe.txt"]).unwrap_err();
    assert_eq!(e.file, Path::new("10_1809_x64_pro_en-us_20190307_qfe.txt"));
    assert_eq!(e.line, Some(2));
    assert!(
        e.message
            .contains("10_1809_x64_pro_en-us_20190307_systeminfo.txt"),
        "{e}"
    );
}

#[test]
fn identity_is_stable_and_two_captures_of_a_host_are_refused() {
    let a = one(&["10_1803_x64_enterprise_es-ar_20190307_systeminfo.txt"]);
    let b = one(&["10_1803_x64_enterprise_es-ar_20190307_systeminfo.txt"]);
    assert_eq!(a.id, b.id);
    assert!(a.id.as_ref().unwrap().as_str().starts_with("sysinfo-"));
    // The same host captured twice in one import: ambiguous, nothing imported.
    let e = import(&[
        "10_1809_x64_education_en-us_systeminfo.txt",
        "10_1803_x64_education_en-us_systeminfo.txt",
    ])
    .unwrap_err();
    assert!(e.message.contains("'laptop'"), "{e}");
}

fn damaged(name: &str, bytes: Vec<u8>) -> ImportError {
    import_files(
        &[InputFile {
            path: PathBuf::from(name),
            bytes,
            modified: None,
        }],
        &options(),
    )
    .unwrap_err()
}

#[test]
fn truncated_or_mis_encoded_copies_name_the_file_and_line() {
    // UTF-16LE cut in the middle of a character on line 6.
    let src = &samples()["10_1803_x64_proforworkstations_en-us_A_20190305_systeminfo.txt"];
    let lines6: usize = {
        let mut n = 0;
        let mut at = 2;
        while n < 5 {
            if src[at] == b'\n' && src[at + 1] == 0 {
                n += 1;
            }
            at += 2;
        }
        at + 11
    };
    let e = damaged("cut16.txt", src[..lines6].to_vec());
    assert_eq!(
        (e.file.to_str(), e.line),
        (Some("cut16.txt"), Some(6)),
        "{e}"
    );
    assert!(e.message.contains("truncated"), "{e}");

    // ASCII cut inside the hotfix list: line 100 is "[66]: KB2…" of 273.
    let src = &samples()["7_sp1_x64_enterprise_en-us_20190305_systeminfo.txt"];
    let upto: usize = src
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(98)
        .unwrap()
        .0
        + 35;
    let e = damaged("cut.txt", src[..upto].to_vec());
    assert_eq!(e.line, Some(100), "{e}");
    // Cut at a line end instead: the list is not followed by the next field.
    let upto = src
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(98)
        .unwrap()
        .0
        + 1;
    let e = damaged("cut.txt", src[..upto].to_vec());
    assert_eq!(e.line, Some(99), "{e}");
    assert!(e.message.contains("truncated"), "{e}");

    // The UTF-8 German capture with one byte replaced on line 27: mis-encoded.
    let mut de = samples()["7_sp1_x64_ultimaten_de_systeminfo.txt"].clone();
    let at = de
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(25)
        .unwrap()
        .0
        + 5;
    de[at] = 0xFF;
    let e = damaged("de.txt", de);
    assert_eq!(e.line, Some(27), "{e}");
    assert!(e.message.contains("mis-encoded"), "{e}");

    // GBK with a lead byte and no trail byte at the end of line 2.
    let zh = &samples()["10_1809_x64_enterprise_zh-cn_systeminfo.txt"];
    let nl = zh
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(1)
        .unwrap()
        .0;
    let mut bad = zh[..nl - 1].to_vec();
    bad.push(0xD6);
    bad.extend_from_slice(&zh[nl - 1..]);
    let e = damaged("zh.txt", bad);
    assert_eq!(e.line, Some(2), "{e}");

    // A wmic qfe row cut inside its HotFixID.
    let q = &samples()["srv_2012r2_x64_standard_ru_qfe.txt"];
    let cut = q.windows(9).position(|w| w == b"KB2938772").unwrap() + 4;
    let e = damaged("q.txt", q[..cut].to_vec());
    assert_eq!(e.line, Some(6), "{e}");
}

#[test]
fn systeminfo_names_the_edition_in_any_language() {
    use kbgap_domain::Edition;
    for (sample, name, edition) in [
        (
            "10_1809_x64_enterprise_zh-cn_systeminfo.txt",
            "Microsoft Windows 10 企业版 LTSC",
            Some(Edition::Ltsc),
        ),
        (
            "10_1803_x64_pro_it_systeminfo.txt",
            "Microsoft Windows 10 Pro",
            Some(Edition::HomePro),
        ),
        (
            "7_sp1_x64_enterprise_fr_systeminfo_powershell.txt",
            // The French capture writes a no-break space after "Windows".
            "Microsoft Windows\u{a0}7 Entreprise N",
            Some(Edition::EnterpriseEducation),
        ),
        (
            "11_22H2_x64_home-single-language_systeminfo.txt",
            "Microsoft Windows 11 Home Single Language",
            Some(Edition::HomePro),
        ),
        (
            "srv_2019_rtm_datacenter_en-us_systeminfo.txt",
            "Microsoft Windows Server 2019 Datacenter",
            Some(Edition::Server),
        ),
    ] {
        let s = one(&[sample]);
        assert_eq!(s.os_edition.as_deref(), Some(name), "{sample}");
        assert_eq!(s.edition(), edition, "{sample}");
    }
}
