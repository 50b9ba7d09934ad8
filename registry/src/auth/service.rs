//! The built-in token service at `/token`, as docker, containerd and skopeo use it: `GET` with
//! `service` and `scope` parameters (and `Basic` credentials, or none for an anonymous token),
//! and the OAuth2 `POST` forms `grant_type=password` and `grant_type=refresh_token`
//! (`access_type=offline` adds a refresh token). It grants the intersection of what was asked
//! and what the caller may do — never an error for scopes only partly allowed.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use serde_json::json;
use strata_storage::RepositoryName;

use super::token::Grant;
use super::{Peer, Principal};
use crate::config::Action;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::SharedState;

/// Largest form body accepted.
const MAX_FORM: usize = 64 * 1024;

/// The parameters of a token request, from the query or the form.
#[derive(Debug, Default)]
struct TokenRequest {
    service: Option<String>,
    scopes: Vec<String>,
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    offline: bool,
}

impl TokenRequest {
    fn from_pairs(pairs: impl Iterator<Item = (String, String)>) -> Self {
        let mut r = TokenRequest::default();
        for (k, v) in pairs {
            match k.as_str() {
                "service" => r.service = Some(v),
                // The query repeats `scope`; the form separates scopes with spaces.
                "scope" => r
                    .scopes
                    .extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned)),
                "grant_type" => r.grant_type = Some(v),
                "username" => r.username = Some(v),
                "password" => r.password = Some(v),
                "refresh_token" => r.refresh_token = Some(v),
                "access_type" => r.offline |= v == "offline",
                "offline_token" => r.offline |= v == "true",
                _ => {}
            }
        }
        r
    }
}

/// A requested scope: `repository:NAME:ACTIONS` or `registry:catalog:*`.
fn parse_scope(scope: &str) -> Option<(String, String, Vec<String>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    // `repository(plugin)` is a resource class docker may add.
    let kind = kind.split('(').next().unwrap_or(kind).to_owned();
    let actions = actions
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    Some((kind, name.to_owned(), actions))
}

fn token_error(code: Code, message: &str, status: StatusCode) -> ApiError {
    ApiError::new(code, message).with_status(status)
}

/// `GET|POST /token`.
pub(crate) async fn token(State(state): State<SharedState>, request: Request) -> Response {
    match issue(state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn issue(state: SharedState, request: Request) -> ApiResult<Response> {
    let auth = state
        .auth
        .clone()
        .ok_or_else(|| ApiError::unsupported("the token service"))?;
    let tokens = auth
        .tokens()
        .filter(|t| t.issues())
        .ok_or_else(|| ApiError::unsupported("the token service"))?;
    let (parts, body) = request.into_parts();
    let peer = parts.extensions.get::<Peer>().cloned();
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut pairs = query;
    if parts.method == Method::POST {
        let form = axum::body::to_bytes(body, MAX_FORM)
            .await
            .map_err(|_| token_error(Code::SizeInvalid, "token request too large", StatusCode::BAD_REQUEST))?;
        pairs.extend(url::form_urlencoded::parse(&form).into_owned());
    } else if parts.method != Method::GET {
        return Err(ApiError::unsupported(&format!("{} on /token", parts.method)));
    }
    let request = TokenRequest::from_pairs(pairs.into_iter());
    if let Some(service) = &request.service
        && service != tokens.service()
    {
        return Err(token_error(
            Code::Denied,
            &format!("this token service issues tokens for {:?}", tokens.service()),
            StatusCode::BAD_REQUEST,
        ));
    }
    let unauthorized = |e: ApiError| {
        if e.code == Code::TooManyRequests {
            e
        } else {
            e.with_header(header::WWW_AUTHENTICATE, "Basic realm=\"strata token service\"")
        }
    };

    // Who asks: password (form or Basic), refresh token, client certificate, or nobody.
    let principal = match request.grant_type.as_deref() {
        Some("password") => {
            let (Some(user), Some(password)) = (&request.username, &request.password) else {
                return Err(token_error(
                    Code::Unauthorized,
                    "username and password required",
                    StatusCode::BAD_REQUEST,
                ));
            };
            auth.sign_in(peer.as_ref(), user, password)
                .await
                .map_err(unauthorized)?
        }
        Some("refresh_token") => {
            let refresh = request
                .refresh_token
                .as_deref()
                .ok_or_else(|| token_error(Code::Unauthorized, "refresh_token required", StatusCode::BAD_REQUEST))?;
            let user = tokens
                .verify_refresh(refresh)
                .map_err(|_| unauthorized(ApiError::new(Code::Unauthorized, "invalid refresh token")))?;
            if !auth.users().exists(&user) {
                return Err(unauthorized(ApiError::new(
                    Code::Unauthorized,
                    "the user no longer exists",
                )));
            }
            Principal::User {
                groups: auth.users().groups_of(&user),
                name: user,
            }
        }
        Some(other) => {
            return Err(token_error(
                Code::Unsupported,
                &format!("grant_type {other:?} is not supported"),
                StatusCode::BAD_REQUEST,
            ));
        }
        None => match auth.authenticate(&parts.headers, peer.as_ref()).await {
            Ok(Principal::Bearer { .. }) => {
                return Err(unauthorized(ApiError::new(
                    Code::Unauthorized,
                    "present credentials, not a token, to get a token",
                )));
            }
            Ok(principal) => principal,
            Err(e) => return Err(unauthorized(e)),
        },
    };
    let user = principal.user().map(str::to_owned);

    let mut access = Vec::new();
    for scope in &request.scopes {
        let Some((kind, name, wanted)) = parse_scope(scope) else {
            continue;
        };
        match kind.as_str() {
            "repository" => {
                let Ok(repository) = RepositoryName::parse(&name) else {
                    continue;
                };
                let allowed = auth.policy_actions(user.as_deref(), &repository);
                let granted: Vec<String> = wanted
                    .iter()
                    .flat_map(|w| Action::parse_all(w))
                    .filter(|a| allowed.contains(a))
                    .map(|a| a.as_str().to_owned())
                    .fold(Vec::new(), |mut v, a| {
                        if !v.contains(&a) {
                            v.push(a);
                        }
                        v
                    });
                access.push(Grant {
                    kind,
                    name,
                    actions: granted,
                });
            }
            "registry" if name == "catalog" && auth.may_list(&principal) => access.push(Grant {
                kind,
                name,
                actions: vec!["*".into()],
            }),
            _ => {}
        }
    }
    let issued = tokens.issue(user.as_deref().unwrap_or(""), access);
    let mut body = json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    });
    if request.offline
        && let Some(user) = &user
    {
        body["refresh_token"] = json!(tokens.issue_refresh(user));
    }
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("response"))
}

#[cfg(test)]
mod tests {
    use super::parse_scope;

    #[test]
    fn scopes_split_into_kind_name_and_actions() {
        assert_eq!(
            parse_scope("repository:team/app:pull,push"),
            Some((
                "repository".into(),
                "team/app".into(),
                vec!["pull".into(), "push".into()]
            ))
        );
        assert_eq!(
            parse_scope("repository(plugin):x:pull"),
            Some(("repository".into(), "x".into(), vec!["pull".into()]))
        );
        assert_eq!(
            parse_scope("registry:catalog:*"),
            Some(("registry".into(), "catalog".into(), vec!["*".into()]))
        );
        assert_eq!(parse_scope("nonsense"), None);
    }
}
