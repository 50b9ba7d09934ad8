//! Opening the backend a [`StorageConfig`] names (the configuration itself knows no backend).

use std::sync::Arc;

use crate::backend::Backend;
use crate::config::StorageConfig;
use crate::error::{Error, Result};
use crate::fs::FsBackend;
use crate::s3::S3Backend;

impl StorageConfig {
    /// Opens the configured backend.
    pub async fn open(&self) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            StorageConfig::Fs(fs) => {
                let root = fs.root.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || FsBackend::new(root))
                        .await
                        .map_err(|e| Error::Config(format!("open fs backend: {e}")))??,
                )
            }
            StorageConfig::S3(s3) => Arc::new(S3Backend::new(s3).await?),
        })
    }
}
