//! Fuzzes bearer-token parsing and validation: any `Authorization` value must be refused or
//! accepted without panicking, and nothing without a valid signature is ever accepted.
#![no_main]

use std::sync::{Arc, OnceLock};

use kbgap_auth::{bearer_token, StaticJwks, Validator, ValidatorConfig};
use libfuzzer_sys::fuzz_target;

/// A fixed 2048-bit public key (RFC 7517 A.1's example): the fuzzer cannot hold its private key,
/// so any input it finds that validates would be a forgery.
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"2011-04-29","alg":"RS256","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]}"#;

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let keys = StaticJwks::from_json(JWKS).expect("jwks");
        Validator::new(ValidatorConfig::default(), Arc::new(keys)).expect("validator")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = bearer_token(Some(header)) {
        let result = validator().validate(token, 1_750_000_000);
        assert!(
            result.is_err(),
            "a token without a valid signature was accepted"
        );
    }
});
