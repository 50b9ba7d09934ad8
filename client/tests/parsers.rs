//! Property tests of the client's parsers of untrusted text: `WWW-Authenticate` challenges (from
//! any registry), image references and platforms (from users and from other tools). For any
//! input: no panic; well-formed input is accepted and keeps what it said.

use proptest::prelude::*;
use strata_client::Reference;
use strata_client::auth::Challenge;
use strata_storage::oci::PlatformSpec;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,200}",
        any::<String>(),
        "(Bearer |Basic |realm=|\"|,| |=|\\\\|scope=){0,30}",
        "[a-z0-9.:/@_-]{0,120}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_without_panic(value in text()) {
        let _ = Challenge::parse(&value);
        if let Ok(reference) = Reference::parse(&value) {
            // What was accepted prints as something that parses to the same reference.
            let again = Reference::parse(&reference.to_string()).unwrap();
            prop_assert_eq!(again.to_string(), reference.to_string());
        }
        let _ = PlatformSpec::parse(&value);
    }

    #[test]
    fn bearer_challenges_keep_their_parameters(
        realm in "https://[a-z]{1,10}\\.example/[a-z]{0,10}",
        service in "[a-z0-9.-]{1,20}",
        scope in "repository:[a-z0-9/]{1,20}:pull(,push)?",
    ) {
        let header = format!(r#"Bearer realm="{realm}",service="{service}",scope="{scope}""#);
        let challenge = Challenge::parse(&header).unwrap();
        prop_assert_eq!(challenge.scheme.as_str(), "bearer");
        prop_assert_eq!(&challenge.params["realm"], &realm);
        prop_assert_eq!(&challenge.params["service"], &service);
        prop_assert_eq!(&challenge.params["scope"], &scope);
    }

    #[test]
    fn well_formed_references_keep_their_parts(
        host in "[a-z][a-z0-9]{0,10}\\.[a-z]{2,5}(:[1-9][0-9]{0,3})?",
        repo in "[a-z0-9]{1,10}(/[a-z0-9]{1,10}){0,3}",
        tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
    ) {
        let reference = Reference::parse(&format!("{host}/{repo}:{tag}")).unwrap();
        prop_assert_eq!(reference.registry.as_str(), host.as_str());
        prop_assert_eq!(reference.repository.as_str(), repo.as_str());
        prop_assert_eq!(reference.tag.as_ref().map(|t| t.as_str().to_owned()), Some(tag));
    }
}
