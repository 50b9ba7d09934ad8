//! Blob requests: HEAD, ranged GET, cross-repository mount, and uploads (monolithic streamed PUT,
//! or chunked PATCH with `Content-Range`, and the session status used to resume).

use bytes::Bytes;
use futures::TryStreamExt;
use http::{StatusCode, header};
use strata_storage::{ByteStream, Digest, RepositoryName};

use super::{RegistryClient, pull_scope, push_scope};
use crate::error::{DistributionError, Result};

/// A blob body being downloaded.
pub struct BlobDownload {
    /// Offset of the first byte `body` yields (0 when the server ignored our `Range`).
    pub start: u64,
    /// The bytes.
    pub body: ByteStream,
}

impl std::fmt::Debug for BlobDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobDownload")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

/// An upload session: where to send the next request, and the smallest chunk the registry
/// wants (`OCI-Chunk-Min-Length`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLocation {
    /// Absolute URL of the session.
    pub url: String,
    /// Smallest chunk the registry wants, if it said.
    pub min_chunk: Option<u64>,
}

fn with_digest(url: &str, digest: &Digest) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={digest}")
}

/// The start offset in `Content-Range: bytes a-b/n`.
fn range_start(headers: &http::HeaderMap) -> Option<u64> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    v.trim().strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}

/// The end offset (exclusive) in an upload `Range: 0-N` header.
fn upload_end(headers: &http::HeaderMap) -> Option<u64> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let v = v.trim().trim_start_matches("bytes=");
    let (_, end) = v.split_once('-')?;
    end.trim().parse::<u64>().ok().map(|e| e + 1)
}

impl RegistryClient {
    fn location(&self, response: &reqwest::Response) -> Result<UploadLocation> {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                DistributionError::Protocol(format!("{} started an upload without a Location", self.host()))
            })?;
        let url = url::Url::parse(response.url().as_str())
            .and_then(|base| base.join(location))
            .map_err(|e| DistributionError::Protocol(format!("bad upload Location {location:?}: {e}")))?;
        let min_chunk = response
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Ok(UploadLocation {
            url: url.to_string(),
            min_chunk,
        })
    }

    /// The size of blob `digest` in `repo`, or `None` if the repository does not have it.
    pub async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let response = self.send(&pull_scope(repo), true, |c| c.head(self.url(&path))).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            // reqwest's content_length() is the body's, which a HEAD has none of: read the header.
            s if s.is_success() => Ok(Some(
                response
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| {
                        DistributionError::Protocol(format!("HEAD of blob {digest} gave no Content-Length"))
                    })?,
            )),
            _ => Err(Self::error(response, &format!("blob {repo}@{digest}")).await),
        }
    }

    /// Starts downloading blob `digest` from byte `offset`. The server may ignore the range and
    /// send everything: [`BlobDownload::start`] says where the body begins.
    pub async fn get_blob(&self, repo: &RepositoryName, digest: &Digest, offset: u64) -> Result<BlobDownload> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let response = self
            .send(&pull_scope(repo), true, |c| {
                let r = c.get(self.url(&path));
                if offset > 0 {
                    r.header(header::RANGE, format!("bytes={offset}-"))
                } else {
                    r
                }
            })
            .await?;
        let start = match response.status() {
            StatusCode::PARTIAL_CONTENT => range_start(response.headers()).unwrap_or(offset),
            StatusCode::OK => 0,
            _ => return Err(Self::error(response, &format!("blob {repo}@{digest}")).await),
        };
        let body = Box::pin(response.bytes_stream().map_err(strata_storage::Error::input));
        Ok(BlobDownload { start, body })
    }

    /// Asks the registry to mount `digest` from `from` into `repo`. Returns `None` when it was
    /// mounted, else the upload session the registry opened instead.
    pub async fn mount(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: &RepositoryName,
    ) -> Result<Option<UploadLocation>> {
        self.auth_want(&pull_scope(from));
        let path = format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
        let response = self.send(&push_scope(repo), true, |c| c.post(self.url(&path))).await?;
        match response.status() {
            StatusCode::CREATED => Ok(None),
            StatusCode::ACCEPTED => Ok(Some(self.location(&response)?)),
            _ => Err(Self::error(response, &format!("mount {digest} into {repo}")).await),
        }
    }

    fn auth_want(&self, scope: &str) {
        let _ = self.auth.want_scope(scope);
    }

    /// Opens an upload session in `repo`.
    pub async fn start_upload(&self, repo: &RepositoryName) -> Result<UploadLocation> {
        let path = format!("/v2/{repo}/blobs/uploads/");
        let response = self.send(&push_scope(repo), true, |c| c.post(self.url(&path))).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(Self::error(response, &format!("start an upload in {repo}")).await);
        }
        self.location(&response)
    }

    /// Sends the whole blob in one streamed `PUT ?digest=` (not retried: the stream is gone).
    pub async fn put_blob(
        &self,
        repo: &RepositoryName,
        session: &UploadLocation,
        digest: &Digest,
        size: u64,
        body: ByteStream,
    ) -> Result<()> {
        let url = with_digest(&session.url, digest);
        let mut body = Some(body);
        let response = self
            .send(&push_scope(repo), false, |c| {
                let stream = body.take().expect("sent once");
                c.put(&url)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, size)
                    .body(reqwest::Body::wrap_stream(stream))
            })
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(Self::error(response, &format!("upload {digest}")).await);
        }
        Ok(())
    }

    /// Sends one chunk at `offset` (`Content-Range`); returns the session's next location and the
    /// length the registry confirmed.
    pub async fn patch_chunk(
        &self,
        repo: &RepositoryName,
        session: &UploadLocation,
        offset: u64,
        chunk: Bytes,
    ) -> Result<(UploadLocation, u64)> {
        let end = offset + chunk.len() as u64;
        let response = self
            .send(&push_scope(repo), true, |c| {
                c.patch(&session.url)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_RANGE, format!("{offset}-{}", end - 1))
                    .body(chunk.clone())
            })
            .await?;
        self.patched(response, session, end).await
    }

    /// A `PATCH`'s answer: the session's next location and the length the registry confirmed
    /// (`end` when it does not say).
    async fn patched(
        &self,
        response: reqwest::Response,
        session: &UploadLocation,
        end: u64,
    ) -> Result<(UploadLocation, u64)> {
        if response.status() != StatusCode::ACCEPTED {
            return Err(Self::error(response, "upload a chunk").await);
        }
        let confirmed = upload_end(response.headers()).unwrap_or(end);
        let next = UploadLocation {
            min_chunk: session.min_chunk,
            ..self.location(&response)?
        };
        Ok((next, confirmed))
    }

    /// Streams `len` bytes starting at `offset` into the session in one `PATCH` with
    /// `Content-Range` (not retried: the stream is consumed). Returns the session's next location
    /// and the length the registry confirmed.
    pub async fn patch_stream(
        &self,
        repo: &RepositoryName,
        session: &UploadLocation,
        offset: u64,
        len: u64,
        body: ByteStream,
    ) -> Result<(UploadLocation, u64)> {
        let end = offset + len;
        let mut body = Some(body);
        let response = self
            .send(&push_scope(repo), false, |c| {
                let stream = body.take().expect("sent once");
                c.patch(&session.url)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_RANGE, format!("{offset}-{}", end - 1))
                    .header(header::CONTENT_LENGTH, len)
                    .body(reqwest::Body::wrap_stream(stream))
            })
            .await?;
        self.patched(response, session, end).await
    }

    /// How many bytes the session holds (`GET` on the session → `Range`).
    pub async fn upload_status(&self, repo: &RepositoryName, session: &UploadLocation) -> Result<u64> {
        let response = self.send(&push_scope(repo), true, |c| c.get(&session.url)).await?;
        if response.status() != StatusCode::NO_CONTENT && !response.status().is_success() {
            return Err(Self::error(response, "upload status").await);
        }
        // "0-0" is ambiguous (empty or one byte); registries answer it for empty sessions.
        Ok(match upload_end(response.headers()) {
            Some(1) | None => 0,
            Some(n) => n,
        })
    }

    /// Closes a session whose bytes were all sent with `PUT ?digest=`.
    pub async fn finish_upload(&self, repo: &RepositoryName, session: &UploadLocation, digest: &Digest) -> Result<()> {
        let url = with_digest(&session.url, digest);
        let response = self
            .send(&push_scope(repo), true, |c| {
                c.put(&url).header(header::CONTENT_LENGTH, 0)
            })
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(Self::error(response, &format!("finish the upload of {digest}")).await);
        }
        Ok(())
    }
}
