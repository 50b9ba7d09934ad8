//! Foreign (non-distributable) layers: blobs a manifest names by URL instead of storing them in
//! a registry (Windows base layers, for instance). One owner for fetching them, shared by the
//! client's pulls and the registry's pull-through cache.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use strata_storage::ByteStream;

use crate::{DistributionError, Result};

/// Which URLs may be fetched: asked of the descriptor's URLs and of every redirect.
pub type UrlPolicy = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 10;

/// An open download of a foreign layer.
pub struct ForeignBody {
    /// The URL that answered (before redirects).
    pub url: String,
    /// The body, not yet verified: the caller checks it against the descriptor's digest and
    /// size while it streams.
    pub body: ByteStream,
}

impl std::fmt::Debug for ForeignBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignBody")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Opens the first of `urls` that `allowed` accepts and that answers `200`. Redirects are
/// followed only to URLs `allowed` accepts, at most ten.
pub async fn open(urls: &[String], allowed: &UrlPolicy) -> Result<ForeignBody> {
    let follow = allowed.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if !follow(attempt.url().as_str()) {
            attempt.error("a foreign layer redirected to a URL the policy does not allow")
        } else if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    });
    let http = reqwest::Client::builder()
        .redirect(policy)
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| DistributionError::network("build HTTP client", e))?;
    let mut last = DistributionError::NotFound("foreign layer: no URL the policy allows".into());
    for url in urls.iter().filter(|u| allowed(u)) {
        match http.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                let body: ByteStream = Box::pin(r.bytes_stream().map_err(strata_storage::Error::input));
                return Ok(ForeignBody { url: url.clone(), body });
            }
            Ok(r) => {
                last = DistributionError::Registry {
                    method: "GET".into(),
                    url: url.clone(),
                    status: r.status().as_u16(),
                    message: "foreign layer".into(),
                };
            }
            Err(e) => last = DistributionError::network(format!("GET {url}"), e),
        }
    }
    Err(last)
}
