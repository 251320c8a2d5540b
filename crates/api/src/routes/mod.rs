//! HTTP handlers, one module per resource; each extracts, calls a service, maps to API types.

pub mod dev_issuer;
pub mod explain;
pub mod inventory;
pub mod machine_kbs;
pub mod machines;
pub mod ops;
pub mod software;
pub mod software_list;

use kbgap_domain::{SoftwareId, TenantId};

use crate::error::ApiError;

/// A software id from the path; malformed is 400 `InvalidInput`.
pub(crate) fn software_id(raw: &str) -> Result<SoftwareId, ApiError> {
    SoftwareId::parse(raw).map_err(|e| ApiError::InvalidInput(format!("Invalid software id: {e}.")))
}

/// A software no active machine of the tenant has is not found, on every software route (as
/// `getmissingkbs` answers it).
pub(crate) fn known(
    store: &dyn kbgap_store::Store,
    tenant: &TenantId,
    software: &SoftwareId,
) -> Result<(), ApiError> {
    if store
        .software_known(tenant, software)
        .map_err(|e| ApiError::from(kbgap_service::ServiceError::from(e)))?
    {
        Ok(())
    } else {
        Err(ApiError::ResourceNotFound(format!(
            "Software {software} was not found"
        )))
    }
}

/// Runs blocking storage work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    // The request id lives in a task-local; carry it into the blocking thread for the logs.
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))?
}
