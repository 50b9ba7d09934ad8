//! Property tests of the registry's parsers of network input: request paths (every method) and
//! manifests (arbitrary bytes, arbitrary JSON, and well-formed manifests with hostile fields).
//! For any input: no panic, and what is accepted keeps the types' promises.

use proptest::prelude::*;
use serde_json::{Value, json};
use strata_registry::route::{Endpoint, Reference};
use strata_storage::oci::Manifest;

fn method() -> impl Strategy<Value = http::Method> {
    prop_oneof![
        Just(http::Method::GET),
        Just(http::Method::HEAD),
        Just(http::Method::PUT),
        Just(http::Method::PATCH),
        Just(http::Method::POST),
        Just(http::Method::DELETE),
    ]
}

/// Paths built from the pieces routing looks at, and arbitrary text.
fn path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z0-9]{1,10}",
        Just("blobs".to_owned()),
        Just("uploads".to_owned()),
        Just("manifests".to_owned()),
        Just("tags".to_owned()),
        Just("list".to_owned()),
        Just("referrers".to_owned()),
        Just("_catalog".to_owned()),
        Just("..".to_owned()),
        Just("".to_owned()),
        "sha256:[0-9a-f]{0,70}",
        "[ -~]{0,20}",
    ];
    prop_oneof![
        prop::collection::vec(piece, 0..12).prop_map(|p| p.join("/")),
        any::<String>(),
    ]
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[ -~]{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("schemaVersion".to_owned()),
                    Just("mediaType".to_owned()),
                    Just("config".to_owned()),
                    Just("layers".to_owned()),
                    Just("manifests".to_owned()),
                    Just("subject".to_owned()),
                    Just("digest".to_owned()),
                    Just("size".to_owned()),
                    Just("urls".to_owned()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_path_and_method_routes_without_panic(method in method(), rest in path()) {
        if let Ok(endpoint) = Endpoint::parse_for(&method, &rest) {
            if let Some(name) = endpoint.repository() {
                prop_assert!(name.as_str().len() <= 255 && !name.as_str().contains(".."));
            }
            if let Endpoint::Manifest(_, Reference::Tag(tag)) = &endpoint {
                prop_assert!(tag.as_str().len() <= 128);
            }
        }
    }

    #[test]
    fn any_bytes_are_a_manifest_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..2048), content_type in prop::option::of("[ -~]{0,80}")) {
        let _ = Manifest::parse(&bytes, content_type.as_deref());
    }

    #[test]
    fn any_json_is_a_manifest_or_an_error(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        // Sizes are u64: a manifest with a negative size does not parse.
        if let Ok(manifest) = Manifest::parse(&bytes, None) {
            prop_assert!(manifest.references().all(|d| i64::try_from(d.size).is_ok()));
        }
    }

    #[test]
    fn manifests_with_hostile_fields_are_refused_or_kept_whole(
        size in any::<i64>(),
        digest in prop_oneof!["sha256:[0-9a-f]{64}", "[ -~]{0,80}"],
        urls in prop::collection::vec("[ -~]{0,40}", 0..3),
        media_type in prop_oneof![Just("application/vnd.oci.image.manifest.v1+json".to_owned()), "[ -~]{0,60}"],
        layers in 0usize..50,
    ) {
        let layer = json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size, "urls": urls });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": size },
            "layers": vec![layer; layers],
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        if let Ok(parsed) = Manifest::parse(&bytes, Some(&media_type)) {
            prop_assert_eq!(parsed.layers.len(), layers);
            prop_assert!(size >= 0);
        }
    }
}
