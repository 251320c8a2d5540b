//! Keys from an identity provider over HTTP, against a mock OpenID provider on 127.0.0.1:
//! discovery, a configured JWKS URL, rotation, outage, cache headers, the fetch cooldown,
//! issuer-to-key binding, and the validated-token cache.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use jsonwebtoken::Algorithm;
use kbgap_auth::testing::MockProvider;
use kbgap_auth::{
    AuthError, JwksLocation, KeySource, RefreshOutcome, RemoteJwks, RemoteJwksConfig,
    RemoteJwksError, TenantScope, TokenCache, TrustedIssuer, Validator, ValidatorConfig,
};
use serde_json::{json, Value};

fn remote(location: JwksLocation) -> Arc<RemoteJwks> {
    Arc::new(RemoteJwks::new(RemoteJwksConfig::new(location)).expect("remote jwks"))
}

/// A validator trusting exactly `issuer` (no `{tid}`) with keys from `keys`.
fn validator(issuer: &str, keys: Arc<RemoteJwks>) -> Validator {
    Validator::new(
        ValidatorConfig {
            issuer_templates: vec![issuer.to_string()],
            ..ValidatorConfig::default()
        },
        keys,
    )
    .expect("validator")
}

fn claims_from(issuer: &str) -> Value {
    with(app_claims(TID_A), "iss", json!(issuer))
}

fn other_token(claims: &Value) -> String {
    sign(
        &json!({ "alg": "RS256", "typ": "JWT", "kid": keys().other.kid() }),
        claims,
        &rsa_encoding_key(&keys().other_private),
        Algorithm::RS256,
    )
}

fn both_jwks() -> Value {
    let mut both = keys().main.jwks();
    both["keys"]
        .as_array_mut()
        .expect("keys")
        .push(keys().other.jwks()["keys"][0].clone());
    both
}

#[test]
fn keys_are_found_through_discovery() {
    let idp = MockProvider::start(&keys().main.jwks());
    let source = remote(JwksLocation::discovery_for_issuer(&idp.issuer()));
    let v = validator(&idp.issuer(), source.clone());
    let token = main_token(&claims_from(&idp.issuer()));
    // Nothing is fetched until asked: validation alone never touches the network.
    assert_eq!(v.validate(&token, NOW), Err(AuthError::UnknownKey));
    assert_eq!(source.http_requests(), 0);
    let t0 = Instant::now();
    assert_eq!(
        source.refresh(t0),
        RefreshOutcome::Updated {
            changed: true,
            keys: 1
        }
    );
    assert_eq!((idp.discovery_hits(), idp.jwks_hits()), (1, 1));
    assert_eq!(
        v.validate(&token, NOW).expect("valid").tenant,
        tenant(TID_A)
    );
    // A later refresh reuses the discovered jwks_uri.
    assert_eq!(
        source.refresh(t0 + Duration::from_secs(10)),
        RefreshOutcome::Updated {
            changed: false,
            keys: 1
        }
    );
    assert_eq!((idp.discovery_hits(), idp.jwks_hits()), (1, 2));
}

#[test]
fn a_configured_jwks_url_needs_no_discovery() {
    let idp = MockProvider::start(&keys().main.jwks());
    let source = remote(JwksLocation::Jwks(idp.jwks_url()));
    assert!(matches!(
        source.refresh(Instant::now()),
        RefreshOutcome::Updated { keys: 1, .. }
    ));
    assert_eq!((idp.discovery_hits(), idp.jwks_hits()), (0, 1));
    assert!(source.key(Some(keys().main.kid())).is_some());
    assert!(source.key(Some(keys().other.kid())).is_none());
}

#[test]
fn rotation_is_picked_up_after_the_cooldown_and_old_keys_go() {
    let idp = MockProvider::start(&keys().main.jwks());
    let source = remote(JwksLocation::Jwks(idp.jwks_url()));
    let v = validator(&idp.issuer(), source.clone());
    let t0 = Instant::now();
    source.refresh(t0);
    let new_token = other_token(&claims_from(&idp.issuer()));
    assert_eq!(v.validate(&new_token, NOW), Err(AuthError::UnknownKey));
    // The provider rotates: both keys for a while, then only the new one.
    idp.set_jwks(&both_jwks());
    // Within the cooldown nothing is fetched, however often asked.
    for s in 0..10 {
        assert_eq!(
            source.refresh(t0 + Duration::from_secs(s)),
            RefreshOutcome::CoolingDown
        );
    }
    assert_eq!(idp.jwks_hits(), 1);
    assert_eq!(
        source.refresh(t0 + Duration::from_secs(10)),
        RefreshOutcome::Updated {
            changed: true,
            keys: 2
        }
    );
    assert!(v.validate(&new_token, NOW).is_ok());
    let old_token = main_token(&claims_from(&idp.issuer()));
    assert!(v.validate(&old_token, NOW).is_ok());
    idp.set_jwks(&keys().other.jwks());
    assert!(matches!(
        source.refresh(t0 + Duration::from_secs(20)),
        RefreshOutcome::Updated {
            changed: true,
            keys: 1
        }
    ));
    assert_eq!(v.validate(&old_token, NOW), Err(AuthError::UnknownKey));
    assert!(v.validate(&new_token, NOW).is_ok());
}

#[test]
fn stale_keys_serve_while_the_provider_is_down() {
    let idp = MockProvider::start(&keys().main.jwks());
    let source = remote(JwksLocation::discovery_for_issuer(&idp.issuer()));
    let v = validator(&idp.issuer(), source.clone());
    let t0 = Instant::now();
    source.refresh(t0);
    idp.set_down(true);
    match source.refresh(t0 + Duration::from_secs(10)) {
        RefreshOutcome::Failed(RemoteJwksError::Http { reason, .. }) => {
            assert_eq!(reason, "status 503")
        }
        other => panic!("expected a failed fetch, got {other:?}"),
    }
    let token = main_token(&claims_from(&idp.issuer()));
    assert!(v.validate(&token, NOW).is_ok(), "stale keys keep serving");
    assert_eq!(source.key_count(), 1);
    // The failure started a cooldown too: no hammering of a provider that is down.
    assert_eq!(
        source.refresh(t0 + Duration::from_secs(15)),
        RefreshOutcome::CoolingDown
    );
    let hits = idp.jwks_hits() + idp.discovery_hits();
    // After a failure the jwks_uri is rediscovered once the provider is back.
    idp.set_down(false);
    assert!(matches!(
        source.refresh(t0 + Duration::from_secs(20)),
        RefreshOutcome::Updated { changed: false, .. }
    ));
    assert_eq!(idp.jwks_hits() + idp.discovery_hits(), hits + 2);
}

#[test]
fn a_provider_down_from_the_start_leaves_no_keys_and_no_storm() {
    let idp = MockProvider::start(&keys().main.jwks());
    idp.set_down(true);
    let source = remote(JwksLocation::Jwks(idp.jwks_url()));
    let t0 = Instant::now();
    assert!(matches!(source.refresh(t0), RefreshOutcome::Failed(_)));
    for i in 0..1000 {
        assert_eq!(
            source.refresh(t0 + Duration::from_millis(i)),
            RefreshOutcome::CoolingDown
        );
    }
    assert_eq!(idp.jwks_hits(), 1);
    assert_eq!(source.key_count(), 0);
    assert!(source.key(Some(keys().main.kid())).is_none());
}

#[test]
fn cache_headers_decide_when_a_refresh_is_due() {
    let idp = MockProvider::start(&keys().main.jwks());
    let source = remote(JwksLocation::Jwks(idp.jwks_url()));
    let t0 = Instant::now();
    assert!(source.refresh_due(t0), "never fetched");
    idp.set_cache_control(Some("max-age=120, private"));
    source.refresh(t0);
    assert!(!source.refresh_due(t0 + Duration::from_secs(119)));
    assert!(source.refresh_due(t0 + Duration::from_secs(120)));
    // Without the header: an hour.
    idp.set_cache_control(None);
    let t1 = t0 + Duration::from_secs(120);
    source.refresh(t1);
    assert!(!source.refresh_due(t1 + Duration::from_secs(3599)));
    assert!(source.refresh_due(t1 + Duration::from_secs(3600)));
    // `no-store` or a tiny max-age cannot make kbgap fetch more often than the cooldown.
    idp.set_cache_control(Some("no-store"));
    let t2 = t1 + Duration::from_secs(3600);
    source.refresh(t2);
    assert!(!source.refresh_due(t2 + Duration::from_secs(9)));
    assert!(source.refresh_due(t2 + Duration::from_secs(10)));
    // A year-long max-age is capped at a day.
    idp.set_cache_control(Some("max-age=31536000"));
    let t3 = t2 + Duration::from_secs(10);
    source.refresh(t3);
    assert!(!source.refresh_due(t3 + Duration::from_secs(86_399)));
    assert!(source.refresh_due(t3 + Duration::from_secs(86_400)));
}

#[test]
fn plain_http_to_a_real_host_is_refused() {
    for location in [
        JwksLocation::Jwks("http://login.microsoftonline.com/common/discovery/v2.0/keys".into()),
        JwksLocation::discovery_for_issuer("http://idp.contoso.com"),
    ] {
        let url = location.url().to_string();
        assert_eq!(
            RemoteJwks::new(RemoteJwksConfig::new(location)).err(),
            Some(RemoteJwksError::InsecureUrl(url))
        );
    }
}

#[test]
fn each_issuer_is_verified_only_with_its_own_keys() {
    let idp_a = MockProvider::start(&keys().main.jwks());
    let idp_b = MockProvider::start(&keys().other.jwks());
    let (a, b) = (
        remote(JwksLocation::Jwks(idp_a.jwks_url())),
        remote(JwksLocation::Jwks(idp_b.jwks_url())),
    );
    a.refresh(Instant::now());
    b.refresh(Instant::now());
    let v = Validator::with_trusted_issuers(
        ValidatorConfig::default(),
        vec![
            // A's issuer names no tenant, B's template every one: with two providers, each
            // must say which tenants it vouches for.
            TrustedIssuer::new(vec![idp_a.issuer()], a)
                .with_tenants(TenantScope::Only(vec![tenant(TID_A)])),
            TrustedIssuer::new(vec![idp_b.issuer(), "https://b.test/{tid}/".into()], b)
                .with_tenants(TenantScope::Any),
        ],
    )
    .expect("validator");
    assert_eq!(v.config().issuer_templates.len(), 3);
    assert!(v
        .validate(&main_token(&claims_from(&idp_a.issuer())), NOW)
        .is_ok());
    assert!(v
        .validate(&other_token(&claims_from(&idp_b.issuer())), NOW)
        .is_ok());
    assert!(v
        .validate(
            &other_token(&claims_from(&format!("https://b.test/{TID_A}/"))),
            NOW
        )
        .is_ok());
    // Provider B's key cannot vouch for a token naming provider A, nor the reverse.
    assert_eq!(
        v.validate(&other_token(&claims_from(&idp_a.issuer())), NOW),
        Err(AuthError::UnknownKey)
    );
    assert_eq!(
        v.validate(&main_token(&claims_from(&idp_b.issuer())), NOW),
        Err(AuthError::UnknownKey)
    );
    // An issuer nobody trusts, or none at all, or no tenant.
    assert_eq!(
        v.validate(&main_token(&claims_from("https://evil.test")), NOW),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        v.validate(
            &main_token(&without(claims_from(&idp_a.issuer()), "iss")),
            NOW
        ),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        v.validate(
            &main_token(&without(claims_from(&idp_a.issuer()), "tid")),
            NOW
        ),
        Err(AuthError::MissingTenant)
    );
    // B's {tid} template with another tenant's tid is still refused after the signature.
    let borrowed = with(
        claims_from(&format!("https://b.test/{TID_A}/")),
        "tid",
        json!(TID_B),
    );
    assert_eq!(
        v.validate(&other_token(&borrowed), NOW),
        Err(AuthError::WrongIssuer)
    );
}

#[test]
fn validated_tokens_are_cached_until_their_expiry() {
    let cache = TokenCache::new(100);
    let v = prod_validator();
    let token = main_token(&app_claims(TID_A));
    assert!(cache.get(&token, NOW).is_none());
    let p = Arc::new(v.validate(&token, NOW).expect("valid"));
    cache.insert(&token, p.clone(), NOW);
    assert_eq!(cache.get(&token, NOW).as_deref(), Some(&*p));
    // Entries die at exp exactly (no leeway), and a different token is a different entry.
    assert!(cache.get(&token, NOW + 3599).is_some());
    assert!(cache.get(&token, NOW + 3600).is_none());
    assert!(cache.get(&format!("{token}x"), NOW).is_none());
    cache.clear();
    assert!(cache.get(&token, NOW).is_none());
    // An already expired principal is not stored.
    cache.insert(&token, p.clone(), NOW + 3600);
    assert!(cache.is_empty());
}

#[test]
fn the_token_cache_is_bounded() {
    let cache = TokenCache::new(50);
    let p = Arc::new(
        prod_validator()
            .validate(&main_token(&app_claims(TID_A)), NOW)
            .expect("valid"),
    );
    for i in 0..500 {
        cache.insert(&format!("token-{i}"), p.clone(), NOW);
        assert!(cache.len() <= 50, "{} entries", cache.len());
    }
    // The newest entry is always kept.
    assert!(cache.get("token-499", NOW).is_some());
    // Expired entries are the first to go.
    let short = Arc::new(kbgap_auth::Principal {
        expires_at: NOW + 10,
        ..(*p).clone()
    });
    let cache = TokenCache::new(10);
    for i in 0..10 {
        cache.insert(&format!("short-{i}"), short.clone(), NOW);
    }
    cache.insert("long", p.clone(), NOW + 10);
    assert_eq!(cache.len(), 1);
    assert!(cache.get("long", NOW + 10).is_some());
    // Capacity 0 disables caching.
    let off = TokenCache::new(0);
    off.insert("t", p, NOW);
    assert!(off.get("t", NOW).is_none());
}
