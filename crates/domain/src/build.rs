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
