//! The web UI, served by the registry at `/ui/` (`/` redirects there): repositories, tags and
//! images, with sign-in and deletes. Server-rendered HTML ([`pages`]) that works without
//! JavaScript, over the views of [`model`] that the JSON API ([`api`]) serves too. Every page
//! and call checks the visitor's access ([`visitor`]) with the registry's own rules: a
//! repository the visitor may not pull looks like one that does not exist.
//!
//! Forms that change something (sign-in, sign-out, delete) are POSTs that must carry the
//! visitor's CSRF token and, when the browser sends `Origin`, come from this host. Every
//! response carries a strict Content-Security-Policy (no inline script or style), and pages are
//! never cached.

mod api;
mod assets;
mod browse;
mod files;
mod hive_cache;
mod hives;
mod layers;
pub(crate) mod model;
mod pages;
mod tree;
mod visitor;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

use crate::auth::session::Sessions;
use crate::config::Action;
use crate::error::{ApiError, ApiResult, Code};
use crate::handlers::{check_delete_enabled, manifests};
use crate::route::Reference;
use crate::state::SharedState;
use model::Ui;
use visitor::Visitor;

/// The UI's routes, to merge into the registry's router.
pub(crate) fn router<S>(app: SharedState) -> Router<S> {
    let ui = Ui::new(app);
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(repositories))
        .route("/ui/r/{*path}", get(reference))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/delete", post(delete))
        .route("/ui/assets/{name}", get(assets::serve))
        .route("/ui/api/repositories", get(api::repositories))
        .route("/ui/api/tags", get(api::tags))
        .route("/ui/api/image", get(api::image))
        .route("/ui/api/files", get(api::files))
        .route("/ui/api/file", get(api::file))
        .route("/ui/api/registry", get(api::registry))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(ui)
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy headers of every UI response; pages and API answers are never cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A page, or the error page with the error's status.
fn page(visitor: &Visitor, result: ApiResult<maud::Markup>) -> Response {
    match result {
        Ok(markup) => Html(markup.into_string()).into_response(),
        Err(e) => {
            let status = e.status;
            (
                status,
                Html(pages::error(visitor, status.as_u16(), &e.message).into_string()),
            )
                .into_response()
        }
    }
}

/// The host clients pull from: the one the browser used.
fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost:5000")
        .to_owned()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

/// `GET /ui/`: the repositories.
async fn repositories(State(ui): State<Ui>, visitor: Visitor, Query(query): Query<ListQuery>) -> Response {
    let result = ui.repositories(&visitor, &query.q, query.after.as_deref()).await;
    page(&visitor, result.map(|p| pages::repositories(&visitor, &query.q, &p)))
}

#[derive(Debug, Deserialize)]
struct ReferenceQuery {
    after: Option<String>,
    delete: Option<String>,
    /// A directory to list (`""`: the root).
    files: Option<String>,
    /// A layer, from 1 (the bottom).
    layer: Option<usize>,
    /// A file to show.
    file: Option<String>,
    /// A file to download.
    download: Option<String>,
    /// A registry key of a Windows image to show.
    registry: Option<String>,
}

/// What `/ui/r/<path>` names: `name`, `name:tag` or `name@digest`.
fn split_reference(path: &str) -> (&str, Option<&str>) {
    if let Some((name, digest)) = path.split_once('@') {
        return (name, Some(digest));
    }
    match path.rsplit_once('/') {
        Some((_, last)) if last.contains(':') => {
            let (name, tag) = path.rsplit_once(':').expect("a colon");
            (name, Some(tag))
        }
        None if path.contains(':') => {
            let (name, tag) = path.split_once(':').expect("a colon");
            (name, Some(tag))
        }
        _ => (path, None),
    }
}

/// `GET /ui/r/<name>[:tag|@digest]`: a repository's tags, or an image; `?delete` asks before
/// deleting.
async fn reference(
    State(ui): State<Ui>,
    visitor: Visitor,
    Path(path): Path<String>,
    Query(query): Query<ReferenceQuery>,
    headers: HeaderMap,
) -> Response {
    let (name, reference) = split_reference(&path);
    let layer = query.layer.map(|n| n.saturating_sub(1));
    if let (Some(reference), Some(file)) = (reference, &query.download) {
        return match ui.download(&visitor, name, reference, layer.unwrap_or(0), file).await {
            Ok((file_name, size, stream)) => download_response(&file_name, size, stream),
            Err(e) => page(&visitor, Err(e)),
        };
    }
    let result = match reference {
        Some(reference) if query.file.is_some() => ui
            .file(
                &visitor,
                name,
                reference,
                layer.unwrap_or(0),
                query.file.as_deref().unwrap_or(""),
            )
            .await
            .map(|view| browse::file(&visitor, &view)),
        Some(reference) if query.registry.is_some() => ui
            .registry(
                &visitor,
                name,
                reference,
                layer,
                query.registry.as_deref().unwrap_or(""),
            )
            .await
            .map(|view| browse::registry(&visitor, &view)),
        Some(reference) if query.files.is_some() => ui
            .files(&visitor, name, reference, layer, query.files.as_deref().unwrap_or(""))
            .await
            .map(|view| browse::files(&visitor, &view)),
        None => ui
            .tags(&visitor, name, query.after.as_deref())
            .await
            .map(|p| pages::repository(&visitor, &host(&headers), &p)),
        Some(reference) if query.delete.is_some() => ui.image(&visitor, name, reference).await.and_then(|view| {
            if view.may_delete {
                Ok(pages::confirm_delete(&visitor, &view.repository, reference))
            } else {
                Err(ApiError::new(Code::Denied, "you may not delete here"))
            }
        }),
        Some(reference) => ui
            .image(&visitor, name, reference)
            .await
            .map(|view| pages::image(&visitor, &host(&headers), &view)),
    };
    page(&visitor, result)
}

/// A file's bytes as an attachment: never shown by the browser as a page of the registry.
fn download_response(file_name: &str, size: u64, stream: strata_storage::ByteStream) -> Response {
    let safe: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response = axum::body::Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Refuses a form posted from another site: a wrong CSRF token, or an `Origin` that is not
/// this host.
fn check_form(ui: &Ui, visitor: &Visitor, parts: &Parts, csrf: &str) -> ApiResult<()> {
    if let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin_host != host(&parts.headers) {
            return Err(ApiError::new(Code::Denied, "the form came from another site"));
        }
    }
    visitor.check_csrf(&ui.app, csrf)
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: a UI page of this registry, nothing else.
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.contains("//") && !n.contains('\\') => n.to_owned(),
        _ => "/ui/".to_owned(),
    }
}

/// `GET /ui/login`.
async fn login_form(visitor: Visitor, Query(query): Query<NextQuery>) -> Response {
    if !visitor.access_control || visitor.user().is_some() {
        return Redirect::to(&next_page(query.next.as_deref())).into_response();
    }
    Html(pages::login(&visitor, None, &next_page(query.next.as_deref())).into_string()).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// `POST /ui/login`: checks the password like the API's sign-in (failures counted and limited)
/// and sets the session cookie.
async fn login(State(ui): State<Ui>, visitor: Visitor, parts: Parts, Form(form): Form<LoginForm>) -> Response {
    let next = next_page(form.next.as_deref());
    if let Err(e) = check_form(&ui, &visitor, &parts, &form.csrf) {
        return page(&visitor, Err(e));
    }
    let Some(auth) = &ui.app.auth else {
        return Redirect::to(&next).into_response();
    };
    let peer = parts.extensions.get::<crate::auth::Peer>();
    match auth.sign_in(peer, &form.username, &form.password).await {
        Ok(_) => {
            let cookie = ui.app.sessions.issue(&form.username);
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&ui.app.sessions.set_cookie(&cookie, visitor.secure)) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            tracing::info!(user = form.username, "signed in to the web UI");
            response
        }
        Err(e) => {
            let status = if e.code == Code::TooManyRequests {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            (
                status,
                Html(pages::login(&visitor, Some(&e.message), &next).into_string()),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`.
async fn logout(State(ui): State<Ui>, visitor: Visitor, parts: Parts, Form(form): Form<CsrfForm>) -> Response {
    if let Err(e) = check_form(&ui, &visitor, &parts, &form.csrf) {
        return page(&visitor, Err(e));
    }
    let mut response = Redirect::to("/ui/").into_response();
    if let Ok(value) = HeaderValue::from_str(&Sessions::clear_cookie(visitor.secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct DeleteForm {
    repository: String,
    reference: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/delete`: deletes a tag, or a manifest with its tags, as the API's `DELETE` does.
async fn delete(State(ui): State<Ui>, visitor: Visitor, parts: Parts, Form(form): Form<DeleteForm>) -> Response {
    let result = async {
        check_form(&ui, &visitor, &parts, &form.csrf)?;
        let repository = ui.readable(&visitor, &form.repository)?;
        check_delete_enabled(&ui.app)?;
        if !visitor.may(&ui.app, &repository, Action::Delete) {
            return Err(ApiError::new(Code::Denied, "you may not delete here"));
        }
        let reference = Reference::parse(&form.reference)?;
        manifests::remove(&ui.app, &repository, &reference).await?;
        tracing::info!(user = visitor.user().unwrap_or(""), repository = %repository, reference = %reference, "deleted through the web UI");
        Ok(repository)
    }
    .await;
    match result {
        Ok(repository) => Redirect::to(&pages::link(repository.as_str(), None)).into_response(),
        Err(e) => page(&visitor, Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_name_and_tag_or_digest() {
        assert_eq!(split_reference("library/busybox"), ("library/busybox", None));
        assert_eq!(split_reference("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(split_reference("a/b:latest"), ("a/b", Some("latest")));
        assert_eq!(split_reference("a/b@sha256:00"), ("a/b", Some("sha256:00")));
    }

    #[test]
    fn sign_in_goes_back_only_to_ui_pages() {
        assert_eq!(next_page(Some("/ui/r/a")), "/ui/r/a");
        for hostile in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui/..//evil",
            "/v2/",
            "/ui\\evil",
        ] {
            assert_eq!(next_page(Some(hostile)), "/ui/", "{hostile}");
        }
    }
}
