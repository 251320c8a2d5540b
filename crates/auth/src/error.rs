//! Why a bearer token was refused (all map to HTTP 401 `Unauthorized`).
//! Messages go to API clients, so they name the rule, never the token or a claim value.

/// A token that does not authenticate its caller. Every variant is a 401; the API layer puts
/// [`AuthError::www_authenticate`] in the `WWW-Authenticate` header and the message in the
/// MDE error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, a scheme other than `Bearer`, or an empty bearer token.
    #[error("Authorization header with a bearer token is required.")]
    MissingToken,
    /// Not a compact JWS, bad base64url, a header or payload that is not the expected JSON, a
    /// missing `exp`, an unsupported `crit` header, or a token over the size limit.
    #[error("The access token is malformed.")]
    Malformed,
    /// The signature does not verify with the key the token names.
    #[error("The access token signature is invalid.")]
    BadSignature,
    /// No key matches the token's `kid` (or the token has no `kid` and there is not exactly one key).
    #[error("The access token was signed with an unknown key.")]
    UnknownKey,
    #[error("The access token has expired.")]
    Expired,
    #[error("The access token is not yet valid.")]
    NotYetValid,
    /// `iss` missing, or not one of the configured issuers for the token's own tenant.
    #[error("The access token issuer is not accepted.")]
    WrongIssuer,
    /// The issuer is trusted, but not for the token's `tid`: its provider may only vouch for
    /// other tenants.
    #[error("The access token issuer may not vouch for the token's tenant.")]
    IssuerNotForTenant,
    #[error("The access token audience is not accepted.")]
    WrongAudience,
    /// `tid` missing or not a usable tenant id.
    #[error("The access token has no tenant (tid) claim.")]
    MissingTenant,
    #[error("The access token's tenant is not allowed.")]
    TenantNotAllowed,
    /// The header's `alg` is `none`, HMAC, unknown, or simply not in the configured list.
    #[error("The access token signing algorithm is not allowed.")]
    AlgorithmNotAllowed,
}

impl AuthError {
    /// Value of the `WWW-Authenticate` response header (RFC 6750 §3): a request that carried no
    /// credentials gets no error code.
    pub fn www_authenticate(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "Bearer",
            _ => "Bearer error=\"invalid_token\"",
        }
    }
}
