//! Request handling: [`dispatch`] parses `/v2/<rest>` into an [`Endpoint`] and calls the handler
//! for the endpoint and method; one module per group of endpoints.

pub(crate) mod admin;
mod blobs;
mod listing;
pub(crate) mod manifests;
mod proxy;
mod uploads;

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, Method, StatusCode, header};
use strata_storage::{ByteStream, Error as StorageError, RepositoryName};

use crate::auth::{Needs, Peer, Principal};
use crate::config::Action;
use crate::error::{ApiError, ApiResult};
use crate::metrics::RequestInfo;
use crate::route::Endpoint;
use crate::state::SharedState;

/// One request, taken apart.
pub(crate) struct Ctx {
    pub(crate) state: SharedState,
    /// Who is calling ([`Principal::Anonymous`] when access control is off).
    pub(crate) principal: Principal,
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    query: Vec<(String, String)>,
    /// Behind a mutex only so `Ctx` is `Sync` (a body is not), which lets handlers hold `&Ctx`
    /// across awaits.
    body: std::sync::Mutex<Option<Body>>,
}

impl Ctx {
    /// The request body (empty if already taken).
    pub(crate) fn take_body(&self) -> Body {
        self.body.lock().expect("body lock").take().unwrap_or_else(Body::empty)
    }

    /// The first value of query parameter `name`.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of query parameter `name`.
    pub(crate) fn query_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A request header as text.
    pub(crate) fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Content-Length`, if given and valid.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.header(header::CONTENT_LENGTH)?.trim().parse().ok()
    }

    /// Whether the caller may do `action` on `repository` (always, without access control).
    pub(crate) fn may(&self, repository: &RepositoryName, action: Action) -> bool {
        self.state
            .auth
            .as_ref()
            .is_none_or(|auth| auth.allows(&self.principal, repository, action))
    }

    /// Whether the request carries a body (a non-zero length or chunked encoding).
    pub(crate) fn has_body(&self) -> bool {
        match self.content_length() {
            Some(n) => n > 0,
            None => self.headers.contains_key(header::TRANSFER_ENCODING),
        }
    }
}

/// Keeps the upstreams' `sync` rules' tags cached, on their schedules (runs until aborted).
pub(crate) async fn sync_upstreams(state: SharedState) {
    proxy::sync_forever(state).await;
}

/// `/v2` and `/v2/`: the API version check.
pub(crate) async fn dispatch_root(State(state): State<SharedState>, request: Request) -> Response {
    respond(state, Ok(Endpoint::Base), request).await
}

/// Everything under `/v2/`.
pub(crate) async fn dispatch(State(state): State<SharedState>, Path(rest): Path<String>, request: Request) -> Response {
    let endpoint = Endpoint::parse_for(request.method(), &rest);
    respond(state, endpoint, request).await
}

async fn respond(state: SharedState, endpoint: ApiResult<Endpoint>, request: Request) -> Response {
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(e) => {
            return with_info(
                e.into_response(),
                RequestInfo {
                    kind: "invalid",
                    repository: None,
                },
            );
        }
    };
    // containerd and docker mirrors name the upstream in `?ns=`: its local mirror repository.
    let endpoint = match (request.uri().query(), endpoint.repository()) {
        (Some(query), Some(name)) if !state.upstreams.is_empty() => {
            let ns = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "ns");
            match ns.and_then(|(_, ns)| state.upstreams.local_name(&ns, name)) {
                Some(local) => endpoint.renamed(local),
                None => endpoint,
            }
        }
        _ => endpoint,
    };
    let info = RequestInfo {
        kind: endpoint.kind(),
        repository: endpoint.repository().map(|n| n.to_string()),
    };
    // The version check is what clients and balancers ask first: while storage is known down,
    // it says so, and they go to another replica.
    if matches!(endpoint, Endpoint::Base) && state.readiness.is_down() {
        let unavailable = ApiError::new(crate::error::Code::Unavailable, "storage is unavailable")
            .with_header(header::RETRY_AFTER, "1");
        return with_info(unavailable.into_response(), info);
    }
    let (parts, body) = request.into_parts();
    let principal = match authorize(&state, &endpoint, &parts).await {
        Ok(principal) => principal,
        Err(e) => return with_info(e.into_response(), info),
    };
    let query = parts
        .uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let ctx = Ctx {
        state,
        principal,
        method: parts.method,
        headers: parts.headers,
        query,
        body: std::sync::Mutex::new(Some(body)),
    };
    let response = route(ctx, endpoint).await.unwrap_or_else(IntoResponse::into_response);
    with_info(response, info)
}

/// What `endpoint` needs of the caller for `method`.
fn needs(endpoint: &Endpoint, method: &Method) -> Needs {
    use Endpoint as E;
    let action = match (endpoint, method) {
        (E::Manifest(..) | E::Blob(..), &Method::DELETE) => Action::Delete,
        (E::Manifest(..), &Method::PUT) => Action::Push,
        (E::UploadStart(_) | E::Upload(..), _) => Action::Push,
        _ => Action::Pull,
    };
    Needs {
        repositories: endpoint
            .repository()
            .map(|r| vec![(r.clone(), action)])
            .unwrap_or_default(),
        catalog: matches!(endpoint, E::Catalog),
    }
}

/// Authenticates the caller and checks that they may do what the request needs, before
/// anything reads storage; without access control everyone may do everything.
async fn authorize(state: &SharedState, endpoint: &Endpoint, parts: &http::request::Parts) -> ApiResult<Principal> {
    let Some(auth) = &state.auth else {
        return Ok(Principal::Anonymous);
    };
    let peer = parts.extensions.get::<Peer>();
    let principal = auth.authenticate(&parts.headers, peer).await?;
    auth.check(&principal, &needs(endpoint, &parts.method), &parts.headers, peer)?;
    Ok(principal)
}

/// Tells the request accounting which endpoint and repository the request was for.
fn with_info(mut response: Response, info: RequestInfo) -> Response {
    response.extensions_mut().insert(info);
    response
}

/// Runs the handler; one without a streamed request body must answer within
/// `request_timeout` (503 `UNAVAILABLE` otherwise).
async fn route(ctx: Ctx, endpoint: Endpoint) -> ApiResult<Response> {
    let streams_body = matches!(
        (&endpoint, &ctx.method),
        (Endpoint::Upload(..), &Method::PATCH | &Method::PUT)
    ) || (matches!(endpoint, Endpoint::UploadStart(_)) && ctx.has_body());
    if streams_body {
        return handle(ctx, endpoint).await;
    }
    let limit = ctx
        .state
        .config
        .server
        .request_timeout
        .max(std::time::Duration::from_millis(1));
    tokio::time::timeout(limit, handle(ctx, endpoint))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                crate::error::Code::Unavailable,
                format!("the request took longer than {}", humantime::format_duration(limit)),
            )
            .with_header(header::RETRY_AFTER, "1"))
        })
}

async fn handle(ctx: Ctx, endpoint: Endpoint) -> ApiResult<Response> {
    use Endpoint as E;
    let method = ctx.method.clone();
    let state = ctx.state.clone();
    if let Some((upstream, remote)) = endpoint.repository().and_then(|name| state.upstreams.route(name)) {
        match (endpoint, method) {
            (E::Manifest(name, reference), m @ (Method::GET | Method::HEAD)) => {
                return proxy::manifest(ctx, upstream, name, remote, reference, m == Method::HEAD).await;
            }
            (E::Blob(name, digest), m @ (Method::GET | Method::HEAD)) => {
                return proxy::blob(ctx, upstream, name, remote, digest, m == Method::HEAD).await;
            }
            (endpoint @ (E::Tags(_) | E::Referrers(..)), Method::GET) => return local(ctx, endpoint).await,
            _ => {
                return Err(ApiError::new(
                    crate::error::Code::Denied,
                    format!("this repository mirrors {}: it is read-only", upstream.name),
                ));
            }
        }
    }
    local(ctx, endpoint).await
}

/// What this registry stores (everything but the mirrors' manifests and blobs).
async fn local(ctx: Ctx, endpoint: Endpoint) -> ApiResult<Response> {
    use Endpoint as E;
    let method = ctx.method.clone();
    match (endpoint, method) {
        (E::Base, Method::GET | Method::HEAD) => Ok(json_response(StatusCode::OK, Bytes::from_static(b"{}"))),
        (E::Catalog, Method::GET) => listing::catalog(ctx).await,
        (E::Tags(name), Method::GET) => listing::tags(ctx, name).await,
        (E::Referrers(name, digest), Method::GET) => listing::referrers(ctx, name, digest).await,
        (E::Manifest(name, reference), Method::GET) => manifests::get(ctx, name, reference, false).await,
        (E::Manifest(name, reference), Method::HEAD) => manifests::get(ctx, name, reference, true).await,
        (E::Manifest(name, reference), Method::PUT) => manifests::put(ctx, name, reference).await,
        (E::Manifest(name, reference), Method::DELETE) => manifests::delete(ctx, name, reference).await,
        (E::Blob(name, digest), Method::GET) => blobs::get(ctx, name, digest, false).await,
        (E::Blob(name, digest), Method::HEAD) => blobs::get(ctx, name, digest, true).await,
        (E::Blob(name, digest), Method::DELETE) => blobs::delete(ctx, name, digest).await,
        (E::UploadStart(name), Method::POST) => uploads::start(ctx, name).await,
        (E::Upload(name, id), Method::GET) => uploads::status(ctx, name, id).await,
        (E::Upload(name, id), Method::PATCH) => uploads::patch(ctx, name, id).await,
        (E::Upload(name, id), Method::PUT) => uploads::finish(ctx, name, id).await,
        (E::Upload(name, id), Method::DELETE) => uploads::cancel(ctx, name, id).await,
        (_, method) => Err(ApiError::unsupported(&format!("{method} on this endpoint"))),
    }
}

/// A response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("valid response")
}

/// An empty response (`Content-Length: 0`).
pub(crate) fn empty(status: StatusCode) -> http::response::Builder {
    Response::builder().status(status).header(header::CONTENT_LENGTH, 0)
}

/// A request body as a storage stream that fails with [`StorageError::SizeMismatch`] past
/// `limit` bytes, or short of `exact` bytes.
pub(crate) fn body_stream(body: Body, limit: Option<u64>, exact: Option<u64>) -> ByteStream {
    let inner = body.into_data_stream().map_err(StorageError::input);
    Box::pin(Bounded {
        inner: Box::pin(inner),
        seen: 0,
        limit: exact.or(limit),
        exact,
        done: false,
    })
}

struct Bounded {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>,
    seen: u64,
    limit: Option<u64>,
    exact: Option<u64>,
    done: bool,
}

impl Stream for Bounded {
    type Item = Result<Bytes, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = ready!(self.inner.as_mut().poll_next(cx));
        let this = &mut *self;
        match item {
            Some(Ok(chunk)) => {
                this.seen += chunk.len() as u64;
                if let Some(limit) = this.limit
                    && this.seen > limit
                {
                    this.done = true;
                    return Poll::Ready(Some(Err(StorageError::SizeMismatch {
                        expected: limit,
                        actual: this.seen,
                    })));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Some(Err(e)) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            None => {
                this.done = true;
                match this.exact {
                    Some(exact) if exact != this.seen => Poll::Ready(Some(Err(StorageError::SizeMismatch {
                        expected: exact,
                        actual: this.seen,
                    }))),
                    _ => Poll::Ready(None),
                }
            }
        }
    }
}

/// Bytes of an over-long body read (and discarded) before answering 413, so that a client still
/// sending gets the answer instead of a reset connection. Longer bodies get the reset.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// Reads a whole body of at most `max` bytes (a manifest); 413 `SIZE_INVALID` when longer.
/// The bytes are counted against the registry's [`crate::limits::BodyBudget`] until the
/// returned permit drops (429 when the budget is spent).
pub(crate) async fn read_small_body(ctx: &Ctx, max: u64) -> ApiResult<(Bytes, tokio::sync::OwnedSemaphorePermit)> {
    let too_large = || {
        ApiError::new(crate::error::Code::SizeInvalid, format!("body larger than {max} bytes"))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if ctx.content_length().is_some_and(|n| n > max + DRAIN_LIMIT) {
        return Err(too_large());
    }
    let permit = ctx.state.bodies.reserve(ctx.content_length().unwrap_or(max).min(max))?;
    let mut body = ctx.take_body().into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(StorageError::input)?;
        if (buf.len() + chunk.len()) as u64 > max {
            let mut drained = 0u64;
            while drained < DRAIN_LIMIT {
                match body.next().await {
                    Some(Ok(more)) => drained += more.len() as u64,
                    _ => break,
                }
            }
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), permit))
}

/// Fails with 405 UNSUPPORTED when deletes are disabled.
pub(crate) fn check_delete_enabled(state: &crate::state::AppState) -> ApiResult<()> {
    if state.config.delete_enabled {
        Ok(())
    } else {
        Err(ApiError::unsupported("deletion (disabled by configuration)"))
    }
}
