//! Who is looking at the UI: a user signed in through it (the session cookie), a caller sending
//! API credentials (scripts using the JSON API), or nobody; and what they may do — the same
//! access rules as the registry API, checked on every page and every API call.

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use strata_storage::RepositoryName;

use crate::auth::session::cookie;
use crate::auth::{Peer, Principal};
use crate::config::Action;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::{AppState, SharedState};

/// The visitor of one request.
#[derive(Debug)]
pub(crate) struct Visitor {
    pub(crate) principal: Principal,
    /// The session cookie, when signed in through the UI.
    session: Option<String>,
    /// The CSRF token this visitor's forms carry.
    pub(crate) csrf: String,
    /// Whether the connection is TLS (cookies are then `Secure`).
    pub(crate) secure: bool,
    /// Whether the registry has access control (without it, everyone may do everything and
    /// nobody signs in).
    pub(crate) access_control: bool,
}

impl Visitor {
    /// Whether the visitor may do `action` on `repository`.
    pub(crate) fn may(&self, app: &AppState, repository: &RepositoryName, action: Action) -> bool {
        app.auth
            .as_ref()
            .is_none_or(|auth| auth.allows(&self.principal, repository, action))
    }

    /// The signed-in user's name.
    pub(crate) fn user(&self) -> Option<&str> {
        self.principal.user()
    }

    /// Refuses a form whose CSRF token is not this visitor's.
    pub(crate) fn check_csrf(&self, app: &AppState, token: &str) -> ApiResult<()> {
        if app.sessions.csrf_matches(self.session.as_deref(), token) {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Denied,
                "the form is stale or came from another site; reload the page and try again",
            ))
        }
    }
}

impl<S> FromRequestParts<S> for Visitor
where
    SharedState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = &SharedState::from_ref(state);
        let peer = parts.extensions.get::<Peer>();
        let secure = peer.is_some_and(|p| p.tls);
        let mut principal = Principal::Anonymous;
        let mut session = None;
        if let Some(auth) = &app.auth {
            let signed_in = cookie(&parts.headers).and_then(|value| {
                let user = app.sessions.verify(value)?;
                // A user removed from the htpasswd file is signed out at once.
                auth.users().exists(&user).then(|| (value.to_owned(), user))
            });
            if let Some((value, user)) = signed_in {
                principal = Principal::User {
                    groups: auth.users().groups_of(&user),
                    name: user,
                };
                session = Some(value);
            } else if parts.headers.contains_key(http::header::AUTHORIZATION) {
                principal = auth.authenticate(&parts.headers, peer).await?;
            }
        }
        Ok(Visitor {
            csrf: app.sessions.csrf(session.as_deref()),
            principal,
            session,
            secure,
            access_control: app.auth.is_some(),
        })
    }
}
