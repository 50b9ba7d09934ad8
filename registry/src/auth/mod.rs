//! Access control: who the caller is ([`Auth::authenticate`]: `Basic` credentials checked
//! against the htpasswd file, a `Bearer` token, a verified client certificate, or nobody), and
//! whether they may do what a request needs ([`Auth::check`]), before any handler touches
//! storage — so a repository the caller cannot pull looks the same whether it exists or not.
//!
//! - [`users`]: htpasswd and groups files; [`policy`]: `[[access]]` rules and `anonymous`;
//! - [`token`]: the built-in token service's keys, or an existing issuer's; [`service`]: `/token`;
//! - [`limiter`]: failed sign-ins per address and user.

pub mod limiter;
pub mod policy;
pub mod service;
pub mod session;
pub mod token;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use http::{HeaderMap, header};
use strata_storage::RepositoryName;

use crate::config::{Action, Config};
use crate::error::{ApiError, Code};
use limiter::Limiter;
use policy::{Member, Policy};
use token::{Grant, Tokens};
use users::Users;

/// What the connection tells about a request (set by the server for every request).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub address: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The common name of a verified client certificate (mutual TLS).
    pub certificate_user: Option<String>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// A user proven by password or client certificate.
    User {
        /// Name.
        name: String,
        /// Groups.
        groups: Vec<String>,
    },
    /// The bearer of a valid token.
    Bearer {
        /// The token's subject (empty for an anonymous token).
        subject: String,
        /// What the token grants.
        access: Vec<Grant>,
    },
}

impl Principal {
    /// The user name, if any (anonymous tokens have none).
    pub fn user(&self) -> Option<&str> {
        match self {
            Principal::Anonymous => None,
            Principal::User { name, .. } => Some(name),
            Principal::Bearer { subject, .. } => (!subject.is_empty()).then_some(subject.as_str()),
        }
    }
}

/// What a request needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Actions on repositories.
    pub repositories: Vec<(RepositoryName, Action)>,
    /// The catalog (answered with what the caller can pull).
    pub catalog: bool,
}

/// Access control of one registry process.
#[derive(Debug)]
pub struct Auth {
    users: Users,
    policy: Policy,
    tokens: Option<Tokens>,
    limiter: Limiter,
    realm: String,
    admin_users: Vec<String>,
    admin_groups: Vec<String>,
}

/// A `WWW-Authenticate` scope for `needs`.
fn scope(needs: &Needs) -> String {
    let mut scopes: Vec<String> = Vec::new();
    for (repo, action) in &needs.repositories {
        let actions = match action {
            // Pushing clients ask for both, as docker does.
            Action::Push => "pull,push",
            other => other.as_str(),
        };
        let scope = format!("repository:{repo}:{actions}");
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if needs.catalog {
        scopes.push("registry:catalog:*".into());
    }
    scopes.join(" ")
}

impl Auth {
    /// Access control as `config` describes it; `None` without an `[auth]` section.
    pub fn open(config: &Config) -> Result<Option<Arc<Self>>, String> {
        let Some(auth) = &config.auth else {
            return Ok(None);
        };
        let tokens = auth.token.as_ref().map(Tokens::open).transpose()?;
        if auth.htpasswd.is_none() && tokens.is_none() && config.tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
            tracing::warn!("[auth] names no htpasswd, token issuer or client CA: only anonymous access is possible");
        }
        Ok(Some(Arc::new(Auth {
            users: Users::open(auth.htpasswd.as_deref(), auth.groups.as_deref())?,
            policy: Policy::new(&config.access, &auth.anonymous)?,
            tokens,
            limiter: Limiter::new(auth.max_failed_logins, auth.login_window),
            realm: auth.realm.clone(),
            admin_users: auth.admin_users.clone(),
            admin_groups: auth.admin_groups.clone(),
        })))
    }

    /// The users (the background reload calls [`Users::reload_if_changed`]).
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// The token keys, when tokens are configured.
    pub fn tokens(&self) -> Option<&Tokens> {
        self.tokens.as_ref()
    }

    /// The failed sign-in limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Checks `user`'s password (off the async threads; bcrypt is slow on purpose), counting
    /// failures; 429 while the address or user is over the limit.
    pub async fn sign_in(
        self: &Arc<Self>,
        peer: Option<&Peer>,
        user: &str,
        password: &str,
    ) -> Result<Principal, ApiError> {
        let address = peer.map(|p| p.address.ip());
        if let Some(wait) = self.limiter.blocked(address, Some(user)) {
            tracing::warn!(user, address = ?address, "sign-in refused: too many failures");
            return Err(
                ApiError::new(Code::TooManyRequests, "too many failed sign-ins; retry later")
                    .with_header(header::RETRY_AFTER, wait.to_string()),
            );
        }
        let (this, u, p) = (self.clone(), user.to_owned(), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || this.users.verify(&u, &p))
            .await
            .map_err(ApiError::internal)?;
        if !ok {
            self.limiter.failed(address, Some(user));
            tracing::warn!(user, address = ?address, "sign-in failed");
            return Err(ApiError::new(Code::Unauthorized, "invalid username or password"));
        }
        Ok(Principal::User {
            name: user.to_owned(),
            groups: self.users.groups_of(user),
        })
    }

    /// Who sent a request with `headers` over `peer`'s connection. Wrong credentials are an
    /// error (with a challenge); no credentials are [`Principal::Anonymous`].
    pub async fn authenticate(
        self: &Arc<Self>,
        headers: &HeaderMap,
        peer: Option<&Peer>,
    ) -> Result<Principal, ApiError> {
        let challenge =
            |e: ApiError, error: Option<&str>| self.with_challenge(e, &Needs::default(), error, headers, peer);
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value.to_str().unwrap_or_default();
            let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
            let credentials = credentials.trim();
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(credentials)
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok());
                let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                    return Err(challenge(
                        ApiError::new(Code::Unauthorized, "malformed Basic credentials"),
                        None,
                    ));
                };
                return match self.sign_in(peer, user, password).await {
                    Ok(principal) => Ok(principal),
                    Err(e) if e.code == Code::TooManyRequests => Err(e),
                    Err(e) => Err(challenge(e, None)),
                };
            }
            if scheme.eq_ignore_ascii_case("bearer")
                && let Some(tokens) = &self.tokens
            {
                return match tokens.verify(credentials) {
                    Ok(claims) => Ok(Principal::Bearer {
                        subject: claims.sub,
                        access: claims.access,
                    }),
                    Err(reason) => {
                        tracing::warn!(%reason, "bearer token refused");
                        Err(challenge(
                            ApiError::new(Code::Unauthorized, "invalid or expired token"),
                            Some("invalid_token"),
                        ))
                    }
                };
            }
            return Err(challenge(
                ApiError::new(
                    Code::Unauthorized,
                    format!("unsupported authorization scheme {scheme:?}"),
                ),
                None,
            ));
        }
        if let Some(user) = peer.and_then(|p| p.certificate_user.as_deref()) {
            return Ok(Principal::User {
                name: user.to_owned(),
                groups: self.users.groups_of(user),
            });
        }
        Ok(Principal::Anonymous)
    }

    /// Whether `principal` may do `action` on `repository`.
    pub fn allows(&self, principal: &Principal, repository: &RepositoryName, action: Action) -> bool {
        match principal {
            Principal::Anonymous => self.policy.allows(None, repository, action),
            Principal::User { name, groups } => {
                self.policy
                    .allows(Some(&Member { user: name, groups }), repository, action)
            }
            Principal::Bearer { access, .. } => {
                self.policy.allows(None, repository, action)
                    || access.iter().any(|g| {
                        g.kind == "repository"
                            && g.name == repository.as_str()
                            && g.actions.iter().any(|a| a == action.as_str() || a == "*")
                    })
            }
        }
    }

    /// Whether `principal` may use the admin endpoints: a user (by password, client
    /// certificate or token) named in `admin_users` or in a group of `admin_groups`.
    pub fn is_admin(&self, principal: &Principal) -> bool {
        let Some(user) = principal.user() else { return false };
        let groups = match principal {
            Principal::User { groups, .. } => groups.clone(),
            _ => self.users.groups_of(user),
        };
        self.admin_users.iter().any(|u| u == user) || groups.iter().any(|g| self.admin_groups.contains(g))
    }

    /// What the policy lets `user` (or nobody) do on `repository`, for the token service.
    pub fn policy_actions(&self, user: Option<&str>, repository: &RepositoryName) -> Vec<Action> {
        let groups = user.map(|u| self.users.groups_of(u)).unwrap_or_default();
        let member = user.map(|user| Member { user, groups: &groups });
        self.policy.actions(member.as_ref(), repository).into_iter().collect()
    }

    /// Whether `principal` may read the catalog (it then lists what they can pull).
    pub fn may_list(&self, principal: &Principal) -> bool {
        !matches!(principal, Principal::Anonymous) || self.policy.anonymous_any()
    }

    /// `Ok` when `principal` may do everything `needs` asks; otherwise the error to answer: 401
    /// with a challenge when signing in (or a token with more scope) could help, else 403
    /// `DENIED`. Both look the same whether the repository exists or not.
    pub fn check(
        &self,
        principal: &Principal,
        needs: &Needs,
        headers: &HeaderMap,
        peer: Option<&Peer>,
    ) -> Result<(), ApiError> {
        let missing: Vec<&(RepositoryName, Action)> = needs
            .repositories
            .iter()
            .filter(|(repo, action)| !self.allows(principal, repo, *action))
            .collect();
        let catalog_refused = needs.catalog && !self.may_list(principal);
        let base_refused = needs.repositories.is_empty() && !needs.catalog && *principal == Principal::Anonymous;
        if missing.is_empty() && !catalog_refused && !base_refused {
            return Ok(());
        }
        let user = principal.user().unwrap_or("");
        for (repo, action) in &missing {
            tracing::warn!(user, repository = %repo, action = action.as_str(), "access denied");
        }
        match principal {
            Principal::Anonymous => Err(self.with_challenge(
                ApiError::new(Code::Unauthorized, "authentication required"),
                needs,
                None,
                headers,
                peer,
            )),
            // A token narrower than what its user may do: a new token can help.
            Principal::Bearer { subject, .. }
                if self.tokens.as_ref().is_none_or(|t| !t.issues())
                    || missing.iter().all(|(repo, action)| {
                        self.policy_actions((!subject.is_empty()).then_some(subject.as_str()), repo)
                            .contains(action)
                    }) =>
            {
                Err(self.with_challenge(
                    ApiError::new(Code::Unauthorized, "the token does not grant this"),
                    needs,
                    Some("insufficient_scope"),
                    headers,
                    peer,
                ))
            }
            _ => Err(ApiError::new(
                Code::Denied,
                "requested access to the resource is denied",
            )),
        }
    }

    /// `error` with the `WWW-Authenticate` challenge for `needs`: `Bearer` with the realm,
    /// service and scope when tokens are configured, else `Basic`.
    pub fn with_challenge(
        &self,
        error: ApiError,
        needs: &Needs,
        token_error: Option<&str>,
        headers: &HeaderMap,
        peer: Option<&Peer>,
    ) -> ApiError {
        let value = match &self.tokens {
            Some(tokens) => {
                let scheme = if peer.is_some_and(|p| p.tls) { "https" } else { "http" };
                let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
                let mut value = format!(
                    "Bearer realm=\"{}\",service=\"{}\"",
                    tokens.realm(scheme, host),
                    tokens.service()
                );
                let scope = scope(needs);
                if !scope.is_empty() {
                    value.push_str(&format!(",scope=\"{scope}\""));
                }
                if let Some(e) = token_error {
                    value.push_str(&format!(",error=\"{e}\""));
                }
                value
            }
            None => format!("Basic realm=\"{}\"", self.realm),
        };
        error.with_header(header::WWW_AUTHENTICATE, value)
    }
}
