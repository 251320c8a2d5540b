//! Which Windows a capture describes (from its product name and build) in the catalog's terms,
//! and the components that Windows version carries without any inventory listing them.

use kbgap_domain::{Arch, KbId, WindowsBuild};

/// A Windows identified from a capture: the `osPlatform` value a snapshot carries (MDE's
/// name where MDE has one, else the OS software id) and whether it is a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsOs {
    pub platform: String,
    pub server: bool,
}

/// Whether a product name names a server edition. Old captures mangle the trademark signs
/// ("Microsoftr Windows Serverr 2008"), so the word is matched as a prefix.
fn is_server(name: &str) -> bool {
    name.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w.starts_with("server"))
}

fn word(name: &str, w: &str) -> bool {
    name.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .any(|x| x == w)
}

/// Identifies the Windows of a product name ("Microsoft Windows 10 Enterprise", localized or
/// not) and build. The build decides the version (names are localized, mangled, and on
/// Windows 11 sometimes still say "Windows 10"); the name only tells servers from clients,
/// XP x64 from Server 2003, and RT from Windows 8.1.
pub fn identify(name: &str, build: &WindowsBuild) -> Result<WindowsOs, String> {
    let server = is_server(name);
    let platform = |p: &str| {
        Ok(WindowsOs {
            platform: p.to_string(),
            server,
        })
    };
    match (build.major, build.minor, server) {
        (5, 0, _) => platform("microsoft-_-windows_2000"),
        (5, 1, _) => platform("WindowsXP"),
        // Build 3790 is both Server 2003 (and R2) and XP Professional x64 Edition.
        (5, 2, _) if word(name, "xp") => platform("WindowsXP"),
        (5, 2, _) => platform("WindowsServer2003"),
        (6, 0, true) => platform("WindowsServer2008"),
        (6, 0, false) => platform("WindowsVista"),
        (6, 1, true) => platform("WindowsServer2008R2"),
        (6, 1, false) => platform("Windows7"),
        (6, 2, true) => platform("WindowsServer2012"),
        (6, 2, false) => platform("Windows8"),
        (6, 3, true) => platform("WindowsServer2012R2"),
        (6, 3, false) if word(name, "rt") => platform("microsoft-_-windows_rt_8.1"),
        (6, 3, false) => platform("Windows8.1"),
        (10, 0, false) if build.build >= 22000 => platform("Windows11"),
        (10, 0, false) => platform("Windows10"),
        (10, 0, true) => match build.build {
            14393 => platform("WindowsServer2016"),
            17763 => platform("WindowsServer2019"),
            20348 => platform("WindowsServer2022"),
            26100 => platform("WindowsServer2025"),
            // Semi-annual and annual channel servers are each their own software.
            16299 => platform("microsoft-_-windows_server_1709"),
            17134 => platform("microsoft-_-windows_server_1803"),
            18362 => platform("microsoft-_-windows_server_1903"),
            18363 => platform("microsoft-_-windows_server_1909"),
            19041 => platform("microsoft-_-windows_server_2004"),
            19042 => platform("microsoft-_-windows_server_20h2"),
            25398 => platform("microsoft-_-windows_server_23h2"),
            b => Err(format!(
                "Windows Server build {b} is not a release kbgap knows"
            )),
        },
        _ => Err(format!("{build} is not a Windows NT version kbgap knows")),
    }
}

/// An architecture as Windows tools write it: systeminfo's "x64-based PC", WMI's
/// `OSArchitecture` ("64-bit", localized "64 Bit", "ARM 64-bit Processor"), or plain names.
pub fn arch(text: &str) -> Option<Arch> {
    let t = text.to_lowercase();
    if t.contains("itanium") || t.contains("ia64") {
        Some(Arch::Itanium)
    } else if t.contains("arm") {
        // Windows RT's 32-bit ARM is not an architecture of its own in the catalog, which
        // maps RT 8.1 to ARM64 (it is its own software, so it never meets a real ARM64).
        Some(Arch::Arm64)
    } else if t.contains("x64") || t.contains("amd64") || t.contains("64") {
        Some(Arch::X64)
    } else if t.contains("x86") || t.contains("32") {
        Some(Arch::X86)
    } else {
        None
    }
}

/// Internet Explorer installers, whose presence in the installed-update list says which IE
/// replaced the one the OS shipped with.
const IE_INSTALLERS: &[(u32, &str)] = &[
    (982861, "9"),   // Internet Explorer 9 for Vista, Server 2008, 7 and 2008 R2
    (2718695, "10"), // Internet Explorer 10 for 7 and 2008 R2
    (2841134, "11"), // Internet Explorer 11 for 7 and 2008 R2
    (4492872, "11"), // Internet Explorer 11 for Server 2012
];

fn installed_ie(kbs: &[KbId], candidates: &[&'static str]) -> Option<&'static str> {
    // The newest installed IE wins: installing 11 over 9 leaves both KBs listed.
    candidates.iter().rev().copied().find(|v| {
        IE_INSTALLERS
            .iter()
            .any(|(kb, line)| line == v && kbs.iter().any(|k| k.number() == *kb))
    })
}

/// The components a Windows carries without an inventory listing them, as (software id,
/// version). Only what the OS version fixes, or its installed updates prove, is inferred:
/// - Internet Explorer 11 on Windows 8.1, RT 8.1, Server 2012 R2, Windows 10, Server 2016
///   and 2019, which ship it;
/// - Internet Explorer on Vista, Server 2008, 7, 2008 R2, 8 and Server 2012 at the version
///   they shipped (7, 8, 10) unless an installer KB of a newer one is installed;
/// - EdgeHTML (`microsoft-_-edge`) on Windows 10 client editions up to 20H2 except LTSB/LTSC
///   (21H1 and later shipped without it).
///
/// Windows 11, Server 2022 and 2025 carry neither.
pub fn bundled(
    platform: &str,
    build: &WindowsBuild,
    name: &str,
    kbs: &[KbId],
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let ie = match platform {
        "Windows8.1"
        | "microsoft-_-windows_rt_8.1"
        | "WindowsServer2012R2"
        | "Windows10"
        | "WindowsServer2016"
        | "WindowsServer2019" => Some("11"),
        "WindowsVista" | "WindowsServer2008" => Some(installed_ie(kbs, &["9"]).unwrap_or("7")),
        "Windows7" | "WindowsServer2008R2" => {
            Some(installed_ie(kbs, &["9", "10", "11"]).unwrap_or("8"))
        }
        "Windows8" | "WindowsServer2012" => Some(installed_ie(kbs, &["11"]).unwrap_or("10")),
        _ => None,
    };
    if let Some(v) = ie {
        out.push(("microsoft-_-internet_explorer", v.to_string()));
    }
    let ltsc = word(name, "ltsb") || word(name, "ltsc");
    if platform == "Windows10" && build.build <= 19042 && !ltsc {
        out.push(("microsoft-_-edge", build.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> WindowsBuild {
        WindowsBuild::parse(s).unwrap()
    }

    #[test]
    fn builds_decide_names_only_split_servers() {
        let p = |name: &str, build: &str| identify(name, &b(build)).unwrap().platform;
        assert_eq!(
            p("Microsoft Windows XP Professional", "5.1.2600"),
            "WindowsXP"
        );
        assert_eq!(
            p(
                "Microsoft(R) Windows(R) XP Professional x64 Edition",
                "5.2.3790"
            ),
            "WindowsXP"
        );
        assert_eq!(
            p(
                "Microsoft(R) Windows(R) Server 2003, Standard Edition",
                "5.2.3790"
            ),
            "WindowsServer2003"
        );
        assert_eq!(
            p("Microsoftr Windows Serverr 2008 Standard ", "6.0.6001"),
            "WindowsServer2008"
        );
        assert_eq!(
            p("Microsoftr Windows VistaT Enterprise ", "6.0.6002"),
            "WindowsVista"
        );
        assert_eq!(
            p("Microsoft Windows\u{a0}7 Entreprise N ", "6.1.7601"),
            "Windows7"
        );
        assert_eq!(p("Microsoft Windows 10 Pro", "10.0.22631"), "Windows11");
        assert_eq!(
            p(
                "Майкрософт Ознакомительная версия Windows Server 2012 R2 Standard",
                "6.3.9600"
            ),
            "WindowsServer2012R2"
        );
        assert_eq!(
            p("Microsoft Windows Server Datacenter", "10.0.18363"),
            "microsoft-_-windows_server_1909"
        );
        assert!(identify("Microsoft Windows Server", &b("10.0.12345")).is_err());
    }

    #[test]
    fn architectures() {
        assert_eq!(arch("x64-based PC"), Some(Arch::X64));
        assert_eq!(arch("X86-based PC"), Some(Arch::X86));
        assert_eq!(arch("ARM64-based PC"), Some(Arch::Arm64));
        assert_eq!(arch("64-bit"), Some(Arch::X64));
        assert_eq!(arch("32-bit"), Some(Arch::X86));
        assert_eq!(arch("ARM 64-bit Processor"), Some(Arch::Arm64));
        assert_eq!(arch("PC"), None);
    }

    #[test]
    fn bundled_components() {
        let kb = |n| KbId::from_number(n).unwrap();
        assert_eq!(
            bundled(
                "Windows10",
                &b("10.0.17763"),
                "Microsoft Windows 10 Pro",
                &[]
            ),
            vec![
                ("microsoft-_-internet_explorer", "11".to_string()),
                ("microsoft-_-edge", "10.0.17763".to_string())
            ]
        );
        assert_eq!(
            bundled(
                "Windows10",
                &b("10.0.17763"),
                "Windows 10 Enterprise LTSC",
                &[]
            )
            .len(),
            1
        );
        assert_eq!(
            bundled(
                "Windows7",
                &b("6.1.7601"),
                "Windows 7",
                &[kb(982861), kb(2841134)]
            ),
            vec![("microsoft-_-internet_explorer", "11".to_string())]
        );
        assert_eq!(
            bundled("Windows7", &b("6.1.7601"), "Windows 7", &[]),
            vec![("microsoft-_-internet_explorer", "8".to_string())]
        );
        assert!(bundled("Windows11", &b("10.0.22631"), "Windows 11", &[]).is_empty());
    }
}
