//! `strata-tests`: end-to-end and interoperability tests across the Strata crates and real
//! third-party tools (skopeo). The helpers here build test images and run a registry in process;
//! the tests live in `tests/`.

pub mod oci;
pub mod tls;

use std::net::SocketAddr;

use strata_registry::{AppState, Config};
use tokio::sync::oneshot;

/// A registry with filesystem storage in a temporary directory, serving on a loopback port until
/// dropped.
#[derive(Debug)]
pub struct LocalRegistry {
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// The storage directory (none for storage given by the caller).
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl LocalRegistry {
    /// Starts a registry with default configuration.
    pub async fn start() -> Self {
        Self::start_with(Config::default()).await
    }

    /// Starts a registry with `config` (its storage replaced by a temporary directory).
    pub async fn start_with(config: Config) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = strata_storage::StorageConfig::Fs(strata_storage::FsConfig {
            root: dir.path().to_owned(),
        });
        let config = Config { storage, ..config };
        let state = AppState::open(config).await.expect("open registry");
        Self::serve(state, Some(dir)).await
    }

    /// Starts a registry with `config` over `backend` (S3, say).
    pub async fn start_over(config: Config, backend: std::sync::Arc<dyn strata_storage::Backend>) -> Self {
        let state = AppState::new(config, backend).expect("registry state");
        Self::serve(state, None).await
    }

    async fn serve(state: strata_registry::SharedState, dir: Option<tempfile::TempDir>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            strata_registry::run(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        LocalRegistry {
            addr,
            _dir: dir,
            shutdown: Some(tx),
        }
    }
}

/// A [`LocalRegistry`] for a synchronous test, with the runtime that serves it (keep both alive
/// while the test uses the registry).
pub fn local_registry() -> (tokio::runtime::Runtime, LocalRegistry) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let registry = runtime.block_on(LocalRegistry::start());
    (runtime, registry)
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
