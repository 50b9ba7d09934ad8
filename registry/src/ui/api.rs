//! The JSON API under `/ui/api/` that the pages' script uses and scripts may too: the same
//! views as the pages, the same access rules (a session cookie, or API credentials in
//! `Authorization`). Errors are the registry's JSON errors.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

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
