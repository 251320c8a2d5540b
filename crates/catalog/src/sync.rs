//! The MSRC API client for `kbgap catalog sync`: the updates listing, then each changed CVRF
//! document, with bounded retries, exponential back-off and conditional requests (ETag).

use std::collections::BTreeMap;
use std::time::Duration;

use kbgap_domain::cvrf::CvrfDocument;
use serde::{Deserialize, Serialize};
use time::PrimitiveDateTime;

use crate::document::parse_date;
use crate::error::ParseError;

/// Microsoft's MSRC API.
pub const DEFAULT_BASE_URL: &str = "https://api.msrc.microsoft.com";

/// The largest document body accepted (the biggest monthly XML is ~10 MB; Mariner
/// pseudo-months are larger): a guard against a runaway response, not a tight fit.
const MAX_BODY: u64 = 512 * 1024 * 1024;

/// How the client talks to the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Scheme and host (and optional path prefix) of the API, without a trailing slash.
    pub base_url: String,
    /// Attempts per request, the first included (at least 1).
    pub attempts: u32,
    /// Delay before the first retry; doubled for each further one, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Whole-request timeout (connect, send, receive).
    pub timeout: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            attempts: 4,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
        }
    }
}

/// A failed sync step, naming what was requested and why it failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Transport failure or a retryable status that persisted through every attempt.
    #[error("{url}: {what} (after {attempts} attempt(s))")]
    Http {
        url: String,
        what: String,
        attempts: u32,
    },
    /// A status that retrying does not fix (404, 401, …).
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    /// The updates listing is not the API's shape.
    #[error("{url}: not an MSRC updates listing: {what}")]
    Listing { url: String, what: String },
    /// A document that does not parse: the document id and the parser's reason.
    #[error("document {id}: {source}")]
    Document {
        id: String,
        #[source]
        source: ParseError,
    },
}

/// One entry of `GET /cvrf/v3.0/updates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateEntry {
    pub id: String,
    pub title: String,
    #[serde(with = "dt")]
    pub initial_release: PrimitiveDateTime,
    #[serde(with = "dt")]
    pub current_release: PrimitiveDateTime,
    /// Where the document is; `{base}/cvrf/v3.0/cvrf/{id}` when the listing gives none.
    pub cvrf_url: String,
}

/// Validators of a previous response, for a conditional request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validator {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// What a conditional GET returned.
#[derive(Debug)]
pub enum Fetched<T> {
    /// 304: the previous response still holds.
    NotModified,
    Fresh {
        value: T,
        validator: Validator,
    },
}

/// What a sync remembers between runs (kept by the caller, e.g. a file in the data
/// directory): the listing's validator and entries, and each document's validator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub base_url: String,
    pub listing: Validator,
    pub entries: Vec<UpdateEntry>,
    /// Per document id.
    pub documents: BTreeMap<String, Validator>,
}

/// A blocking MSRC API client.
pub struct MsrcClient {
    agent: ureq::Agent,
    config: SyncConfig,
}

impl MsrcClient {
    pub fn new(config: SyncConfig) -> MsrcClient {
        let loopback = is_loopback(&config.base_url);
        let mut builder = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("kbgap/", env!("CARGO_PKG_VERSION")));
        if loopback {
            // A local mirror is never reached through a proxy from the environment.
            builder = builder.proxy(None);
        }
        MsrcClient {
            agent: builder.build().into(),
            config,
        }
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// The listing URL: `{base}/cvrf/v3.0/updates`.
    pub fn updates_url(&self) -> String {
        format!(
            "{}/cvrf/v3.0/updates",
            self.config.base_url.trim_end_matches('/')
        )
    }

    /// `GET /cvrf/v3.0/updates`, conditional on `previous`.
    pub fn updates(&self, previous: &Validator) -> Result<Fetched<Vec<UpdateEntry>>, SyncError> {
        let url = self.updates_url();
        match self.get(&url, "application/json", previous)? {
            Fetched::NotModified => Ok(Fetched::NotModified),
            Fetched::Fresh { value, validator } => Ok(Fetched::Fresh {
                value: parse_listing(&value, &url, &self.config.base_url)?,
                validator,
            }),
        }
    }

    /// One CVRF document (asked for as XML, the form with `FixedBuild`), conditional on
    /// `previous`; a body that does not parse is an error naming the document.
    pub fn document(
        &self,
        entry: &UpdateEntry,
        previous: &Validator,
    ) -> Result<Fetched<CvrfDocument>, SyncError> {
        match self.get(&entry.cvrf_url, "application/xml", previous)? {
            Fetched::NotModified => Ok(Fetched::NotModified),
            Fetched::Fresh { value, validator } => {
                let doc = crate::parse_document(&value, &entry.cvrf_url).map_err(|source| {
                    SyncError::Document {
                        id: entry.id.clone(),
                        source,
                    }
                })?;
                Ok(Fetched::Fresh {
                    value: doc,
                    validator,
                })
            }
        }
    }

    /// A GET with retries: transport errors, 408, 429 and 5xx are retried with exponential
    /// back-off (a `Retry-After` in seconds is honoured up to `max_backoff`); other statuses
    /// fail at once.
    fn get(
        &self,
        url: &str,
        accept: &str,
        previous: &Validator,
    ) -> Result<Fetched<Vec<u8>>, SyncError> {
        let attempts = self.config.attempts.max(1);
        let mut delay = self.config.backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                std::thread::sleep(delay.min(self.config.max_backoff));
                delay = delay.saturating_mul(2);
            }
            let mut req = self.agent.get(url).header("Accept", accept);
            if let Some(etag) = &previous.etag {
                req = req.header("If-None-Match", etag);
            }
            if let Some(lm) = &previous.last_modified {
                req = req.header("If-Modified-Since", lm);
            }
            let mut resp = match req.call() {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            match status {
                304 => return Ok(Fetched::NotModified),
                200..=299 => {
                    let validator = Validator {
                        etag: header("etag"),
                        last_modified: header("last-modified"),
                    };
                    match resp.body_mut().with_config().limit(MAX_BODY).read_to_vec() {
                        Ok(value) => return Ok(Fetched::Fresh { value, validator }),
                        Err(e) => last = format!("reading the body: {e}"),
                    }
                }
                408 | 429 | 500..=599 => {
                    if let Some(secs) = header("retry-after").and_then(|s| s.trim().parse().ok()) {
                        delay = delay.max(Duration::from_secs(secs));
                    }
                    last = format!("HTTP {status}");
                }
                _ => {
                    return Err(SyncError::Status {
                        url: url.to_string(),
                        status,
                    })
                }
            }
        }
        Err(SyncError::Http {
            url: url.to_string(),
            what: last,
            attempts,
        })
    }
}

fn is_loopback(base: &str) -> bool {
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .unwrap_or(base);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]")
}

#[derive(Deserialize)]
struct Listing {
    value: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawEntry {
    #[serde(rename = "ID")]
    id: Option<String>,
    document_title: Option<String>,
    initial_release_date: Option<String>,
    current_release_date: Option<String>,
    cvrf_url: Option<String>,
}

/// The listing's entries, checked: each has an id and both dates.
pub fn parse_listing(bytes: &[u8], url: &str, base: &str) -> Result<Vec<UpdateEntry>, SyncError> {
    let bad = |what: String| SyncError::Listing {
        url: url.to_string(),
        what,
    };
    let listing: Listing = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::with_capacity(listing.value.len());
    for (i, e) in listing.value.into_iter().enumerate() {
        let id =
            e.id.filter(|s| !s.trim().is_empty())
                .ok_or_else(|| bad(format!("value[{i}] has no ID")))?;
        let date = |field: &str, v: Option<String>| {
            v.as_deref().and_then(parse_date).ok_or_else(|| {
                bad(format!(
                    "value[{i}] ({id}): {field} is missing or not a date"
                ))
            })
        };
        let initial_release = date("InitialReleaseDate", e.initial_release_date)?;
        let current_release = date("CurrentReleaseDate", e.current_release_date)?;
        let cvrf_url = e
            .cvrf_url
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| format!("{}/cvrf/v3.0/cvrf/{id}", base.trim_end_matches('/')));
        out.push(UpdateEntry {
            title: e.document_title.unwrap_or_default(),
            id,
            initial_release,
            current_release,
            cvrf_url,
        });
    }
    Ok(out)
}

impl UpdateEntry {
    /// A document with this entry's identity and dates and no fixes: enough for a store to
    /// say whether it holds this revision already.
    pub fn stub(&self) -> CvrfDocument {
        CvrfDocument {
            id: self.id.clone(),
            title: self.title.clone(),
            initial_release: self.initial_release,
            current_release: self.current_release,
            fixes: Vec::new(),
        }
    }
}

/// `PrimitiveDateTime` as the listing's RFC 3339 text, for the state file.
mod dt {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::macros::format_description;
    use time::PrimitiveDateTime;

    pub fn serialize<S: Serializer>(v: &PrimitiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        let f = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        s.serialize_str(&v.format(&f).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PrimitiveDateTime, D::Error> {
        let s = String::deserialize(d)?;
        crate::document::parse_date(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not a date")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_entries_are_checked() {
        let ok = br#"{"value":[{"ID":"2024-Jan","Alias":"2024-Jan","DocumentTitle":"January 2024 Security Updates","InitialReleaseDate":"2024-01-09T08:00:00Z","CurrentReleaseDate":"2024-01-10T08:00:00Z","CvrfUrl":"http://127.0.0.1:9/cvrf/v3.0/cvrf/2024-Jan"},{"ID":"2024-Feb","DocumentTitle":"February","InitialReleaseDate":"2024-02-13T08:00:00Z","CurrentReleaseDate":"2024-02-13T08:00:00Z"}]}"#;
        let e = parse_listing(ok, "u", "https://x/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].cvrf_url, "http://127.0.0.1:9/cvrf/v3.0/cvrf/2024-Jan");
        assert_eq!(e[1].cvrf_url, "https://x/cvrf/v3.0/cvrf/2024-Feb");
        assert_eq!(e[0].current_release.to_string(), "2024-01-10 8:00:00.0");
        let no_date =
            br#"{"value":[{"ID":"2024-Jan","InitialReleaseDate":"2024-01-09T08:00:00Z"}]}"#;
        assert_eq!(
            parse_listing(no_date, "u", "b").map_err(|e| e.to_string()).err(),
            Some("u: not an MSRC updates listing: value[0] (2024-Jan): CurrentReleaseDate is missing or not a date".to_string())
        );
        assert!(parse_listing(b"<html/>", "u", "b").is_err());
    }

    #[test]
    fn state_round_trips_through_json() {
        let e = parse_listing(
            br#"{"value":[{"ID":"2024-Jan","DocumentTitle":"t","InitialReleaseDate":"2024-01-09T08:00:00Z","CurrentReleaseDate":"2024-01-10T08:00:00Z"}]}"#,
            "u",
            "b",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let state = SyncState {
            base_url: "b".into(),
            listing: Validator {
                etag: Some("\"1\"".into()),
                last_modified: None,
            },
            entries: e,
            documents: BTreeMap::new(),
        };
        let json = serde_json::to_string(&state).unwrap_or_default();
        let back: SyncState = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, state);
    }

    #[test]
    fn loopback_bases() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("http://localhost/x"));
        assert!(is_loopback("http://[::1]:80"));
        assert!(!is_loopback(DEFAULT_BASE_URL));
    }
}
