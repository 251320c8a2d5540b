//! Development mode's own token issuer: an RSA key kept in the data directory, its JWKS and
//! discovery documents, and Azure AD–shaped access tokens that the production validator accepts.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, EncodingKey};
use kbgap_domain::TenantId;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::{KeySource, StaticJwks, VerificationKey, MIN_RSA_BITS};

/// Issuer template for development tokens. A `.localhost` name never resolves off the machine
/// (RFC 6761), so these tokens cannot be mistaken for, or validated by, a real identity provider.
pub const DEV_ISSUER_TEMPLATE: &str = "https://login.kbgap.localhost/{tid}/v2.0";

/// File name of the development signing key inside the data directory.
pub const DEV_ISSUER_KEY_FILE: &str = "dev-issuer-key.pem";

const KEY_BITS: usize = 2048;

/// An issuer template with `{tid}` replaced by `tenant`, as the validator will expect it.
pub fn issuer_for(template: &str, tenant: &TenantId) -> String {
    template.replace("{tid}", tenant.as_str())
}

/// Why the development key could not be loaded or created. Every variant names the path so
/// the operator knows which file to fix; the key is never silently replaced.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    #[error("cannot create data directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read development issuer key {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("development issuer key {} is unusable ({reason}); fix or remove the file", path.display())]
    Corrupt { path: PathBuf, reason: &'static str },
    #[error("cannot write development issuer key {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot generate the development issuer key: {0}")]
    Generate(String),
}

/// What to put in a development token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The `iss` claim, with `{tid}` already substituted (see [`issuer_for`]).
    pub issuer: String,
    pub tenant: TenantId,
    pub audience: String,
    /// Goes into both `appid` (v1.0 style) and `azp` (v2.0 style).
    pub app_id: String,
    /// Application roles; the `roles` claim is omitted when empty.
    pub roles: Vec<String>,
    /// Delegated scopes; `scp` is omitted when empty, which makes an application token.
    pub scopes: Vec<String>,
    pub ttl: Duration,
    pub now_unix: i64,
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("invalid mint request: {0}")]
    InvalidRequest(&'static str),
    #[error("signing the token failed")]
    Signing,
}

/// The development issuer. Its tokens are validated by the ordinary [`crate::Validator`], built
/// with [`DevIssuer::key_source`] and [`DEV_ISSUER_TEMPLATE`].
pub struct DevIssuer {
    signing: EncodingKey,
    kid: String,
    n: String,
    e: String,
    keys: Arc<StaticJwks>,
    key_path: PathBuf,
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuer")
            .field("kid", &self.kid)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Loads `{data_dir}/dev-issuer-key.pem`, or creates it (RSA 2048, PKCS#8 PEM, mode 0600
    /// on Unix) along with the directory if absent. An existing file that cannot be read or
    /// parsed is an error: replacing it would silently invalidate every token minted so far.
    pub fn load_or_create(data_dir: &Path) -> Result<DevIssuer, DevIssuerError> {
        fs::create_dir_all(data_dir).map_err(|source| DevIssuerError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DEV_ISSUER_KEY_FILE);
        match fs::read(&path) {
            Ok(bytes) => Self::from_pem_bytes(Zeroizing::new(bytes), path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(data_dir, path),
            Err(source) => Err(DevIssuerError::Read { path, source }),
        }
    }

    fn from_pem_bytes(bytes: Zeroizing<Vec<u8>>, path: PathBuf) -> Result<Self, DevIssuerError> {
        let corrupt = |reason| DevIssuerError::Corrupt {
            path: path.clone(),
            reason,
        };
        let pem = std::str::from_utf8(&bytes).map_err(|_| corrupt("not text"))?;
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|_| corrupt("not an RSA private key in PKCS#8 PEM"))?;
        Self::from_key(&key, path)
    }

    fn create(data_dir: &Path, path: PathBuf) -> Result<Self, DevIssuerError> {
        let key = RsaPrivateKey::new(&mut OsRng, KEY_BITS)
            .map_err(|e| DevIssuerError::Generate(e.to_string()))?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| DevIssuerError::Generate(e.to_string()))?;
        // Write a private temporary file, then hard-link it into place: the final name appears
        // only complete, and if another process created it meanwhile, theirs wins and is loaded.
        let tmp = data_dir.join(format!(
            ".{DEV_ISSUER_KEY_FILE}.{}.{}.tmp",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let written = write_private(&tmp, pem.as_bytes());
        let linked = written.and_then(|()| fs::hard_link(&tmp, &path));
        // Best effort: the temporary name is never read, and may not exist if writing failed.
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Self::from_key(&key, path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::read(&path) {
                Ok(bytes) => Self::from_pem_bytes(Zeroizing::new(bytes), path),
                Err(source) => Err(DevIssuerError::Read { path, source }),
            },
            Err(source) => Err(DevIssuerError::Write { path, source }),
        }
    }

    fn from_key(key: &RsaPrivateKey, path: PathBuf) -> Result<Self, DevIssuerError> {
        if key.n().bits() < MIN_RSA_BITS {
            return Err(DevIssuerError::Corrupt {
                path,
                reason: "RSA key is shorter than 2048 bits",
            });
        }
        // jsonwebtoken's RustCrypto signer takes PKCS#1 DER; the document zeroizes on drop.
        let der = key.to_pkcs1_der().map_err(|_| DevIssuerError::Corrupt {
            path: path.clone(),
            reason: "RSA key cannot be re-encoded",
        })?;
        let n_bytes = key.n().to_bytes_be();
        let e_bytes = key.e().to_bytes_be();
        let n = URL_SAFE_NO_PAD.encode(&n_bytes);
        let e = URL_SAFE_NO_PAD.encode(&e_bytes);
        let kid = rsa_thumbprint(&n, &e);
        let verification =
            VerificationKey::from_rsa_raw(&n_bytes, &e_bytes, Some(Algorithm::RS256)).map_err(
                |_| DevIssuerError::Corrupt {
                    path: path.clone(),
                    reason: "RSA public key is unusable",
                },
            )?;
        let keys = StaticJwks::new([(Some(kid.clone()), verification)]).map_err(|_| {
            DevIssuerError::Corrupt {
                path: path.clone(),
                reason: "RSA public key is unusable",
            }
        })?;
        Ok(DevIssuer {
            signing: EncodingKey::from_rsa_der(der.as_bytes()),
            kid,
            n,
            e,
            keys: Arc::new(keys),
            key_path: path,
        })
    }

    /// The key id: the RFC 7638 JWK thumbprint, so it changes exactly when the key does.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Where the private key is kept.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// The JWKS document (public key only) to serve at the `jwks_uri`.
    pub fn jwks(&self) -> Value {
        json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": self.kid,
                "n": self.n,
                "e": self.e,
            }]
        })
    }

    /// An OpenID Connect discovery document for `issuer`, pointing at `jwks_uri`. There is no
    /// token endpoint: development tokens are minted by the CLI, not requested over HTTP.
    pub fn discovery(&self, issuer: &str, jwks_uri: &str) -> Value {
        json!({
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["pairwise"],
        })
    }

    /// The public key as a [`KeySource`] for [`crate::Validator::new`].
    pub fn key_source(&self) -> Arc<dyn KeySource> {
        self.keys.clone()
    }

    /// Mints an RS256 access token shaped like Azure AD's v1.0 tokens.
    pub fn mint(&self, req: &MintRequest) -> Result<String, MintError> {
        if req.issuer.is_empty() {
            return Err(MintError::InvalidRequest("issuer is empty"));
        }
        if req.audience.is_empty() {
            return Err(MintError::InvalidRequest("audience is empty"));
        }
        if req.app_id.is_empty() {
            return Err(MintError::InvalidRequest("app id is empty"));
        }
        if req
            .scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(MintError::InvalidRequest(
                "a scope is empty or contains whitespace",
            ));
        }
        let ttl = i64::try_from(req.ttl.as_secs())
            .ok()
            .filter(|t| *t > 0)
            .ok_or(MintError::InvalidRequest("ttl must be at least one second"))?;
        let exp = req
            .now_unix
            .checked_add(ttl)
            .ok_or(MintError::InvalidRequest("ttl is too large"))?;

        let mut claims = json!({
            "aud": req.audience,
            "iss": req.issuer,
            "iat": req.now_unix,
            "nbf": req.now_unix,
            "exp": exp,
            "tid": req.tenant.as_str(),
            "appid": req.app_id,
            "azp": req.app_id,
            "oid": object_id(&req.tenant, &req.app_id),
            "ver": "1.0",
        });
        if let Some(map) = claims.as_object_mut() {
            if !req.roles.is_empty() {
                map.insert("roles".into(), json!(req.roles));
            }
            if !req.scopes.is_empty() {
                map.insert("scp".into(), json!(req.scopes.join(" ")));
            }
        }
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // Explicit provider: see the note in the validator about jsonwebtoken's global default.
        let signer = (DEFAULT_PROVIDER.signer_factory)(&Algorithm::RS256, &self.signing)
            .map_err(|_| MintError::Signing)?;
        let signature = signer
            .try_sign(signing_input.as_bytes())
            .map_err(|_| MintError::Signing)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, no spaces.
fn rsa_thumbprint(n: &str, e: &str) -> String {
    // base64url text needs no JSON escaping, so formatting is exact.
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A stable, UUID-shaped stand-in for the service principal's object id, so repeated mints for
/// the same app look like the same caller.
fn object_id(tenant: &TenantId, app_id: &str) -> String {
    let digest = Sha256::digest(format!("kbgap-dev-oid\0{tenant}\0{app_id}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Set at creation, so the key is never readable by others, not even briefly.
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rsa_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn object_id_is_uuid_shaped_and_stable() {
        let t = TenantId::parse("t1").expect("tenant");
        let oid = object_id(&t, "app");
        assert_eq!(oid, object_id(&t, "app"));
        assert_ne!(oid, object_id(&t, "other-app"));
        let lengths: Vec<usize> = oid.split('-').map(str::len).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12]);
    }
}
