//! The one table of API errors: each maps to an HTTP status, an MDE error code and a client
//! message. Every error response, the framework's own rejections included, uses MDE's
//! envelope `{"error":{"code","message","target"}}` with the request id as `target`.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

tokio::task_local! {
    /// The request id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

/// The request id of the current request, or an empty string outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    OData(String),
    #[error("{0}")]
    InvalidRequestBody(String),
    #[error("Maximum batch size exceeded. Received: {received}, allowed: {allowed}.")]
    MaximumBatchSizeExceeded { received: usize, allowed: usize },
    #[error("{message}")]
    Unauthorized {
        message: String,
        www_authenticate: &'static str,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    RequestEntityTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A rate limit (api-contract.md §4); `retry_after_secs` (at least 1) goes into `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    RequestHeaderFieldsTooLarge(String),
    #[error("{0}")]
    UriTooLong(String),
    /// The cause is logged, never shown.
    #[error("An unexpected error occurred.")]
    Internal(String),
    #[error("{0}")]
    ServiceUnavailable(String),
}

/// Marks a response whose body is already the MDE envelope.
#[derive(Clone, Copy)]
pub struct Enveloped;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidInput(_)
            | ApiError::OData(_)
            | ApiError::InvalidRequestBody(_)
            | ApiError::MaximumBatchSizeExceeded { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::ResourceNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::RequestEntityTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestHeaderFieldsTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidInput(_) => "InvalidInput",
            ApiError::OData(_) => "ODataError",
            ApiError::InvalidRequestBody(_) => "InvalidRequestBody",
            ApiError::MaximumBatchSizeExceeded { .. } => "MaximumBatchSizeExceeded",
            ApiError::Unauthorized { .. } => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::ResourceNotFound(_) => "ResourceNotFound",
            ApiError::NotFound(_) => "NotFound",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::RequestTimeout(_) => "RequestTimeout",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::RequestHeaderFieldsTooLarge(_) => "RequestHeaderFieldsTooLarge",
            ApiError::UriTooLong(_) => "RequestUriTooLong",
            ApiError::Internal(_) => "InternalServerError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
        }
    }

    /// The error a bare status from the framework or a middleware stands for.
    pub fn from_status(status: StatusCode) -> ApiError {
        match status {
            StatusCode::NOT_FOUND => {
                ApiError::NotFound("The requested resource does not exist.".into())
            }
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(
                "The HTTP method is not allowed on this resource.".into(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::RequestEntityTooLarge(
                "The request body is larger than the configured limit.".into(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
                "The request body must be application/json or application/x-ndjson.".into(),
            ),
            StatusCode::REQUEST_TIMEOUT => {
                ApiError::RequestTimeout("The request took too long and was cancelled.".into())
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                ApiError::ServiceUnavailable("The service is unavailable; retry later.".into())
            }
            StatusCode::TOO_MANY_REQUESTS => ApiError::TooManyRequests {
                message: "Too many requests; retry later.".into(),
                retry_after_secs: 1,
            },
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::RequestHeaderFieldsTooLarge(
                "The request headers are larger than the configured limit.".into(),
            ),
            StatusCode::URI_TOO_LONG => {
                ApiError::UriTooLong("The request target is too long.".into())
            }
            s if s.is_client_error() => {
                ApiError::InvalidInput(s.canonical_reason().unwrap_or("Bad request").to_string())
            }
            s => ApiError::Internal(format!("bare status {s}")),
        }
    }

    /// MDE's error envelope `{"error":{"code","message","target"}}` of this error.
    pub fn envelope(&self, request_id: &str) -> String {
        json!({
            "error": {
                "code": self.code(),
                "message": self.to_string(),
                "target": request_id,
            }
        })
        .to_string()
    }

    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }
}

impl From<kbgap_service::ServiceError> for ApiError {
    fn from(e: kbgap_service::ServiceError) -> Self {
        use kbgap_service::ServiceError;
        match e {
            ServiceError::Snapshot(s) => ApiError::InvalidRequestBody(s.to_string()),
            ServiceError::AmbiguousMachine { given, candidates } => {
                ApiError::InvalidInput(format!(
                    "Machine id {given} matches several machines that differ only in case: {}.",
                    candidates
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
            ServiceError::Store(e) if e.is_unavailable() => {
                tracing::error!(error = %e, "storage failed");
                ApiError::ServiceUnavailable("Storage is unavailable; retry later.".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(cause = %cause, "internal error");
        }
        let status = self.status();
        let mut resp = Response::new(Body::from(self.envelope(&current_request_id())));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        match &self {
            ApiError::Unauthorized {
                www_authenticate, ..
            } => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(www_authenticate),
                );
            }
            ApiError::ServiceUnavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(*retry_after_secs.max(&1)),
                );
            }
            _ => {}
        }
        resp.extensions_mut().insert(Enveloped);
        resp
    }
}
