//! The challenge flow: a 401 with `WWW-Authenticate: Basic` gets the credentials; `Bearer` gets
//! a token from the realm for every scope asked so far (scopes accumulate, so one token covers a
//! mount's source and target), cached until it expires.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::credentials::Credentials;
use crate::error::{DistributionError, Result};

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer` (lowercase).
    pub scheme: String,
    /// Auth parameters (`realm`, `service`, `scope`, ...), keys lowercase.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value (the first challenge in it).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        let mut params = BTreeMap::new();
        let mut chars = rest.trim().chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars
                .by_ref()
                .take_while(|c| *c != '=')
                .collect::<String>()
                .trim()
                .to_lowercase();
            if key.is_empty() {
                break;
            }
            let mut val = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => val.extend(chars.next()),
                        '"' => break,
                        c => val.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek().copied() {
                    if c == ',' {
                        break;
                    }
                    val.push(c);
                    chars.next();
                }
            }
            params.insert(key, val.trim().to_owned());
        }
        Some(Challenge {
            scheme: scheme.to_lowercase(),
            params,
        })
    }
}

/// Adds `scope` (`repository:<name>:<actions>`) to `scopes`, merging actions per resource.
fn merge_scope(scopes: &mut BTreeMap<String, BTreeSet<String>>, scope: &str) {
    for one in scope.split_whitespace() {
        let (resource, actions) = one.rsplit_once(':').unwrap_or((one, ""));
        let entry = scopes.entry(resource.to_owned()).or_default();
        entry.extend(actions.split(',').filter(|a| !a.is_empty()).map(String::from));
    }
}

fn render_scopes(scopes: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    scopes
        .iter()
        .map(|(resource, actions)| format!("{resource}:{}", actions.iter().cloned().collect::<Vec<_>>().join(",")))
        .collect()
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// The registry asked for Basic: send credentials on every request.
    basic: bool,
    /// The last Bearer challenge (realm, service).
    bearer: Option<Challenge>,
    /// Every scope asked for so far.
    scopes: BTreeMap<String, BTreeSet<String>>,
    /// Current token, its expiry, and the scopes it was issued for.
    token: Option<(String, Instant, BTreeMap<String, BTreeSet<String>>)>,
}

impl State {
    /// Whether the current token is unexpired and was issued for every scope asked so far.
    fn token_covers_scopes(&self) -> bool {
        self.token.as_ref().is_some_and(|(_, expiry, granted)| {
            Instant::now() < *expiry
                && self
                    .scopes
                    .iter()
                    .all(|(r, a)| granted.get(r).is_some_and(|g| a.is_subset(g)))
        })
    }
}

/// Authentication state for one registry.
#[derive(Debug)]
pub struct Authenticator {
    credentials: Option<Credentials>,
    state: Mutex<State>,
    /// Held while a token is fetched, so concurrent requests share one token request.
    refreshing: tokio::sync::Mutex<()>,
}

impl Authenticator {
    /// An authenticator that uses `credentials` when the registry asks for them.
    pub fn new(credentials: Option<Credentials>) -> Self {
        Authenticator {
            credentials,
            state: Mutex::new(State::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The `Authorization` value to send now, if any.
    pub fn header(&self) -> Option<String> {
        let state = self.state.lock().expect("auth lock");
        if let Some((token, expiry, _)) = &state.token
            && Instant::now() < *expiry
        {
            return Some(format!("Bearer {token}"));
        }
        if state.basic {
            return self.credentials.as_ref().map(Credentials::basic);
        }
        None
    }

    /// Notes that a request needs `scope`; returns whether the current token lacks it (so a
    /// token request before sending saves a round trip).
    pub fn want_scope(&self, scope: &str) -> bool {
        let mut state = self.state.lock().expect("auth lock");
        merge_scope(&mut state.scopes, scope);
        state.bearer.is_some() && !state.token_covers_scopes()
    }

    /// Handles a 401's `WWW-Authenticate`: prepares Basic, or fetches a Bearer token for every
    /// scope asked so far plus the challenge's.
    pub async fn challenge(&self, http: &reqwest::Client, www_authenticate: Option<&str>) -> Result<()> {
        let challenge = www_authenticate
            .and_then(Challenge::parse)
            .ok_or_else(|| DistributionError::Auth("401 without a usable WWW-Authenticate challenge".into()))?;
        match challenge.scheme.as_str() {
            "basic" => {
                if self.credentials.is_none() {
                    return Err(DistributionError::Auth(
                        "the registry wants credentials; run `strata login`".into(),
                    ));
                }
                self.state.lock().expect("auth lock").basic = true;
                Ok(())
            }
            "bearer" => {
                {
                    let mut state = self.state.lock().expect("auth lock");
                    if let Some(scope) = challenge.params.get("scope") {
                        merge_scope(&mut state.scopes, scope);
                    }
                    state.bearer = Some(challenge);
                }
                self.refresh(http).await
            }
            other => Err(DistributionError::Auth(format!(
                "unsupported authentication scheme {other:?}"
            ))),
        }
    }

    /// Fetches a token for the accumulated scopes from the last Bearer challenge's realm, unless
    /// a concurrent request just fetched one that covers them.
    pub async fn refresh(&self, http: &reqwest::Client) -> Result<()> {
        let _single_flight = self.refreshing.lock().await;
        let (challenge, scopes) = {
            let state = self.state.lock().expect("auth lock");
            let Some(challenge) = state.bearer.clone() else {
                return Ok(());
            };
            if state.token_covers_scopes() {
                return Ok(());
            }
            (challenge, state.scopes.clone())
        };
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| DistributionError::Auth("Bearer challenge without realm".into()))?;
        let realm_url =
            url::Url::parse(realm).map_err(|e| DistributionError::Auth(format!("bad token realm {realm:?}: {e}")))?;
        if !matches!(realm_url.scheme(), "http" | "https") {
            return Err(DistributionError::Auth(format!("token realm {realm:?} is not http(s)")));
        }
        let service = challenge.params.get("service").cloned().unwrap_or_default();
        let scope_list = render_scopes(&scopes);
        let request = match &self.credentials {
            Some(c) if c.username == "<token>" => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("service", service.clone()),
                    ("client_id", "strata".into()),
                    ("refresh_token", c.secret.clone()),
                ];
                if !scope_list.is_empty() {
                    form.push(("scope", scope_list.join(" ")));
                }
                http.post(realm_url).form(&form)
            }
            creds => {
                let mut query = vec![("service", service.clone())];
                query.extend(scope_list.iter().map(|s| ("scope", s.clone())));
                let request = http.get(realm_url).query(&query);
                match creds {
                    Some(c) => request.header(http::header::AUTHORIZATION, c.basic()),
                    None => request,
                }
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| DistributionError::network(format!("get a token from {realm}"), e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(DistributionError::Auth(format!(
                "token endpoint {realm} answered {status}"
            )));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|e| DistributionError::Auth(format!("token endpoint {realm}: {e}")))?;
        let token = answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| DistributionError::Auth(format!("token endpoint {realm} sent no token")))?;
        // Renew a little early; docker's default lifetime is 60 s.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(10));
        let expiry = Instant::now() + lifetime - Duration::from_secs(5);
        self.state.lock().expect("auth lock").token = Some((token, expiry, scopes));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quotes_and_commas() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/a:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["scope"], "repository:library/a:pull,push");
        let b = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(
            (b.scheme.as_str(), b.params["realm"].as_str()),
            ("basic", "Registry Realm")
        );
    }

    #[test]
    fn scopes_accumulate_and_merge_actions() {
        let mut scopes = BTreeMap::new();
        merge_scope(&mut scopes, "repository:a:pull");
        merge_scope(&mut scopes, "repository:a:push");
        merge_scope(&mut scopes, "repository:b:pull");
        assert_eq!(render_scopes(&scopes), ["repository:a:pull,push", "repository:b:pull"]);
    }
}
