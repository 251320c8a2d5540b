//! End of servicing (`docs/semantics-products.md` §8): real captures whose systeminfo names the
//! edition, evaluated against the whole archive (June 2026). Dates are Microsoft's lifecycle
//! dates; the KBs are the cumulative updates Microsoft released for the version on those days
//! (their KB articles: "November 10, 2020—KB4586793 (OS Build 17763.1577)", "May 11,
//! 2021—KB5003171 (OS Build 17763.1935)", "May 9, 2017—KB4019474 (OS Build 10240.17394)",
//! "October 14, 2025—KB5066791 (OS Build 19045.6456)").

use kbgap_domain::lifecycle::EndOfServicing;
use kbgap_domain::Edition;
use time::macros::date;

use super::*;

fn ended(
    version: &'static str,
    edition: Option<Edition>,
    since: time::Date,
    esu_until: Option<time::Date>,
    last: u32,
) -> Option<EndOfServicing> {
    Some(EndOfServicing {
        version,
        edition,
        since,
        esu_until,
        last_update: Some(kb(last)),
    })
}

#[test]
fn an_edition_out_of_servicing_is_told_its_last_update_not_what_ltsc_gets() {
    // Windows 10 1809 Pro left servicing on 2020-11-10; June 2026's KB5094123 is listed for
    // "Windows 10 Version 1809" because LTSC 2019 still gets it. The machine (a March 2019
    // capture with its complete update list) misses the last update Pro was offered.
    let pro = capture("10_1809_x64_pro_en-us_20190307_systeminfo.txt");
    assert_eq!(pro.os.as_ref().unwrap().edition, Some(Edition::HomePro));
    let e = explain(full(), &pro);
    assert_eq!(
        e.evaluation.end_of_servicing,
        ended(
            "Windows 10, version 1809",
            Some(Edition::HomePro),
            date!(2020 - 11 - 10),
            None,
            4586793
        )
    );
    assert_eq!(missing(&e, "windows_10"), vec![4586793]);
    // Nothing released after the edition's end is reported for anything Windows services.
    for kbs in e.evaluation.missing.values() {
        for k in kbs {
            assert!(
                full().kb(*k).unwrap().release_date <= date!(2020 - 11 - 10),
                "{k}"
            );
        }
    }

    // Education was serviced six months longer.
    let education = capture("10_1809_x64_education_en-us_20190306_systeminfo.txt");
    let e = explain(full(), &education);
    assert_eq!(
        e.evaluation.end_of_servicing,
        ended(
            "Windows 10, version 1809",
            Some(Edition::EnterpriseEducation),
            date!(2021 - 05 - 11),
            None,
            5003171
        )
    );
    assert_eq!(missing(&e, "windows_10"), vec![5003171]);

    // Enterprise LTSC 2019 (a Chinese capture: "Microsoft Windows 10 企业版 LTSC") is
    // serviced until 2029: it misses June 2026's update.
    let ltsc = capture("10_1809_x64_enterprise_zh-cn_systeminfo.txt");
    assert_eq!(ltsc.os.as_ref().unwrap().edition, Some(Edition::Ltsc));
    let e = explain(full(), &ltsc);
    assert_eq!(e.evaluation.end_of_servicing, None);
    assert_eq!(missing(&e, "windows_10"), vec![5094123]);

    // The same Pro machine with the edition unknown (a source that does not name it) is
    // counted as the editions still serviced would be.
    let mut unknown = pro.clone();
    unknown.os.as_mut().unwrap().edition = None;
    let e = explain(full(), &unknown);
    assert_eq!(e.evaluation.end_of_servicing, None);
    assert_eq!(missing(&e, "windows_10"), vec![5094123]);
}

#[test]
fn windows_10_1507_pro_and_22h2_with_extended_security_updates() {
    // 1507 Home and Pro left servicing on 2017-05-09; LTSB 2015 continued until 2025.
    let rtm = capture("10_rtm_x64_pro_en-us_systeminfo.txt");
    let e = explain(full(), &rtm);
    assert_eq!(
        e.evaluation.end_of_servicing,
        ended(
            "Windows 10, version 1507",
            Some(Edition::HomePro),
            date!(2017 - 05 - 09),
            None,
            4019474
        )
    );
    assert_eq!(missing(&e, "windows_10"), vec![4019474]);

    // 22H2 left servicing on 2025-10-14 for every edition, and its security updates go on
    // through Extended Security Updates (commercial ESU until 2028-10-10). kbgap cannot see
    // enrolment: it says so and keeps counting them.
    let w22h2 = capture("10_22H2_x64_enterprise_en-us_systeminfo.txt");
    let e = explain(full(), &w22h2);
    assert_eq!(
        e.evaluation.end_of_servicing,
        ended(
            "Windows 10, version 22H2",
            Some(Edition::EnterpriseEducation),
            date!(2025 - 10 - 14),
            Some(date!(2028 - 10 - 10)),
            5066791
        )
    );
    assert_eq!(missing(&e, "windows_10"), vec![5094127]);

    // Cut at a day it was still serviced, nothing is said.
    let e = explain(
        &kbgap_service::compile(documents(), Some(date!(2025 - 09 - 30))),
        &w22h2,
    );
    assert_eq!(e.evaluation.end_of_servicing, None);
}
