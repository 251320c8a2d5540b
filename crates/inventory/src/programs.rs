//! Add/Remove Programs entries (osquery `programs`) of Microsoft's MSI-installed products:
//! the product and version line an entry names, and the product updates listed beside it
//! ("Security Update for Microsoft Word 2016 (KB5002879) 64-Bit Edition"), which Windows'
//! own installed-update list (Win32_QuickFixEngineering) never shows.

use kbgap_domain::{KbId, SoftwareId};

const OFFICE_LINES: [&str; 4] = ["2007", "2010", "2013", "2016"];
const OFFICE_APPS: [&str; 8] = [
    "word",
    "excel",
    "powerpoint",
    "outlook",
    "access",
    "publisher",
    "onenote",
    "infopath",
];

/// The MSI product an entry names, with its version line: `Microsoft Office Professional
/// Plus 2016` is Office 2016, `Microsoft SQL Server 2019 (64-bit)` SQL Server 2019. The
/// entry's own version is not a patch level (an MSI product's ARP version stays at its
/// release build while updates are installed), so only the line is kept.
pub fn msi_product(name: &str) -> Option<(SoftwareId, String)> {
    let n = name.trim().to_lowercase();
    let words: Vec<&str> = n.split_whitespace().collect();
    let year = |allowed: &[&str]| {
        words
            .iter()
            .find(|w| allowed.contains(w))
            .map(|w| w.to_string())
    };
    let rest = n.strip_prefix("microsoft ")?;
    if rest.contains("click-to-run") || rest.contains("365") || rest.contains("language pack") {
        return None;
    }
    if rest.starts_with("office ") {
        return Some((SoftwareId::microsoft("office"), year(&OFFICE_LINES)?));
    }
    if OFFICE_APPS
        .iter()
        .any(|a| rest.starts_with(&format!("{a} ")))
    {
        let line = year(&OFFICE_LINES)?;
        // "Microsoft Word 2016" as its own MSI product; a viewer is another software.
        return (!rest.contains("viewer")).then(|| (SoftwareId::microsoft("office"), line));
    }
    for product in ["visio", "project"] {
        if rest.starts_with(&format!("{product} ")) && !rest.contains("viewer") {
            return Some((SoftwareId::microsoft(product), year(&OFFICE_LINES)?));
        }
    }
    if rest.starts_with("sharepoint ") && rest.contains("server") {
        if rest.contains("subscription edition") {
            return Some((
                SoftwareId::microsoft("sharepoint_server"),
                "subscription edition".into(),
            ));
        }
        return Some((
            SoftwareId::microsoft("sharepoint_server"),
            year(&["2010", "2013", "2016", "2019"])?,
        ));
    }
    if let Some(sql) = rest.strip_prefix("sql server ") {
        // The engine itself, not its tools: "Microsoft SQL Server 2019 (64-bit)".
        let line = sql.split_whitespace().next()?;
        let tail = sql[line.len()..].trim();
        let lines = ["2012", "2014", "2016", "2017", "2019", "2022", "2025"];
        return (lines.contains(&line) && (tail.is_empty() || tail == "(64-bit)"))
            .then(|| (SoftwareId::microsoft("sql_server"), line.to_string()));
    }
    if let Some(exchange) = rest.strip_prefix("exchange server ") {
        let line = exchange.split_whitespace().next()?;
        return ["2013", "2016", "2019"]
            .contains(&line)
            .then(|| (SoftwareId::microsoft("exchange_server"), line.to_string()));
    }
    None
}

/// A product update an entry names: "Security Update for Microsoft Word 2016 (KB5002879)
/// 64-Bit Edition", "Security Update for SQL Server 2019 RTM GDR (KB5029377)", "Security
/// Update for Exchange Server 2019 Cumulative Update 13 (KB5049233)".
pub fn product_update(name: &str) -> Option<(SoftwareId, String, KbId)> {
    let n = name.trim();
    let lower = n.to_lowercase();
    let phrase = ["security update for ", "update for ", "hotfix for "]
        .iter()
        .find_map(|p| lower.strip_prefix(p))?;
    let open = phrase.find("(kb")?;
    let digits: String = phrase[open + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let kb = KbId::parse(&digits).ok()?;
    let product = phrase[..open].trim();
    let product = product.strip_prefix("microsoft ").unwrap_or(product);
    // An update's product names its servicing level after the line ("SQL Server 2019 RTM
    // GDR", "Exchange Server 2019 Cumulative Update 13"): the line is what matters here.
    let named = format!("microsoft {product}");
    let (software, line) = msi_product(&named).or_else(|| {
        let mut words = product.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("sql"), Some("server"), Some(line)) => {
                msi_product(&format!("microsoft sql server {line}"))
            }
            _ => None,
        }
    })?;
    Some((software, line, kb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_their_lines() {
        let p = |n: &str| msi_product(n).map(|(s, l)| (s.as_str().to_string(), l));
        let want = |s: &str, l: &str| Some((format!("microsoft-_-{s}"), l.to_string()));
        assert_eq!(
            p("Microsoft Office Professional Plus 2016"),
            want("office", "2016")
        );
        assert_eq!(p("Microsoft Word 2013"), want("office", "2013"));
        assert_eq!(
            p("Microsoft Visio Professional 2016"),
            want("visio", "2016")
        );
        assert_eq!(
            p("Microsoft SQL Server 2019 (64-bit)"),
            want("sql_server", "2019")
        );
        assert_eq!(p("Microsoft SQL Server 2019 Setup (English)"), None);
        assert_eq!(p("Microsoft SQL Server Management Studio - 19.1"), None);
        assert_eq!(
            p("Microsoft SharePoint Server 2019"),
            want("sharepoint_server", "2019")
        );
        assert_eq!(
            p("Microsoft Exchange Server 2019"),
            want("exchange_server", "2019")
        );
        assert_eq!(p("Microsoft 365 Apps for enterprise - en-us"), None);
        assert_eq!(p("Microsoft Office Click-to-Run 2016"), None);
        assert_eq!(p("Microsoft Edge"), None);
    }

    #[test]
    fn updates_name_their_product() {
        let u =
            |n: &str| product_update(n).map(|(s, l, k)| (s.as_str().to_string(), l, k.number()));
        assert_eq!(
            u("Security Update for Microsoft Word 2016 (KB5002879) 64-Bit Edition"),
            Some(("microsoft-_-office".into(), "2016".into(), 5002879))
        );
        assert_eq!(
            u("Security Update for SQL Server 2019 RTM GDR (KB5029377)"),
            Some(("microsoft-_-sql_server".into(), "2019".into(), 5029377))
        );
        assert_eq!(
            u("Security Update for Exchange Server 2019 Cumulative Update 13 (KB5049233)"),
            Some(("microsoft-_-exchange_server".into(), "2019".into(), 5049233))
        );
        assert_eq!(
            u("Update for Microsoft SharePoint Enterprise Server 2016 (KB5002862) 64-Bit Edition"),
            Some((
                "microsoft-_-sharepoint_server".into(),
                "2016".into(),
                5002862
            ))
        );
        assert_eq!(u("Microsoft Word 2016"), None);
        assert_eq!(u("Security Update for Adobe Reader (KB123)"), None);
    }
}
