//! `kbgap catalog coverage | repairs | sync` as a user runs them. Sync talks to a small HTTP
//! mirror of the MSRC API on 127.0.0.1 that serves the real archive's documents.

mod common;

use common::*;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/msrc-cvrf"
);

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_new_subcommands_have_help() {
    let dir = tempdir();
    for (args, needle) in [
        (vec!["catalog", "--help"], "coverage"),
        (
            vec!["catalog", "coverage", "--help"],
            "from 2016 on is unmapped",
        ),
        (vec!["catalog", "repairs", "--help"], "--kind"),
        (
            vec!["catalog", "sync", "--help"],
            "https://api.msrc.microsoft.com",
        ),
    ] {
        let o = kbgap(dir.path(), &args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains(needle), "{args:?}: {}", stdout(&o));
    }
}

#[test]
fn coverage_of_the_whole_archive_has_nothing_unmapped() {
    let dir = tempdir();
    let o = kbgap(dir.path(), &["catalog", "coverage", ARCHIVE]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("Normalization coverage of 190 documents (every product the documents name): 7060 product names, 7355 ProductIDs, 225454 KB fixes\n"),
        "{out}"
    );
    assert!(
        out.contains("\n  unmapped             0           0         0      0\n"),
        "{out}"
    );
    assert!(out.contains("\n  Windows 10                                    38       4       0     65561    603\n"), "{out}");
    assert!(out.ends_with(
        "OK: every product with a numeric KB from 2016 on is mapped or out of scope.\n"
    ));

    let o = kbgap(dir.path(), &["catalog", "coverage", "--json", ARCHIVE]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["unmapped"]["names"], 0);
    assert_eq!(json["productIds"], 7355);
}

#[test]
fn coverage_fails_on_an_unmapped_product_with_a_kb() {
    let dir = tempdir();
    let xml = std::fs::read_to_string(format!("{FIXTURES}/2024-Jan-mini.xml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let odd = xml.replace(
        "Windows 10 Version 21H2 for x64-based Systems",
        "Contoso Widget 7",
    );
    let path = dir.path().join("2024-Jan.xml");
    std::fs::write(&path, odd).unwrap_or_else(|e| panic!("{e}"));
    let o = kbgap(
        dir.path(),
        &["catalog", "coverage", &path.display().to_string()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("\n          1    yes  Contoso Widget 7\n"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(
            "1 product name(s) with a numeric KB from 2016 on are unmapped (first: Contoso Widget 7)"
        ),
        "{}",
        stderr(&o)
    );

    // Without paths the stored catalog is read; an empty store says so.
    let o = kbgap(dir.path(), &["catalog", "coverage"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("the store holds no catalog"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn repairs_lists_the_wrong_branch_fixed_build_of_kb5032192() {
    let dir = tempdir();
    // The revised 2023-Oct document lists KB5032192, a Windows 11 21H2 update, for
    // Windows 10 21H2 with FixedBuild 10.0.22000.2600.
    let oct = format!("{ARCHIVE}/2023-Oct.xml.zst");
    let nov = format!("{ARCHIVE}/2023-Nov.xml.zst");
    let o = kbgap(dir.path(), &["catalog", "import", &oct, &nov]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = kbgap(
        dir.path(),
        &["catalog", "repairs", "--kind", "wrong-branch-fixed-build"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("\nkind\tKB\tproduct\tevidence\n"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(
            "wrongBranchFixedBuild\tKB5032192\tWindows 10 Version 21H2 for 32-bit Systems\tFixedBuild 10.0.22000.2600"
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .skip(2)
            .all(|l| l.starts_with("wrongBranchFixedBuild\t")),
        "{out}"
    );

    let o = kbgap(dir.path(), &["catalog", "repairs", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all: Vec<serde_json::Value> =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        all.iter().any(|r| r["kind"] == "wrongBranchFixedBuild"
            && r["kb"] == "5032192"
            && r["productName"] == "Windows 10 Version 21H2 for 32-bit Systems"),
        "{all:?}"
    );

    let o = kbgap(
        dir.path(),
        &["catalog", "repairs", "--kind", "no-such-kind"],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("no repair of kind 'no-such-kind' in catalog generation 1; kinds present: ")
            && err.contains("wrongBranchFixedBuild"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// A mirror of the MSRC API on 127.0.0.1.
// ---------------------------------------------------------------------------------------------

struct Doc {
    /// The listing entry, as in the real index.json (CvrfUrl rewritten on the fly).
    entry: serde_json::Value,
    body: Vec<u8>,
}

#[derive(Default)]
struct Mirror {
    docs: BTreeMap<String, Doc>,
    /// Statuses to answer before serving a path normally (fault injection).
    faults: HashMap<String, VecDeque<u16>>,
    /// Every request: (path, status).
    log: Vec<(String, u16)>,
}

struct Server {
    base: String,
    state: Arc<Mutex<Mirror>>,
}

fn index_entries() -> Vec<serde_json::Value> {
    let bytes = std::fs::read(format!("{ARCHIVE}/index.json")).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    v["value"].as_array().cloned().unwrap_or_default()
}

fn real_xml(id: &str) -> Vec<u8> {
    let zst = std::fs::read(format!("{ARCHIVE}/{id}.xml.zst")).unwrap_or_else(|e| panic!("{e}"));
    zstd::decode_all(&zst[..]).unwrap_or_else(|e| panic!("{e}"))
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let base = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let state = Arc::new(Mutex::new(Mirror::default()));
        let shared = state.clone();
        let b = base.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                handle(stream, &shared, &b);
            }
        });
        Server { base, state }
    }

    fn mirror(&self) -> std::sync::MutexGuard<'_, Mirror> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves the real document `id` with its real listing entry.
    fn add(&self, id: &str) {
        let entry = index_entries()
            .into_iter()
            .find(|e| e["ID"] == id)
            .unwrap_or_else(|| panic!("{id} is not in index.json"));
        self.mirror().docs.insert(
            id.to_string(),
            Doc {
                entry,
                body: real_xml(id),
            },
        );
    }

    fn requests(&self) -> Vec<(String, u16)> {
        self.mirror().log.clone()
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn handle(stream: TcpStream, state: &Mutex<Mirror>, base: &str) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(v.trim().to_string());
            }
        }
    }
    let mut m = state.lock().unwrap_or_else(|p| p.into_inner());
    let (status, etag, body) =
        if let Some(s) = m.faults.get_mut(&path).and_then(VecDeque::pop_front) {
            (s, None, format!("fault {s}").into_bytes())
        } else if path == "/cvrf/v3.0/updates" {
            let value: Vec<serde_json::Value> = m
                .docs
                .iter()
                .map(|(id, d)| {
                    let mut e = d.entry.clone();
                    e["CvrfUrl"] = format!("{base}/cvrf/v3.0/cvrf/{id}").into();
                    e
                })
                .collect();
            let body = serde_json::to_vec(&serde_json::json!({
                "@odata.context": format!("{base}/$metadata#Updates"),
                "value": value
            }))
            .unwrap_or_default();
            (200, Some(format!("\"L{:x}\"", fnv(&body))), body)
        } else if let Some(d) = path
            .strip_prefix("/cvrf/v3.0/cvrf/")
            .and_then(|id| m.docs.get(id))
        {
            (
                200,
                Some(format!("\"D{:x}\"", fnv(&d.body))),
                d.body.clone(),
            )
        } else {
            (404, None, b"not found".to_vec())
        };
    let (status, body) = match (&etag, &if_none_match) {
        (Some(e), Some(i)) if e == i && status == 200 => (304, Vec::new()),
        _ => (status, body),
    };
    m.log.push((path, status));
    drop(m);
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(e) = etag {
        head.push_str(&format!("ETag: {e}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

fn sync(dir: &Path, server: &Server) -> Output {
    kbgap(
        dir,
        &[
            "catalog",
            "sync",
            "--base-url",
            &server.base,
            "--backoff-ms",
            "1",
            "--max-backoff-ms",
            "5",
            "--attempts",
            "3",
            "--timeout-secs",
            "30",
        ],
    )
}

fn status(dir: &Path) -> String {
    stdout(&kbgap(dir, &["catalog", "status"]))
}

#[test]
fn sync_fetches_what_changed_and_then_nothing() {
    let server = Server::start();
    server.add("2023-Nov");
    server.add("2023-Dec");
    let dir = tempdir();

    let o = sync(dir.path(), &server);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(
            "catalog generation 1: 2 documents fetched (2023-Nov, 2023-Dec), 2 stored; 2 documents and "
        ),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("fetching 2023-Dec…"), "{}", stderr(&o));
    assert_eq!(
        server.requests(),
        [
            ("/cvrf/v3.0/updates".to_string(), 200),
            ("/cvrf/v3.0/cvrf/2023-Nov".to_string(), 200),
            ("/cvrf/v3.0/cvrf/2023-Dec".to_string(), 200),
        ]
    );
    assert!(status(dir.path()).contains("generation: 1\n"));

    // Nothing changed: the listing answers 304 and no document is requested.
    let o = sync(dir.path(), &server);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(
            "catalog generation 1: up to date (2 documents listed, listing not modified;"
        ),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        server.requests()[3..],
        [("/cvrf/v3.0/updates".to_string(), 304)]
    );

    // A revised document (newer CurrentReleaseDate) is fetched alone.
    {
        let mut m = server.mirror();
        let dec = m
            .docs
            .get_mut("2023-Dec")
            .unwrap_or_else(|| panic!("2023-Dec"));
        dec.entry["CurrentReleaseDate"] = "2026-12-01T08:00:00Z".into();
        let text = String::from_utf8_lossy(&dec.body).into_owned();
        let open = "<cvrf:CurrentReleaseDate>";
        let start = text
            .find(open)
            .unwrap_or_else(|| panic!("no CurrentReleaseDate"))
            + open.len();
        let end = start + text[start..].find('<').unwrap_or(0);
        let revised = format!("{}2026-12-01T08:00:00{}", &text[..start], &text[end..]);
        dec.body = revised.into_bytes();
    }
    let o = sync(dir.path(), &server);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("catalog generation 2: 1 documents fetched (2023-Dec), 1 stored;"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        server.requests()[4..],
        [
            ("/cvrf/v3.0/updates".to_string(), 200),
            ("/cvrf/v3.0/cvrf/2023-Dec".to_string(), 200),
        ]
    );
}

#[test]
fn a_corrupt_document_mid_sync_keeps_the_previous_generation_and_is_named() {
    let server = Server::start();
    server.add("2023-Nov");
    let dir = tempdir();
    let o = sync(dir.path(), &server);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = status(dir.path());
    assert!(before.contains("generation: 1\n"), "{before}");

    // Two new documents; the first one fetched is cut short.
    server.add("2023-Dec");
    server.add("2024-Jan");
    {
        let mut m = server.mirror();
        let dec = m
            .docs
            .get_mut("2023-Dec")
            .unwrap_or_else(|| panic!("2023-Dec"));
        let half = dec.body.len() / 2;
        dec.body.truncate(half);
    }
    let o = sync(dir.path(), &server);
    assert!(!o.status.success(), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("catalog sync failed; catalog generation 1 stays active: document 2023-Dec: ")
            && err.contains("/cvrf/v3.0/cvrf/2023-Dec: line "),
        "{err}"
    );
    assert_eq!(
        status(dir.path()),
        before,
        "the previous generation still serves"
    );

    // Fixed upstream: the next sync fetches both and makes generation 2.
    server.add("2023-Dec");
    let o = sync(dir.path(), &server);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(
            "catalog generation 2: 2 documents fetched (2023-Dec, 2024-Jan), 2 stored; 3 documents and "
        ),
        "{}",
        stdout(&o)
    );
}

#[test]
fn transient_errors_are_retried_and_persistent_ones_reported() {
    let server = Server::start();
    server.add("2023-Nov");
    server
        .mirror()
        .faults
        .insert("/cvrf/v3.0/updates".into(), VecDeque::from([503, 429]));
    server
        .mirror()
        .faults
        .insert("/cvrf/v3.0/cvrf/2023-Nov".into(), VecDeque::from([500]));
    let dir = tempdir();
    let o = sync(dir.path(), &server);
    assert!(o.status.success(), "{}", stderr(&o));
    let statuses: Vec<u16> = server.requests().iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, [503, 429, 200, 500, 200]);

    // Failing every attempt: the error says which URL, what, and how often it was tried.
    server
        .mirror()
        .faults
        .insert("/cvrf/v3.0/updates".into(), VecDeque::from([502, 502, 502]));
    let o = sync(dir.path(), &server);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "catalog sync failed; catalog generation 1 stays active: {}/cvrf/v3.0/updates: HTTP 502 (after 3 attempt(s))",
            server.base
        )),
        "{err}"
    );

    // A status retrying cannot fix fails at once.
    server
        .mirror()
        .faults
        .insert("/cvrf/v3.0/updates".into(), VecDeque::from([404]));
    let n = server.requests().len();
    let o = sync(dir.path(), &server);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/cvrf/v3.0/updates: HTTP 404"),
        "{}",
        stderr(&o)
    );
    assert_eq!(server.requests().len(), n + 1);
}
