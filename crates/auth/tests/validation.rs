//! Validator behaviour against hand-crafted tokens: each rule of api-contract.md §3 is broken
//! once and must be refused with its own `AuthError`.

mod common;

use std::time::Duration;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use kbgap_auth::{
    bearer_token, issuer_for, AuthError, ConfigError, MintRequest, Permission, Principal,
    PrincipalKind, StaticJwks, Validator, ValidatorConfig, DEV_ISSUER_TEMPLATE, MAX_TOKEN_BYTES,
};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::json;

#[test]
fn valid_application_token_gives_exact_principal() {
    let token = main_token(&app_claims(TID_A));
    let principal = prod_validator().validate(&token, NOW).expect("valid token");
    assert_eq!(
        principal,
        Principal {
            tenant: tenant(TID_A),
            app_id: Some(APP_ID.to_string()),
            roles: vec!["Software.Read.All".into(), "Machine.Read.All".into()],
            scopes: vec![],
            kind: PrincipalKind::Application,
            expires_at: NOW + 3600,
        }
    );
}

#[test]
fn delegated_v2_token_uses_azp_and_splits_scp() {
    let claims = json!({
        "aud": ["something-else", "fc780465-2017-40d4-a0c5-307022471b92"],
        "iss": format!("https://login.microsoftonline.com/{TID_A}/v2.0"),
        "exp": NOW + 600,
        "tid": TID_A,
        "azp": "client-app",
        "scp": "Software.Read  Machine.Read",
        "ver": "2.0",
    });
    let principal = prod_validator()
        .validate(&main_token(&claims), NOW)
        .expect("valid token");
    assert_eq!(
        principal,
        Principal {
            tenant: tenant(TID_A),
            app_id: Some("client-app".into()),
            roles: vec![],
            scopes: vec!["Software.Read".into(), "Machine.Read".into()],
            kind: PrincipalKind::Delegated,
            expires_at: NOW + 600,
        }
    );
}

#[test]
fn missing_and_empty_tokens_are_missing() {
    let v = prod_validator();
    assert_eq!(v.validate("", NOW), Err(AuthError::MissingToken));
    assert_eq!(v.validate("   ", NOW), Err(AuthError::MissingToken));
    assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
    assert_eq!(bearer_token(Some("")), Err(AuthError::MissingToken));
    assert_eq!(bearer_token(Some("Bearer")), Err(AuthError::MissingToken));
    assert_eq!(
        bearer_token(Some("Bearer   ")),
        Err(AuthError::MissingToken)
    );
    assert_eq!(
        bearer_token(Some("Basic dXNlcjpwdw==")),
        Err(AuthError::MissingToken)
    );
    assert_eq!(
        bearer_token(Some("bearer  abc.def.ghi ")),
        Ok("abc.def.ghi")
    );
    assert_eq!(AuthError::MissingToken.www_authenticate(), "Bearer");
}

#[test]
fn garbage_is_malformed() {
    let v = prod_validator();
    for token in [
        "garbage",
        "a.b",
        "a.b.c.d",
        "..",
        "eyJ.eyJ.",
        "\u{e9}.\u{e9}.\u{e9}",
    ] {
        assert_eq!(
            v.validate(token, NOW),
            Err(AuthError::Malformed),
            "{token:?}"
        );
    }
}

#[test]
fn malformed_base64_is_malformed() {
    let good = main_token(&app_claims(TID_A));
    let (_, rest) = good.split_once('.').expect("dot");
    let v = prod_validator();
    // Characters outside base64url, and standard-alphabet padding.
    assert_eq!(
        v.validate(&format!("e!J@.{rest}"), NOW),
        Err(AuthError::Malformed)
    );
    let padded = format!("{}=.{rest}", b64(rs256_header().to_string()));
    assert_eq!(v.validate(&padded, NOW), Err(AuthError::Malformed));
    // A bad signature segment is a shape error, not a signature error.
    let (input, _) = good.rsplit_once('.').expect("dot");
    assert_eq!(
        v.validate(&format!("{input}.a"), NOW),
        Err(AuthError::Malformed)
    );
}

#[test]
fn malformed_json_header_is_malformed() {
    let good = main_token(&app_claims(TID_A));
    let (_, rest) = good.split_once('.').expect("dot");
    let v = prod_validator();
    for header in [
        r#"{"alg":"RS256""#,
        "[1,2]",
        r#"{"kid":"x"}"#,
        r#"{"alg":256}"#,
    ] {
        let token = format!("{}.{rest}", b64(header));
        assert_eq!(
            v.validate(&token, NOW),
            Err(AuthError::Malformed),
            "{header}"
        );
    }
}

#[test]
fn alg_none_is_refused() {
    let v = prod_validator();
    let claims = b64(app_claims(TID_A).to_string());
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({ "alg": alg, "kid": keys().main.kid() }).to_string());
        for sig in ["", "AAAA"] {
            let token = format!("{header}.{claims}.{sig}");
            assert_eq!(v.validate(&token, NOW), Err(AuthError::AlgorithmNotAllowed));
        }
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let public = keys().main_private.to_public_key();
    let spki_pem = public.to_public_key_pem(LineEnding::LF).expect("pem");
    let pkcs1_pem = public.to_pkcs1_pem(LineEnding::LF).expect("pem");
    let spki_der = public.to_public_key_der().expect("der");
    let pkcs1_der = public.to_pkcs1_der().expect("der");
    let secrets: [&[u8]; 4] = [
        spki_pem.as_bytes(),
        pkcs1_pem.as_bytes(),
        spki_der.as_bytes(),
        pkcs1_der.as_bytes(),
    ];
    let v = prod_validator();
    for secret in secrets {
        let header = json!({ "alg": "HS256", "typ": "JWT", "kid": keys().main.kid() });
        let token = sign(
            &header,
            &app_claims(TID_A),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        );
        assert_eq!(v.validate(&token, NOW), Err(AuthError::AlgorithmNotAllowed));
    }
}

#[test]
fn hmac_and_non_rsa_algorithms_cannot_be_configured() {
    for (alg, expected) in [
        (Algorithm::HS256, ConfigError::HmacRefused(Algorithm::HS256)),
        (Algorithm::HS512, ConfigError::HmacRefused(Algorithm::HS512)),
        (
            Algorithm::ES256,
            ConfigError::UnsupportedAlgorithm(Algorithm::ES256),
        ),
    ] {
        let config = ValidatorConfig {
            algorithms: vec![Algorithm::RS256, alg],
            ..ValidatorConfig::default()
        };
        let err = Validator::new(config, key_source_arc()).expect_err("refused");
        assert_eq!(err, expected);
    }
    let empty = ValidatorConfig {
        algorithms: vec![],
        ..ValidatorConfig::default()
    };
    assert_eq!(
        Validator::new(empty, key_source_arc()).expect_err("refused"),
        ConfigError::NoAlgorithms
    );
}

#[test]
fn algorithm_outside_the_configured_list_is_refused() {
    // RS384 is a fine algorithm, but only RS256 is configured: the header cannot widen that.
    let token = sign(
        &json!({ "alg": "RS384", "kid": keys().main.kid() }),
        &app_claims(TID_A),
        &rsa_encoding_key(&keys().main_private),
        Algorithm::RS384,
    );
    assert_eq!(
        prod_validator().validate(&token, NOW),
        Err(AuthError::AlgorithmNotAllowed)
    );
}

#[test]
fn signature_by_another_key_is_refused() {
    let token = sign(
        &rs256_header(),
        &app_claims(TID_A),
        &rsa_encoding_key(&keys().other_private),
        Algorithm::RS256,
    );
    assert_eq!(
        prod_validator().validate(&token, NOW),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn tampered_payload_is_refused() {
    let good = main_token(&app_claims(TID_A));
    let parts: Vec<&str> = good.split('.').collect();
    let forged =
        b64(with(app_claims(TID_A), "roles", json!(["Machine.ReadWrite.All"])).to_string());
    let token = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(
        prod_validator().validate(&token, NOW),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn unknown_kid_is_refused() {
    let token = sign(
        &json!({ "alg": "RS256", "kid": "no-such-key" }),
        &app_claims(TID_A),
        &rsa_encoding_key(&keys().main_private),
        Algorithm::RS256,
    );
    assert_eq!(
        prod_validator().validate(&token, NOW),
        Err(AuthError::UnknownKey)
    );
}

#[test]
fn missing_kid_uses_the_only_key_but_not_one_of_many() {
    let token = sign(
        &json!({ "alg": "RS256" }),
        &app_claims(TID_A),
        &rsa_encoding_key(&keys().main_private),
        Algorithm::RS256,
    );
    assert!(prod_validator().validate(&token, NOW).is_ok());

    let mut both = keys().main.jwks();
    let other = keys().other.jwks();
    both["keys"]
        .as_array_mut()
        .expect("keys")
        .push(other["keys"][0].clone());
    let jwks = StaticJwks::from_value(&both).expect("jwks");
    assert_eq!(jwks.len(), 2);
    let v = Validator::new(ValidatorConfig::default(), std::sync::Arc::new(jwks)).expect("v");
    assert_eq!(v.validate(&token, NOW), Err(AuthError::UnknownKey));
    // With both keys present, the kid still selects the right one.
    assert!(v.validate(&main_token(&app_claims(TID_A)), NOW).is_ok());
}

#[test]
fn expiry_is_enforced_with_leeway() {
    let v = prod_validator();
    let at = |exp: i64| {
        v.validate(
            &main_token(&with(app_claims(TID_A), "exp", json!(exp))),
            NOW,
        )
    };
    assert!(at(NOW - 299).is_ok(), "within the 300 s leeway");
    assert_eq!(at(NOW - 300), Err(AuthError::Expired));
    assert_eq!(at(NOW - 3600), Err(AuthError::Expired));
    // Fractional NumericDate is allowed by RFC 7519.
    assert!(v
        .validate(
            &main_token(&with(app_claims(TID_A), "exp", json!(NOW as f64 + 10.5))),
            NOW
        )
        .is_ok());
    assert_eq!(
        v.validate(&main_token(&without(app_claims(TID_A), "exp")), NOW),
        Err(AuthError::Malformed)
    );
    assert_eq!(
        v.validate(
            &main_token(&with(app_claims(TID_A), "exp", json!("tomorrow"))),
            NOW
        ),
        Err(AuthError::Malformed)
    );
}

#[test]
fn leeway_is_clamped_to_five_minutes() {
    let v = validator_with(ValidatorConfig {
        leeway: Duration::from_secs(86_400),
        ..ValidatorConfig::default()
    });
    assert_eq!(v.config().leeway, Duration::from_secs(300));
    let token = main_token(&with(app_claims(TID_A), "exp", json!(NOW - 301)));
    assert_eq!(v.validate(&token, NOW), Err(AuthError::Expired));

    let strict = validator_with(ValidatorConfig {
        leeway: Duration::ZERO,
        ..ValidatorConfig::default()
    });
    let token = main_token(&with(app_claims(TID_A), "exp", json!(NOW - 1)));
    assert_eq!(strict.validate(&token, NOW), Err(AuthError::Expired));
}

#[test]
fn not_before_in_the_future_is_refused() {
    let v = prod_validator();
    let at = |nbf: i64| {
        v.validate(
            &main_token(&with(app_claims(TID_A), "nbf", json!(nbf))),
            NOW,
        )
    };
    assert_eq!(at(NOW + 301), Err(AuthError::NotYetValid));
    assert_eq!(at(NOW + 86_400), Err(AuthError::NotYetValid));
    assert!(at(NOW + 300).is_ok(), "within the leeway");
}

#[test]
fn wrong_audience_is_refused() {
    let v = prod_validator();
    let cases = [
        with(
            app_claims(TID_A),
            "aud",
            json!("https://graph.microsoft.com"),
        ),
        with(
            app_claims(TID_A),
            "aud",
            json!(["https://graph.microsoft.com", "x"]),
        ),
        with(app_claims(TID_A), "aud", json!([])),
        without(app_claims(TID_A), "aud"),
    ];
    for claims in cases {
        assert_eq!(
            v.validate(&main_token(&claims), NOW),
            Err(AuthError::WrongAudience),
            "{claims}"
        );
    }
}

#[test]
fn wrong_issuer_is_refused() {
    let v = prod_validator();
    let cases = [
        with(
            app_claims(TID_A),
            "iss",
            json!(format!("https://evil.example/{TID_A}/")),
        ),
        // Near misses: no trailing slash, other scheme.
        with(
            app_claims(TID_A),
            "iss",
            json!(format!("https://sts.windows.net/{TID_A}")),
        ),
        with(
            app_claims(TID_A),
            "iss",
            json!(format!("http://sts.windows.net/{TID_A}/")),
        ),
        // The unsubstituted template itself.
        with(
            app_claims(TID_A),
            "iss",
            json!("https://sts.windows.net/{tid}/"),
        ),
        without(app_claims(TID_A), "iss"),
    ];
    for claims in cases {
        assert_eq!(
            v.validate(&main_token(&claims), NOW),
            Err(AuthError::WrongIssuer),
            "{claims}"
        );
    }
}

#[test]
fn issuer_of_tenant_a_cannot_vouch_for_tenant_b() {
    let claims = with(
        app_claims(TID_B),
        "iss",
        json!(format!("https://sts.windows.net/{TID_A}/")),
    );
    assert_eq!(
        prod_validator().validate(&main_token(&claims), NOW),
        Err(AuthError::WrongIssuer)
    );
    // The same token with a matching issuer passes, so the tenant mismatch is the cause.
    assert!(prod_validator()
        .validate(&main_token(&app_claims(TID_B)), NOW)
        .is_ok());
}

#[test]
fn missing_tenant_is_refused() {
    let v = prod_validator();
    for claims in [
        without(app_claims(TID_A), "tid"),
        with(app_claims(TID_A), "tid", json!("")),
    ] {
        assert_eq!(
            v.validate(&main_token(&claims), NOW),
            Err(AuthError::MissingTenant)
        );
    }
}

#[test]
fn tenant_allow_list_is_enforced() {
    let v = validator_with(ValidatorConfig {
        allowed_tenants: Some(vec![tenant(TID_A)]),
        ..ValidatorConfig::default()
    });
    assert_eq!(
        v.validate(&main_token(&app_claims(TID_B)), NOW),
        Err(AuthError::TenantNotAllowed)
    );
    assert_eq!(
        v.validate(&main_token(&app_claims(TID_A)), NOW)
            .map(|p| p.tenant),
        Ok(tenant(TID_A))
    );
    let empty = ValidatorConfig {
        allowed_tenants: Some(vec![]),
        ..ValidatorConfig::default()
    };
    assert_eq!(
        Validator::new(empty, key_source_arc()).expect_err("refused"),
        ConfigError::EmptyTenantList
    );
}

#[test]
fn oversized_token_is_refused_before_parsing() {
    let v = prod_validator();
    // Correctly signed and otherwise valid: only its size can be the reason.
    let huge = main_token(&with(app_claims(TID_A), "pad", json!("x".repeat(1 << 20))));
    assert!(huge.len() > 1_000_000);
    assert_eq!(v.validate(&huge, NOW), Err(AuthError::Malformed));
    // Just over the limit, as garbage that would otherwise parse differently.
    let over = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(v.validate(&over, NOW), Err(AuthError::Malformed));
    // A valid token padded to exactly the limit is still accepted.
    let base = main_token(&with(app_claims(TID_A), "pad", json!("")));
    let fill = (MAX_TOKEN_BYTES - base.len()) * 3 / 4;
    let mut near = main_token(&with(app_claims(TID_A), "pad", json!("y".repeat(fill))));
    let mut extra = 0;
    while near.len() < MAX_TOKEN_BYTES {
        extra += 1;
        near = main_token(&with(
            app_claims(TID_A),
            "pad",
            json!("y".repeat(fill + extra)),
        ));
    }
    if near.len() > MAX_TOKEN_BYTES {
        near = main_token(&with(
            app_claims(TID_A),
            "pad",
            json!("y".repeat(fill + extra - 1)),
        ));
    }
    assert!(near.len() <= MAX_TOKEN_BYTES && near.len() > MAX_TOKEN_BYTES - 4);
    assert!(v.validate(&near, NOW).is_ok());
}

#[test]
fn unknown_critical_header_is_refused() {
    let token = sign(
        &json!({ "alg": "RS256", "kid": keys().main.kid(), "crit": ["exp"] }),
        &app_claims(TID_A),
        &rsa_encoding_key(&keys().main_private),
        Algorithm::RS256,
    );
    assert_eq!(
        prod_validator().validate(&token, NOW),
        Err(AuthError::Malformed)
    );
}

#[test]
fn jwk_alg_binds_the_key_to_one_algorithm() {
    let mut jwks = keys().main.jwks();
    jwks["keys"][0]["alg"] = json!("RS384");
    let config = ValidatorConfig {
        algorithms: vec![Algorithm::RS256, Algorithm::RS384],
        ..ValidatorConfig::default()
    };
    let v = Validator::new(
        config,
        std::sync::Arc::new(StaticJwks::from_value(&jwks).expect("jwks")),
    )
    .expect("validator");
    assert_eq!(
        v.validate(&main_token(&app_claims(TID_A)), NOW),
        Err(AuthError::AlgorithmNotAllowed)
    );
}

#[test]
fn error_messages_are_short_and_echo_nothing() {
    let all = [
        AuthError::MissingToken,
        AuthError::Malformed,
        AuthError::BadSignature,
        AuthError::UnknownKey,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::MissingTenant,
        AuthError::TenantNotAllowed,
        AuthError::AlgorithmNotAllowed,
    ];
    for e in all {
        let message = e.to_string();
        assert!(message.len() < 80 && message.ends_with('.'), "{message}");
        if e != AuthError::MissingToken {
            assert_eq!(e.www_authenticate(), "Bearer error=\"invalid_token\"");
        }
    }
    assert_eq!(
        AuthError::Expired.to_string(),
        "The access token has expired."
    );
}

#[test]
fn dev_issuer_tokens_pass_the_production_validator_code() {
    let issuer = &keys().main;
    let request = MintRequest {
        issuer: issuer_for(DEV_ISSUER_TEMPLATE, &tenant(TID_A)),
        tenant: tenant(TID_A),
        audience: MDE_AUD.into(),
        app_id: APP_ID.into(),
        roles: vec!["Software.Read.All".into()],
        scopes: vec![],
        ttl: Duration::from_secs(3600),
        now_unix: NOW,
    };
    let token = issuer.mint(&request).expect("mint");
    let dev = Validator::new(
        ValidatorConfig {
            issuer_templates: vec![DEV_ISSUER_TEMPLATE.into()],
            ..ValidatorConfig::default()
        },
        issuer.key_source(),
    )
    .expect("validator");
    assert_eq!(
        dev.validate(&token, NOW + 10),
        Ok(Principal {
            tenant: tenant(TID_A),
            app_id: Some(APP_ID.into()),
            roles: vec!["Software.Read.All".into()],
            scopes: vec![],
            kind: PrincipalKind::Application,
            expires_at: NOW + 3600,
        })
    );
    // Production issuers do not accept development tokens.
    assert_eq!(
        prod_validator().validate(&token, NOW),
        Err(AuthError::WrongIssuer)
    );
    // Nor does the development validator accept them once expired (same rules).
    assert_eq!(dev.validate(&token, NOW + 3900), Err(AuthError::Expired));
    // Another dev issuer's key does not verify them (its kid is unknown there).
    let stranger = Validator::new(
        ValidatorConfig {
            issuer_templates: vec![DEV_ISSUER_TEMPLATE.into()],
            ..ValidatorConfig::default()
        },
        keys().other.key_source(),
    )
    .expect("validator");
    assert_eq!(stranger.validate(&token, NOW), Err(AuthError::UnknownKey));
}

// ---- Permissions (api-contract.md §2 and §3) ----

fn principal_from(claims: serde_json::Value) -> Principal {
    prod_validator()
        .validate(&main_token(&claims), NOW)
        .expect("valid token")
}

#[test]
fn application_token_without_software_read_gets_mde_message() {
    let p = principal_from(with(
        app_claims(TID_A),
        "roles",
        json!(["Machine.Read.All", "Alert.Read.All"]),
    ));
    let err = p.require(Permission::SoftwareRead).expect_err("forbidden");
    assert_eq!(
        err.to_string(),
        "Missing application roles. API required roles: Software.Read.All, application roles: Machine.Read.All,Alert.Read.All."
    );
    assert_eq!(err.message(), err.to_string());

    let none = principal_from(without(app_claims(TID_A), "roles"));
    assert_eq!(
        none.require(Permission::SoftwareRead)
            .expect_err("forbidden")
            .to_string(),
        "Missing application roles. API required roles: Software.Read.All, application roles: ."
    );
}

#[test]
fn delegated_token_without_software_read_gets_mde_message() {
    let claims = json!({
        "aud": MDE_AUD,
        "iss": format!("https://sts.windows.net/{TID_A}/"),
        "exp": NOW + 600,
        "tid": TID_A,
        "appid": APP_ID,
        "scp": "Machine.Read Vulnerability.Read",
    });
    let p = principal_from(claims);
    assert_eq!(p.kind, PrincipalKind::Delegated);
    assert_eq!(
        p.require(Permission::SoftwareRead)
            .expect_err("forbidden")
            .to_string(),
        "Missing delegated scopes. API required scopes: Software.Read, token scopes: Machine.Read Vulnerability.Read."
    );
    // Ingestion is application-only; the message keeps MDE's application-roles shape.
    assert_eq!(
        p.require(Permission::MachineReadWrite)
            .expect_err("forbidden")
            .to_string(),
        "Missing application roles. API required roles: Machine.ReadWrite.All, application roles: ."
    );
}

#[test]
fn software_read_is_granted_by_role_or_scope_case_sensitively() {
    let app = principal_from(app_claims(TID_A));
    assert_eq!(app.require(Permission::SoftwareRead), Ok(()));

    let delegated = principal_from(with(
        without(app_claims(TID_A), "roles"),
        "scp",
        json!("User.Read Software.Read"),
    ));
    assert_eq!(delegated.require(Permission::SoftwareRead), Ok(()));

    let lower = principal_from(with(
        app_claims(TID_A),
        "roles",
        json!(["software.read.all"]),
    ));
    assert!(lower.require(Permission::SoftwareRead).is_err());
    let lower_scope = principal_from(with(
        without(app_claims(TID_A), "roles"),
        "scp",
        json!("software.read"),
    ));
    assert!(lower_scope.require(Permission::SoftwareRead).is_err());
}

#[test]
fn machine_read_write_needs_the_application_role() {
    let writer = principal_from(with(
        app_claims(TID_A),
        "roles",
        json!(["Machine.ReadWrite.All"]),
    ));
    assert_eq!(writer.require(Permission::MachineReadWrite), Ok(()));
    // Software.Read.All does not imply write access.
    let reader = principal_from(app_claims(TID_A));
    assert_eq!(
        reader
            .require(Permission::MachineReadWrite)
            .expect_err("forbidden")
            .to_string(),
        "Missing application roles. API required roles: Machine.ReadWrite.All, application roles: Software.Read.All,Machine.Read.All."
    );
    // A delegated token carrying the role (a user app-role assignment) is still refused.
    let delegated = principal_from(with(
        with(app_claims(TID_A), "roles", json!(["Machine.ReadWrite.All"])),
        "scp",
        json!("Machine.ReadWrite"),
    ));
    assert!(delegated.require(Permission::MachineReadWrite).is_err());
}
