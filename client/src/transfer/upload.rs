//! Chunked, resumable blob upload to a registry.
//!
//! The blob goes up as a series of streamed `PATCH`es of `chunk` bytes with `Content-Range`.
//! After each confirmed chunk the session's `Location` is written to a journal under
//! `STRATA_HOME/uploads`, keyed by registry, repository and digest. A later attempt — after a
//! dropped connection in this run, or in a new run after the process was killed — asks the
//! registry how much the session holds (`GET` → `Range: 0-N`) and continues from there, instead
//! of starting over. The registry checks the digest when the final `PUT ?digest=` closes it.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use strata_storage::{ByteStream, Digest, RepositoryName};
use tokio::sync::mpsc;

use crate::error::{ClientError, Result};
use crate::registry::{RegistryClient, UploadLocation};

/// Failed chunks in a row before giving up.
const MAX_STALLS: u32 = 5;

/// Where unfinished uploads are recorded: one small JSON file per (registry, repository, digest).
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Record {
    registry: String,
    repository: String,
    digest: String,
    location: String,
    #[serde(default)]
    min_chunk: Option<u64>,
}

impl Journal {
    /// A journal in `dir` (created when first written).
    pub fn new(dir: PathBuf) -> Self {
        Journal { dir }
    }

    fn path(&self, host: &str, repo: &RepositoryName, digest: &Digest) -> PathBuf {
        let key = strata_storage::digest::sha256(format!("{host}/{repo}@{digest}").as_bytes());
        self.dir.join(format!("{}.json", key.digest()))
    }

    /// The session recorded for this blob, if any.
    fn load(&self, host: &str, repo: &RepositoryName, digest: &Digest) -> Option<UploadLocation> {
        let raw = std::fs::read(self.path(host, repo, digest)).ok()?;
        let record: Record = serde_json::from_slice(&raw).ok()?;
        (record.registry == host && record.repository == repo.as_str() && record.digest == digest.as_ref()).then_some(
            UploadLocation {
                url: record.location,
                min_chunk: record.min_chunk,
            },
        )
    }

    fn save(&self, host: &str, repo: &RepositoryName, digest: &Digest, session: &UploadLocation) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| ClientError::io(format!("create {}", self.dir.display()), e))?;
        let record = Record {
            registry: host.to_owned(),
            repository: repo.to_string(),
            digest: digest.to_string(),
            location: session.url.clone(),
            min_chunk: session.min_chunk,
        };
        let path = self.path(host, repo, digest);
        strata_storage::atomic::write_with_mode(&path, &serde_json::to_vec(&record).expect("json"), 0o600)
            .map_err(|e| ClientError::io(format!("record the upload in {}", path.display()), e))
    }

    fn remove(&self, host: &str, repo: &RepositoryName, digest: &Digest) {
        let _ = std::fs::remove_file(self.path(host, repo, digest));
    }
}

/// A byte stream read in pieces of at most a given length.
struct Chunker {
    stream: ByteStream,
    carry: Option<Bytes>,
}

impl Chunker {
    async fn next_upto(&mut self, max: u64) -> Option<strata_storage::Result<Bytes>> {
        let mut piece = match self.carry.take() {
            Some(b) => b,
            None => match self.stream.next().await? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            },
        };
        if piece.len() as u64 > max {
            self.carry = Some(piece.split_off(max as usize));
        }
        Some(Ok(piece))
    }
}

/// Feeds exactly `len` bytes of `source` into `tx`. An error of the source is passed to the
/// request (so it aborts) and returned; a request that went away just stops the pump.
async fn pump(source: &mut Chunker, len: u64, tx: mpsc::Sender<strata_storage::Result<Bytes>>) -> Result<()> {
    let mut left = len;
    while left > 0 {
        match source.next_upto(left).await {
            Some(Ok(piece)) if piece.is_empty() => {}
            Some(Ok(piece)) => {
                left -= piece.len() as u64;
                if tx.send(Ok(piece)).await.is_err() {
                    return Ok(());
                }
            }
            Some(Err(e)) => {
                let message = e.to_string();
                let _ = tx.send(Err(strata_storage::Error::Input(message.into()))).await;
                return Err(e.into());
            }
            None => {
                let _ = tx
                    .send(Err(strata_storage::Error::Input("source ended early".into())))
                    .await;
                return Err(ClientError::Integrity(format!(
                    "the source blob ended {left} bytes early"
                )));
            }
        }
    }
    Ok(())
}

/// What an upload needs besides the bytes.
pub(crate) struct ChunkedUpload<'a> {
    pub(crate) client: &'a RegistryClient,
    pub(crate) repo: &'a RepositoryName,
    pub(crate) digest: &'a Digest,
    pub(crate) size: u64,
    pub(crate) chunk: u64,
    pub(crate) journal: Option<&'a Journal>,
    /// A session the registry already opened (a mount that did not happen), used unless the
    /// journal has one to resume.
    pub(crate) session: Option<UploadLocation>,
}

impl ChunkedUpload<'_> {
    /// Uploads the blob, resuming a session the journal recorded. `open(offset)` streams the
    /// source from `offset`. Returns the bytes sent by this call.
    pub(crate) async fn run<F, Fut>(&self, open: F) -> Result<u64>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<ByteStream>>,
    {
        let (client, repo, digest, size) = (self.client, self.repo, self.digest, self.size);
        let host = client.host();
        let resumed = match self.journal.and_then(|j| j.load(host, repo, digest)) {
            Some(session) => match client.upload_status(repo, &session).await {
                Ok(have) if have <= size => {
                    tracing::info!(%digest, have, size, "resuming an interrupted upload");
                    Some((session, have))
                }
                _ => None,
            },
            None => None,
        };
        let (mut session, mut offset) = match (resumed, self.session.clone()) {
            (Some(s), _) => s,
            (None, Some(offered)) => (offered, 0),
            (None, None) => (client.start_upload(repo).await?, 0),
        };
        self.record(&session)?;
        let chunk = self.chunk.max(session.min_chunk.unwrap_or(0)).max(1);
        let mut sent = 0;
        let mut stalls = 0;
        'reopen: while offset < size {
            let mut source = Chunker {
                stream: open(offset).await?,
                carry: None,
            };
            while offset < size {
                let len = chunk.min(size - offset);
                let (tx, rx) = mpsc::channel(4);
                let body: ByteStream = Box::pin(tokio_stream_from(rx));
                let (pumped, patched) = tokio::join!(
                    pump(&mut source, len, tx),
                    client.patch_stream(repo, &session, offset, len, body)
                );
                pumped?;
                match patched.map_err(ClientError::from) {
                    Ok((next, confirmed)) => {
                        sent += confirmed.saturating_sub(offset);
                        let moved = confirmed != offset + len;
                        session = next;
                        offset = confirmed;
                        stalls = 0;
                        self.record(&session)?;
                        if moved {
                            // The registry kept less than we sent: re-read from where it is.
                            continue 'reopen;
                        }
                    }
                    Err(e) => {
                        stalls += 1;
                        if stalls >= MAX_STALLS || matches!(e, ClientError::Auth(_)) {
                            return Err(e);
                        }
                        tracing::warn!(%digest, offset, error = %e, "chunk failed; asking the registry where to resume");
                        tokio::time::sleep(Duration::from_millis(200 << stalls)).await;
                        match client.upload_status(repo, &session).await {
                            Ok(have) if have <= size => offset = have,
                            _ => {
                                session = client.start_upload(repo).await?;
                                offset = 0;
                                self.record(&session)?;
                            }
                        }
                        continue 'reopen;
                    }
                }
            }
        }
        client.finish_upload(repo, &session, digest).await?;
        if let Some(j) = self.journal {
            j.remove(host, repo, digest);
        }
        Ok(sent)
    }

    fn record(&self, session: &UploadLocation) -> Result<()> {
        match self.journal {
            Some(j) => j.save(self.client.host(), self.repo, self.digest, session),
            None => Ok(()),
        }
    }
}

/// A stream over a channel's receiver.
fn tokio_stream_from<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
