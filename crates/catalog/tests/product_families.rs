//! The product table, family by family: each test pins real MSRC product names (copied from
//! the archive) to exactly what they mean, and one test checks no family goes untested.

use kbgap_catalog::{classify, families, Classification, ProductTrack};
use kbgap_domain::product::{Arch, HostOs, InstallType, Normalized, ProductClass, ProductUpdates};
use kbgap_domain::SoftwareId;

use Arch::*;
use InstallType::*;
use ProductTrack::*;

/// Every family a test below pins, checked against the table by `every_family_is_pinned`.
const PINNED: &[&str] = &[
    "Windows 10",
    "Windows 11",
    "Windows 7",
    "Windows 8.1",
    "Windows Vista",
    "Windows Server 2008 R2",
    "Windows Server 2008",
    "Windows Server (semi-annual)",
    "Windows Server 2016+",
    "Windows Server 2012 / 2012 R2",
    "Azure Stack HCI",
    "Windows XP / Server 2003",
    "Linux",
    "macOS",
    "Microsoft Edge (Chromium-based)",
    "Microsoft Edge (EdgeHTML)",
    "Internet Explorer",
    "Adobe Flash Player",
    ".NET Framework",
    "Windows components",
    "Microsoft Defender",
    "Microsoft 365 Apps / Click-to-Run",
    "Office (MSI)",
    "SharePoint",
    "Office Online Server / Web Apps",
    "Exchange Server",
    "Skype for Business / Lync Server",
    "SQL Server",
    "Host Integration Server",
    "Visual Studio",
    ".NET",
    "Silverlight",
    "Dynamics",
    "System Center",
    "Identity and integration servers",
    "Azure agents on Windows",
    "Run-once tools",
    "Server applications with own installers",
    "Devices and firmware",
    "Mobile",
    "Store apps and extensions",
    "Developer libraries and SDKs",
    "Windows development kits",
    "Cloud services",
    "Desktop tools (version-fixed)",
    "Games and consumer apps",
    "Placeholders",
];

#[test]
fn every_family_is_pinned() {
    let table = families();
    let missing: Vec<&&str> = table.iter().filter(|f| !PINNED.contains(f)).collect();
    assert!(
        missing.is_empty(),
        "families without a pinned test: {missing:?}"
    );
    let stale: Vec<&&str> = PINNED.iter().filter(|f| !table.contains(f)).collect();
    assert!(
        stale.is_empty(),
        "pinned families not in the table: {stale:?}"
    );
}

fn host(os: &str, build: u32, arch: Arch, install_type: InstallType) -> HostOs {
    HostOs {
        software: SoftwareId::microsoft(os),
        build,
        arch,
        install_type,
    }
}

/// An expected mapping, built field by field.
struct Want {
    family: &'static str,
    software: SoftwareId,
    line: Option<&'static str>,
    host: Option<HostOs>,
    arch: Option<Arch>,
    component: Option<&'static str>,
    package: Option<&'static str>,
    servicing: Option<&'static str>,
    install: Option<&'static str>,
    track: Option<ProductTrack>,
    hotpatch: bool,
    version_fixed: bool,
}

fn want(family: &'static str, software: &str) -> Want {
    Want {
        family,
        software: if software.contains("-_-") {
            SoftwareId::parse(software).unwrap_or_else(|e| panic!("{e}"))
        } else {
            SoftwareId::microsoft(software)
        },
        line: None,
        package: None,
        host: None,
        arch: None,
        component: None,
        servicing: None,
        install: None,
        track: None,
        hotpatch: false,
        version_fixed: false,
    }
}

impl Want {
    fn line(mut self, l: &'static str) -> Self {
        self.line = Some(l);
        self
    }
    fn on(mut self, h: HostOs) -> Self {
        self.arch = Some(h.arch);
        self.host = Some(h);
        self
    }
    fn arch(mut self, a: Arch) -> Self {
        self.arch = Some(a);
        self
    }
    fn component(mut self, c: &'static str) -> Self {
        self.component = Some(c);
        self
    }
    fn package(mut self, p: &'static str) -> Self {
        self.package = Some(p);
        self
    }
    fn servicing(mut self, s: &'static str) -> Self {
        self.servicing = Some(s);
        self
    }
    fn install(mut self, i: &'static str) -> Self {
        self.install = Some(i);
        self
    }
    fn track(mut self, t: ProductTrack) -> Self {
        self.track = Some(t);
        self
    }
    fn version_fixed(mut self) -> Self {
        self.version_fixed = true;
        self.track = Some(VersionFixed);
        self
    }
    fn classification(self) -> Classification {
        let updates = match (self.host.is_none(), self.track) {
            (true, Some(Cumulative)) => ProductUpdates::Cumulative,
            (true, Some(CumulativePerRelease)) => ProductUpdates::CumulativePerRelease,
            (true, Some(Components)) => ProductUpdates::Components,
            _ => ProductUpdates::Standalone,
        };
        Classification {
            family: self.family,
            normalized: Normalized::Mapped(ProductClass {
                software: self.software,
                version_line: self.line.map(String::from),
                host: self.host,
                hotpatch: self.hotpatch,
                version_fixed: self.version_fixed,
                servicing: self.servicing.map(String::from),
                updates,
                package: self.package.map(String::from),
            }),
            arch: self.arch,
            component: self.component.map(String::from),
            servicing: self.servicing.map(String::from),
            install: self.install.map(String::from),
            track: self.track,
        }
    }
}

/// An OS product: its own host.
fn os(
    family: &'static str,
    sw: &str,
    build: u32,
    arch: Arch,
    it: InstallType,
    t: ProductTrack,
) -> Want {
    want(family, sw).on(host(sw, build, arch, it)).track(t)
}

fn check(cases: Vec<(&str, Want)>) {
    for (name, w) in cases {
        assert_eq!(classify(name), w.classification(), "{name}");
    }
}

fn out(name: &str, family: &str, reason: &str) {
    let c = classify(name);
    assert_eq!(
        (c.family, c.normalized),
        (family, Normalized::OutOfScope(leak(reason))),
        "{name}"
    );
}

fn leak(s: &str) -> &'static str {
    // Normalized::OutOfScope holds a &'static str; tests compare by value.
    Box::leak(s.to_string().into_boxed_str())
}

#[test]
fn windows_client() {
    check(vec![
        (
            "Windows 7 for x64-based Systems Service Pack 1",
            os("Windows 7", "windows_7", 7601, X64, Full, Rollup),
        ),
        (
            "Windows 8.1 for 32-bit systems",
            os("Windows 8.1", "windows_8.1", 9600, X86, Full, Rollup),
        ),
        (
            "Windows RT 8.1",
            os("Windows 8.1", "windows_rt_8.1", 9600, Arm64, Full, Rollup),
        ),
        (
            "Windows Vista x64 Edition Service Pack 2",
            os("Windows Vista", "windows_vista", 6002, X64, Full, Rollup),
        ),
        (
            "Windows 10 for 32-bit Systems",
            os("Windows 10", "windows_10", 10240, X86, Full, Lcu),
        ),
        (
            "Windows 10 Version 1809 for ARM64-based Systems",
            os("Windows 10", "windows_10", 17763, Arm64, Full, Lcu),
        ),
        (
            "Windows 10 Version 21H2 for 32-bit Systems",
            os("Windows 10", "windows_10", 19044, X86, Full, Lcu),
        ),
        (
            "Windows 10 Version 22H2 for x64-based Systems",
            os("Windows 10", "windows_10", 19045, X64, Full, Lcu),
        ),
        (
            "Windows 11 for x64-based Systems",
            os("Windows 11", "windows_11", 22000, X64, Full, Lcu),
        ),
        (
            "Windows 11 Version 23H2 for ARM64-based Systems",
            os("Windows 11", "windows_11", 22631, Arm64, Full, Lcu),
        ),
        (
            "Windows 11 Version 25H2 for ARM systems",
            os("Windows 11", "windows_11", 26200, Arm64, Full, Lcu),
        ),
        (
            "Windows 11 Version 26H1 for x64-based Systems - extra",
            os("Windows 11", "windows_11", 28000, X64, Full, Lcu),
        ),
    ]);
    out(
        "Windows 10 Version 1809 for HoloLens",
        "Windows 10",
        "HoloLens (not an MDE platform)",
    );
}

#[test]
fn windows_server() {
    check(vec![
        (
            "Windows Server 2008 for 32-bit Systems Service Pack 2 (Server Core installation)",
            os(
                "Windows Server 2008",
                "windows_server_2008",
                6003,
                X86,
                ServerCore,
                Rollup,
            ),
        ),
        (
            "Windows Server 2008 for x64-based Systems (Server Core installation)",
            os(
                "Windows Server 2008",
                "windows_server_2008",
                6003,
                X64,
                ServerCore,
                Rollup,
            ),
        ),
        (
            "Windows Server 2008 R2 for Itanium-Based Systems Service Pack 1",
            os(
                "Windows Server 2008 R2",
                "windows_server_2008_r2",
                7601,
                Itanium,
                Full,
                Rollup,
            ),
        ),
        (
            "Windows Server 2012",
            os(
                "Windows Server 2012 / 2012 R2",
                "windows_server_2012",
                9200,
                X64,
                Full,
                Rollup,
            ),
        ),
        (
            "Windows Server 2012 R2 (Server Core installation)",
            os(
                "Windows Server 2012 / 2012 R2",
                "windows_server_2012_r2",
                9600,
                X64,
                ServerCore,
                Rollup,
            ),
        ),
        (
            "Windows Server 2016  (Server Core installation)",
            os(
                "Windows Server 2016+",
                "windows_server_2016",
                14393,
                X64,
                ServerCore,
                Lcu,
            ),
        ),
        (
            "Windows Server 2019",
            os(
                "Windows Server 2016+",
                "windows_server_2019",
                17763,
                X64,
                Full,
                Lcu,
            ),
        ),
        (
            "Windows Server 2022 (Server Core installation)",
            os(
                "Windows Server 2016+",
                "windows_server_2022",
                20348,
                X64,
                ServerCore,
                Lcu,
            ),
        ),
        (
            "Windows Server 2025",
            os(
                "Windows Server 2016+",
                "windows_server_2025",
                26100,
                X64,
                Full,
                Lcu,
            ),
        ),
        (
            "Windows Server, version 1709  (Server Core Installation)",
            os(
                "Windows Server (semi-annual)",
                "windows_server_1709",
                16299,
                X64,
                ServerCore,
                Lcu,
            ),
        ),
        (
            "Windows Server 2022, 23H2 Edition (Server Core installation)",
            os(
                "Windows Server (semi-annual)",
                "windows_server_23h2",
                25398,
                X64,
                ServerCore,
                Lcu,
            ),
        ),
        (
            "Azure Stack HCI OS 22H2",
            os("Azure Stack HCI", "azure_stack_hci", 20348, X64, Full, Lcu),
        ),
    ]);
    out(
        "Microsoft Windows XP Service Pack 3",
        "Windows XP / Server 2003",
        "Windows XP / Server 2003 (out of support before 2016)",
    );
    // A component on an out-of-scope host is out of scope with it.
    out(
        "Microsoft .NET Framework 3.5.1 on Microsoft Windows Server 2003 x64 Edition Service Pack 2",
        "Windows XP / Server 2003",
        "Windows XP / Server 2003 (out of support before 2016)",
    );
}

#[test]
fn browsers() {
    let w10_1909 = host("windows_10", 18363, X64, Full);
    check(vec![
        ("Internet Explorer 11 on Windows 10 Version 1909 for x64-based Systems", want("Internet Explorer", "internet_explorer").line("11").on(w10_1909.clone()).track(Lcu)),
        ("Internet Explorer 11 on Windows 7 for 32-bit Systems Service Pack 1", want("Internet Explorer", "internet_explorer").line("11").on(host("windows_7", 7601, X86, Full)).track(IeCumulative)),
        ("Internet Explorer 9 on Windows Server 2008 for x64-based Systems Service Pack 2", want("Internet Explorer", "internet_explorer").line("9").on(host("windows_server_2008", 6003, X64, Full)).track(IeCumulative)),
        ("Microsoft Edge (EdgeHTML-based) on Windows 10 Version 1909 for x64-based Systems", want("Microsoft Edge (EdgeHTML)", "edge").on(w10_1909.clone()).track(Lcu)),
        ("Microsoft Edge on Windows 10 Version 1909 for x64-based Systems", want("Microsoft Edge (EdgeHTML)", "edge").on(w10_1909).track(Lcu)),
        ("Microsoft Edge (Chromium-based)", want("Microsoft Edge (Chromium-based)", "edge_chromium-based").version_fixed()),
        ("Microsoft Edge (Chromium-based) Extended Stable", want("Microsoft Edge (Chromium-based)", "edge_chromium-based").version_fixed()),
        ("Microsoft Edge (Chromium-based) in IE Mode on Windows 10 Version 1809 for x64-based Systems", want("Microsoft Edge (Chromium-based)", "edge_chromium-based").version_fixed()),
    ]);
    check(vec![
        (
            "Adobe Flash Player on Windows 10 Version 1809 for 32-bit Systems",
            want("Adobe Flash Player", "adobe-_-flash_player")
                .on(host("windows_10", 17763, X86, Full))
                .track(Cumulative),
        ),
        (
            "Adobe Flash Player on Windows Server, version 1709  (Server Core Installation)",
            want("Adobe Flash Player", "adobe-_-flash_player")
                .on(host("windows_server_1709", 16299, X64, ServerCore))
                .track(Cumulative),
        ),
    ]);
    out(
        "Microsoft Edge for Android",
        "Mobile",
        "mobile or mixed-reality app (not a Windows machine)",
    );
}

#[test]
fn dotnet_framework_and_dotnet() {
    let s2019 = host("windows_server_2019", 17763, X64, Full);
    check(vec![
        ("Microsoft .NET Framework 4.8 on Windows 10 Version 22H2 for x64-based Systems", want(".NET Framework", ".net_framework").line("4.8").on(host("windows_10", 19045, X64, Full)).track(Cumulative)),
        ("Microsoft .NET Framework 3.5 AND 4.7.2 on Windows Server 2019", want(".NET Framework", ".net_framework").line("3.5|4.7.2").on(s2019).track(Cumulative)),
        ("Microsoft .NET Framework 3.5 AND 4.6.2/4.7/4.7.1/4.7.2 on Windows 10 Version 1607 for 32-bit Systems", want(".NET Framework", ".net_framework").line("3.5|4.6.2|4.7|4.7.1|4.7.2").on(host("windows_10", 14393, X86, Full)).track(Cumulative)),
        ("Microsoft .NET Framework 2.0 Service Pack 2 on Windows Server 2008 for Itanium-Based Systems Service Pack 2", want(".NET Framework", ".net_framework").line("2.0").on(host("windows_server_2008", 6003, Itanium, Full)).track(Rollup)),
        ("Microsoft .NET Framework 3.5.1 on Windows Server 2008 R2 for x64-based Systems Service Pack 1 (Server Core installation)", want(".NET Framework", ".net_framework").line("3.5.1").on(host("windows_server_2008_r2", 7601, X64, ServerCore)).track(Rollup)),
        ("Microsoft .NET Framework 4.5.2 on Windows RT 8.1", want(".NET Framework", ".net_framework").line("4.5.2").on(host("windows_rt_8.1", 9600, Arm64, Full)).track(Rollup)),
        (".NET 8.0 installed on Windows", want(".NET", ".net").line("8.0").track(Standalone)),
        (".NET 7.0", want(".NET", ".net").line("7.0").track(Standalone)),
        (".NET Core 3.1", want(".NET", ".net_core").line("3.1").track(Standalone)),
        ("ASP.NET Core 9.0", want(".NET", "asp.net_core").line("9.0").track(Standalone)),
        ("Mono Framework Version 5.0.0.48", want(".NET", "mono_framework").line("5.0.0.48").track(Standalone)),
        ("PowerShell 7.5 installed on Windows", want(".NET", "powershell").line("7.5").version_fixed()),
    ]);
    out(
        ".NET 9.0 installed on Mac OS",
        "macOS",
        "macOS software (kbgap evaluates Windows machines)",
    );
    out(
        ".NET Framework 4.7.2 Developer Pack",
        ".NET Framework",
        "developer tool (no runtime, updated by reinstalling)",
    );
}

#[test]
fn windows_components_and_defender() {
    check(vec![
        ("Microsoft XML Core Services 3.0 on Windows 7 for x64-based Systems Service Pack 1", want("Windows components", "xml_core_services").line("3.0").on(host("windows_7", 7601, X64, Full)).track(Rollup)),
        ("VBScript 5.8 on Windows Server 2008 R2 for x64-based Systems Service Pack 1", want("Windows components", "vbscript").line("5.8").on(host("windows_server_2008_r2", 7601, X64, Full)).track(Rollup)),
        ("JScript 5.8 on Windows Server 2008 R2 for x64-based Systems Service Pack 1", want("Windows components", "jscript").line("5.8").on(host("windows_server_2008_r2", 7601, X64, Full)).track(Rollup)),
        ("Microsoft Windows Hyperlink Object Library on Windows Vista Service Pack 2", want("Windows components", "windows_hyperlink_object_library").on(host("windows_vista", 6002, X86, Full)).track(Standalone)),
        ("Microsoft Defender for Endpoint for Windows on Windows Server 2019 (Server Core installation)", want("Microsoft Defender", "defender_for_endpoint").on(host("windows_server_2019", 17763, X64, ServerCore)).track(Lcu)),
        ("Microsoft Defender for Endpoint for Windows on Windows Server 2012 R2", want("Microsoft Defender", "defender_for_endpoint").on(host("windows_server_2012_r2", 9600, X64, Full)).track(Rollup)),
        ("Windows Defender on Windows 8.1 for x64-based systems", want("Microsoft Defender", "windows_defender").on(host("windows_8.1", 9600, X64, Full)).version_fixed()),
        ("Microsoft Security Essentials", want("Microsoft Defender", "windows_defender").version_fixed()),
    ]);
}

#[test]
fn office_msi_and_click_to_run() {
    check(vec![
        (
            "Microsoft Office 2010 Service Pack 2 (32-bit editions)",
            want("Office (MSI)", "office")
                .line("2010")
                .arch(X86)
                .component("office")
                .install("msi")
                .track(Components),
        ),
        (
            "Microsoft Office 2013 Service Pack 1 (64-bit editions)",
            want("Office (MSI)", "office")
                .line("2013")
                .arch(X64)
                .component("office")
                .install("msi")
                .track(Components),
        ),
        (
            "Microsoft Office 2016 (64-bit edition)",
            want("Office (MSI)", "office")
                .line("2016")
                .arch(X64)
                .component("office")
                .install("msi")
                .track(Components),
        ),
        (
            "Microsoft Word 2016 (32-bit edition)",
            want("Office (MSI)", "office")
                .line("2016")
                .arch(X86)
                .component("word")
                .install("msi")
                .package("word")
                .track(Components),
        ),
        (
            "Microsoft Excel 2013 RT Service Pack 1",
            want("Office (MSI)", "office")
                .line("2013")
                .component("excel")
                .install("rt")
                .track(Components),
        ),
        (
            "Microsoft Publisher 2013 Service Pack 1 RT",
            want("Office (MSI)", "office")
                .line("2013")
                .component("publisher")
                .install("rt")
                .track(Components),
        ),
        (
            "Microsoft Excel 2007 Service Pack 3",
            want("Office (MSI)", "office")
                .line("2007")
                .component("excel")
                .install("msi")
                .package("excel")
                .track(Components),
        ),
        (
            "Microsoft Infopath 2013 Service Pack 1 (64-bit edition)",
            want("Office (MSI)", "office")
                .line("2013")
                .arch(X64)
                .component("infopath")
                .install("msi")
                .package("infopath")
                .track(Components),
        ),
        (
            "Microsoft Visio 2016 (32-bit edition)",
            want("Office (MSI)", "visio")
                .line("2016")
                .arch(X86)
                .install("msi")
                .package("visio")
                .track(Components),
        ),
        (
            "Microsoft Project 2013 Service Pack 1 (64-bit editions)",
            want("Office (MSI)", "project")
                .line("2013")
                .arch(X64)
                .install("msi")
                .package("project")
                .track(Components),
        ),
        (
            "Microsoft Excel Viewer 2007 Service Pack 3",
            want("Office (MSI)", "excel_viewer")
                .line("2007")
                .install("msi")
                .track(Components),
        ),
        (
            "Microsoft Office Compatibility Pack Service Pack 3",
            want("Office (MSI)", "office_compatibility_pack")
                .servicing("service pack 3")
                .install("msi")
                .track(Components),
        ),
        (
            "Skype for Business 2016 (64-bit)",
            want("Office (MSI)", "skype_for_business")
                .line("2016")
                .arch(X64)
                .install("msi")
                .track(Components),
        ),
        (
            "Microsoft Lync Basic 2013 Service Pack 1 (32-bit)",
            want("Office (MSI)", "lync")
                .line("2013")
                .arch(X86)
                .component("basic")
                .install("msi")
                .track(Components),
        ),
        (
            "Microsoft Lync 2010 Attendee (user level install)",
            want("Office (MSI)", "lync_attendee")
                .line("2010")
                .install("user level")
                .track(Components),
        ),
        (
            "Microsoft Live Meeting 2007 Console",
            want("Office (MSI)", "live_meeting")
                .line("2007")
                .component("console")
                .track(Components),
        ),
        (
            "Microsoft Office 2019 for 32-bit editions",
            want("Microsoft 365 Apps / Click-to-Run", "office")
                .line("2019")
                .arch(X86)
                .install("click-to-run")
                .version_fixed(),
        ),
        (
            "Microsoft Office LTSC 2021 for 64-bit editions",
            want("Microsoft 365 Apps / Click-to-Run", "office")
                .line("2021")
                .arch(X64)
                .install("click-to-run")
                .version_fixed(),
        ),
        (
            "Microsoft 365 Apps for Enterprise for 64-bit Systems",
            want("Microsoft 365 Apps / Click-to-Run", "microsoft_365_apps")
                .arch(X64)
                .install("click-to-run")
                .version_fixed(),
        ),
        (
            "Office 365 ProPlus for 32-bit Systems",
            want("Microsoft 365 Apps / Click-to-Run", "microsoft_365_apps")
                .arch(X86)
                .install("click-to-run")
                .version_fixed(),
        ),
        (
            "Microsoft Excel 2016 Click-to-Run (C2R) for 32-bit editions",
            want("Microsoft 365 Apps / Click-to-Run", "office")
                .line("2016")
                .arch(X86)
                .component("excel")
                .install("click-to-run")
                .version_fixed(),
        ),
    ]);
    out(
        "Microsoft Office 2016 for Mac",
        "macOS",
        "macOS software (kbgap evaluates Windows machines)",
    );
}

#[test]
fn office_servers() {
    check(vec![
        ("Microsoft SharePoint Enterprise Server 2016", want("SharePoint", "sharepoint_server").line("2016").component("enterprise").track(Components)),
        ("Microsoft SharePoint Server 2019", want("SharePoint", "sharepoint_server").line("2019").track(Components)),
        ("Microsoft SharePoint Server Subscription Edition", want("SharePoint", "sharepoint_server").line("subscription edition").track(Components)),
        ("Microsoft SharePoint Foundation 2013 Service Pack 1", want("SharePoint", "sharepoint_foundation").line("2013").track(Components)),
        ("Excel Services on Microsoft SharePoint Server 2007 Service Pack 3 (64-bit edition) Bad", want("SharePoint", "sharepoint_server").line("2007").arch(X64).component("excel services").track(Components)),
        ("Microsoft SharePoint Server 2010 Service Pack 2 on Word Automation Services", want("SharePoint", "sharepoint_server").line("2010").component("word automation services").track(Components)),
        ("Microsoft Project Server 2013 Service Pack 1 (64-bit edition)", want("SharePoint", "project_server").line("2013").arch(X64).track(Components)),
        ("Microsoft Business Productivity Servers 2010 Service Pack 2", want("SharePoint", "business_productivity_servers").line("2010").track(Components)),
        ("Office Online Server", want("Office Online Server / Web Apps", "office_online_server").track(Components)),
        ("Microsoft Office Web Apps Server 2013 Service Pack 1", want("Office Online Server / Web Apps", "office_web_apps_server").line("2013").track(Components)),
        ("Microsoft Excel Web App 2010 Service Pack 2", want("Office Online Server / Web Apps", "office_web_apps").line("2010").component("excel").track(Components)),
        ("Microsoft Exchange Server 2016 Cumulative Update 23", want("Exchange Server", "exchange_server").line("2016").servicing("cumulative update 23").track(CumulativePerRelease)),
        ("Microsoft Exchange Server 2019", want("Exchange Server", "exchange_server").line("2019").track(CumulativePerRelease)),
        ("Microsoft Exchange Server 2010 Service Pack 3 Update Rollup 31", want("Exchange Server", "exchange_server").line("2010").servicing("service pack 3 update rollup 31").track(CumulativePerRelease)),
        ("Microsoft Exchange Server Subscription Edition RTM", want("Exchange Server", "exchange_server").line("subscription edition").servicing("rtm").track(CumulativePerRelease)),
        ("Skype for Business Server 2019 CU7", want("Skype for Business / Lync Server", "skype_for_business_server").line("2019").servicing("cu7").track(Standalone)),
        ("Microsoft Lync Server 2013 CU10", want("Skype for Business / Lync Server", "lync_server").line("2013").servicing("cu10").track(Standalone)),
    ]);
    out(
        "Microsoft SharePoint Online",
        "Dynamics",
        "cloud service (no installable KB)",
    );
}

#[test]
fn sql_server() {
    check(vec![
        ("Microsoft SQL Server 2019 for x64-based Systems (GDR)", want("SQL Server", "sql_server").line("2019").arch(X64).servicing("gdr").track(Cumulative)),
        ("Microsoft SQL Server 2022 for x64-based Systems (CU 13)", want("SQL Server", "sql_server").line("2022").arch(X64).servicing("cu 13").track(Cumulative)),
        ("Microsoft SQL Server 2014 Service Pack 3 for 32-bit Systems (CU 4)", want("SQL Server", "sql_server").line("2014").arch(X86).servicing("service pack 3 cu 4").track(Cumulative)),
        ("Microsoft SQL Server 2012 for 32-bit Systems Service Pack 3  (GDR)", want("SQL Server", "sql_server").line("2012").arch(X86).servicing("service pack 3 gdr").track(Cumulative)),
        ("Microsoft SQL Server 2008 R2 for x64-Based Systems Service Pack 3 (QFE)", want("SQL Server", "sql_server").line("2008 r2").arch(X64).servicing("service pack 3 qfe").track(Cumulative)),
        ("Microsoft SQL Server 2016 for x64-based Systems Service Pack 3 Azure Connect Feature Pack", want("SQL Server", "sql_server").line("2016").arch(X64).servicing("service pack 3 azure connect feature pack").track(Cumulative)),
        ("Microsoft SQL Server 2025 for x64-based Systems (CU2)", want("SQL Server", "sql_server").line("2025").arch(X64).servicing("cu2").track(Cumulative)),
        ("Microsoft ODBC Driver 18 for SQL Server on Windows", want("SQL Server", "odbc_driver_for_sql_server").line("18").track(Standalone)),
        ("Microsoft OLE DB Driver 19 for SQL Server", want("SQL Server", "ole_db_driver_for_sql_server").line("19").track(Standalone)),
        ("SQL Server Management Studio 18.6", want("SQL Server", "sql_server_management_studio").line("18.6").version_fixed()),
        ("Host Integration Server 2020", want("Host Integration Server", "host_integration_server").line("2020").track(Standalone)),
        ("Microsoft OLE DB Provider for DB2 V7", want("Host Integration Server", "ole_db_provider_for_db2").line("7").track(Standalone)),
    ]);
    out(
        "SQL Server 2019 for Linux Containers",
        "Linux",
        "Linux package",
    );
    out(
        "SQL Server 2019 Big Data Clusters",
        "SQL Server",
        "Kubernetes deployment (container images, no KB)",
    );
}

#[test]
fn visual_studio_and_developer_tools() {
    check(vec![
        ("Microsoft Visual Studio 2015 Update 3", want("Visual Studio", "visual_studio").line("2015").servicing("update 3").track(Standalone)),
        ("Microsoft Visual Studio 2010 Service Pack 1", want("Visual Studio", "visual_studio").line("2010").servicing("service pack 1").track(Standalone)),
        ("Microsoft Visual Studio 2019 version 16.11 (includes 16.0 - 16.10)", want("Visual Studio", "visual_studio").line("2019").servicing("16.11").version_fixed()),
        ("Microsoft Visual Studio 2022 version 17.8", want("Visual Studio", "visual_studio").line("2022").servicing("17.8").version_fixed()),
        ("Visual Studio 2010 Tools for Office Runtime", want("Visual Studio", "visual_studio_tools_for_office_runtime").line("2010").track(Standalone)),
        ("ASP.NET MVC 5.2 on Microsoft Visual Studio 2015 Update 3", want("Visual Studio", "asp.net_mvc").line("5.2").track(Standalone)),
        ("Expression Blend 4 Service Pack 3", want("Visual Studio", "expression_blend").line("4").track(Standalone)),
        ("Team Foundation Server 2010 SP1 (x64)", want("Visual Studio", "team_foundation_server").line("2010").arch(X64).servicing("sp1").track(Standalone)),
        ("Visual Studio Code", want("Visual Studio", "visual_studio_code").version_fixed()),
        ("Microsoft Silverlight 5 Developer Runtime when installed on Microsoft Windows (x64-based)", want("Silverlight", "silverlight").line("5").arch(X64).component("developer runtime").track(Standalone)),
        ("Sysinternals Suite", want("Desktop tools (version-fixed)", "sysinternals_suite").version_fixed()),
    ]);
    out(
        "Visual Studio 2019 for Mac version 8.10",
        "macOS",
        "macOS software (kbgap evaluates Windows machines)",
    );
    out(
        "Python extension for Visual Studio Code",
        "Store apps and extensions",
        "Store app or extension, updated by the Store or its host application",
    );
    out(
        "Azure Identity Library for .NET",
        "Developer libraries and SDKs",
        "developer library or SDK (updated by its package manager)",
    );
    out(
        "Microsoft.Data.SqlClient 5.1",
        "Developer libraries and SDKs",
        "developer library or SDK (updated by its package manager)",
    );
    out(
        "Windows ADK for Windows 11, version 24H2",
        "Windows development kits",
        "development or diagnostic kit, updated by reinstalling",
    );
}

#[test]
fn other_servers_and_agents() {
    check(vec![
        (
            "Microsoft Dynamics 365 (on-premises) version 9.1",
            want("Dynamics", "dynamics_365")
                .line("9.1")
                .track(Standalone),
        ),
        (
            "Microsoft Dynamics 365 Customer Engagement V9.0",
            want("Dynamics", "dynamics_365")
                .line("9.0")
                .track(Standalone),
        ),
        (
            "Microsoft Dynamics CRM 2015 (on-premises) version 7.0",
            want("Dynamics", "dynamics_crm")
                .line("7.0")
                .track(Standalone),
        ),
        (
            "Microsoft Dynamics NAV 2013 R2",
            want("Dynamics", "dynamics_nav")
                .line("2013 r2")
                .track(Standalone),
        ),
        (
            "Microsoft Dynamics 365 Business Central 2023 Release Wave 1",
            want("Dynamics", "dynamics_365_business_central")
                .line("2023 release wave 1")
                .track(Standalone),
        ),
        (
            "System Center 2016 Operations Manager",
            want("System Center", "system_center_operations_manager")
                .line("2016")
                .track(Standalone),
        ),
        (
            "Microsoft Configuration Manager 2403",
            want("System Center", "configuration_manager")
                .line("2403")
                .version_fixed(),
        ),
        (
            "Microsoft Identity Manager 2016 Service Pack 1",
            want("Identity and integration servers", "identity_manager")
                .line("2016")
                .track(Standalone),
        ),
        (
            "Microsoft BizTalk ESB Toolkit 2.4",
            want("Identity and integration servers", "biztalk_esb_toolkit")
                .line("2.4")
                .track(Standalone),
        ),
        (
            "Power BI Report Server - January 2023",
            want("Identity and integration servers", "power_bi_report_server")
                .line("january 2023")
                .track(Standalone),
        ),
        (
            "Azure File Sync v17.0",
            want("Azure agents on Windows", "azure_file_sync")
                .line("17.0")
                .track(Standalone),
        ),
        (
            "Azure Site Recovery",
            want("Azure agents on Windows", "azure_site_recovery").track(Standalone),
        ),
    ]);
    out(
        "Dynamics 365 Sales",
        "Dynamics",
        "cloud service (no installable KB)",
    );
}

#[test]
fn out_of_scope_families() {
    for (name, family, reason) in [
        (
            "cbl2 kernel 5.15.162.2-1 on CBL Mariner 2.0",
            "Linux",
            "Linux package",
        ),
        (
            "Microsoft Defender for Endpoint for Linux",
            "Linux",
            "Linux package",
        ),
        ("UbuntuServer:18.04-LTS", "Linux", "Linux package"),
        (
            "Microsoft Word for Mac 2011",
            "macOS",
            "macOS software (kbgap evaluates Windows machines)",
        ),
        (
            "Windows Malicious Software Removal Tool 64-bit",
            "Run-once tools",
            "run-once tool, not installed software",
        ),
        (
            "Windows Admin Center",
            "Server applications with own installers",
            "server application updated by its own installer",
        ),
        (
            "Microsoft Surface Pro 4",
            "Devices and firmware",
            "device firmware or device image (not installed software)",
        ),
        (
            "Microsoft Wireless Keyboard 850",
            "Devices and firmware",
            "device firmware or device image (not installed software)",
        ),
        (
            "Microsoft Excel for iOS",
            "Mobile",
            "mobile or mixed-reality app (not a Windows machine)",
        ),
        (
            "Raw Image Extension on Windows 10 Version 1809 for x64-based Systems",
            "Store apps and extensions",
            "Store app or extension, updated by the Store or its host application",
        ),
        (
            "Microsoft Photos",
            "Store apps and extensions",
            "Store app or extension, updated by the Store or its host application",
        ),
        (
            "Windows HLK for Windows Server 2022",
            "Windows development kits",
            "development or diagnostic kit, updated by reinstalling",
        ),
        (
            "Azure Kubernetes Service",
            "Cloud services",
            "cloud service or client of one (no installable KB)",
        ),
        (
            "Microsoft Graph",
            "Cloud services",
            "cloud service or client of one (no installable KB)",
        ),
        (
            "Minecraft Java Edition",
            "Games and consumer apps",
            "game or consumer app (updated by its store)",
        ),
        (
            "None Available",
            "Placeholders",
            "placeholder in MSRC's product list, not a product",
        ),
    ] {
        out(name, family, reason);
    }
    check(vec![(
        "Microsoft PowerToys",
        want("Desktop tools (version-fixed)", "powertoys").version_fixed(),
    )]);
}
