//! The S3 backend, on aws-sdk-s3: works with AWS S3 and S3-compatible services (MinIO, Garage,
//! Ceph RGW) through an endpoint URL and path-style addressing.
//!
//! - `put` sends objects below one part as a single `PutObject`, larger ones as a multipart upload
//!   (parts of `part_size`, `upload_concurrency` in flight). Every request body is in memory, so
//!   the SDK's bounded retries can resend it; a failed or cancelled put aborts its multipart upload.
//! - `copy` is server-side: `CopyObject`, or `UploadPartCopy` above `multipart_copy_threshold`.
//! - `list` pages through `ListObjectsV2` lazily.
//! - Appendable uploads keep their whole state in the bucket (see [`upload`]).
//!
//! Operators should add a lifecycle rule that aborts incomplete multipart uploads after a few
//! days: a process killed between creating a multipart upload and recording it leaves parts that
//! only such a rule (or `ListMultipartUploads`, which not every service offers) can find.

mod client;
mod endpoints;
mod parts;
mod read;
mod upload;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinSet;

use crate::backend::{Backend, Checkpoint, GetResult, ListStream, ObjectMeta, UploadStatus};
use crate::config::S3Config;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::range::ByteRange;
use crate::stream::ByteStream;
use client::{backend_err, map_err};
use endpoints::Endpoints;
use parts::{Part, PartBuffer, PartUploader};

/// S3's limit on parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// The S3 backend. Cheap to clone.
#[derive(Clone)]
pub struct S3Backend {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// The configured endpoints and their health (none: AWS's own).
    endpoints: Option<Arc<Endpoints>>,
    bucket: String,
    /// `""` or `"<prefix>/"`.
    prefix: String,
    part_size: usize,
    upload_concurrency: usize,
    read_part_size: u64,
    read_concurrency: usize,
    /// How long presigned URLs for blob downloads work; none: no redirects.
    redirect: Option<std::time::Duration>,
    /// The bytes all uploads through this backend may hold in part buffers at once.
    budget: Arc<tokio::sync::Semaphore>,
    /// The budget's size in bytes.
    budget_total: u64,
    multipart_copy_threshold: u64,
    copy_part_size: u64,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend")
            .field("bucket", &self.inner.bucket)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Backend {
    /// Builds the backend from its configuration. Makes no request: a wrong endpoint or missing
    /// bucket shows on first use.
    pub async fn new(cfg: &S3Config) -> Result<Self> {
        cfg.validate()?;
        let prefix = match cfg.prefix.as_deref().map(|p| p.trim_matches('/')) {
            None | Some("") => String::new(),
            Some(p) => format!("{}/", Key::parse(p)?),
        };
        let urls = cfg.endpoint_urls();
        let endpoints = if urls.is_empty() {
            None
        } else {
            Some(Arc::new(Endpoints::new(&urls)?))
        };
        let inner = Inner {
            client: client::build(cfg, endpoints.as_ref()).await,
            endpoints,
            bucket: cfg.bucket.clone(),
            prefix,
            part_size: cfg.part_size as usize,
            upload_concurrency: cfg.upload_concurrency,
            read_part_size: cfg.read_part_size,
            read_concurrency: cfg.read_concurrency,
            budget: Arc::new(parts::budget(cfg.buffer_budget)),
            budget_total: cfg.buffer_budget,
            redirect: cfg.redirect.then_some(cfg.redirect_expiry),
            multipart_copy_threshold: cfg.multipart_copy_threshold,
            copy_part_size: cfg.copy_part_size,
        };
        Ok(S3Backend { inner: Arc::new(inner) })
    }

    /// The SDK client, for setup work such as creating the bucket in tests.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

impl Inner {
    fn s3_key(&self, key: &Key) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Deletes `key` without asking whether it is there, best effort (records: a failure is
    /// logged, and the sweep tidies up).
    async fn delete_quietly(&self, key: &Key) {
        if let Err(e) = self.delete(key).await {
            tracing::warn!(%key, error = %e, "could not delete a record");
        }
    }

    /// The ids of the multipart uploads on exactly `s3_key` started before `cutoff`.
    async fn uploads_on(&self, s3_key: &str, cutoff: SystemTime) -> Result<Vec<String>> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(s3_key)
            .send()
            .await
            .map_err(|e| map_err("ListMultipartUploads", s3_key, e))?;
        Ok(out
            .uploads
            .unwrap_or_default()
            .into_iter()
            .filter(|u| u.key.as_deref() == Some(s3_key))
            .filter(|u| {
                u.initiated
                    .and_then(|t| SystemTime::try_from(t).ok())
                    .is_none_or(|t| t < cutoff)
            })
            .filter_map(|u| u.upload_id)
            .collect())
    }

    /// One HEAD of `_health` (absent is fine), on endpoint `forced` when given, without retries
    /// and within `within`; what went wrong otherwise.
    async fn probe_one(&self, forced: Option<usize>, within: std::time::Duration) -> std::result::Result<(), String> {
        use aws_sdk_s3::config::retry::RetryConfig;
        use aws_sdk_s3::config::timeout::TimeoutConfig;
        let once = aws_sdk_s3::config::Builder::default()
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().operation_timeout(within).build());
        let mut request = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(format!("{}_health", self.prefix))
            .customize()
            .config_override(once);
        if let Some(i) = forced {
            request = request.interceptor(endpoints::Force(i));
        }
        match tokio::time::timeout(within, request.send()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if client::is_not_found(&e) => Ok(()),
            Ok(Err(e)) => Err(client::describe(&e)),
            Err(_) => Err(format!("no answer within {within:?}")),
        }
    }

    async fn put_small(&self, s3_key: &str, data: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(s3_key)
            .content_length(data.len() as i64)
            .body(SdkByteStream::from(data))
            .send()
            .await
            .map_err(|e| map_err("PutObject", s3_key, e))?;
        Ok(())
    }

    /// Reads a whole small object (upload state, tails) into memory, with its time.
    async fn get_small(&self, s3_key: &str) -> Result<(Bytes, SystemTime)> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(s3_key)
            .send()
            .await
            .map_err(|e| map_err("GetObject", s3_key, e))?;
        let modified = client::time(out.last_modified.as_ref());
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| backend_err("GetObject body", s3_key, e))?;
        Ok((body.into_bytes(), modified))
    }

    /// One GET of `key` (of `range`); an unsatisfiable range is [`Error::RangeNotSatisfiable`].
    async fn get_object(
        &self,
        key: &Key,
        range: Option<ByteRange>,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput> {
        let s3_key = self.s3_key(key);
        let mut request = self.client.get_object().bucket(&self.bucket).key(&s3_key);
        if let Some(r) = range {
            request = request.range(format!("bytes={r}"));
        }
        match request.send().await {
            Ok(out) => Ok(out),
            Err(e) if range.is_some() && client::is_invalid_range(&e) => {
                let size = self.head(key).await?.size;
                Err(Error::RangeNotSatisfiable { size })
            }
            Err(e) => Err(map_err("GetObject", key.as_str(), e)),
        }
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        let s3_key = self.s3_key(key);
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&s3_key)
            .send()
            .await
            .map_err(|e| map_err("HeadObject", key.as_str(), e))?;
        Ok(ObjectMeta {
            key: key.clone(),
            size: out.content_length.unwrap_or(0).max(0) as u64,
            modified: client::time(out.last_modified.as_ref()),
        })
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let s3_key = self.s3_key(key);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&s3_key)
            .send()
            .await
            .map_err(|e| map_err("DeleteObject", key.as_str(), e))?;
        Ok(())
    }

    /// Server-side copy of `from` (of `size` bytes) to `to`.
    async fn copy_sized(self: &Arc<Self>, from: &Key, size: u64, to: &Key) -> Result<()> {
        let source = client::encode_copy_source(&self.bucket, &self.s3_key(from));
        let dest = self.s3_key(to);
        if size <= self.multipart_copy_threshold {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(&dest)
                .copy_source(&source)
                .send()
                .await
                .map_err(|e| map_err("CopyObject", from.as_str(), e))?;
            return Ok(());
        }
        let part_size = self.copy_part_size.max(size.div_ceil(MAX_PARTS));
        let uploader = PartUploader::create(self.clone(), dest.clone(), true).await?;
        let mut tasks = JoinSet::new();
        let mut parts = Vec::new();
        for (i, start) in (0..size).step_by(part_size as usize).enumerate() {
            if tasks.len() >= self.upload_concurrency {
                parts.push(join_copy_part(&mut tasks, &dest).await?);
            }
            let end = (start + part_size).min(size) - 1;
            let (inner, dest, source, upload_id) = (
                self.clone(),
                dest.clone(),
                source.clone(),
                uploader.upload_id().to_owned(),
            );
            tasks.spawn(async move {
                let number = i as i32 + 1;
                let out = inner
                    .client
                    .upload_part_copy()
                    .bucket(&inner.bucket)
                    .key(&dest)
                    .upload_id(upload_id)
                    .part_number(number)
                    .copy_source(source)
                    .copy_source_range(format!("bytes={start}-{end}"))
                    .send()
                    .await
                    .map_err(|e| map_err("UploadPartCopy", &dest, e))?;
                let etag = out
                    .copy_part_result
                    .and_then(|r| r.e_tag)
                    .ok_or_else(|| backend_err("UploadPartCopy", &dest, std::io::Error::other("no ETag")))?;
                Ok(Part {
                    number,
                    etag,
                    size: end + 1 - start,
                })
            });
        }
        while !tasks.is_empty() {
            parts.push(join_copy_part(&mut tasks, &dest).await?);
        }
        parts.sort_by_key(|p| p.number);
        uploader.complete(&parts).await
    }
}

async fn join_copy_part(tasks: &mut JoinSet<Result<Part>>, key: &str) -> Result<Part> {
    let joined = tasks.join_next().await.expect("caller checked that tasks are pending");
    joined.map_err(|e| backend_err("UploadPartCopy", key, e))?
}

#[async_trait]
impl Backend for S3Backend {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn min_append_size(&self) -> Option<u64> {
        Some(parts::MIN_PART)
    }

    async fn put(&self, key: &Key, mut data: ByteStream) -> Result<ObjectMeta> {
        let inner = &self.inner;
        let s3_key = inner.s3_key(key);
        let mut buffer = PartBuffer::new(inner.part_size, inner.budget.clone());
        let mut multipart: Option<(PartUploader, i32)> = None;
        let mut size = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk?; // dropping `multipart` aborts the upload
            size += chunk.len() as u64;
            for part in buffer.push(&chunk).await? {
                let (uploader, next) = match &mut multipart {
                    Some(m) => m,
                    None => multipart.insert((PartUploader::create(inner.clone(), s3_key.clone(), true).await?, 1)),
                };
                uploader.upload(*next, part).await?;
                *next += 1;
            }
        }
        let rest = buffer.rest();
        match multipart {
            None => inner.put_small(&s3_key, rest.bytes).await?,
            Some((mut uploader, next)) => {
                if !rest.bytes.is_empty() {
                    uploader.upload(next, rest).await?;
                }
                let parts = uploader.wait().await?;
                uploader.complete(&parts).await?;
            }
        }
        Ok(ObjectMeta {
            key: key.clone(),
            size,
            modified: SystemTime::now(),
        })
    }

    async fn get(&self, key: &Key, range: Option<ByteRange>) -> Result<GetResult> {
        let inner = &self.inner;
        // S3 servers disagree on suffix ranges of tiny objects; resolve them against the size.
        let range = match range {
            Some(r @ ByteRange::Suffix { .. }) => {
                let size = inner.head(key).await?.size;
                let resolved = r.resolve(size)?;
                Some(ByteRange::From { first: resolved.start })
            }
            other => other,
        };
        // Read in parts when there may be more than one: the first request asks for one part.
        let part = inner.read_part_size;
        let first = match range {
            _ if inner.read_concurrency < 2 => range,
            None => Some(ByteRange::Inclusive {
                first: 0,
                last: part - 1,
            }),
            Some(ByteRange::From { first }) => Some(ByteRange::Inclusive {
                first,
                last: first.saturating_add(part - 1),
            }),
            Some(ByteRange::Inclusive { first, last }) => Some(ByteRange::Inclusive {
                first,
                last: last.min(first.saturating_add(part - 1)),
            }),
            Some(ByteRange::Suffix { .. }) => range,
        };
        let out = match inner.get_object(key, first).await {
            // An empty object has no first part.
            Err(Error::RangeNotSatisfiable { size: 0 }) if range.is_none() => inner.get_object(key, None).await?,
            other => other?,
        };
        let length = out.content_length.unwrap_or(0).max(0) as u64;
        let (got, size) = match (first, out.content_range.as_deref()) {
            (Some(_), Some(cr)) => client::parse_content_range(cr).ok_or_else(|| {
                backend_err(
                    "GetObject",
                    key.as_str(),
                    std::io::Error::other(format!("bad Content-Range {cr:?}")),
                )
            })?,
            _ => (0..length, length),
        };
        let wanted_end = match range {
            Some(ByteRange::Inclusive { last, .. }) => size.min(last.saturating_add(1)),
            _ if first.is_some() && out.content_range.is_some() => size,
            _ => got.end,
        };
        let meta = ObjectMeta {
            key: key.clone(),
            size,
            modified: client::time(out.last_modified.as_ref()),
        };
        let first_body = client::body_stream(out.body, key.to_string());
        let body = if got.end < wanted_end {
            read::Ranges::body(inner.clone(), key.clone(), out.e_tag, first_body, got.end..wanted_end)
        } else {
            first_body
        };
        Ok(GetResult {
            meta,
            range: got.start..wanted_end,
            body,
        })
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        self.inner.head(key).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        // S3 deletes succeed whether or not the key exists; the contract wants NotFound.
        self.inner.head(key).await?;
        self.inner.delete(key).await
    }

    fn list(&self, prefix: &Key, start_after: Option<&Key>) -> ListStream {
        struct Page {
            token: Option<String>,
            done: bool,
        }
        let inner = self.inner.clone();
        let s3_prefix = format!("{}/", inner.s3_key(prefix));
        let start_after = start_after.map(|k| inner.s3_key(k));
        let pages = futures::stream::try_unfold(
            Page {
                token: None,
                done: false,
            },
            move |page| {
                let (inner, s3_prefix, start_after) = (inner.clone(), s3_prefix.clone(), start_after.clone());
                async move {
                    if page.done {
                        return Ok(None);
                    }
                    let out = inner
                        .client
                        .list_objects_v2()
                        .bucket(&inner.bucket)
                        .prefix(&s3_prefix)
                        .set_start_after(start_after)
                        .set_continuation_token(page.token)
                        .send()
                        .await
                        .map_err(|e| map_err("ListObjectsV2", &s3_prefix, e))?;
                    let items: Vec<Result<ObjectMeta>> = out
                        .contents
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|obj| {
                            // Objects whose names are not our keys are foreign; skip them.
                            let key = Key::parse(obj.key?.strip_prefix(&inner.prefix)?).ok()?;
                            let size = obj.size.unwrap_or(0).max(0) as u64;
                            Some(Ok(ObjectMeta {
                                key,
                                size,
                                modified: client::time(obj.last_modified.as_ref()),
                            }))
                        })
                        .collect();
                    let token = out.next_continuation_token.filter(|_| out.is_truncated == Some(true));
                    let done = token.is_none();
                    Ok(Some((futures::stream::iter(items), Page { token, done })))
                }
            },
        );
        Box::pin(pages.try_flatten())
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        let size = self.inner.head(from).await?.size;
        self.inner.copy_sized(from, size, to).await
    }

    async fn upload_create(&self, home: &Key) -> Result<UploadStatus> {
        upload::create(&self.inner, home).await
    }

    async fn upload_status(&self, home: &Key) -> Result<UploadStatus> {
        upload::status(&self.inner, home).await
    }

    async fn upload_append(
        &self,
        home: &Key,
        offset: u64,
        data: ByteStream,
        checkpoint: Checkpoint,
    ) -> Result<UploadStatus> {
        upload::append(&self.inner, home, offset, data, checkpoint).await
    }

    async fn upload_complete(&self, home: &Key, to: &Key) -> Result<ObjectMeta> {
        upload::complete(&self.inner, home, to).await
    }

    async fn upload_abort(&self, home: &Key) -> Result<()> {
        upload::abort(&self.inner, home).await
    }

    async fn remove(&self, key: &Key) -> Result<()> {
        self.inner.delete(key).await
    }

    async fn presigned_get(&self, key: &Key) -> Result<Option<String>> {
        let Some(expires) = self.inner.redirect else {
            return Ok(None);
        };
        let s3_key = self.inner.s3_key(key);
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
            .map_err(|e| backend_err("presign GetObject", &s3_key, e))?;
        let request = self
            .inner
            .client
            .get_object()
            .bucket(&self.inner.bucket)
            .key(&s3_key)
            .presigned(config)
            .await
            .map_err(|e| map_err("presign GetObject", &s3_key, e))?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn upload_append_after(&self, home: &Key, prepare: crate::backend::Prepare) -> Result<UploadStatus> {
        upload::append_after(&self.inner, home, prepare).await
    }

    /// Lists the prefix and deletes what it found with `DeleteObjects`, up to 1000 keys a
    /// request.
    async fn delete_prefix(&self, prefix: &Key) -> Result<u64> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let inner = &self.inner;
        let keys: Vec<String> = self
            .list(prefix, None)
            .map(|m| m.map(|m| inner.s3_key(&m.key)))
            .try_collect()
            .await?;
        for batch in keys.chunks(1000) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| backend_err("DeleteObjects", prefix.as_str(), e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| backend_err("DeleteObjects", prefix.as_str(), e))?;
            let out = inner
                .client
                .delete_objects()
                .bucket(&inner.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| map_err("DeleteObjects", prefix.as_str(), e))?;
            if let Some(failed) = out.errors.as_ref().and_then(|e| e.first()) {
                let why = format!(
                    "{}: {}",
                    failed.key.as_deref().unwrap_or_default(),
                    failed.message.as_deref().unwrap_or_default()
                );
                return Err(backend_err(
                    "DeleteObjects",
                    prefix.as_str(),
                    std::io::Error::other(why),
                ));
            }
        }
        Ok(keys.len() as u64)
    }

    async fn sweep(&self, cutoff: SystemTime) -> Result<u64> {
        parts::sweep(&self.inner, self, cutoff).await
    }

    /// HEADs `_health` on every endpoint at once (no retries, within `within` each) and records
    /// which answer; fails when none does.
    async fn probe(&self, within: std::time::Duration) -> Result<()> {
        let Some(endpoints) = &self.inner.endpoints else {
            return match self.inner.probe_one(None, within).await {
                Ok(()) => Ok(()),
                Err(reason) => Err(Error::Unavailable { backend: "s3", reason }),
            };
        };
        let results =
            futures::future::join_all((0..endpoints.len()).map(|i| self.inner.probe_one(Some(i), within))).await;
        let mut reasons = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            endpoints.probe_result(i, result.is_ok());
            if let Err(reason) = result {
                reasons.push(format!("{}: {reason}", endpoints.url(i)));
            }
        }
        if reasons.len() < endpoints.len() {
            Ok(())
        } else {
            Err(Error::Unavailable {
                backend: "s3",
                reason: reasons.join("; "),
            })
        }
    }
}
