//! Admin endpoints: `GET /admin/gc` (the last cycle's report) and `POST /admin/gc[?dry_run=true]`
//! (run a cycle now and answer with its report). Under access control only `[auth] admin_users`
//! and members of `admin_groups` may use them.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{Method, StatusCode};

use super::json_response;
use crate::auth::{Needs, Peer};
use crate::error::{ApiError, ApiResult, Code};
use crate::gc;
use crate::state::SharedState;

/// `/admin/gc`.
pub(crate) async fn gc(State(state): State<SharedState>, request: Request) -> Response {
    gc_inner(state, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn gc_inner(state: SharedState, request: Request) -> ApiResult<Response> {
    let (parts, _) = request.into_parts();
    if let Some(auth) = &state.auth {
        let peer = parts.extensions.get::<Peer>();
        let principal = auth.authenticate(&parts.headers, peer).await?;
        if principal.user().is_none() {
            return Err(auth.with_challenge(
                ApiError::new(Code::Unauthorized, "authentication required"),
                &Needs::default(),
                None,
                &parts.headers,
                peer,
            ));
        }
        if !auth.is_admin(&principal) {
            tracing::warn!(user = principal.user().unwrap_or(""), "admin endpoint refused");
            return Err(ApiError::new(Code::Denied, "only registry admins may do this"));
        }
    }
    let report = match parts.method {
        Method::GET | Method::HEAD => gc::last_report(&state).await?.ok_or_else(|| {
            ApiError::new(Code::NameUnknown, "no garbage-collection cycle has finished yet")
                .with_status(StatusCode::NOT_FOUND)
        })?,
        Method::POST => {
            let dry_run = parts
                .uri
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "dry_run" && v != "false" && v != "0")
                })
                .unwrap_or(false);
            let holder = format!("admin-{:016x}", rand::random::<u64>());
            let report = gc::cycle(&state, &holder, dry_run).await?;
            tracing::info!(
                dry_run,
                blobs = report.blobs_deleted,
                bytes = report.bytes_freed,
                "gc cycle (admin)"
            );
            report
        }
        _ => return Err(ApiError::unsupported("only GET and POST on /admin/gc")),
    };
    let body = serde_json::to_vec_pretty(&report).map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, Bytes::from(body)))
}
