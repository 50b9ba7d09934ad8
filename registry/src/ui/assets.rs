//! The stylesheet and script, embedded in the binary and served under a versioned path
//! (`?v=<hash>`): a page always asks for the version it was rendered with, so the files can be
//! cached for a year.

use std::sync::LazyLock;

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use sha2::{Digest as _, Sha256};

/// One embedded file.
pub(super) struct Asset {
    name: &'static str,
    body: &'static str,
    content_type: &'static str,
    version: LazyLock<String>,
}

fn version(body: &str) -> String {
    Sha256::digest(body.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const CSS_BODY: &str = include_str!("assets/ui.css");
const JS_BODY: &str = include_str!("assets/ui.js");

/// The stylesheet.
pub(super) static CSS: Asset = Asset {
    name: "ui.css",
    body: CSS_BODY,
    content_type: "text/css; charset=utf-8",
    version: LazyLock::new(|| version(CSS_BODY)),
};

/// The script.
pub(super) static JS: Asset = Asset {
    name: "ui.js",
    body: JS_BODY,
    content_type: "text/javascript; charset=utf-8",
    version: LazyLock::new(|| version(JS_BODY)),
};

impl Asset {
    /// The versioned path pages link to.
    pub(super) fn path(&self) -> String {
        format!("/ui/assets/{}?v={}", self.name, *self.version)
    }
}

#[derive(serde::Deserialize)]
pub(super) struct Version {
    v: Option<String>,
}

/// `GET /ui/assets/{name}`.
pub(super) async fn serve(Path(name): Path<String>, Query(version): Query<Version>) -> Response {
    let Some(asset) = [&CSS, &JS].into_iter().find(|a| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cache = if version.v.as_deref() == Some(asset.version.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
