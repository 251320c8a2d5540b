//! Request plumbing around the router: the request id (reused from `request-id` /
//! `x-request-id` when sane), one log line per request, MDE path normalization, and the
//! rewrite of bare framework errors into the MDE envelope.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Enveloped, REQUEST_ID};

/// Filled as soon as the request's token is authenticated, before any rate limit or
/// permission check can refuse it, so the request log line names the tenant and client app
/// of every authenticated request, whatever its outcome.
#[derive(Clone, Default)]
pub struct CallerSlot(pub Arc<Mutex<Option<Arc<kbgap_auth::Principal>>>>);

impl CallerSlot {
    pub fn set(&self, principal: &Arc<kbgap_auth::Principal>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(principal.clone());
        }
    }
}

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .then(|| s.to_string())
}

/// Outermost layer: assigns the request id, makes it the envelope's `target` and the
/// `request-id` response header, and logs the request when it completes.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = ["request-id", "x-request-id"]
        .iter()
        .find_map(|h| req.headers().get(*h).and_then(sane_request_id))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let caller = CallerSlot::default();
    req.extensions_mut().insert(caller.clone());
    let method = req.method().clone();
    let started = Instant::now();
    let mut resp = REQUEST_ID
        .scope(id.clone(), async move {
            let resp = next.run(req).await;
            envelope(resp)
        })
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("request-id", v);
    }
    let route = resp
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "-".into());
    let caller = caller.0.lock().ok().and_then(|c| c.clone());
    let tenant = caller.as_ref().map_or("", |c| c.tenant.as_str());
    let app = caller
        .as_ref()
        .and_then(|c| c.app_id.as_deref())
        .unwrap_or("");
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        tenant = %tenant,
        app = %app,
        status = resp.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

/// Replaces the body of an error response that is not already the envelope (axum's 404,
/// 405, 413, a timeout, a caught panic) with the envelope for its status, keeping headers
/// such as `Allow`.
fn envelope(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || resp.extensions().get::<Enveloped>().is_some()
    {
        return resp;
    }
    let matched = resp.extensions().get::<MatchedPath>().cloned();
    let (parts, _) = resp.into_parts();
    let mut fresh = ApiError::from_status(status).into_response();
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if let Some(m) = matched {
        fresh.extensions_mut().insert(m);
    }
    fresh
}

/// Refuses a request whose head, apart from `Authorization`, is larger than `max_bytes`
/// (431 with the envelope). `Authorization` is left to authentication, which refuses an
/// oversized token as malformed (401) without decoding it.
pub async fn limit_headers(max_bytes: usize, req: Request, next: Next) -> Response {
    let size = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len())
        + req
            .headers()
            .iter()
            .filter(|(name, _)| *name != axum::http::header::AUTHORIZATION)
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > max_bytes {
        return ApiError::RequestHeaderFieldsTooLarge(format!(
            "The request headers are larger than the limit of {max_bytes} bytes."
        ))
        .into_response();
    }
    next.run(req).await
}

/// MDE's routing is case-insensitive and accepts `/api/v1.0/…` as an alias of `/api/…`.
/// Rewrites known API paths to their canonical spelling before routing.
pub async fn normalize_path(mut req: Request, next: Next) -> Response {
    if let Some(canonical) = canonical_path(req.uri().path()) {
        match canonical {
            Canonical::Path(path) if path == req.uri().path() => {}
            Canonical::Path(path) => {
                let mut parts = req.uri().clone().into_parts();
                let pq = match req.uri().query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                };
                match pq.parse() {
                    Ok(pq) => {
                        parts.path_and_query = Some(pq);
                        if let Ok(uri) = Uri::from_parts(parts) {
                            *req.uri_mut() = uri;
                        }
                    }
                    Err(_) => {
                        return ApiError::InvalidInput("The request path is malformed.".into())
                            .into_response()
                    }
                }
            }
            Canonical::EmptyId => {
                return ApiError::InvalidInput("The software id is empty.".into()).into_response()
            }
            Canonical::MalformedEscape => {
                return ApiError::InvalidInput(
                    "The software id has a malformed percent-escape.".into(),
                )
                .into_response()
            }
        }
    }
    next.run(req).await
}

#[derive(Debug, PartialEq, Eq)]
enum Canonical {
    Path(String),
    EmptyId,
    /// A `%` not followed by two hex digits: the router's decoder would keep it literally
    /// and the id would be looked up as something the client never meant.
    MalformedEscape,
}

/// Whether every `%` in a raw path segment starts a `%XX` escape (RFC 3986 §2.1).
fn escapes_well_formed(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Actions on `/api/Software/{id}/…`, in their canonical spelling.
const SOFTWARE_ACTIONS: [&str; 3] = [
    "getmissingkbs",
    "indeterminatemachines",
    "endofservicingmachines",
];

fn canonical_path(path: &str) -> Option<Canonical> {
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() < 3 || !segments[0].is_empty() || !segments[1].eq_ignore_ascii_case("api") {
        return None;
    }
    let rest = if segments[2].eq_ignore_ascii_case("v1.0") {
        &segments[3..]
    } else {
        &segments[2..]
    };
    match rest {
        [software, id, action]
            if software.eq_ignore_ascii_case("software")
                && SOFTWARE_ACTIONS
                    .iter()
                    .any(|a| action.eq_ignore_ascii_case(a)) =>
        {
            let action = SOFTWARE_ACTIONS
                .iter()
                .find(|a| action.eq_ignore_ascii_case(a))?;
            if id.is_empty() {
                Some(Canonical::EmptyId)
            } else if !escapes_well_formed(id) {
                Some(Canonical::MalformedEscape)
            } else {
                Some(Canonical::Path(format!("/api/Software/{id}/{action}")))
            }
        }
        [machines, id, missing, explain]
            if machines.eq_ignore_ascii_case("machines")
                && missing.eq_ignore_ascii_case("missingkbs")
                && explain.eq_ignore_ascii_case("explain")
                && !id.is_empty() =>
        {
            Some(Canonical::Path(format!(
                "/api/machines/{id}/missingkbs/explain"
            )))
        }
        [machines, id, action]
            if machines.eq_ignore_ascii_case("machines")
                && action.eq_ignore_ascii_case("getmissingkbs")
                && !id.is_empty() =>
        {
            Some(Canonical::Path(format!("/api/machines/{id}/getmissingkbs")))
        }
        [software] if software.eq_ignore_ascii_case("software") => {
            Some(Canonical::Path("/api/Software".into()))
        }
        [software, id] if software.eq_ignore_ascii_case("software") => {
            if id.is_empty() {
                Some(Canonical::EmptyId)
            } else if !escapes_well_formed(id) {
                Some(Canonical::MalformedEscape)
            } else {
                Some(Canonical::Path(format!("/api/Software/{id}")))
            }
        }
        [machines, id, software]
            if machines.eq_ignore_ascii_case("machines")
                && software.eq_ignore_ascii_case("software")
                && !id.is_empty() =>
        {
            Some(Canonical::Path(format!("/api/machines/{id}/software")))
        }
        [machines] if machines.eq_ignore_ascii_case("machines") => {
            Some(Canonical::Path("/api/machines".into()))
        }
        [machines, id] if machines.eq_ignore_ascii_case("machines") && !id.is_empty() => {
            Some(Canonical::Path(format!("/api/machines/{id}")))
        }
        [inventory, machines, tail @ ..]
            if inventory.eq_ignore_ascii_case("inventory")
                && machines.eq_ignore_ascii_case("machines") =>
        {
            let mut p = "/api/inventory/machines".to_string();
            for t in tail {
                p.push('/');
                p.push_str(t);
            }
            Some(Canonical::Path(p))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        let p = |s: &str| canonical_path(s);
        assert_eq!(
            p("/API/software/microsoft-_-edge/GetMissingKBs"),
            Some(Canonical::Path(
                "/api/Software/microsoft-_-edge/getmissingkbs".into()
            ))
        );
        assert_eq!(
            p("/api/v1.0/Software/a%20b/getmissingkbs"),
            Some(Canonical::Path("/api/Software/a%20b/getmissingkbs".into()))
        );
        assert_eq!(p("/api/Software//getmissingkbs"), Some(Canonical::EmptyId));
        for bad in ["abc%zz", "abc%", "abc%4", "%g1", "a%2"] {
            assert_eq!(
                p(&format!("/api/Software/{bad}/getmissingkbs")),
                Some(Canonical::MalformedEscape),
                "{bad}"
            );
        }
        assert_eq!(
            p("/api/Software/a%2Fb%ff%5F/getmissingkbs"),
            Some(Canonical::Path(
                "/api/Software/a%2Fb%ff%5F/getmissingkbs".into()
            ))
        );
        assert_eq!(
            p("/api/v1.0/software"),
            Some(Canonical::Path("/api/Software".into()))
        );
        assert_eq!(
            p("/API/SOFTWARE/Microsoft-_-Edge"),
            Some(Canonical::Path("/api/Software/Microsoft-_-Edge".into()))
        );
        assert_eq!(p("/api/Software/abc%zz"), Some(Canonical::MalformedEscape));
        assert_eq!(
            p("/api/machines/PC-01/Software"),
            Some(Canonical::Path("/api/machines/PC-01/software".into()))
        );
        assert_eq!(
            p("/api/v1.0/Machines"),
            Some(Canonical::Path("/api/machines".into()))
        );
        assert_eq!(
            p("/API/MACHINES/PC-01"),
            Some(Canonical::Path("/api/machines/PC-01".into()))
        );
        assert_eq!(
            p("/Api/Inventory/Machines/m1"),
            Some(Canonical::Path("/api/inventory/machines/m1".into()))
        );
        assert_eq!(
            p("/api/v1.0/software/x/IndeterminateMachines"),
            Some(Canonical::Path(
                "/api/Software/x/indeterminatemachines".into()
            ))
        );
        assert_eq!(
            p("/api/v1.0/Machines/pc-1/GetMissingKBs"),
            Some(Canonical::Path("/api/machines/pc-1/getmissingkbs".into()))
        );
        assert_eq!(
            p("/API/Machines/pc-1/MissingKbs/Explain"),
            Some(Canonical::Path(
                "/api/machines/pc-1/missingkbs/explain".into()
            ))
        );
        assert_eq!(p("/api/machines//missingkbs/explain"), None);
        assert_eq!(p("/healthz"), None);
        assert_eq!(p("/api/Software/x/other"), None);
    }
}
