//! Windows build numbers (`10.0.19045.3570`) and servicing branches: Windows versions that
//! share binaries form one branch, and their revisions (UBR) compare directly.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Windows build, `major.minor.build[.revision]`. The revision (UBR) is unknown when a
/// source reports only `10.0.22631`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowsBuild {
    pub major: u16,
    pub minor: u16,
    pub build: u32,
    pub revision: Option<u32>,
}

impl WindowsBuild {
    /// Parses `10.0.19045.3570` or `10.0.19045`. Anything else (a URL, `-`, a Linux package
    /// version such as `5.15.153.1-1`) is not a Windows build and yields `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let parts: Vec<&str> = s.split('.').collect();
        if !(3..=4).contains(&parts.len()) {
            return None;
        }
        // Windows never writes a leading zero; .NET file versions (`10.0.04614.06`) do.
        if parts.iter().any(|p| {
            p.is_empty()
                || p.len() > 9
                || !p.bytes().all(|b| b.is_ascii_digit())
                || (p.len() > 1 && p.starts_with('0'))
        }) {
            return None;
        }
        let major: u16 = parts[0].parse().ok()?;
        let minor: u16 = parts[1].parse().ok()?;
        // Windows NT major versions are 5, 6 and 10; this keeps Linux versions such as
        // `2.4.1` out.
        if !matches!(major, 5 | 6 | 10) {
            return None;
        }
        let build: u32 = parts[2].parse().ok()?;
        if build < 1000 {
            return None;
        }
        let revision = match parts.get(3) {
            Some(r) => Some(r.parse().ok()?),
            None => None,
        };
        Some(WindowsBuild {
            major,
            minor,
            build,
            revision,
        })
    }

    pub fn branch(&self) -> Branch {
        Branch::of(self.build)
    }
}

impl fmt::Display for WindowsBuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)?;
        if let Some(r) = self.revision {
            write!(f, ".{r}")?;
        }
        Ok(())
    }
}

/// A servicing branch, named by its first build number: 19041 stands for 19041–19045
/// (Windows 10 2004 … 22H2), 18362 for 18362/18363, 22621 for 22621/22631, 26100 for
/// 26100/26200. Every other build is its own branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Branch(pub u32);

impl Branch {
    pub fn of(build: u32) -> Branch {
        Branch(match build {
            19041..=19045 => 19041,
            18362 | 18363 => 18362,
            22621 | 22631 => 22621,
            26100 | 26200 => 26100,
            b => b,
        })
    }
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A product's own build, as SQL Server, Exchange, SharePoint and Office MSI report it and as
/// MSRC's `FixedBuild` gives it for them: `15.0.4326.1`, `16.0.10408.20000`, `15.02.1544.011`.
/// Three or four numeric parts, compared part by part, so `15.02.1544.011` is 15.2.1544.11
/// and `16.0.5413.1000` < `16.0.10408.20000`. A missing fourth part is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProductBuild(pub [u32; 4]);

impl ProductBuild {
    /// Parses one build: three or four dot-separated numbers (leading zeros allowed).
    pub fn parse(s: &str) -> Option<ProductBuild> {
        let mut parts = [0u32; 4];
        let mut n = 0;
        for p in s.trim().split('.') {
            if n == 4 || p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            parts[n] = p.parse().ok()?;
            n += 1;
        }
        (n >= 3).then_some(ProductBuild(parts))
    }

    /// Every build in a `FixedBuild` value: MSRC sometimes lists several
    /// (`2.0.50727.9181 & 3.0.30729.9165 & 4.8.4801.0`, `4.8.9334.0 and 4.8.4802.0`); text
    /// that is not a build (a URL, `-`) yields nothing.
    pub fn all_in(s: &str) -> Vec<ProductBuild> {
        s.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map(|t| t.trim_matches('.'))
            .filter_map(ProductBuild::parse)
            .collect()
    }

    pub fn major(&self) -> u32 {
        self.0[0]
    }

    pub fn minor(&self) -> u32 {
        self.0[1]
    }

    /// The third part: the build proper (SQL Server 4326, Exchange 1544 = CU14).
    pub fn build(&self) -> u32 {
        self.0[2]
    }
}

impl fmt::Display for ProductBuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_builds_and_rejects_what_is_not_one() {
        let b = WindowsBuild::parse("10.0.19045.3570").unwrap();
        assert_eq!(
            (b.major, b.minor, b.build, b.revision),
            (10, 0, 19045, Some(3570))
        );
        assert_eq!(WindowsBuild::parse("10.0.22631").unwrap().revision, None);
        assert_eq!(WindowsBuild::parse("6.1.7601.26321").unwrap().build, 7601);
        assert_eq!(
            WindowsBuild::parse("https://aka.ms/OfficeSecurityReleases"),
            None
        );
        assert_eq!(WindowsBuild::parse("-"), None);
        assert_eq!(WindowsBuild::parse("5.15.153.1-1"), None);
        assert_eq!(WindowsBuild::parse("20.0.1"), None);
        assert_eq!(WindowsBuild::parse("1.20.10-12"), None);
        assert_eq!(WindowsBuild::parse("10.0.04614.06"), None);
        assert_eq!(WindowsBuild::parse("6.3.04005.01"), None);
    }

    #[test]
    fn product_builds_compare_part_by_part() {
        let exchange = ProductBuild::parse("15.02.1544.011").unwrap();
        assert_eq!(exchange, ProductBuild([15, 2, 1544, 11]));
        assert_eq!(exchange.to_string(), "15.2.1544.11");
        assert!(ProductBuild::parse("16.0.5413.1000") < ProductBuild::parse("16.0.10408.20000"));
        assert!(ProductBuild::parse("15.0.2101.7") < ProductBuild::parse("15.0.2104.1"));
        assert_eq!(
            ProductBuild::parse("15.0.2104"),
            Some(ProductBuild([15, 0, 2104, 0]))
        );
        assert_eq!(ProductBuild::parse("2019"), None);
        assert_eq!(ProductBuild::parse("1.2.3.4.5"), None);
        assert_eq!(ProductBuild::parse("15.0.x.1"), None);
        assert_eq!(
            ProductBuild::all_in("2.0.50727.9181 & 3.0.30729.9165 & 4.8.4801.0"),
            vec![
                ProductBuild([2, 0, 50727, 9181]),
                ProductBuild([3, 0, 30729, 9165]),
                ProductBuild([4, 8, 4801, 0])
            ]
        );
        assert_eq!(
            ProductBuild::all_in("https://aka.ms/OfficeSecurityReleases"),
            vec![]
        );
        assert_eq!(ProductBuild::all_in("-"), vec![]);
    }

    #[test]
    fn revisions_compare_numerically_within_a_branch() {
        let a = WindowsBuild::parse("10.0.19044.999").unwrap();
        let b = WindowsBuild::parse("10.0.19045.1000").unwrap();
        assert_eq!(a.branch(), b.branch());
        assert!(a.revision < b.revision);
        assert_eq!(Branch::of(18363), Branch(18362));
        assert_eq!(Branch::of(22631), Branch(22621));
        assert_eq!(Branch::of(26200), Branch(26100));
        assert_eq!(Branch::of(17763), Branch(17763));
        assert_ne!(Branch::of(22000), Branch::of(19044));
    }
}
