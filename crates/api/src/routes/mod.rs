//! HTTP handlers, one module per resource; each extracts, calls a service, maps to API types.

pub mod dev_issuer;
pub mod explain;
pub mod inventory;
pub mod machine_kbs;
pub mod machines;
pub mod ops;
pub mod software;

use crate::error::ApiError;

/// Runs blocking storage work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    // The request id lives in a task-local; carry it into the blocking thread for the logs.
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))?
}
