//! kbgap's HTTP API: MDE's `getmissingkbs`, inventory ingestion, operations endpoints and the
//! development issuer, with MDE's error envelope on every error. [`Application::bind`] binds
//! before running, so tests start the real server on `127.0.0.1:0`.

pub mod answers;
pub mod auth;
pub mod error;
pub mod middleware;
pub mod odata;
pub mod routes;
pub mod security;
pub mod server;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{from_fn, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use kbgap_auth::{DevIssuer, Validator};
use kbgap_service::{CatalogHolder, Retention};
use kbgap_store::Store;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::ApiError;
use crate::routes::{
    dev_issuer, explain, inventory, machine_kbs, machines, ops, software, software_list,
};
pub use crate::security::{RateLimits, Security};
pub use crate::server::ConnectionLimits;
/// Re-exported so the binary configures limits and limiters through this crate.
pub use kbgap_ratelimit as ratelimit;

/// Server settings (the binary fills them from flags, environment and the config file).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Base URL clients use, for `@odata.context`; else the request's own scheme and host.
    pub public_base_url: Option<String>,
    /// Peers whose `X-Forwarded-Proto` / `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<IpAddr>,
    pub retention: Retention,
    /// Most snapshots in one ingestion batch.
    pub max_batch: usize,
    /// Most records in one answer of a list route (`GET /api/machines`); `@odata.nextLink`
    /// leads to the rest. MDE's page size, 10,000.
    pub page_size: usize,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// Issuer template of the development issuer (its discovery document names it).
    pub dev_issuer_template: String,
    /// How often to look for changes another process or replica made to the store: a new
    /// catalog generation (reloaded) and inventory changes (cached answers dropped).
    pub change_poll: Duration,
    /// How often to take machines that left the retention window out of the counts.
    pub sweep_interval: Duration,
    /// Rate limits per route, tenant and client app, and for failed authentications.
    pub rate_limits: RateLimits,
    /// Connection limit, request-head limit, slow-client timeout.
    pub connections: ConnectionLimits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_base_url: None,
            trusted_proxies: Vec::new(),
            retention: Retention::default(),
            max_batch: 1000,
            page_size: odata::MAX_TOP,
            body_limit: 32 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            dev_issuer_template: kbgap_auth::DEV_ISSUER_TEMPLATE.to_string(),
            change_poll: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(300),
            rate_limits: RateLimits::default(),
            connections: ConnectionLimits {
                max_connections: 1024,
                max_connections_per_client: 128,
                max_header_bytes: 64 * 1024,
                header_read_timeout: Duration::from_secs(10),
                shutdown_grace: Duration::from_secs(30),
            },
        }
    }
}

/// What the handlers share: one pointer, so handing it to a handler costs one reference
/// count, whatever it holds.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<CatalogHolder>,
    pub validator: Arc<Validator>,
    pub dev_issuer: Option<Arc<DevIssuer>>,
    pub config: Arc<ApiConfig>,
    pub security: Arc<Security>,
    /// `getmissingkbs` answers already computed.
    pub answers: Arc<answers::AnswerCache>,
}

/// The components the server is wired from.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<CatalogHolder>,
    pub validator: Arc<Validator>,
    pub dev_issuer: Option<Arc<DevIssuer>>,
    /// Token cache, limiter and remote key sources.
    pub security: Arc<Security>,
}

async fn not_found() -> ApiError {
    ApiError::NotFound("The requested resource does not exist.".into())
}

/// Keeps the matched route template on the response, for the request log line.
async fn keep_matched_path(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(m) = matched {
        resp.extensions_mut().insert(m);
    }
    resp
}

/// The router with every route and the layers that belong inside routing.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    Router::new()
        .route(
            "/api/Software/{id}/getmissingkbs",
            get(software::get_missing_kbs),
        )
        .route("/api/inventory/machines", post(inventory::post_machines))
        .route(
            "/api/inventory/machines/{id}",
            put(inventory::put_machine).delete(inventory::delete_machine),
        )
        .route("/api/Software", get(software_list::list))
        .route("/api/Software/{id}", get(software_list::get))
        .route("/api/machines", get(machines::list))
        .route("/api/machines/{id}", get(machines::get))
        .route(
            "/api/machines/{id}/software",
            get(software_list::of_machine),
        )
        .route(
            "/api/machines/{id}/getmissingkbs",
            get(machine_kbs::get_missing_kbs),
        )
        .route(
            "/api/machines/{id}/missingkbs/explain",
            get(explain::explain),
        )
        .route(
            "/api/Software/{id}/indeterminatemachines",
            get(explain::indeterminate),
        )
        .route(
            "/api/Software/{id}/endofservicingmachines",
            get(explain::end_of_servicing),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(ops::openapi))
        .route(dev_issuer::JWKS_PATH, get(dev_issuer::jwks))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(dev_issuer::discovery),
        )
        .route_layer(from_fn(keep_matched_path))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .with_state(state)
}

/// The layers around the router, outermost first: request id and envelope, panics to 500,
/// request-head limit, MDE path normalization (before routing, so outside the router).
pub fn service(
    router: Router,
    max_header_bytes: usize,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    tower::ServiceBuilder::new()
        .layer(from_fn(middleware::request_id))
        .layer(CatchPanicLayer::new())
        .layer(from_fn(move |req, next| {
            middleware::limit_headers(max_header_bytes, req, next)
        }))
        .layer(from_fn(middleware::normalize_path))
        .service(router)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Binds the listener (port 0 picks a free port) and prepares the server.
    pub async fn bind(mut config: ApiConfig, services: Services) -> std::io::Result<Application> {
        let listener = TcpListener::bind(config.listen).await?;
        config.listen = listener.local_addr()?;
        let state = AppState(Arc::new(Shared {
            store: services.store,
            catalog: services.catalog,
            validator: services.validator,
            dev_issuer: services.dev_issuer,
            config: Arc::new(config),
            security: services.security,
            answers: Arc::new(answers::AnswerCache::default()),
        }));
        Ok(Application { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.state.config.listen
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut background = spawn_background(self.state.clone());
        background.extend(security::spawn_key_refresher(self.state.clone()));
        let limits = self.state.config.connections;
        let proxies = self.state.config.trusted_proxies.clone();
        let app = service(router(self.state), limits.max_header_bytes);
        let result = server::serve(self.listener, app, limits, proxies, shutdown).await;
        for task in background {
            task.abort();
        }
        result
    }
}

/// The change poll (catalog reloads, answers dropped when another process changed the store)
/// and the retention sweep.
fn spawn_background(state: AppState) -> Vec<tokio::task::JoinHandle<()>> {
    // A store that announces changes (PostgreSQL's LISTEN/NOTIFY) wakes the poll at once: a
    // write or catalog import through another replica or the CLI is seen within
    // milliseconds, and the interval is only the fallback.
    let wake = Arc::new(tokio::sync::Notify::new());
    {
        let wake = wake.clone();
        match state.store.subscribe(Arc::new(move || wake.notify_one())) {
            Ok(true) => tracing::debug!("listening for store changes"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot listen for store changes; polling"),
        }
    }
    let poll = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.config.change_poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Logged when the poll starts failing and when it recovers, not every tick.
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = wake.notified() => {}
                }
                let s = state.clone();
                let res = tokio::task::spawn_blocking(move || -> kbgap_service::Result<()> {
                    s.catalog.refresh(s.store.as_ref())?;
                    let stored = kbgap_service::catalog_state(s.store.as_ref())?;
                    s.answers.observe(
                        stored.generation,
                        stored.inventory,
                        s.catalog.current().generation,
                    );
                    Ok(())
                })
                .await;
                match res {
                    Ok(Err(e)) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "change poll failed; keeping the loaded catalog and answers until the store answers");
                    }
                    Ok(Ok(())) if failing => {
                        failing = false;
                        tracing::info!("change poll recovered: the store answers");
                    }
                    _ => {}
                }
            }
        })
    };
    let sweep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let store = state.store.clone();
            let retention = state.config.retention;
            let res = tokio::task::spawn_blocking(move || {
                kbgap_service::sweep(store.as_ref(), time::OffsetDateTime::now_utc(), retention)
            })
            .await;
            match res {
                Ok(Ok(n)) if n > 0 => {
                    state.answers.invalidate();
                    tracing::info!(
                        machines = n,
                        "retention sweep removed machines from the counts"
                    );
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "retention sweep failed"),
                _ => {}
            }
        }
    });
    vec![poll, sweep]
}
