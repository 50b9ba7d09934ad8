//! Test support (feature `testing`): fixtures that make backends over fresh storage, an S3 server
//! that runs inside the test process, and the [`conformance`] suite every backend must pass.
//!
//! The S3 server is the real S3 protocol: `s3s` parses and authenticates (SigV4) each request and
//! `s3s-fs` stores objects in a temporary directory, so the S3 backend is tested over HTTP with the
//! SDK exactly as it talks to AWS, MinIO or Garage.

pub mod conformance;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Backend, FsBackend, S3Backend, S3Config, Secret};

const ACCESS_KEY: &str = "strata-test-access";
const SECRET_KEY: &str = "strata-test-secret";
const MIB: u64 = 1024 * 1024;

/// Fresh, empty storage that can hand out any number of backend instances over it (replicas).
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A new backend instance over this fixture's storage.
    async fn backend(&self) -> Arc<dyn Backend>;
}

/// A filesystem store in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct FsFixture {
    dir: TempDir,
}

impl FsFixture {
    /// A fresh, empty store.
    pub fn new() -> Self {
        FsFixture {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Default for FsFixture {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Fixture for FsFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(FsBackend::new(self.dir.path()).expect("open fs backend"))
    }
}

/// An S3 server (s3s + s3s-fs) listening on one or more loopback ports (endpoints of the same
/// buckets, as the nodes of a cluster are), stopped on drop. It logs every request it receives.
pub struct S3TestServer {
    dir: TempDir,
    serve: Arc<dyn Fn(TcpListener) -> JoinHandle<()> + Send + Sync>,
    listeners: std::sync::Mutex<Vec<Listener>>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

struct Listener {
    addr: SocketAddr,
    /// The accept loop; its connections end with it.
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for S3TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3TestServer")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl S3TestServer {
    /// Starts a server with an empty data directory.
    pub async fn start() -> Self {
        Self::start_with_faults(0).await
    }

    /// Starts a server that answers every `fail_every`-th request (the first included) with a
    /// transient `500 InternalError` before looking at it, as an overloaded S3 service does;
    /// `0` never fails. For testing retries.
    pub async fn start_with_faults(fail_every: usize) -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs root");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let requests = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let logged = log.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let (service, n) = (service.clone(), requests.fetch_add(1, Ordering::SeqCst));
            logged
                .lock()
                .expect("log")
                .push(format!("{} {}", req.method(), req.uri()));
            async move {
                if fail_every > 0 && n.is_multiple_of(fail_every) {
                    return Ok(injected_failure());
                }
                hyper::service::Service::call(&service, req).await
            }
        });
        let serve = Arc::new(move |listener: TcpListener| {
            let service = service.clone();
            tokio::spawn(async move {
                let http = ConnBuilder::new(TokioExecutor::new());
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { break };
                            let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                            connections.spawn(async move {
                                let _ = conn.await;
                            });
                        }
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    }
                }
            })
        });
        let server = S3TestServer {
            dir,
            serve,
            listeners: std::sync::Mutex::new(Vec::new()),
            log,
        };
        server.add_endpoint().await;
        server
    }

    /// Starts one more endpoint (a port of its own over the same buckets); returns its URL.
    pub async fn add_endpoint(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let task = (self.serve)(listener);
        self.listeners
            .lock()
            .expect("listeners")
            .push(Listener { addr, task: Some(task) });
        format!("http://{addr}")
    }

    /// Stops endpoint `i`: its port refuses connections and its open connections are closed.
    pub fn stop_endpoint(&self, i: usize) {
        if let Some(task) = self.listeners.lock().expect("listeners")[i].task.take() {
            task.abort();
        }
    }

    /// Starts stopped endpoint `i` again, on its port.
    pub async fn restart_endpoint(&self, i: usize) {
        let addr = self.listeners.lock().expect("listeners")[i].addr;
        let listener = TcpListener::bind(addr).await.expect("bind the same port again");
        let task = (self.serve)(listener);
        self.listeners.lock().expect("listeners")[i].task = Some(task);
    }

    /// How many multipart uploads the server holds (started, neither completed nor aborted):
    /// s3s-fs keeps one `.upload-<id>.json` per upload in its root.
    pub fn open_multipart_uploads(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(".upload-") && name.ends_with(".json")
            })
            .count()
    }

    /// Every request received so far (`METHOD /path?query`), and forgets them.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().expect("log"))
    }

    /// The access key id and secret the server accepts.
    pub fn credentials(&self) -> (&'static str, &'static str) {
        (ACCESS_KEY, SECRET_KEY)
    }

    /// `http://127.0.0.1:<port>` of the first endpoint.
    pub fn endpoint(&self) -> String {
        self.endpoint_at(0)
    }

    /// The URL of endpoint `i`.
    pub fn endpoint_at(&self, i: usize) -> String {
        format!("http://{}", self.listeners.lock().expect("listeners")[i].addr)
    }

    /// Where the server keeps its objects (bucket directories with object files).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Creates `bucket` and returns a backend configuration for it, with small parts and copy
    /// thresholds so that tests exercise multipart paths with megabytes rather than gigabytes.
    pub async fn bucket(&self, bucket: &str) -> S3Config {
        let mut cfg = S3Config::new(bucket);
        cfg.endpoint = Some(self.endpoint());
        cfg.path_style = true;
        cfg.access_key_id = Some(ACCESS_KEY.into());
        cfg.secret_access_key = Some(Secret::new(SECRET_KEY));
        cfg.part_size = 5 * MIB;
        cfg.multipart_copy_threshold = 6 * MIB;
        cfg.copy_part_size = 5 * MIB;
        cfg.max_attempts = 2;
        let backend = S3Backend::new(&cfg).await.expect("s3 backend");
        backend
            .client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket");
        cfg
    }
}

fn injected_failure() -> hyper::Response<s3s::Body> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>\
                <Message>failure injected by the test server</Message></Error>";
    hyper::Response::builder()
        .status(500)
        .header("content-type", "application/xml")
        .body(s3s::Body::from(body.to_owned()))
        .expect("static response")
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        if let Ok(listeners) = self.listeners.lock() {
            for task in listeners.iter().filter_map(|l| l.task.as_ref()) {
                task.abort();
            }
        }
    }
}

/// An S3 bucket for one test: on the in-process server, or on the external endpoint named by
/// `STRATA_TEST_S3_ENDPOINT` (with `STRATA_TEST_S3_BUCKET`, `STRATA_TEST_S3_ACCESS_KEY_ID`,
/// `STRATA_TEST_S3_SECRET_ACCESS_KEY`, optional `STRATA_TEST_S3_REGION`), where each fixture uses
/// a fresh random key prefix.
#[derive(Debug)]
pub struct S3Fixture {
    config: S3Config,
    server: Option<S3TestServer>,
}

impl S3Fixture {
    /// A fresh bucket on a new in-process server.
    pub async fn new() -> Self {
        let server = S3TestServer::start().await;
        let config = server.bucket("strata-test").await;
        S3Fixture {
            config,
            server: Some(server),
        }
    }

    /// A fresh bucket on a new in-process server with `endpoints` endpoints, all configured
    /// (`S3Config::endpoints`), as the nodes of a cluster are.
    pub async fn clustered(endpoints: usize) -> Self {
        let server = S3TestServer::start().await;
        let mut config = server.bucket("strata-test").await;
        config.endpoints = config.endpoint.take().into_iter().collect();
        for _ in 1..endpoints {
            config.endpoints.push(server.add_endpoint().await);
        }
        S3Fixture {
            config,
            server: Some(server),
        }
    }

    /// A fresh prefix on the external endpoint; panics with a clear message when the variables
    /// are missing (callers mark such tests `#[ignore]` unless the endpoint is configured).
    pub fn external() -> Self {
        let var =
            |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set for the external S3 suite"));
        let mut config = S3Config::new(var("STRATA_TEST_S3_BUCKET"));
        config.endpoint = Some(var("STRATA_TEST_S3_ENDPOINT"));
        config.path_style = true;
        config.access_key_id = Some(var("STRATA_TEST_S3_ACCESS_KEY_ID"));
        config.secret_access_key = Some(Secret::new(var("STRATA_TEST_S3_SECRET_ACCESS_KEY")));
        if let Ok(region) = std::env::var("STRATA_TEST_S3_REGION") {
            config.region = region;
        }
        config.prefix = Some(format!("strata-test-{}", uuid::Uuid::new_v4().simple()));
        config.part_size = 5 * MIB;
        config.multipart_copy_threshold = 6 * MIB;
        config.copy_part_size = 5 * MIB;
        S3Fixture { config, server: None }
    }

    /// The same bucket with `change` made to the configuration backends are built from.
    pub fn configured(mut self, change: impl FnOnce(&mut S3Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// The in-process server (none for the external endpoint).
    pub fn server(&self) -> Option<&S3TestServer> {
        self.server.as_ref()
    }

    /// The configuration backends are built from.
    pub fn config(&self) -> &S3Config {
        &self.config
    }
}

#[async_trait]
impl Fixture for S3Fixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(S3Backend::new(&self.config).await.expect("s3 backend"))
    }
}
