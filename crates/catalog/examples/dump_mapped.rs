use std::collections::BTreeSet;
fn main() {
    let docs = kbgap_catalog::read_documents(&["/work/shared/data/msrc-cvrf"]).unwrap();
    let names: BTreeSet<&str> = docs.iter().flat_map(|d| &d.fixes).map(|f| f.product_name.as_str()).collect();
    for n in names {
        if let kbgap_domain::Normalized::Mapped(p) = kbgap_catalog::normalize(n) {
            let h = p.host.map(|h| format!("{} {} {:?} {:?}", h.software.product_name(), h.build, h.arch, h.install_type)).unwrap_or_default();
            println!("{:<95} | {} {:?} hp={} vf={} | {}", n, p.software.product_name(), p.version_line, p.hotpatch, p.version_fixed, h);
        }
    }
}
