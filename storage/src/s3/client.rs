//! Building the aws-sdk-s3 client from [`S3Config`], and mapping SDK errors and bodies to ours.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::DateTime;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::endpoints::{Endpoints, Failover, is_all_down};
use crate::config::S3Config;
use crate::error::Error;
use crate::stream::ByteStream;

/// Builds an S3 client: rustls (ring) HTTPS client, explicit region, endpoint (with
/// `endpoints`, the first, and the [`Failover`] interceptor over all), path style, credentials
/// (static from config, else the standard chain), timeouts and bounded, fast retries.
pub(super) async fn build(cfg: &S3Config, endpoints: Option<&Arc<Endpoints>>) -> Client {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .region(Region::new(cfg.region.clone()));
    if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
        let token = cfg.session_token.as_ref().map(|t| t.expose().to_owned());
        loader = loader.credentials_provider(Credentials::new(id, secret.expose(), token, None, "strata-config"));
    }
    let shared = loader.load().await;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(cfg.connect_timeout)
        .read_timeout(cfg.read_timeout)
        .build();
    let mut builder = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(cfg.path_style)
        .timeout_config(timeouts)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(cfg.max_attempts)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(2)),
        )
        // We verify content by digest ourselves; the newer default (CRC32 trailers on every
        // upload) is not understood by several S3-compatible services.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(endpoints) = endpoints {
        builder = builder
            .endpoint_url(endpoints.url(0))
            .interceptor(Failover(endpoints.clone()));
    }
    Client::from_conf(builder.build())
}

/// Whether an SDK error says the key (or upload) does not exist.
pub(super) fn is_not_found<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    match err.code() {
        Some("NoSuchKey" | "NotFound" | "NoSuchUpload") => true,
        Some(_) => false,
        None => err.raw_response().is_some_and(|r| r.status().as_u16() == 404),
    }
}

/// What an SDK error says, in one line (its code and message, or the transport failure).
pub(super) fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(err: &SdkError<E>) -> String {
    if let Some(code) = err.code() {
        return format!("{code}: {}", err.message().unwrap_or_default());
    }
    if let Some(status) = err.raw_response().map(|r| r.status().as_u16()) {
        return format!("HTTP {status}");
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Whether an SDK error is S3's answer to an unsatisfiable range.
pub(super) fn is_invalid_range<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.code() == Some("InvalidRange") || err.raw_response().is_some_and(|r| r.status().as_u16() == 416)
}

/// Maps an SDK error: not-found becomes [`Error::NotFound`], the rest [`Error::Backend`].
pub(super) fn map_err<E>(op: &'static str, key: &str, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_not_found(&err) {
        return Error::NotFound { key: key.to_owned() };
    }
    if is_all_down(&err) {
        return Error::Unavailable {
            backend: "s3",
            reason: format!("{op} {key} not sent: every endpoint failed its last health probe"),
        };
    }
    backend_err(op, key, err)
}

/// Wraps any error as an [`Error::Backend`] of S3.
pub(super) fn backend_err(op: &'static str, key: &str, err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Backend {
        backend: "s3",
        op,
        key: key.to_owned(),
        source: Box::new(err),
    }
}

/// S3 time to system time (the epoch if S3 sent none or nonsense).
pub(super) fn time(t: Option<&DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// An SDK response body as our stream.
pub(super) fn body_stream(body: aws_sdk_s3::primitives::ByteStream, key: String) -> ByteStream {
    Box::pin(futures::stream::try_unfold((body, key), |(mut body, key)| async move {
        match body.try_next().await {
            Ok(Some(chunk)) => Ok(Some((chunk, (body, key)))),
            Ok(None) => Ok(None),
            Err(e) => Err(backend_err("GetObject body", &key, e)),
        }
    }))
}

/// Percent-encodes an S3 key for `x-amz-copy-source` (everything but unreserved characters and
/// `/`).
pub(super) fn encode_copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 8);
    out.push_str(bucket);
    out.push('/');
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses `bytes a-b/total` into the half-open range and the total.
pub(super) fn parse_content_range(value: &str) -> Option<(std::ops::Range<u64>, u64)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, total): (u64, u64, u64) = (a.parse().ok()?, b.parse().ok()?, total.parse().ok()?);
    (a <= b && b < total).then_some((a..b + 1, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_is_percent_encoded() {
        assert_eq!(encode_copy_source("b", "p/a+b=c@d,e~f"), "b/p/a%2Bb%3Dc%40d%2Ce~f");
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(parse_content_range("bytes 2-5/10"), Some((2..6, 10)));
        assert_eq!(parse_content_range("bytes 5-2/10"), None);
        assert_eq!(parse_content_range("bytes */10"), None);
    }
}
