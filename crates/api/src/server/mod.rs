//! The connection layer: an HTTP/1.1 accept loop with a connection limit, a bound per client
//! address, a gate that checks every request head before hyper sees it, a header-read
//! timeout against slow clients, and graceful shutdown.
//!
//! Written on hyper directly because `axum::serve` exposes none of these limits. HTTP/1.1 only:
//! MDE clients speak it, TLS and HTTP/2 belong to the reverse proxy in front, and a smaller
//! protocol surface is a smaller attack surface.

mod clients;
mod gate;
pub mod head;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::{Service, ServiceExt};

use crate::error::ApiError;
use crate::security::ConnectionToken;
use clients::Clients;
use gate::Gate;
use head::HeadLimits;

/// Limits of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once. When all are taken, the idle one quiet longest is closed
    /// for a new client; when none is idle, new connections wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one client address may hold at once (trusted proxies excepted); further
    /// ones get the 429 envelope and are closed.
    pub max_connections_per_client: usize,
    /// The request head apart from `Authorization` (enforced by a middleware, 431 envelope);
    /// `Authorization` may add [`head::AUTHORIZATION_ALLOWANCE`] beyond it.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete request head, also the idle keep-alive limit.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves. `trusted_proxies` are exempt from
/// the bound per client address.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ConnectionLimits,
    trusted_proxies: Vec<IpAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let clients = Clients::new(limits.max_connections_per_client, trusted_proxies);
    let (stop, stopped) = watch::channel(false);
    let head_limits = HeadLimits::new(limits.max_header_bytes);
    let mut http = hyper::server::conn::http1::Builder::new();
    // The gate has checked every head hyper sees; hyper's own cap is a last line of defence.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(head_limits.head_bytes.max(8192) + 8192)
        // A refused head ends the stream hyper reads: it must still finish the answer it
        // is writing to the request before.
        .half_close(true)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admission) = clients.admit(peer.ip()) else {
            tracing::debug!(client = %peer.ip(), "too many connections from one address");
            tokio::spawn(gate::turn_away(
                stream,
                ApiError::TooManyRequests {
                    message: format!(
                        "Too many connections from this address; at most {} at once.",
                        limits.max_connections_per_client
                    ),
                    retry_after_secs: 1,
                },
            ));
            continue;
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Every connection is taken: make room by closing an idle one, else wait.
                clients.close_an_idle_one();
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let token = ConnectionToken::default();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req.extensions_mut().insert(token.clone());
            app.clone().oneshot(req.map(Body::new))
        });
        let tracked = admission.tracked.clone();
        let io = TokioIo::new(Gate::new(stream, peer, head_limits, tracked.clone()));
        let conn = http.serve_connection(io, service);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            // Closing (for shutdown or to make room) lets the answer in progress finish.
            let closing = tokio::select! {
                r = conn.as_mut() => Some(r),
                () = tracked.close.notified() => None,
                _ = stopped.wait_for(|s| *s) => None,
            };
            let res = match closing {
                Some(r) => r,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            // Errors here are clients going away or timing out: nothing to report upstream.
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(admission);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    tokio::select! {
        _ = permits.acquire_many(max as u32) => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing the remaining connections");
        }
    }
    Ok(())
}
