//! OData conventions of the MDE API: the `@odata.context` URL (built here and only here),
//! the system query options a list route supports (`$filter`, `$top`, `$skip`) and the
//! rejection of every other.

pub mod filter;

use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::error::ApiError;

/// The content type MDE answers collections with.
pub const ODATA_JSON: &str =
    "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8";

/// Rejects any OData system query option (`$filter`, `$top`, …), naming it.
pub fn reject_system_options(query: Option<&str>) -> Result<(), ApiError> {
    for pair in query.unwrap_or("").split('&') {
        let raw_key = pair.split('=').next().unwrap_or("");
        let key = percent_decode_str(&raw_key.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        if key.starts_with('$') {
            return Err(ApiError::OData(format!(
                "The query specified in the URI is not valid. The query option '{key}' is not supported on this endpoint."
            )));
        }
    }
    Ok(())
}

/// The most a list route answers at once, and the largest `$top` (MDE's page size).
pub const MAX_TOP: usize = 10_000;

/// The system query options of one request to a list route.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub filter: Option<filter::Filter>,
    /// `$filter` as the client wrote it (decoded), for the next page's link.
    pub filter_text: Option<String>,
    pub top: Option<usize>,
    pub skip: usize,
}

fn invalid(reason: &str) -> ApiError {
    ApiError::OData(format!(
        "The query specified in the URI is not valid. {reason}"
    ))
}

/// Decodes one part of a query string (`+` is a space, as forms send it).
fn decode(raw: &str) -> String {
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

impl ListOptions {
    /// Reads `$filter` (over `properties`), `$top` (at most [`MAX_TOP`]) and `$skip`; any
    /// other system option, or one given twice, is 400 `ODataError` naming it. Parameters
    /// not starting with `$` are ignored, as MDE ignores them.
    pub fn parse(
        query: Option<&str>,
        properties: &[(&'static str, filter::Kind)],
    ) -> Result<ListOptions, ApiError> {
        let mut out = ListOptions::default();
        let mut seen: Vec<String> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(raw_key);
            if !key.starts_with('$') {
                continue;
            }
            if seen.contains(&key) {
                return Err(invalid(&format!(
                    "The query option '{key}' was specified more than once; it may appear only once."
                )));
            }
            seen.push(key.clone());
            let value = decode(raw_value);
            match key.as_str() {
                "$filter" => {
                    out.filter =
                        Some(filter::Filter::parse(&value, properties).map_err(|e| invalid(&e))?);
                    out.filter_text = Some(value);
                }
                "$top" => {
                    let top: usize = value.trim().parse().map_err(|_| {
                        invalid(&format!(
                            "The value '{value}' of $top is not a whole number of 0 or more."
                        ))
                    })?;
                    if top > MAX_TOP {
                        return Err(invalid(&format!(
                            "The limit of '{MAX_TOP}' for Top query has been exceeded. The value from the incoming request is '{top}'."
                        )));
                    }
                    out.top = Some(top);
                }
                "$skip" => {
                    out.skip = value.trim().parse().map_err(|_| {
                        invalid(&format!(
                            "The value '{value}' of $skip is not a whole number of 0 or more."
                        ))
                    })?;
                }
                _ => {
                    return Err(invalid(&format!(
                        "The query option '{key}' is not supported on this endpoint."
                    )))
                }
            }
        }
        Ok(out)
    }

    /// How many records this answer carries at most, with `page_size` the server's page.
    pub fn take(&self, page_size: usize) -> usize {
        self.top.unwrap_or(usize::MAX).min(page_size.max(1))
    }

    /// The link to the page after one of `taken` records, when the client asked for more
    /// than that: the same route at the public base URL, `$skip` moved on.
    pub fn next_link(&self, base: &str, path: &str, taken: usize) -> Option<String> {
        let rest = match self.top {
            Some(top) if top <= taken => return None,
            Some(top) => Some(top - taken),
            None => None,
        };
        let encode = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let mut query = Vec::new();
        if let Some(f) = &self.filter_text {
            query.push(format!("$filter={}", encode(f)));
        }
        if let Some(rest) = rest {
            query.push(format!("$top={rest}"));
        }
        query.push(format!("$skip={}", self.skip + taken));
        Some(format!("{base}{path}?{}", query.join("&")))
    }
}

/// Where clients reach this server: the configured public base URL, or the scheme and host
/// the request arrived on (`X-Forwarded-*` believed only from trusted proxies).
pub fn base_url(
    configured: Option<&str>,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted_proxies: &[IpAddr],
) -> String {
    if let Some(base) = configured {
        return base.trim_end_matches('/').to_string();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()))
    };
    let trusted = peer.is_some_and(|p| trusted_proxies.contains(&p));
    let scheme = trusted
        .then(|| header("x-forwarded-proto"))
        .flatten()
        .filter(|s| s == "http" || s == "https")
        .unwrap_or_else(|| "http".into());
    let host = trusted
        .then(|| header("x-forwarded-host"))
        .flatten()
        .or_else(|| header("host"))
        .unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{host}")
}

/// One page of a collection: `@odata.context`, `value`, and the link to the next page.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    #[serde(rename = "@odata.context")]
    pub context: String,
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// A single entity: `@odata.context`, then its fields.
#[derive(Debug, Serialize)]
pub struct Entity<T> {
    #[serde(rename = "@odata.context")]
    pub context: String,
    #[serde(flatten)]
    pub entity: T,
}

/// A 200 answer in MDE's OData JSON.
pub fn odata_json(body: &impl Serialize) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(ApiError::internal)?;
    let mut resp = bytes.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    Ok(resp)
}

/// `@odata.context` of an answer: `{base}/api/$metadata#{what}`.
pub fn context(base: &str, what: &str) -> String {
    format!("{base}/api/$metadata#{what}")
}

/// `@odata.context` of a `getmissingkbs` answer.
pub fn missing_kbs_context(base: &str) -> String {
    format!("{base}/api/$metadata#Collection(microsoft.windowsDefenderATP.api.PublicProductFixDto)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_options_are_named() {
        assert!(reject_system_options(None).is_ok());
        assert!(reject_system_options(Some("foo=1&bar")).is_ok());
        let e = reject_system_options(Some("a=1&%24top=5")).unwrap_err();
        assert!(e.to_string().contains("'$top'"), "{e}");
        assert!(reject_system_options(Some("$filter=x eq 1")).is_err());
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert("host", "kbgap.internal:8080".parse().unwrap());
        h.insert("x-forwarded-host", "api.contoso.com".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(
            base_url(None, &h, Some(proxy), &[]),
            "http://kbgap.internal:8080"
        );
        assert_eq!(
            base_url(None, &h, Some(proxy), &[proxy]),
            "https://api.contoso.com"
        );
        assert_eq!(
            base_url(Some("https://x.test/"), &h, None, &[]),
            "https://x.test"
        );
    }
}
