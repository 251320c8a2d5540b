//! MSRC's free-text `Supercedence` field turned into the KBs it names. The archive writes it
//! a dozen ways (`a; b`, `a, b`, `MS16-016, 3124280`, `a<br><br>b`, `None`, even `20.0.1`).

use kbgap_domain::KbId;

/// The KBs named in a `Supercedence` value, first occurrence first, without repeats.
///
/// Only whole tokens that are KBs count (6–7 digits, optionally `KB`-prefixed): bulletin ids
/// (`MS16-016`), words (`None`), 5-digit typos and version strings (`20.0.1`) are dropped.
/// Tokens are split on `;`, `,`, whitespace and HTML tags, but not on `.` or `-`, so the
/// digits inside a version or a bulletin id are never mistaken for a KB.
pub fn parse_supersedence(s: &str) -> Vec<KbId> {
    let mut out = Vec::new();
    for token in tokens(s) {
        if let Ok(kb) = KbId::parse(token) {
            if !out.contains(&kb) {
                out.push(kb);
            }
        }
    }
    out
}

fn tokens(s: &str) -> impl Iterator<Item = &str> {
    let mut in_tag = false;
    s.split(move |c: char| {
        // `<br>` and friends separate values; their names are not tokens.
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                return true;
            }
            _ => {}
        }
        in_tag || c == ';' || c == ',' || c.is_whitespace()
    })
    .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kbs(s: &str) -> Vec<u32> {
        parse_supersedence(s)
            .into_iter()
            .map(KbId::number)
            .collect()
    }

    #[test]
    fn every_form_in_the_archive() {
        assert_eq!(kbs("4532693"), [4532693]);
        assert_eq!(kbs("5033372; 5032189"), [5033372, 5032189]);
        assert_eq!(
            kbs("5033372, 5032189, 5031356"),
            [5033372, 5032189, 5031356]
        );
        assert_eq!(
            kbs("MS16-016, 3124280; MS16-014, 3126587"),
            [3124280, 3126587]
        );
        assert_eq!(kbs("MS16-016"), [] as [u32; 0]);
        assert_eq!(kbs("None"), [] as [u32; 0]);
        assert_eq!(kbs("4532693<br><br>4537572"), [4532693, 4537572]);
        assert_eq!(kbs("20.0.1"), [] as [u32; 0]);
        assert_eq!(kbs(""), [] as [u32; 0]);
    }

    #[test]
    fn prefixes_short_numbers_versions_and_repeats() {
        assert_eq!(kbs("KB4532693; kb890830"), [4532693, 890830]);
        // A 5-digit value is a typo in the feed, not a KB.
        assert_eq!(kbs("4480970, 44809"), [4480970]);
        assert_eq!(kbs("10.0.19041.1415"), [] as [u32; 0]);
        assert_eq!(kbs("12345678"), [] as [u32; 0]);
        assert_eq!(kbs("5033372; 5033372,5033372"), [5033372]);
        assert_eq!(kbs("  5033372  \n 5032189 "), [5033372, 5032189]);
    }
}
