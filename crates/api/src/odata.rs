//! OData conventions of the MDE API: the `@odata.context` URL (built here and only here) and
//! the rejection of system query options the endpoint does not support.

use std::net::IpAddr;

use axum::http::HeaderMap;
use percent_encoding::percent_decode_str;

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
