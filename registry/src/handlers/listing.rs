//! Content discovery: `/v2/_catalog`, `/v2/<name>/tags/list` and `/v2/<name>/referrers/<digest>`.

use axum::response::Response;
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::json;
use strata_storage::{Digest, RepositoryName, Tag};

use super::{Ctx, json_response};
use crate::config::Action;
use crate::error::{ApiError, ApiResult, Code};
use strata_storage::oci::media::OCI_INDEX;

/// Parses `n`: absent → `default`; not a number → 400 `PAGINATION_NUMBER_INVALID`.
fn page_size(ctx: &Ctx, default: u64) -> ApiResult<u64> {
    match ctx.query("n") {
        None => Ok(default),
        Some(n) => n
            .parse()
            .map_err(|_| ApiError::new(Code::PaginationNumberInvalid, format!("invalid page size n={n:?}"))),
    }
}

/// `Link: <...>; rel="next"` for the next page.
fn next_link(path: &str, n: u64, last: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("n", &n.to_string())
        .append_pair("last", last)
        .finish();
    format!("<{path}?{query}>; rel=\"next\"")
}

fn with_link(mut response: Response, link: Option<String>) -> Response {
    if let Some(link) = link
        && let Ok(value) = link.parse()
    {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

/// `GET /v2/_catalog?n=&last=`: repositories in storage order; `n` defaults to 100 and above
/// `catalog_max_entries` is refused.
pub(crate) async fn catalog(ctx: Ctx) -> ApiResult<Response> {
    let max = ctx.state.config.limits.catalog_max_entries;
    let n = page_size(&ctx, 100.min(max))?;
    if n > max {
        return Err(ApiError::new(
            Code::PaginationNumberInvalid,
            format!("n must be at most {max}"),
        ));
    }
    let last = ctx.query("last").map(RepositoryName::parse).transpose()?;
    // Only what the caller can pull; the page continues after the last repository looked at.
    let scan = (n as usize).saturating_mul(10).max(1000);
    let page = ctx
        .state
        .meta
        .catalog(last.as_ref(), n as usize, scan, |name| ctx.may(name, Action::Pull))
        .await?;
    let link =
        (page.more && n > 0).then(|| next_link("/v2/_catalog", n, page.last_seen.as_ref().map_or("", |l| l.as_str())));
    let names: Vec<&str> = page.names.iter().map(RepositoryName::as_str).collect();
    let body = serde_json::to_vec(&json!({ "repositories": names })).expect("json");
    Ok(with_link(json_response(StatusCode::OK, Bytes::from(body)), link))
}

/// `GET /v2/<name>/tags/list?n=&last=`: tags in byte order; `n` above `tags_max_entries` is
/// clamped, and a `Link` header points at the rest.
pub(crate) async fn tags(ctx: Ctx, name: RepositoryName) -> ApiResult<Response> {
    let max = ctx.state.config.limits.tags_max_entries;
    let n = page_size(&ctx, max)?.min(max);
    let last = ctx.query("last").map(Tag::parse).transpose()?;
    if !ctx.state.meta.repository_exists(&name).await? {
        return Err(
            ApiError::new(Code::NameUnknown, "repository name not known to registry")
                .with_detail(json!({ "name": name.as_str() })),
        );
    }
    let (tags, more) = ctx.state.meta.tags(&name, last.as_ref(), n as usize).await?;
    let path = format!("/v2/{name}/tags/list");
    let link = (more && n > 0).then(|| next_link(&path, n, tags.last().map_or("", |t| t.as_str())));
    let tags: Vec<&str> = tags.iter().map(Tag::as_str).collect();
    let body = serde_json::to_vec(&json!({ "name": name.as_str(), "tags": tags })).expect("json");
    Ok(with_link(json_response(StatusCode::OK, Bytes::from(body)), link))
}

/// `GET /v2/<name>/referrers/<digest>?artifactType=`: an OCI index of the manifests whose subject
/// is `digest` (empty, not 404, when there are none).
pub(crate) async fn referrers(ctx: Ctx, name: RepositoryName, subject: Digest) -> ApiResult<Response> {
    let filter = ctx.query("artifactType").map(str::to_owned);
    let mut manifests = ctx.state.meta.referrers(&name, &subject).await?;
    if let Some(t) = &filter {
        manifests.retain(|d| d.get("artifactType").and_then(|v| v.as_str()) == Some(t.as_str()));
    }
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let body = Bytes::from(serde_json::to_vec(&body).expect("json"));
    let mut response = json_response(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, OCI_INDEX.parse().expect("valid header"));
    if filter.is_some() {
        headers.insert("oci-filters-applied", "artifactType".parse().expect("valid header"));
    }
    Ok(response)
}
