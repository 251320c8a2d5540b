//! Fuzzes the machine snapshot schema as the API receives it: one JSON snapshot (`PUT`), a JSON
//! array or NDJSON batch (`POST`), and the validation into machine facts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = kbgap_inventory::parse_snapshot(data) {
        let _ = s.facts();
        // What is accepted must survive a round trip unchanged.
        let json = serde_json::to_vec(&s).expect("a parsed snapshot serializes");
        let again = kbgap_inventory::parse_snapshot(&json).expect("a serialized snapshot parses");
        assert_eq!(s, again);
    }
    for ndjson in [false, true] {
        if let Ok(list) = kbgap_inventory::parse_snapshots(data, ndjson) {
            for s in &list {
                let _ = s.facts();
            }
        }
    }
});
