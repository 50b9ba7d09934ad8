//! Who may do what where: the `[[access]]` rules and `anonymous`. Rules are tried in order; the
//! first whose repository globs match the repository and whose users or groups include the
//! caller gives its actions, and later rules are not consulted. Everyone, signed in or not,
//! also has the `anonymous` actions.

use std::collections::BTreeSet;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use strata_storage::RepositoryName;

use crate::config::{AccessRule, Action};

/// A compiled `[[access]]` rule.
#[derive(Debug)]
struct Rule {
    repositories: GlobSet,
    users: BTreeSet<String>,
    any_user: bool,
    groups: BTreeSet<String>,
    actions: BTreeSet<Action>,
}

/// The compiled rules.
#[derive(Debug)]
pub struct Policy {
    rules: Vec<Rule>,
    anonymous: BTreeSet<Action>,
}

/// A signed-in caller, as the rules see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// The user name.
    pub user: &'a str,
    /// The groups the user is in.
    pub groups: &'a [String],
}

fn glob(pattern: &str) -> Result<Glob, String> {
    // `*` stays inside one path component; `**` crosses them.
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("access rule repository glob {pattern:?}: {e}"))
}

impl Policy {
    /// Compiles `rules`; a bad glob is a configuration error naming it.
    pub fn new(rules: &[AccessRule], anonymous: &[Action]) -> Result<Self, String> {
        let rules = rules
            .iter()
            .map(|r| {
                let mut set = GlobSetBuilder::new();
                for pattern in &r.repositories {
                    set.add(glob(pattern)?);
                }
                Ok(Rule {
                    repositories: set.build().map_err(|e| e.to_string())?,
                    users: r.users.iter().filter(|u| *u != "*").cloned().collect(),
                    any_user: r.users.iter().any(|u| u == "*"),
                    groups: r.groups.iter().cloned().collect(),
                    actions: r.actions.iter().copied().collect(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Policy {
            rules,
            anonymous: anonymous.iter().copied().collect(),
        })
    }

    /// What `member` (or an anonymous caller, `None`) may do on `repository`.
    pub fn actions(&self, member: Option<&Member<'_>>, repository: &RepositoryName) -> BTreeSet<Action> {
        let mut granted = self.anonymous.clone();
        let Some(member) = member else {
            return granted;
        };
        let rule = self.rules.iter().find(|r| {
            r.repositories.is_match(repository.as_str())
                && (r.any_user || r.users.contains(member.user) || member.groups.iter().any(|g| r.groups.contains(g)))
        });
        if let Some(rule) = rule {
            granted.extend(rule.actions.iter().copied());
        }
        granted
    }

    /// Whether `member` may do `action` on `repository`.
    pub fn allows(&self, member: Option<&Member<'_>>, repository: &RepositoryName, action: Action) -> bool {
        self.actions(member, repository).contains(&action)
    }

    /// Whether anonymous callers may do anything at all.
    pub fn anonymous_any(&self) -> bool {
        !self.anonymous.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(repositories: &[&str], users: &[&str], groups: &[&str], actions: &[Action]) -> AccessRule {
        AccessRule {
            repositories: repositories.iter().map(|s| s.to_string()).collect(),
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            actions: actions.to_vec(),
        }
    }

    fn repo(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn the_first_rule_matching_repository_and_caller_wins() {
        use Action::*;
        let policy = Policy::new(
            &[
                rule(&["team-a/**"], &["alice"], &["ci"], &[Pull, Push, Delete]),
                rule(&["team-a/secret"], &["bob"], &[], &[Pull]),
                rule(&["*/base"], &["*"], &[], &[Pull]),
                rule(&["**"], &["bob"], &[], &[Pull, Push]),
            ],
            &[],
        )
        .unwrap();
        let alice = Member {
            user: "alice",
            groups: &[],
        };
        let ci = Member {
            user: "runner",
            groups: &["ci".to_owned()],
        };
        let bob = Member {
            user: "bob",
            groups: &[],
        };
        let carol = Member {
            user: "carol",
            groups: &[],
        };
        assert!(policy.allows(Some(&alice), &repo("team-a/app"), Delete));
        assert!(
            policy.allows(Some(&alice), &repo("team-a/x/y"), Push),
            "** crosses components"
        );
        assert!(policy.allows(Some(&ci), &repo("team-a/app"), Push));
        assert!(!policy.allows(Some(&alice), &repo("team-b/app"), Pull));
        assert!(policy.allows(Some(&carol), &repo("team-b/base"), Pull), "* is any user");
        assert!(
            !policy.allows(Some(&carol), &repo("team-b/x/base"), Pull),
            "* stays in a component"
        );
        // bob: the team-a/secret rule is the first that names him there.
        assert!(policy.allows(Some(&bob), &repo("team-a/secret"), Pull));
        assert!(!policy.allows(Some(&bob), &repo("team-a/secret"), Push));
        assert!(policy.allows(Some(&bob), &repo("team-b/app"), Push));
        assert!(!policy.allows(None, &repo("team-a/app"), Pull));
    }

    #[test]
    fn anonymous_actions_apply_to_everyone() {
        let policy = Policy::new(&[], &[Action::Pull]).unwrap();
        assert!(policy.allows(None, &repo("any/thing"), Action::Pull));
        assert!(!policy.allows(None, &repo("any/thing"), Action::Push));
        let dave = Member {
            user: "dave",
            groups: &[],
        };
        assert!(policy.allows(Some(&dave), &repo("x"), Action::Pull));
    }

    #[test]
    fn a_bad_glob_is_named() {
        let err = Policy::new(&[rule(&["a/[b"], &["x"], &[], &[Action::Pull])], &[]).unwrap_err();
        assert!(err.contains("a/[b"), "{err}");
    }
}
