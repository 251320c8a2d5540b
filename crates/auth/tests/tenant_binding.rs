//! Which tenants each trusted provider may vouch for: a concrete issuer binds no `tid` by
//! itself, so with several providers each must name its tenants (in its issuer, or
//! configured), and a token whose issuer may not vouch for its `tid` is refused.

mod common;

use std::sync::Arc;

use common::*;
use jsonwebtoken::Algorithm;
use kbgap_auth::{
    tenants_named_by, AuthError, ConfigError, KeySource, StaticJwks, TenantScope, TrustedIssuer,
    Validator, ValidatorConfig,
};
use serde_json::{json, Value};

fn main_keys() -> Arc<dyn KeySource> {
    Arc::new(StaticJwks::from_value(&keys().main.jwks()).expect("jwks"))
}

fn other_keys() -> Arc<dyn KeySource> {
    Arc::new(StaticJwks::from_value(&keys().other.jwks()).expect("jwks"))
}

fn other_token(claims: &Value) -> String {
    sign(
        &json!({ "alg": "RS256", "typ": "JWT", "kid": keys().other.kid() }),
        claims,
        &rsa_encoding_key(&keys().other_private),
        Algorithm::RS256,
    )
}

fn claims(iss: &str, tid: &str) -> Value {
    with(app_claims(tid), "iss", json!(iss))
}

fn issuer_of(tid: &str) -> String {
    format!("https://idp.test/{tid}/v2.0")
}

fn two_providers(a: TrustedIssuer, b: TrustedIssuer) -> Result<Validator, ConfigError> {
    Validator::with_trusted_issuers(ValidatorConfig::default(), vec![a, b])
}

#[test]
fn concrete_issuers_vouch_only_for_the_tenant_their_path_names() {
    // Tenant A's provider (main key) and tenant B's (other key), each with its own concrete
    // issuer: the configuration `--issuer https://idp/A/v2.0 --issuer https://idp/B/v2.0`.
    let v = two_providers(
        TrustedIssuer::new(vec![issuer_of(TID_A)], main_keys()),
        TrustedIssuer::new(vec![issuer_of(TID_B)], other_keys()),
    )
    .expect("each issuer names its tenant");
    // The attack: signed by A's key, A's issuer, B's tid.
    assert_eq!(
        v.validate(&main_token(&claims(&issuer_of(TID_A), TID_B)), NOW),
        Err(AuthError::IssuerNotForTenant)
    );
    // Nor can A's key borrow B's issuer (B's keys verify B's issuer).
    assert_eq!(
        v.validate(&main_token(&claims(&issuer_of(TID_B), TID_B)), NOW),
        Err(AuthError::UnknownKey)
    );
    // Each tenant's genuine token.
    let a = v
        .validate(&main_token(&claims(&issuer_of(TID_A), TID_A)), NOW)
        .expect("A's token");
    assert_eq!(a.tenant, tenant(TID_A));
    let b = v
        .validate(&other_token(&claims(&issuer_of(TID_B), TID_B)), NOW)
        .expect("B's token");
    assert_eq!(b.tenant, tenant(TID_B));
    // GUIDs compare as tenant ids (case-insensitively), as `tid` does.
    let upper = TID_A.to_uppercase();
    assert_eq!(
        v.validate(&main_token(&claims(&issuer_of(TID_A), &upper)), NOW)
            .map(|p| p.tenant),
        Ok(tenant(TID_A))
    );
    assert_eq!(
        AuthError::IssuerNotForTenant.to_string(),
        "The access token issuer may not vouch for the token's tenant."
    );
    assert_eq!(
        AuthError::IssuerNotForTenant.www_authenticate(),
        "Bearer error=\"invalid_token\""
    );
}

#[test]
fn issuers_name_their_tenants_by_guid_path_segments_only() {
    assert_eq!(
        tenants_named_by(&format!("https://login.microsoftonline.com/{TID_A}/v2.0")),
        vec![tenant(TID_A)]
    );
    assert_eq!(
        tenants_named_by(&format!(
            "https://sts.windows.net/{}/",
            TID_B.to_uppercase()
        )),
        vec![tenant(TID_B)]
    );
    for none in [
        "https://idp.test/A/v2.0",
        "https://keycloak.contoso.com/realms/mde",
        "https://idp.test",
        // A GUID in the host names nothing: hosts are not tenants.
        "https://72f988bf-86f1-41af-91ab-2d7cd011db47.test/x",
        "https://idp.test/72f988bf-86f1-41af-91ab-2d7cd011db4/v2.0",
    ] {
        assert_eq!(tenants_named_by(none), Vec::new(), "{none}");
    }
}

#[test]
fn configured_tenants_bind_issuers_that_name_none() {
    let (contoso, fabrikam) = ("contoso", "fabrikam");
    let v = two_providers(
        TrustedIssuer::new(vec!["https://idp.test/A/v2.0".into()], main_keys())
            .with_tenants(TenantScope::Only(vec![tenant(contoso)])),
        TrustedIssuer::new(vec!["https://idp.test/B/v2.0".into()], other_keys())
            .with_tenants(TenantScope::Only(vec![tenant(fabrikam)])),
    )
    .expect("validator");
    assert_eq!(
        v.validate(
            &main_token(&claims("https://idp.test/A/v2.0", fabrikam)),
            NOW
        ),
        Err(AuthError::IssuerNotForTenant)
    );
    assert_eq!(
        v.validate(
            &main_token(&claims("https://idp.test/A/v2.0", contoso)),
            NOW
        )
        .map(|p| p.tenant),
        Ok(tenant(contoso))
    );
    assert_eq!(
        v.validate(
            &other_token(&claims("https://idp.test/B/v2.0", fabrikam)),
            NOW
        )
        .map(|p| p.tenant),
        Ok(tenant(fabrikam))
    );
}

#[test]
fn start_up_refuses_a_provider_that_could_vouch_for_every_tenant_among_others() {
    let guid_issuer = || TrustedIssuer::new(vec![issuer_of(TID_B)], other_keys());
    // A concrete issuer naming no tenant.
    let e = two_providers(
        TrustedIssuer::new(vec!["https://idp.test/A/v2.0".into()], main_keys()),
        guid_issuer(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ConfigError::ProviderForEveryTenant("https://idp.test/A/v2.0".into())
    );
    assert_eq!(
        e.to_string(),
        "the provider of issuer https://idp.test/A/v2.0 could vouch for every tenant, while \
         other providers are configured: list the tenants it may vouch for (`tenants = [...]` \
         in its [[auth.providers]] entry) or, if it is a multi-tenant provider that guarantees \
         `tid` itself (such as Azure AD), allow it explicitly with `any_tenant = true`"
    );
    // A `{tid}` template: every tenant, each under its own issuer.
    assert_eq!(
        two_providers(
            TrustedIssuer::new(vec!["https://idp.test/{tid}/v2.0".into()], main_keys()),
            guid_issuer(),
        )
        .unwrap_err(),
        ConfigError::ProviderForEveryTenant("https://idp.test/{tid}/v2.0".into())
    );
    // Stated explicitly, it is accepted, and it then vouches for any tenant.
    let v = two_providers(
        TrustedIssuer::new(vec!["https://idp.test/A/v2.0".into()], main_keys())
            .with_tenants(TenantScope::Any),
        guid_issuer(),
    )
    .expect("explicit");
    assert_eq!(
        v.validate(&main_token(&claims("https://idp.test/A/v2.0", TID_B)), NOW)
            .map(|p| p.tenant),
        Ok(tenant(TID_B))
    );
    // An empty list would refuse everything it signs.
    assert_eq!(
        two_providers(
            TrustedIssuer::new(vec!["https://idp.test/A/v2.0".into()], main_keys())
                .with_tenants(TenantScope::Only(Vec::new())),
            guid_issuer(),
        )
        .unwrap_err(),
        ConfigError::EmptyProviderTenants("https://idp.test/A/v2.0".into())
    );
    // Alone, a provider has nobody else's tenants to vouch for: as before.
    let alone = Validator::with_trusted_issuers(
        ValidatorConfig::default(),
        vec![TrustedIssuer::new(
            vec!["https://idp.test/A/v2.0".into()],
            main_keys(),
        )],
    )
    .expect("one provider");
    assert_eq!(
        alone
            .validate(&main_token(&claims("https://idp.test/A/v2.0", TID_B)), NOW)
            .map(|p| p.tenant),
        Ok(tenant(TID_B))
    );
}

#[test]
fn providers_sharing_a_tid_template_are_each_tried() {
    // One issuer template, one key set per tenant.
    let template = "https://idp.test/{tid}/v2.0".to_string();
    let v = two_providers(
        TrustedIssuer::new(vec![template.clone()], main_keys())
            .with_tenants(TenantScope::Only(vec![tenant(TID_A)])),
        TrustedIssuer::new(vec![template.clone()], other_keys())
            .with_tenants(TenantScope::Only(vec![tenant(TID_B)])),
    )
    .expect("validator");
    assert_eq!(
        v.validate(&main_token(&claims(&issuer_of(TID_A), TID_A)), NOW)
            .map(|p| p.tenant),
        Ok(tenant(TID_A))
    );
    // Tenant B's genuine token, verified by the second provider's keys.
    assert_eq!(
        v.validate(&other_token(&claims(&issuer_of(TID_B), TID_B)), NOW)
            .map(|p| p.tenant),
        Ok(tenant(TID_B))
    );
    // A's key, B's issuer and tid: only B's provider may vouch for B, and it does not hold
    // A's key.
    assert_eq!(
        v.validate(&main_token(&claims(&issuer_of(TID_B), TID_B)), NOW),
        Err(AuthError::UnknownKey)
    );
    // The providers a token could belong to, for re-fetching keys on an unknown kid.
    let for_b = v.issuers_for(&other_token(&claims(&issuer_of(TID_B), TID_B)));
    assert_eq!(for_b.len(), 1);
    assert!(std::ptr::addr_eq(
        Arc::as_ptr(&for_b[0].keys),
        Arc::as_ptr(&v.trusted_issuers()[1].keys)
    ));
    assert!(v
        .issuers_for(&main_token(&claims("https://elsewhere.test", TID_A)))
        .is_empty());
    assert!(v.issuers_for("not a token").is_empty());

    // Both vouching for every tenant (stated): each is tried in turn.
    let any = two_providers(
        TrustedIssuer::new(vec![template.clone()], main_keys()).with_tenants(TenantScope::Any),
        TrustedIssuer::new(vec![template], other_keys()).with_tenants(TenantScope::Any),
    )
    .expect("validator");
    assert!(any
        .validate(&other_token(&claims(&issuer_of(TID_B), TID_B)), NOW)
        .is_ok());
    assert_eq!(
        any.issuers_for(&other_token(&claims(&issuer_of(TID_B), TID_B)))
            .len(),
        2
    );
}
