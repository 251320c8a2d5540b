//! When Windows versions leave servicing, per edition (Microsoft's lifecycle policy), and the
//! edition a product name states.
//!
//! MSRC names one product for every edition of a Windows 10 or 11 version ("Windows 10
//! Version 1809 for x64-based Systems"), yet editions leave servicing on different dates:
//! Windows 10 1809 Home and Pro on 2020-11-10, Enterprise and Education on 2021-05-11, while
//! Enterprise LTSC 2019 is serviced until 2029-01-09 and keeps receiving the cumulative
//! updates MSRC lists under that one name. A Pro machine is offered none of the later ones.
//!
//! Sources: Microsoft Learn, "Windows 10 release information" and "Windows 11 release
//! information" (end of servicing per version and edition), and the lifecycle pages "Windows
//! 10 Home and Pro", "Windows 10 Enterprise and Education", "Windows 10 Enterprise LTSC
//! 2019/2021", "Windows 10 IoT Enterprise LTSC 2021", "Windows 11 Enterprise LTSC 2024",
//! "Windows 7", "Windows 8.1", "Windows Server 2008 R2", "Windows Server 2012 R2" and the
//! Extended Security Updates (ESU) program pages.

use serde::{Deserialize, Serialize};
use time::macros::date;
use time::Date;

use crate::{KbId, SoftwareId};

/// The editions as Microsoft's lifecycle policy groups them: editions of one group leave
/// servicing on the same date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Edition {
    /// Home, Pro, Pro Education, Pro for Workstations (and their N, S and single-language
    /// variants): 18 months per Windows 10 version, 24 per Windows 11 version.
    HomePro,
    /// Enterprise, Education, IoT Enterprise, Enterprise multi-session: 30 months for a
    /// Windows 10 autumn version, 36 for a Windows 11 version.
    EnterpriseEducation,
    /// Enterprise LTSB / LTSC: ten years from release.
    Ltsc,
    /// IoT Enterprise LTSC: ten years (LTSC 2021 and 2024: longer than Enterprise LTSC).
    IotLtsc,
    /// A server edition (Standard, Datacenter, …): servers are products of their own in
    /// MSRC's feed, so the version alone decides.
    Server,
}

impl Edition {
    /// The edition group a product name states: systeminfo's "OS Name" ("Microsoft Windows
    /// 10 Pro", localized or not), osquery's `os_version.name`, or a bare edition ("Pro",
    /// "Enterprise LTSC"). `None` when the name states none that kbgap recognises.
    pub fn from_name(name: &str) -> Option<Edition> {
        let lower = name.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let has = |w: &str| words.contains(&w);
        let contains = |s: &str| lower.contains(s);
        if words.iter().any(|w| w.starts_with("server")) {
            return Some(Edition::Server);
        }
        let ltsc = has("ltsc") || has("ltsb");
        if ltsc && has("iot") {
            return Some(Edition::IotLtsc);
        }
        if ltsc {
            return Some(Edition::Ltsc);
        }
        // Enterprise and Education (English, French, German, Spanish, Italian, Portuguese,
        // Dutch, Russian, Chinese, Japanese, Korean product names).
        let commercial = has("enterprise")
            || has("entreprise")
            || has("education")
            || has("éducation")
            || has("educación")
            || has("istruzione")
            || has("educação")
            || has("bildung")
            || has("onderwijs")
            || contains("корпоративная")
            || contains("для образовательных")
            || contains("企业版")
            || contains("企業版")
            || contains("教育版")
            || contains("エンタープライズ")
            || contains("엔터프라이즈")
            || contains("교육");
        // "Pro Education" follows the Home and Pro policy.
        let pro = has("pro")
            || has("professional")
            || has("professionnel")
            || has("profesional")
            || has("professionale")
            || contains("专业版")
            || contains("專業版")
            || contains("プロ");
        let home = has("home")
            || has("famille")
            || has("familiale")
            || has("hogar")
            || has("domestica")
            || contains("домашняя")
            || contains("家庭")
            || contains("ホーム")
            || contains("홈");
        if pro && (has("education") || has("éducation") || has("educación")) {
            return Some(Edition::HomePro);
        }
        if commercial || has("iot") {
            return Some(Edition::EnterpriseEducation);
        }
        if pro || home || has("core") {
            return Some(Edition::HomePro);
        }
        None
    }

    /// The edition group's id in JSON and in the store (`homePro`).
    pub fn id(self) -> &'static str {
        match self {
            Edition::HomePro => "homePro",
            Edition::EnterpriseEducation => "enterpriseEducation",
            Edition::Ltsc => "ltsc",
            Edition::IotLtsc => "iotLtsc",
            Edition::Server => "server",
        }
    }

    /// The edition group of an [`Edition::id`].
    pub fn from_id(id: &str) -> Option<Edition> {
        [
            Edition::HomePro,
            Edition::EnterpriseEducation,
            Edition::Ltsc,
            Edition::IotLtsc,
            Edition::Server,
        ]
        .into_iter()
        .find(|e| e.id() == id)
    }

    /// How Microsoft's lifecycle pages name the group.
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::HomePro => "Home and Pro",
            Edition::EnterpriseEducation => "Enterprise and Education",
            Edition::Ltsc => "Enterprise LTSC",
            Edition::IotLtsc => "IoT Enterprise LTSC",
            Edition::Server => "Server",
        }
    }
}

impl std::fmt::Display for Edition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Windows version's end of servicing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The OS software id without `microsoft-_-`.
    pub software: &'static str,
    pub build: u32,
    /// How Microsoft names it: "Windows 10, version 1809".
    pub name: &'static str,
    pub home_pro: Date,
    pub enterprise_education: Date,
    /// The LTSC release of this version, when there is one: its name and end of servicing
    /// for Enterprise LTSC and IoT Enterprise LTSC.
    pub ltsc: Option<(&'static str, Date, Date)>,
    /// Extended Security Updates: the versions whose security updates continued, after the
    /// end of servicing, for devices enrolled in the program (bought or, for Windows 10
    /// 22H2 consumers, free with conditions), until this date.
    pub esu_until: Option<Date>,
}

impl Version {
    /// The last day on which `edition` is serviced; `None` when the edition is not released
    /// on this version (no LTSC of Windows 10 22H2).
    pub fn serviced_until(&self, edition: Edition) -> Option<Date> {
        match edition {
            Edition::HomePro => Some(self.home_pro),
            Edition::EnterpriseEducation => Some(self.enterprise_education),
            Edition::Ltsc => self.ltsc.map(|(_, d, _)| d),
            Edition::IotLtsc => self.ltsc.map(|(_, _, d)| d),
            // Server versions list one date for every edition.
            Edition::Server => Some(self.home_pro.max(self.enterprise_education)),
        }
    }

    /// The day after which no edition of the version is serviced.
    pub fn last_serviced(&self) -> Date {
        let mut last = self.home_pro.max(self.enterprise_education);
        if let Some((_, e, i)) = self.ltsc {
            last = last.max(e).max(i);
        }
        last
    }
}

const fn v(
    software: &'static str,
    build: u32,
    name: &'static str,
    home_pro: Date,
    enterprise_education: Date,
) -> Version {
    Version {
        software,
        build,
        name,
        home_pro,
        enterprise_education,
        ltsc: None,
        esu_until: None,
    }
}

const fn ltsc(mut version: Version, name: &'static str, enterprise: Date, iot: Date) -> Version {
    version.ltsc = Some((name, enterprise, iot));
    version
}

const fn esu(mut version: Version, until: Date) -> Version {
    version.esu_until = Some(until);
    version
}

/// One date for every edition.
const fn all(software: &'static str, build: u32, name: &'static str, end: Date) -> Version {
    v(software, build, name, end, end)
}

/// Windows versions by (OS software, build), with the end of servicing of each edition group.
pub const VERSIONS: &[Version] = &[
    // Windows 10: Home and Pro, Enterprise and Education, LTSB/LTSC.
    ltsc(
        all(
            "windows_10",
            10240,
            "Windows 10, version 1507",
            date!(2017 - 05 - 09),
        ),
        "Windows 10 Enterprise 2015 LTSB",
        date!(2025 - 10 - 14),
        date!(2025 - 10 - 14),
    ),
    v(
        "windows_10",
        10586,
        "Windows 10, version 1511",
        date!(2017 - 10 - 10),
        date!(2018 - 04 - 10),
    ),
    ltsc(
        v(
            "windows_10",
            14393,
            "Windows 10, version 1607",
            date!(2018 - 04 - 10),
            date!(2019 - 04 - 09),
        ),
        "Windows 10 Enterprise 2016 LTSB",
        date!(2026 - 10 - 13),
        date!(2026 - 10 - 13),
    ),
    v(
        "windows_10",
        15063,
        "Windows 10, version 1703",
        date!(2018 - 10 - 09),
        date!(2019 - 10 - 08),
    ),
    v(
        "windows_10",
        16299,
        "Windows 10, version 1709",
        date!(2019 - 04 - 09),
        date!(2020 - 10 - 13),
    ),
    v(
        "windows_10",
        17134,
        "Windows 10, version 1803",
        date!(2019 - 11 - 12),
        date!(2021 - 05 - 11),
    ),
    ltsc(
        v(
            "windows_10",
            17763,
            "Windows 10, version 1809",
            date!(2020 - 11 - 10),
            date!(2021 - 05 - 11),
        ),
        "Windows 10 Enterprise LTSC 2019",
        date!(2029 - 01 - 09),
        date!(2029 - 01 - 09),
    ),
    all(
        "windows_10",
        18362,
        "Windows 10, version 1903",
        date!(2020 - 12 - 08),
    ),
    v(
        "windows_10",
        18363,
        "Windows 10, version 1909",
        date!(2021 - 05 - 11),
        date!(2022 - 05 - 10),
    ),
    all(
        "windows_10",
        19041,
        "Windows 10, version 2004",
        date!(2021 - 12 - 14),
    ),
    v(
        "windows_10",
        19042,
        "Windows 10, version 20H2",
        date!(2022 - 05 - 10),
        date!(2023 - 05 - 09),
    ),
    all(
        "windows_10",
        19043,
        "Windows 10, version 21H1",
        date!(2022 - 12 - 13),
    ),
    ltsc(
        v(
            "windows_10",
            19044,
            "Windows 10, version 21H2",
            date!(2023 - 06 - 13),
            date!(2024 - 06 - 11),
        ),
        "Windows 10 Enterprise LTSC 2021",
        date!(2027 - 01 - 12),
        date!(2032 - 01 - 13),
    ),
    // Consumer ESU ends 2026-10-13; commercial ESU can be bought for up to three years.
    esu(
        all(
            "windows_10",
            19045,
            "Windows 10, version 22H2",
            date!(2025 - 10 - 14),
        ),
        date!(2028 - 10 - 10),
    ),
    // Windows 11.
    v(
        "windows_11",
        22000,
        "Windows 11, version 21H2",
        date!(2023 - 10 - 10),
        date!(2024 - 10 - 08),
    ),
    v(
        "windows_11",
        22621,
        "Windows 11, version 22H2",
        date!(2024 - 10 - 08),
        date!(2025 - 10 - 14),
    ),
    v(
        "windows_11",
        22631,
        "Windows 11, version 23H2",
        date!(2025 - 11 - 11),
        date!(2026 - 11 - 10),
    ),
    ltsc(
        v(
            "windows_11",
            26100,
            "Windows 11, version 24H2",
            date!(2026 - 10 - 13),
            date!(2027 - 10 - 12),
        ),
        "Windows 11 Enterprise LTSC 2024",
        date!(2029 - 10 - 09),
        date!(2034 - 10 - 10),
    ),
    v(
        "windows_11",
        26200,
        "Windows 11, version 25H2",
        date!(2027 - 10 - 12),
        date!(2028 - 10 - 10),
    ),
    // Earlier Windows: one date for every edition (MSRC names each its own product).
    all("windows_xp", 2600, "Windows XP", date!(2014 - 04 - 08)),
    all(
        "windows_xp",
        3790,
        "Windows XP Professional x64",
        date!(2014 - 04 - 08),
    ),
    all(
        "windows_vista",
        6002,
        "Windows Vista",
        date!(2017 - 04 - 11),
    ),
    esu(
        all("windows_7", 7601, "Windows 7", date!(2020 - 01 - 14)),
        date!(2023 - 01 - 10),
    ),
    all("windows_8", 9200, "Windows 8", date!(2016 - 01 - 12)),
    all("windows_8.1", 9600, "Windows 8.1", date!(2023 - 01 - 10)),
    all(
        "windows_rt_8.1",
        9600,
        "Windows RT 8.1",
        date!(2023 - 01 - 10),
    ),
    all(
        "windows_server_2003",
        3790,
        "Windows Server 2003",
        date!(2015 - 07 - 14),
    ),
    esu(
        all(
            "windows_server_2008",
            // Server 2008 SP2 is 6003 since April 2019; the facts carry 6003 either way.
            6003,
            "Windows Server 2008",
            date!(2020 - 01 - 14),
        ),
        date!(2024 - 01 - 09),
    ),
    esu(
        all(
            "windows_server_2008_r2",
            7601,
            "Windows Server 2008 R2",
            date!(2020 - 01 - 14),
        ),
        date!(2024 - 01 - 09),
    ),
    esu(
        all(
            "windows_server_2012",
            9200,
            "Windows Server 2012",
            date!(2023 - 10 - 10),
        ),
        date!(2026 - 10 - 13),
    ),
    esu(
        all(
            "windows_server_2012_r2",
            9600,
            "Windows Server 2012 R2",
            date!(2023 - 10 - 10),
        ),
        date!(2026 - 10 - 13),
    ),
    // Semi-annual channel servers.
    all(
        "windows_server_1709",
        16299,
        "Windows Server, version 1709",
        date!(2019 - 04 - 09),
    ),
    all(
        "windows_server_1803",
        17134,
        "Windows Server, version 1803",
        date!(2019 - 11 - 12),
    ),
    all(
        "windows_server_1903",
        18362,
        "Windows Server, version 1903",
        date!(2020 - 12 - 08),
    ),
    all(
        "windows_server_1909",
        18363,
        "Windows Server, version 1909",
        date!(2021 - 05 - 11),
    ),
    all(
        "windows_server_2004",
        19041,
        "Windows Server, version 2004",
        date!(2021 - 12 - 14),
    ),
    all(
        "windows_server_20h2",
        19042,
        "Windows Server, version 20H2",
        date!(2022 - 08 - 09),
    ),
];

/// The lifecycle of the Windows version an OS software id and build name, when kbgap has it.
pub fn version(software: &SoftwareId, build: u32) -> Option<&'static Version> {
    let name = software.as_str().strip_prefix("microsoft-_-")?;
    VERSIONS
        .iter()
        .find(|v| v.software == name && v.build == build)
}

/// A machine's Windows version as its lifecycle sees it on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Servicing {
    /// Serviced on that day (or kbgap has no lifecycle for the version).
    Serviced,
    /// The machine's edition (or every edition of its version) left servicing on `since`.
    Ended {
        since: Date,
        /// The version still gets security updates for devices enrolled in ESU until then.
        esu_until: Option<Date>,
    },
    /// The edition is not known and decides: some editions left servicing on `since`, others
    /// are serviced until `serviced_until` (LTSC).
    EditionDecides { since: Date, serviced_until: Date },
}

/// Whether a machine of `software` at `build` with `edition` is serviced on `today` (the
/// catalog's newest release).
pub fn servicing(
    software: &SoftwareId,
    build: u32,
    edition: Option<Edition>,
    today: Date,
) -> Servicing {
    let Some(v) = version(software, build) else {
        return Servicing::Serviced;
    };
    let last = v.last_serviced();
    let ended = |since: Date| Servicing::Ended {
        since,
        esu_until: v.esu_until.filter(|_| since == last),
    };
    match edition.map(|e| (e, v.serviced_until(e))) {
        // An edition not released on this version (LTSC of 22H2): its lifecycle is unknown.
        Some((_, None)) => Servicing::Serviced,
        Some((_, Some(until))) if until < today => ended(until),
        Some(_) => Servicing::Serviced,
        None if last < today => ended(last),
        None => {
            let first = v.home_pro.min(v.enterprise_education);
            if first < today {
                Servicing::EditionDecides {
                    since: first,
                    serviced_until: last,
                }
            } else {
                Servicing::Serviced
            }
        }
    }
}

/// A machine whose Windows version (for its edition) left servicing: what it can still get.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndOfServicing {
    /// Microsoft's name of the version: "Windows 10, version 1809".
    pub version: &'static str,
    /// The edition group, when the machine named it.
    pub edition: Option<Edition>,
    /// The last day the machine's edition was serviced.
    #[serde(serialize_with = "iso_date")]
    pub since: Date,
    /// The version's security updates continue until then for devices enrolled in Extended
    /// Security Updates; kbgap cannot see enrolment, so those updates still count as missing.
    #[serde(serialize_with = "iso_date_opt")]
    pub esu_until: Option<Date>,
    /// The newest cumulative update released for the version on or before `since`: the last
    /// one Windows Update offers the machine.
    pub last_update: Option<KbId>,
}

fn iso_date<S: serde::Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

fn iso_date_opt<S: serde::Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(d),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editions_are_read_from_product_names() {
        let cases = [
            ("Microsoft Windows 10 Pro", Some(Edition::HomePro)),
            (
                "Microsoft Windows 10 Pro for Workstations",
                Some(Edition::HomePro),
            ),
            ("Microsoft Windows 10 Pro Education", Some(Edition::HomePro)),
            (
                "Microsoft Windows 11 Home Single Language",
                Some(Edition::HomePro),
            ),
            (
                "Microsoft Windows 10 Enterprise",
                Some(Edition::EnterpriseEducation),
            ),
            (
                "Microsoft Windows 10 Education",
                Some(Edition::EnterpriseEducation),
            ),
            (
                "Microsoft Windows 7 Entreprise N",
                Some(Edition::EnterpriseEducation),
            ),
            ("Microsoft Windows 10 Enterprise LTSC", Some(Edition::Ltsc)),
            (
                "Microsoft Windows 10 Enterprise 2016 LTSB",
                Some(Edition::Ltsc),
            ),
            (
                "Microsoft Windows 10 IoT Enterprise LTSC",
                Some(Edition::IotLtsc),
            ),
            (
                "Microsoft Windows 10 企业版",
                Some(Edition::EnterpriseEducation),
            ),
            ("Microsoft Windows 10 专业版", Some(Edition::HomePro)),
            (
                "Microsoft Windows Server 2019 Datacenter",
                Some(Edition::Server),
            ),
            (
                "Microsoftr Windows Serverr 2008 Standard",
                Some(Edition::Server),
            ),
            ("Microsoft Windows 7 Ultimate N", None),
            ("", None),
        ];
        for (name, expected) in cases {
            assert_eq!(Edition::from_name(name), expected, "{name}");
        }
    }

    #[test]
    fn edition_ids_are_their_json_names() {
        for e in [
            Edition::HomePro,
            Edition::EnterpriseEducation,
            Edition::Ltsc,
            Edition::IotLtsc,
            Edition::Server,
        ] {
            assert_eq!(Edition::from_id(e.id()), Some(e));
            assert_eq!(
                serde_json::to_string(&e).unwrap(),
                format!("\"{}\"", e.id())
            );
        }
    }

    #[test]
    fn windows_10_1809_leaves_servicing_per_edition() {
        let w10 = SoftwareId::microsoft("windows_10");
        let june_2026 = date!(2026 - 06 - 09);
        assert_eq!(
            servicing(&w10, 17763, Some(Edition::HomePro), june_2026),
            Servicing::Ended {
                since: date!(2020 - 11 - 10),
                esu_until: None
            }
        );
        assert_eq!(
            servicing(&w10, 17763, Some(Edition::EnterpriseEducation), june_2026),
            Servicing::Ended {
                since: date!(2021 - 05 - 11),
                esu_until: None
            }
        );
        assert_eq!(
            servicing(&w10, 17763, Some(Edition::Ltsc), june_2026),
            Servicing::Serviced
        );
        assert_eq!(
            servicing(&w10, 17763, None, june_2026),
            Servicing::EditionDecides {
                since: date!(2020 - 11 - 10),
                serviced_until: date!(2029 - 01 - 09)
            }
        );
        // On its own end date the edition is still serviced: that month's update is its last.
        assert_eq!(
            servicing(&w10, 17763, Some(Edition::HomePro), date!(2020 - 11 - 10)),
            Servicing::Serviced
        );
    }

    #[test]
    fn every_edition_ended_needs_no_edition_and_esu_is_said() {
        let w10 = SoftwareId::microsoft("windows_10");
        assert_eq!(
            servicing(&w10, 18362, None, date!(2026 - 06 - 09)),
            Servicing::Ended {
                since: date!(2020 - 12 - 08),
                esu_until: None
            }
        );
        assert_eq!(
            servicing(&w10, 19045, Some(Edition::HomePro), date!(2026 - 06 - 09)),
            Servicing::Ended {
                since: date!(2025 - 10 - 14),
                esu_until: Some(date!(2028 - 10 - 10))
            }
        );
        // No LTSC of 22H2 exists: the lifecycle of such a claim is unknown.
        assert_eq!(
            servicing(&w10, 19045, Some(Edition::Ltsc), date!(2026 - 06 - 09)),
            Servicing::Serviced
        );
        // Windows 11 22H2 and 23H2 share their updates, not their lifecycle.
        let w11 = SoftwareId::microsoft("windows_11");
        assert_eq!(
            servicing(&w11, 22621, Some(Edition::HomePro), date!(2025 - 01 - 14)),
            Servicing::Ended {
                since: date!(2024 - 10 - 08),
                esu_until: None
            }
        );
        assert_eq!(
            servicing(&w11, 22631, Some(Edition::HomePro), date!(2025 - 01 - 14)),
            Servicing::Serviced
        );
    }
}
