//! Pushing generated images over HTTP the way every registry accepts them (shared by the
//! benchmark binaries).

use bytes::Bytes;
use strata_storage::digest::sha256;
use strata_storage::testing::conformance::pattern;

pub(crate) use strata_storage::oci::media::OCI_MANIFEST;

/// Monolithic blob push (`POST` then `PUT ?digest=`); returns the digest.
pub(crate) async fn blob(http: &reqwest::Client, base: &str, repo: &str, data: Bytes) -> Result<String, String> {
    let digest = sha256(&data).to_string();
    let started = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let location = started
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| format!("POST answered {}", started.status()))?
        .to_owned();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let put = http
        .put(format!("{url}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if put.status() != 201 {
        return Err(format!("PUT answered {}", put.status()));
    }
    Ok(digest)
}

/// Pushes a config and `layers` layer blobs of `size` bytes made from `seed`, then a manifest
/// naming them at `repo:tag` (by its digest when `tag` is `None`). Returns the layer digests.
pub(crate) async fn image(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: Option<&str>,
    seed: u64,
    layers: usize,
    size: usize,
) -> Result<Vec<String>, String> {
    let config = Bytes::from(format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#));
    let config_len = config.len();
    let config = blob(http, base, repo, config).await?;
    let mut descriptors = Vec::with_capacity(layers);
    let mut digests = Vec::with_capacity(layers);
    for i in 0..layers {
        let layer = pattern(size, seed.wrapping_mul(1024).wrapping_add(i as u64));
        let digest = blob(http, base, repo, layer).await?;
        descriptors.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{size}}}"#
        ));
        digests.push(digest);
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_len}}},"layers":[{}]}}"#,
        descriptors.join(",")
    );
    let reference = match tag {
        Some(tag) => tag.to_owned(),
        None => sha256(manifest.as_bytes()).to_string(),
    };
    let put = http
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if put.status() != 201 {
        return Err(format!("manifest PUT answered {}", put.status()));
    }
    Ok(digests)
}
