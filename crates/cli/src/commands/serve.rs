//! `kbgap serve`: wires configuration, store, catalog and authentication into the API server
//! and runs it until SIGTERM or Ctrl-C.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use kbgap_api::ratelimit::{InProcessLimiter, Limiter, RedisLimiter, RedisOptions};
use kbgap_api::{Application, Security, Services};
use kbgap_auth::{
    DevIssuer, RefreshOutcome, RemoteJwks, RemoteJwksConfig, StaticJwks, TokenCache, TrustedIssuer,
    Validator, ValidatorConfig,
};
use kbgap_domain::TenantId;
use kbgap_service::CatalogHolder;
use kbgap_store::Store;

use crate::config::{self, AuthMode, FileConfig, LimiterSettings, ServerFlags};

pub async fn serve(
    store: Arc<dyn Store>,
    data_dir: &Path,
    flags: &ServerFlags,
    file: &FileConfig,
    on_ready: Option<Box<dyn FnOnce(std::net::SocketAddr) + Send>>,
) -> anyhow::Result<()> {
    let api = config::api_config(flags, file)?;
    let limiter_settings = config::limiter_settings(flags, file)?;
    let auth = config::oidc_settings(flags, file)?;
    let mut validator_config = ValidatorConfig::default();
    if let Some(algs) = &auth.algorithms {
        validator_config.algorithms = algs
            .iter()
            .map(|a| {
                a.parse::<kbgap_auth::Algorithm>()
                    .map_err(|_| anyhow::anyhow!("auth.algorithms: unknown algorithm '{a}'"))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(a) = &auth.audiences {
        validator_config.audiences = a.clone();
    }
    if let Some(t) = &auth.allowed_tenants {
        validator_config.allowed_tenants = Some(
            t.iter()
                .map(|t| TenantId::parse(t))
                .collect::<Result<_, _>>()
                .context("auth.allowed_tenants")?,
        );
    }
    let mut remote_keys: Vec<Arc<RemoteJwks>> = Vec::new();
    let (issuers, dev_issuer) = match auth.mode {
        AuthMode::Development => {
            if !api.listen.ip().is_loopback() && !auth.force_dev_issuer {
                bail!(
                    "the development issuer lets anyone with this data directory mint tokens; it \
                     only runs on a loopback address. Listen on 127.0.0.1, use --auth-mode \
                     jwks-file, or pass --force-dev-issuer"
                );
            }
            let dev = Arc::new(DevIssuer::load_or_create(data_dir)?);
            let issuer = TrustedIssuer::new(vec![auth.dev_issuer.clone()], dev.key_source());
            (vec![issuer], Some(dev))
        }
        AuthMode::Oidc => {
            let mut issuers = Vec::new();
            for provider in &auth.providers {
                let source = Arc::new(
                    RemoteJwks::new(RemoteJwksConfig {
                        timeout: auth.key_fetch_timeout,
                        ..RemoteJwksConfig::new(provider.location.clone())
                    })
                    .context("authentication settings (auth mode oidc)")?,
                );
                issuers.push(
                    TrustedIssuer::new(provider.issuers.clone(), source.clone())
                        .with_tenants(provider.tenants.clone()),
                );
                remote_keys.push(source);
            }
            (issuers, None)
        }
        AuthMode::JwksFile => {
            let path = auth
                .jwks_file
                .as_ref()
                .context("auth mode jwks-file needs --jwks-file (or auth.jwks_file)")?;
            let json = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the JWKS file {}", path.display()))?;
            let jwks = StaticJwks::from_json(&json)
                .with_context(|| format!("JWKS file {} is invalid", path.display()))?;
            let issuer = TrustedIssuer::new(
                auth.issuers
                    .clone()
                    .unwrap_or_else(|| validator_config.issuer_templates.clone()),
                Arc::new(jwks),
            );
            (vec![issuer], None)
        }
    };
    // Checked before any key is fetched, so a configuration that would let one provider
    // vouch for another's tenants fails at once.
    let validator = Arc::new(
        Validator::with_trusted_issuers(validator_config, issuers)
            .context("authentication settings")?,
    );
    for source in &remote_keys {
        // Fetch now so the first requests need not wait; a provider that is down does not
        // stop the server (its keys are fetched again every 10 s, and /readyz says 503 until
        // they are loaded).
        let s = source.clone();
        let outcome =
            tokio::task::spawn_blocking(move || s.refresh(std::time::Instant::now())).await?;
        let url = source.config().location.url();
        match outcome {
            RefreshOutcome::Updated { keys, .. } => {
                tracing::info!(url, keys, "signing keys loaded")
            }
            RefreshOutcome::Failed(e) => tracing::warn!(
                error = %e,
                "signing keys could not be loaded yet; tokens of these issuers fail until they are"
            ),
            RefreshOutcome::CoolingDown => {}
        }
    }
    let limiter: Arc<dyn Limiter> = match limiter_settings {
        LimiterSettings::InProcess => Arc::new(InProcessLimiter::default()),
        // Not reaching Redis is no reason to stay down: the limiter logs it, limits locally
        // to this replica's share, and keeps trying.
        LimiterSettings::Redis { url, replicas } => Arc::new(
            RedisLimiter::connect(
                url.as_str(),
                RedisOptions {
                    replicas,
                    ..RedisOptions::default()
                },
            )
            .await
            .context("--redis-url (KBGAP_REDIS_URL, rate_limits.redis_url)")?,
        ),
    };
    let security = Arc::new(Security::new(
        limiter,
        TokenCache::new(auth.token_cache_entries),
        remote_keys,
    ));
    let catalog = {
        let store = store.clone();
        match tokio::task::spawn_blocking(move || CatalogHolder::load(store.as_ref())).await? {
            Ok(holder) => Arc::new(holder),
            // The database is not there yet: the change poll loads the catalog once it is.
            Err(kbgap_service::ServiceError::Store(e)) if e.is_unavailable() => {
                Arc::new(CatalogHolder::empty())
            }
            Err(e) => return Err(e.into()),
        }
    };
    if catalog.current().generation == 0 && store.ping().is_ok() {
        tracing::warn!("no catalog imported yet: run `kbgap catalog import DIR`; /readyz answers 503 until then");
    }
    let app = Application::bind(
        api,
        Services {
            store,
            catalog,
            validator,
            dev_issuer,
            security,
        },
    )
    .await
    .context("cannot listen")?;
    let addr = app.local_addr();
    tracing::info!(%addr, "kbgap listening");
    if let Some(f) = on_ready {
        f(addr);
    }
    app.run(shutdown_signal()).await?;
    tracing::info!("kbgap stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down; finishing in-flight requests");
}
