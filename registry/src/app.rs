//! The registry as a service: shared state, the router and its middleware, and
//! [`run`]`(listener, state, shutdown)` so tests bind port 0 and serve in process.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::{HeaderValue, header};
use tokio::net::TcpListener;

use crate::error::InternalCause;
use crate::handlers;
use crate::limits::{BodyRate, min_body_rate};
use crate::metrics::{AccountingLayer, RequestInfo, endpoint_kind};
pub use crate::state::{AppState, ForeignPolicy, SharedState};

/// The router: `/v2/...`, `/token`, `/admin/gc`, `/healthz`, `/readyz`, `/metrics` and the web UI
/// (`/`, `/ui/...`), behind request accounting and the request log ([`AccountingLayer`]).
pub fn app(state: SharedState) -> Router {
    let ui = if state.config.ui.enabled {
        crate::ui::router(state.clone())
    } else {
        Router::new()
    };
    Router::new()
        .merge(ui)
        .route("/v2", any(handlers::dispatch_root))
        .route("/v2/", any(handlers::dispatch_root))
        .route("/v2/{*rest}", any(handlers::dispatch))
        .route(
            "/token",
            get(crate::auth::service::token).post(crate::auth::service::token),
        )
        .route("/admin/gc", any(handlers::admin::gc))
        .route("/healthz", get(crate::health::healthz))
        .route(
            "/readyz",
            get(|State(state): State<SharedState>| async move { crate::health::readyz(&state.readiness) }),
        )
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            BodyRate::of(&state.config.server),
            min_body_rate,
        ))
        .layer(axum::middleware::from_fn(finish_response))
        .layer(AccountingLayer::new(state.metrics.clone()))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then gives in-flight requests `shutdown_timeout` to
/// finish (see [`crate::serve`]). Also runs the storage upkeep (upload purge, temp-file
/// sweep, garbage collection) and the credential reloads in the background.
pub async fn run(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let purge = tokio::spawn(crate::upkeep::run(state.clone(), crate::upkeep::Task::Purge));
    let sweep = tokio::spawn(crate::upkeep::run(state.clone(), crate::upkeep::Task::Sweep));
    let reload = tokio::spawn(reload_users(state.clone()));
    let certificates = tokio::spawn(reload_tls(state.clone()));
    let collector = tokio::spawn(crate::gc::background(state.clone()));
    let sync = tokio::spawn(handlers::sync_upstreams(state.clone()));
    let probed = state.clone();
    let readiness = tokio::spawn(async move {
        let interval = probed.config.server.readiness_interval;
        let backend = probed.blobs.backend().as_ref();
        crate::health::probe_storage(&probed.readiness, &probed.metrics, backend, interval).await;
    });
    let result = crate::serve::serve(
        listener,
        app(state.clone()),
        &state.config.server,
        state.tls.clone(),
        shutdown,
    )
    .await;
    for task in [purge, sweep, reload, certificates, collector, readiness, sync] {
        task.abort();
    }
    result
}

/// Re-reads the htpasswd and groups files when they change (checked every 2 s).
async fn reload_users(state: SharedState) {
    let Some(auth) = state.auth.clone() else { return };
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let auth = auth.clone();
        let _ = tokio::task::spawn_blocking(move || auth.users().reload_if_changed()).await;
    }
}

/// Re-reads the TLS files on SIGHUP, and when they change (checked every 2 s).
async fn reload_tls(state: SharedState) {
    let Some(tls) = state.tls.clone() else { return };
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let forced = tokio::select! {
            _ = async { hangup.as_mut()?.recv().await }, if hangup.is_some() => true,
            () = tokio::time::sleep(Duration::from_secs(2)) => false,
        };
        let tls = tls.clone();
        let _ = tokio::task::spawn_blocking(move || tls.reload(forced)).await;
    }
}

/// `Docker-Distribution-API-Version` on every `/v2/` response, and the internal cause of a 5xx
/// logged once (the request line itself is [`AccountingLayer`]'s).
async fn finish_response(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let is_v2 = request.uri().path().starts_with("/v2");
    let mut response = next.run(request).await;
    if is_v2 {
        response.headers_mut().insert(
            "docker-distribution-api-version",
            HeaderValue::from_static("registry/2.0"),
        );
    }
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        let info = response.extensions().get::<RequestInfo>();
        let kind = endpoint_kind(info, is_v2);
        let repository = info.and_then(|i| i.repository.as_deref()).unwrap_or_default();
        let status = response.status().as_u16();
        tracing::error!(%method, endpoint = kind, %repository, status, cause = %cause, "request failed");
    }
    response
}

async fn metrics(State(state): State<SharedState>) -> Response {
    let mut response = Body::from(state.metrics.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}
