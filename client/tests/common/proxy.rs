//! A misbehaving HTTP proxy in front of a registry: it forwards everything, logs every request,
//! and on request cuts blob downloads short, ignores `Range`, corrupts blobs, answers with
//! errors and `Retry-After`, refuses large `PUT`s with 413, demands Basic or Bearer
//! authentication (with its own token endpoint), redirects blob downloads to another host, and
//! throttles uploads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderValue, StatusCode, header};
use tokio::sync::oneshot;

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub authorization: Option<String>,
    pub range: Option<String>,
    pub content_range: Option<String>,
    /// Status the proxy answered.
    pub status: u16,
    /// Request body bytes forwarded (uploads).
    pub body_bytes: u64,
}

/// A scripted failure: the next `times` requests whose method and path match get `status`.
#[derive(Debug, Clone)]
pub struct Fail {
    pub method: &'static str,
    pub path_contains: String,
    pub status: u16,
    pub retry_after: Option<u64>,
    /// Matching requests let through before failing.
    pub skip: u32,
    pub times: u32,
}

/// What the proxy does besides forwarding.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    pub fail: Vec<Fail>,
    /// Blob GETs of bodies longer than the limit to cut short: (how many more, bytes to send
    /// before cutting).
    pub cut_blob_gets: Option<(u32, u64)>,
    /// Drop `Range` from blob GETs (the registry then answers 200 with everything).
    pub ignore_range: bool,
    /// Flip a byte in every blob body.
    pub corrupt_blobs: bool,
    /// Answer 413 to blob `PUT`s with a body larger than this.
    pub max_put_body: Option<u64>,
    /// Demand `Basic` with these credentials.
    pub basic: Option<(String, String)>,
    /// Demand `Bearer` tokens from `/token`, issued for these Basic credentials.
    pub bearer: Option<(String, String)>,
    /// Redirect blob GETs to this base URL (another host), which serves `/v2/...` too.
    pub redirect_blobs: Option<String>,
    /// Upload bodies trickle at about this many bytes per second.
    pub throttle_uploads: Option<u64>,
    /// Blob download bodies trickle at about this many bytes per second.
    pub throttle_downloads: Option<u64>,
}

#[derive(Debug)]
pub struct ProxyState {
    upstream: String,
    base: String,
    http: reqwest::Client,
    pub rules: Mutex<Rules>,
    pub log: Mutex<Vec<Seen>>,
    /// Scopes asked of the token endpoint, one entry per token request.
    pub token_requests: Mutex<Vec<Vec<String>>>,
}

/// The running proxy.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    pub state: Arc<ProxyState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Proxy {
    /// A proxy on a loopback port in front of `upstream` (`host:port`).
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            upstream: format!("http://{upstream}"),
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            rules: Mutex::default(),
            log: Mutex::default(),
            token_requests: Mutex::default(),
        });
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Proxy {
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    pub fn set(&self, rules: Rules) {
        *self.state.rules.lock().unwrap() = rules;
    }

    pub fn log(&self) -> Vec<Seen> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }
}

fn is_blob_get(method: &http::Method, path: &str) -> bool {
    (method == http::Method::GET) && path.contains("/blobs/sha256:")
}

fn error(status: StatusCode, code: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(
            r#"{{"errors":[{{"code":"{code}","message":"from the test proxy"}}]}}"#
        )))
        .unwrap()
}

fn basic_of(request: &Request) -> Option<(String, String)> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let (u, p) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// The scope a registry request needs.
fn needed_scope(method: &http::Method, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let cut = ["/blobs/", "/manifests/", "/tags/"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()?;
    let repo = &rest[..cut];
    let action = if matches!(*method, http::Method::GET | http::Method::HEAD) {
        "pull"
    } else {
        "push"
    };
    Some(format!("repository:{repo}:{action}"))
}

/// Tokens are `tok:` + the granted scopes joined by spaces, base64.
fn token_for(scopes: &[String]) -> String {
    format!(
        "tok:{}",
        base64::engine::general_purpose::STANDARD.encode(scopes.join(" "))
    )
}

fn token_allows(token: &str, needed: &str) -> bool {
    let Some(encoded) = token.strip_prefix("tok:") else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    let granted = String::from_utf8_lossy(&raw).into_owned();
    let (repo, action) = needed.rsplit_once(':').unwrap();
    granted.split(' ').any(|g| {
        g.rsplit_once(':')
            .is_some_and(|(r, actions)| r == repo && actions.split(',').any(|a| a == action))
    })
}

async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let method = request.method().clone();
    let uri = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let path = request.uri().path().to_owned();
    let mut seen = Seen {
        method: method.to_string(),
        uri: uri.clone(),
        authorization: request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        range: request
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        content_range: request
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        status: 0,
        body_bytes: 0,
    };
    let response = respond(&state, request, &method, &path, &uri, &mut seen).await;
    seen.status = response.status().as_u16();
    state.log.lock().unwrap().push(seen);
    response
}

async fn respond(
    state: &Arc<ProxyState>,
    request: Request,
    method: &http::Method,
    path: &str,
    uri: &str,
    seen: &mut Seen,
) -> Response {
    let rules = state.rules.lock().unwrap().clone();

    // The token endpoint.
    if path == "/token" {
        let Some((want_user, want_pass)) = rules.bearer.clone() else {
            return error(StatusCode::NOT_FOUND, "NOT_FOUND");
        };
        if basic_of(&request) != Some((want_user, want_pass)) {
            return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        }
        let query = request.uri().query().unwrap_or("");
        let scopes: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').map(String::from).collect::<Vec<_>>())
            .collect();
        state.token_requests.lock().unwrap().push(scopes.clone());
        let body = serde_json::json!({ "token": token_for(&scopes), "expires_in": 300 });
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
    }

    // Authentication.
    if let Some(creds) = &rules.basic
        && basic_of(&request).as_ref() != Some(creds)
    {
        let mut r = error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"test\""),
        );
        return r;
    }
    if rules.bearer.is_some()
        && let Some(needed) = needed_scope(method, path)
    {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(String::from);
        if !token.is_some_and(|t| token_allows(&t, &needed)) {
            let mut r = error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
            let challenge = format!(
                "Bearer realm=\"{}/token\",service=\"test\",scope=\"{needed}\"",
                state.base
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).unwrap());
            return r;
        }
    }

    // Scripted failures.
    {
        let mut live = state.rules.lock().unwrap();
        if let Some(f) = live
            .fail
            .iter_mut()
            .find(|f| f.times > 0 && f.method == method.as_str() && path.contains(f.path_contains.as_str()))
        {
            if f.skip > 0 {
                f.skip -= 1;
            } else {
                f.times -= 1;
                let mut r = error(StatusCode::from_u16(f.status).unwrap(), "TOOMANYREQUESTS");
                if let Some(secs) = f.retry_after {
                    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                return r;
            }
        }
    }

    if let Some(other) = &rules.redirect_blobs
        && is_blob_get(method, path)
    {
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, format!("{other}{uri}"))
            .body(Body::empty())
            .unwrap();
    }

    if let Some(limit) = rules.max_put_body
        && method == http::Method::PUT
        && path.contains("/blobs/uploads/")
    {
        let length: u64 = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if length > limit {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID");
        }
    }

    // Forward.
    let mut forward = state.http.request(method.clone(), format!("{}{uri}", state.upstream));
    for (name, value) in request.headers() {
        if name == header::HOST || name == header::AUTHORIZATION || (rules.ignore_range && name == header::RANGE) {
            continue;
        }
        forward = forward.header(name, value);
    }
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let body = request.into_body().into_data_stream();
    let counted = {
        let counter = counter.clone();
        body.inspect_ok(move |b| {
            counter.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let body = match rules.throttle_uploads {
        Some(rate) => reqwest::Body::wrap_stream(counted.then(move |item| async move {
            if let Ok(b) = &item {
                tokio::time::sleep(Duration::from_secs_f64(b.len() as f64 / rate as f64)).await;
            }
            item
        })),
        None => reqwest::Body::wrap_stream(counted),
    };
    let Ok(upstream) = forward.body(body).send().await else {
        return error(StatusCode::BAD_GATEWAY, "UNKNOWN");
    };
    seen.body_bytes = counter.load(std::sync::atomic::Ordering::Relaxed);

    let status = upstream.status();
    let mut builder = Response::builder().status(status);
    for (name, value) in upstream.headers() {
        if name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        builder = builder.header(name, value);
    }
    let blob_body = is_blob_get(method, path) && status.is_success();
    let mut cut = None;
    let longer_than = |limit: u64| upstream.content_length().is_some_and(|n| n > limit);
    if blob_body
        && let Some((n, after)) = rules.cut_blob_gets
        && longer_than(after)
    {
        let mut live = state.rules.lock().unwrap();
        if n > 0 {
            live.cut_blob_gets = Some((n - 1, after));
            cut = Some(after);
        }
    }
    let corrupt = blob_body && rules.corrupt_blobs;
    let mut sent = 0u64;
    let mut flipped = false;
    let stream = upstream.bytes_stream().map(move |item| {
        let mut chunk = item.map_err(std::io::Error::other)?;
        if corrupt && !flipped && !chunk.is_empty() {
            let mut v = chunk.to_vec();
            v[0] ^= 0xff;
            chunk = Bytes::from(v);
            flipped = true;
        }
        if let Some(limit) = cut {
            if sent >= limit {
                return Err(std::io::Error::other("cut by the test proxy"));
            }
            let room = (limit - sent) as usize;
            if chunk.len() > room {
                chunk.truncate(room);
            }
        }
        sent += chunk.len() as u64;
        Ok::<_, std::io::Error>(chunk)
    });
    let rate = rules.throttle_downloads.filter(|_| blob_body);
    let stream = stream.then(move |item| async move {
        match (rate, &item) {
            (Some(rate), Ok(chunk)) => {
                tokio::time::sleep(Duration::from_secs_f64(chunk.len() as f64 / rate as f64)).await;
            }
            // The connection is reset at the cut, and a reset throws away what the client has
            // not read yet: give it time to read every byte sent before the cut.
            (_, Err(_)) => tokio::time::sleep(Duration::from_millis(300)).await,
            _ => {}
        }
        item
    });
    builder.body(Body::from_stream(stream)).unwrap()
}
