//! Who a validated token speaks for, and whether that is enough for an operation.
//! The 403 wording is MDE's, so clients that parse it keep working (api-contract.md §2).

use kbgap_domain::TenantId;

/// Whether the token was issued to an application itself or on behalf of a signed-in user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// Client-credentials token: permissions are application roles (`roles`).
    Application,
    /// On-behalf-of-user token: permissions are delegated scopes (`scp`).
    Delegated,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `tid`; every read and write is scoped to it.
    pub tenant: TenantId,
    /// `appid` (v1.0 tokens), else `azp` (v2.0 tokens); used as the rate-limit key.
    pub app_id: Option<String>,
    /// The `roles` claim, in token order.
    pub roles: Vec<String>,
    /// The `scp` claim split on whitespace, in token order.
    pub scopes: Vec<String>,
    pub kind: PrincipalKind,
    /// The token's `exp` (Unix seconds).
    pub expires_at: i64,
}

/// An operation's required permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `GET /api/Software/{Id}/getmissingkbs`: role `Software.Read.All` or scope `Software.Read`.
    SoftwareRead,
    /// Inventory ingestion: application role `Machine.ReadWrite.All` only.
    MachineReadWrite,
    /// `GET /api/machines/{id}/getmissingkbs`: application role `Software.Read.All` only, as
    /// MDE documents it.
    SoftwareReadApplication,
    /// `GET /api/machines[/{id}]`: role `Machine.Read.All` or `Machine.ReadWrite.All`, or
    /// scope `Machine.Read` or `Machine.ReadWrite`.
    MachineRead,
}

const SOFTWARE_READ_ROLE: &str = "Software.Read.All";
const SOFTWARE_READ_SCOPE: &str = "Software.Read";
const MACHINE_READ_WRITE_ROLE: &str = "Machine.ReadWrite.All";
const MACHINE_READ_ROLE: &str = "Machine.Read.All";
const MACHINE_READ_SCOPE: &str = "Machine.Read";
const MACHINE_READ_WRITE_SCOPE: &str = "Machine.ReadWrite";

impl Principal {
    /// Checks a permission. Names are compared case-sensitively, as Azure AD emits them.
    ///
    /// `SoftwareRead` accepts the role or the scope whatever the token kind (the contract's
    /// "roles ∋ Software.Read.All or scp ∋ Software.Read"); the refusal message follows the
    /// token kind, as MDE's does. `MachineReadWrite` is an application-only permission: a
    /// delegated token is always refused, with the application-roles message listing whatever
    /// `roles` it carries (usually none, giving `application roles: .`), because the remedy is
    /// the same: use an application token with that role.
    pub fn require(&self, permission: Permission) -> Result<(), Forbidden> {
        let has_role = |r: &str| self.roles.iter().any(|x| x == r);
        let has_scope = |s: &str| self.scopes.iter().any(|x| x == s);
        let granted = match permission {
            Permission::SoftwareRead => {
                has_role(SOFTWARE_READ_ROLE) || has_scope(SOFTWARE_READ_SCOPE)
            }
            Permission::MachineReadWrite => {
                self.kind == PrincipalKind::Application && has_role(MACHINE_READ_WRITE_ROLE)
            }
            Permission::SoftwareReadApplication => {
                self.kind == PrincipalKind::Application && has_role(SOFTWARE_READ_ROLE)
            }
            Permission::MachineRead => {
                has_role(MACHINE_READ_ROLE)
                    || has_role(MACHINE_READ_WRITE_ROLE)
                    || has_scope(MACHINE_READ_SCOPE)
                    || has_scope(MACHINE_READ_WRITE_SCOPE)
            }
        };
        if granted {
            return Ok(());
        }
        let message = match (permission, self.kind) {
            (Permission::SoftwareRead, PrincipalKind::Delegated) => format!(
                "Missing delegated scopes. API required scopes: {SOFTWARE_READ_SCOPE}, token scopes: {}.",
                self.scopes.join(" ")
            ),
            (Permission::SoftwareRead, PrincipalKind::Application) => {
                missing_roles(SOFTWARE_READ_ROLE, &self.roles)
            }
            (Permission::MachineReadWrite, _) => missing_roles(MACHINE_READ_WRITE_ROLE, &self.roles),
            (Permission::SoftwareReadApplication, _) => {
                missing_roles(SOFTWARE_READ_ROLE, &self.roles)
            }
            (Permission::MachineRead, PrincipalKind::Delegated) => format!(
                "Missing delegated scopes. API required scopes: {MACHINE_READ_SCOPE}, token scopes: {}.",
                self.scopes.join(" ")
            ),
            (Permission::MachineRead, PrincipalKind::Application) => {
                missing_roles(MACHINE_READ_ROLE, &self.roles)
            }
        };
        Err(Forbidden { message })
    }
}

// MDE (like Graph's security API) joins the token's roles with a bare comma.
fn missing_roles(required: &str, roles: &[String]) -> String {
    format!(
        "Missing application roles. API required roles: {required}, application roles: {}.",
        roles.join(",")
    )
}

/// A valid token without the required permission (HTTP 403 `Forbidden`).
///
/// Displays the MDE message. It echoes role and scope names from the token, which are
/// permission names, not secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Forbidden {
    message: String,
}

impl Forbidden {
    /// The message for the error envelope (same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}
