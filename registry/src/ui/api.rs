//! The JSON API under `/ui/api/` that the pages' script uses and scripts may too: the same
//! views as the pages, the same access rules (a session cookie, or API credentials in
//! `Authorization`). Errors are the registry's JSON errors.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::files::{FileView, FilesView};
use super::hives::RegistryView;
use super::model::{ImageView, RepositoryPage, TagPage, Ui};
use super::visitor::Visitor;
use crate::error::ApiResult;

/// `?q=&after=`
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

/// `GET /ui/api/repositories?q=SUBSTRING&after=NAME`
pub(super) async fn repositories(
    State(ui): State<Ui>,
    visitor: Visitor,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<RepositoryPage>> {
    Ok(Json(ui.repositories(&visitor, &query.q, query.after.as_deref()).await?))
}

/// `?repository=&after=`
#[derive(Debug, Deserialize)]
pub(super) struct TagsQuery {
    repository: String,
    after: Option<String>,
}

/// `GET /ui/api/tags?repository=NAME&after=TAG`
pub(super) async fn tags(
    State(ui): State<Ui>,
    visitor: Visitor,
    Query(query): Query<TagsQuery>,
) -> ApiResult<Json<TagPage>> {
    Ok(Json(
        ui.tags(&visitor, &query.repository, query.after.as_deref()).await?,
    ))
}

/// `?repository=&reference=`
#[derive(Debug, Deserialize)]
pub(super) struct ImageQuery {
    repository: String,
    reference: String,
}

/// `GET /ui/api/image?repository=NAME&reference=TAG_OR_DIGEST`
pub(super) async fn image(
    State(ui): State<Ui>,
    visitor: Visitor,
    Query(query): Query<ImageQuery>,
) -> ApiResult<Json<ImageView>> {
    Ok(Json(ui.image(&visitor, &query.repository, &query.reference).await?))
}

/// `?repository=&reference=&layer=&path=`
#[derive(Debug, Deserialize)]
pub(super) struct FilesQuery {
    repository: String,
    reference: String,
    /// From 1 (the bottom); none: the image's union.
    layer: Option<usize>,
    #[serde(default)]
    path: String,
}

/// `GET /ui/api/files?repository=NAME&reference=DIGEST_OR_TAG[&layer=N]&path=DIR`
pub(super) async fn files(
    State(ui): State<Ui>,
    visitor: Visitor,
    Query(q): Query<FilesQuery>,
) -> ApiResult<Json<FilesView>> {
    let layer = q.layer.map(|n| n.saturating_sub(1));
    Ok(Json(
        ui.files(&visitor, &q.repository, &q.reference, layer, &q.path).await?,
    ))
}

/// `GET /ui/api/file?repository=NAME&reference=DIGEST_OR_TAG&layer=N&path=FILE`
pub(super) async fn file(
    State(ui): State<Ui>,
    visitor: Visitor,
    Query(q): Query<FilesQuery>,
) -> ApiResult<Json<FileView>> {
    let layer = q.layer.unwrap_or(1).saturating_sub(1);
    Ok(Json(
        ui.file(&visitor, &q.repository, &q.reference, layer, &q.path).await?,
    ))
}

/// `?repository=&reference=&key=&layer=`
#[derive(Debug, Deserialize)]
pub(super) struct RegistryQuery {
    repository: String,
    reference: String,
    key: String,
    /// From 1 (the bottom layer); none: every layer.
    layer: Option<usize>,
}

/// `GET /ui/api/registry?repository=NAME&reference=DIGEST_OR_TAG&key=HKLM\SOFTWARE\…[&layer=N]`
pub(super) async fn registry(
    State(ui): State<Ui>,
    visitor: Visitor,
    Query(q): Query<RegistryQuery>,
) -> ApiResult<Json<RegistryView>> {
    let layer = q.layer.map(|n| n.saturating_sub(1));
    Ok(Json(
        ui.registry(&visitor, &q.repository, &q.reference, layer, &q.key)
            .await?,
    ))
}
