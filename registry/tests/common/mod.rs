//! Test harness: a registry served in process on a loopback port, over fresh filesystem or S3
//! storage, and small HTTP helpers.

#![allow(dead_code, unreachable_pub)]

pub mod images;
pub mod process;

use std::sync::Arc;

use bytes::Bytes;
use reqwest::{Method, Response, StatusCode};
use strata_registry::config::{AccessRule, Action};
use strata_registry::{AppState, Config};
use strata_storage::digest::sha256;
use strata_storage::testing::{Fixture, FsFixture, S3Fixture};
use strata_storage::{Backend, Digest};
use tokio::sync::oneshot;

/// One registry process's worth of state, serving on a loopback port until dropped.
pub struct TestRegistry {
    pub base: String,
    pub client: reqwest::Client,
    pub fixture: Arc<dyn Fixture>,
    pub state: strata_registry::SharedState,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestRegistry {
    pub async fn fs() -> Self {
        Self::start(Arc::new(FsFixture::new()), Config::default()).await
    }

    pub async fn s3() -> Self {
        Self::start(Arc::new(S3Fixture::new().await), Config::default()).await
    }

    /// A registry over `fixture` (shared storage: call again for another replica).
    pub async fn start(fixture: Arc<dyn Fixture>, config: Config) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,strata_registry=warn"))
            .with_test_writer()
            .try_init();
        let backend: Arc<dyn Backend> = fixture.backend().await;
        let state = AppState::new(config, backend).expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let serving = state.clone();
        tokio::spawn(async move {
            strata_registry::run(listener, serving, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestRegistry {
            base,
            client,
            fixture,
            state,
            shutdown: Some(tx),
        }
    }

    /// Another registry (own state, own port) over the same storage.
    pub async fn replica(&self, config: Config) -> Self {
        Self::start(self.fixture.clone(), config).await
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    pub async fn head(&self, path: &str) -> Response {
        self.request(Method::HEAD, path).send().await.unwrap()
    }

    /// Pushes `data` to `name` with a single `POST ?digest=`; returns its digest.
    pub async fn push_blob(&self, name: &str, data: impl Into<Bytes>) -> Digest {
        let data = data.into();
        let digest = sha256(&data);
        let response = self
            .request(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={digest}"))
            .body(data)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
        digest
    }

    /// Puts a manifest; returns the response.
    pub async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        media_type: &str,
        body: impl Into<Bytes>,
    ) -> Response {
        self.request(Method::PUT, &format!("/v2/{name}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body.into())
            .send()
            .await
            .unwrap()
    }

    /// Pushes a config and one layer and an OCI image manifest tagged `tag`; returns the
    /// manifest bytes and digest.
    pub async fn push_image(&self, name: &str, tag: &str, seed: &str) -> (Bytes, Digest) {
        let config = self.push_blob(name, format!("{{\"seed\":\"{seed}\"}}")).await;
        let layer = self.push_blob(name, format!("layer of {seed}")).await;
        let manifest = image_manifest(
            &config,
            &[(&layer, "application/vnd.oci.image.layer.v1.tar", vec![])],
            "",
        );
        let response = self.put_manifest(name, tag, OCI_MANIFEST, manifest.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
        let digest = sha256(&manifest);
        (manifest, digest)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An OCI image manifest over `config` and `layers` (digest, media type, urls); `extra` is
/// spliced in as more top-level fields (starting with a comma).
pub fn image_manifest(config: &Digest, layers: &[(&Digest, &str, Vec<&str>)], extra: &str) -> Bytes {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, mt, urls)| {
            let urls = if urls.is_empty() {
                String::new()
            } else {
                format!(",\"urls\":{}", serde_json::to_string(urls).unwrap())
            };
            format!(r#"{{"mediaType":"{mt}","digest":"{d}","size":10{urls}}}"#)
        })
        .collect();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":10}},"layers":[{}]{extra}}}"#,
        layers.join(",")
    ))
}

/// An `[[access]]` rule: `users` may do `actions` on `repositories` (globs).
pub fn rule(repositories: &[&str], users: &[&str], actions: &[Action]) -> AccessRule {
    AccessRule {
        repositories: repositories.iter().map(|s| s.to_string()).collect(),
        users: users.iter().map(|s| s.to_string()).collect(),
        groups: Vec::new(),
        actions: actions.to_vec(),
    }
}

/// The OCI error code of an error response (and checks the body shape).
pub async fn error_code(response: Response) -> String {
    assert_eq!(
        response
            .headers()
            .get("docker-distribution-api-version")
            .map(|v| v.to_str().unwrap()),
        Some("registry/2.0"),
        "error responses carry the API version header too"
    );
    let body: serde_json::Value = response.json().await.expect("error body is JSON");
    body["errors"][0]["code"].as_str().expect("errors[0].code").to_string()
}

/// Expands to one test per case on the filesystem and one on S3.
#[macro_export]
macro_rules! on_fs_and_s3 {
    ($($case:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&$crate::common::TestRegistry::fs().await).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&$crate::common::TestRegistry::s3().await).await;
                }
            )*
        }
    };
}
