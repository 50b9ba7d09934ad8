//! Writing a layout's image as a docker-archive.

use super::*;

/// Writes the image named `name` in `layout` to docker-archive `file`, with `RepoTags`
/// `[repo_tag]` (a docker reference with a tag, written in docker's short form:
/// `docker.io/library/busybox:1` becomes `busybox:1`) or none.
///
/// The image must be an image manifest (OCI or Docker schema 2) whose blobs are all in the
/// layout; an index is a usage error asking for `--platform`. Every blob's digest is checked while
/// it is copied. `file` appears only when complete: the tar is written to a temporary beside it,
/// synced and renamed; on failure the temporary file is removed and `file` is untouched.
pub async fn export(layout: &OciLayout, name: &str, file: &Path, repo_tag: Option<&str>) -> Result<()> {
    let tag = repo_tag.map(RepoTag::parse).transpose()?;
    let descriptor = layout
        .find(name)?
        .ok_or_else(|| ClientError::NotFound(format!("image {name} in {}", layout.root().display())))?;
    let digest = descriptor.digest.clone();
    let bytes = layout.read_blob(&digest, MAX_JSON).await?;
    if is_index(&descriptor.media_type, &bytes) {
        return Err(ClientError::Usage(format!(
            "{name} is an image index (one image per platform); a docker-archive holds one image: \
             choose it with --platform"
        )));
    }
    let manifest = ImageManifest::parse(&bytes, &digest)?;
    if ![OCI_CONFIG, DOCKER_CONFIG].contains(&manifest.config.media_type.as_str()) {
        return Err(ClientError::Usage(format!(
            "{name} is not a container image (its config is {:?})",
            manifest.config.media_type
        )));
    }

    let config = manifest.config.digest.clone();
    let mut members = vec![Member::blob(
        layout,
        &config,
        manifest.config.size,
        format!("{}.json", config.digest()),
    )?];
    let mut layer_paths = Vec::with_capacity(manifest.layers.len());
    for layer in &manifest.layers {
        let digest = layer.digest.clone();
        let path = format!("{}.tar", digest.digest());
        if !layer_paths.contains(&path) {
            members.push(Member::blob(layout, &digest, layer.size, path.clone())?);
        }
        layer_paths.push(path);
    }
    let items = [ManifestItem {
        config: format!("{}.json", config.digest()),
        repo_tags: tag.as_ref().map(|t| vec![format!("{}:{}", t.repository, t.tag)]),
        layers: layer_paths,
    }];
    // manifest.json first, so a reader streaming the archive meets it before the blobs.
    let mut files = vec![Member::bytes(
        "manifest.json",
        serde_json::to_vec(&items).expect("json"),
    )];
    if let Some(tag) = &tag
        && let Some(top) = manifest.layers.last()
    {
        // Docker's legacy index, naming the top layer; docker and skopeo go by manifest.json.
        let top = top.digest.clone();
        let repositories = HashMap::from([(&tag.repository, HashMap::from([(&tag.tag, top.digest())]))]);
        files.push(Member::bytes(
            "repositories",
            serde_json::to_vec(&repositories).expect("json"),
        ));
    }
    files.append(&mut members);

    let file = file.to_owned();
    blocking(move || write_archive(&file, files)).await
}

/// A `RepoTags` entry: repository in docker's short form, and tag.
#[derive(Debug)]
struct RepoTag {
    repository: String,
    tag: String,
}

impl RepoTag {
    fn parse(input: &str) -> Result<Self> {
        let reference = Reference::parse(input)?;
        if reference.digest.is_some() {
            return Err(ClientError::Usage(format!(
                "{input}: a docker-archive names images by tag, not by digest"
            )));
        }
        let path = reference.repository.as_str();
        let repository = match reference.registry.as_str() {
            DOCKER_HUB => path
                .strip_prefix("library/")
                .filter(|p| !p.contains('/'))
                .unwrap_or(path)
                .to_owned(),
            registry => format!("{registry}/{path}"),
        };
        let tag = reference.tag.map_or_else(|| "latest".to_owned(), |t| t.to_string());
        Ok(RepoTag { repository, tag })
    }
}

/// One file of an exported archive.
#[derive(Debug)]
struct Member {
    name: String,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Bytes(Vec<u8>),
    Blob { file: PathBuf, digest: Digest, size: u64 },
}

impl Member {
    fn bytes(name: &str, bytes: Vec<u8>) -> Self {
        Member {
            name: name.to_owned(),
            source: Source::Bytes(bytes),
        }
    }

    fn blob(layout: &OciLayout, digest: &Digest, size: u64, name: String) -> Result<Self> {
        let key = strata_storage::layout::oci_layout_blob(digest)?;
        let file = layout.root().join(key.as_str());
        Ok(Member {
            name,
            source: Source::Blob {
                file,
                digest: digest.clone(),
                size,
            },
        })
    }
}

/// Writes `members` as a tar that replaces `target` once complete (`strata_storage::atomic`).
fn write_archive(target: &Path, members: Vec<Member>) -> Result<()> {
    let context = || format!("write {}", target.display());
    let mut replacement =
        strata_storage::atomic::Replacement::create(target, 0o644).map_err(|e| ClientError::io(context(), e))?;
    write_tar(replacement.file(), target, members)?;
    replacement.commit().map_err(|e| ClientError::io(context(), e))
}

fn write_tar(out: &mut File, target: &Path, members: Vec<Member>) -> Result<()> {
    let context = || format!("write {}", target.display());
    let mut tar = tar::Builder::new(BufWriter::with_capacity(CHUNK, out));
    for member in members {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match member.source {
            Source::Bytes(bytes) => {
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, &member.name, bytes.as_slice())
                    .map_err(|e| ClientError::io(context(), e))?;
            }
            Source::Blob { file, digest, size } => {
                let blob = File::open(&file).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => ClientError::NotFound(format!("blob {digest} at {}", file.display())),
                    _ => ClientError::io(format!("read {}", file.display()), e),
                })?;
                let actual = blob
                    .metadata()
                    .map_err(|e| ClientError::io(format!("stat {}", file.display()), e))?;
                if actual.len() != size {
                    return Err(ClientError::Integrity(format!(
                        "blob {digest} is {} bytes, its manifest says {size}",
                        actual.len()
                    )));
                }
                header.set_size(size);
                let mut hashed = HashingReader {
                    inner: blob.take(size),
                    hasher: Hasher::new(Algorithm::of(&digest)?),
                };
                tar.append_data(&mut header, &member.name, &mut hashed)
                    .map_err(|e| ClientError::io(context(), e))?;
                let found = hashed.hasher.finish();
                if found != digest {
                    return Err(ClientError::Integrity(format!(
                        "blob {digest} in the layout has content {found}"
                    )));
                }
            }
        }
    }
    let out = tar.into_inner().map_err(|e| ClientError::io(context(), e))?;
    out.into_inner()
        .map_err(|e| ClientError::io(context(), e.into_error()))
        .map(drop)
}

/// A reader that hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
