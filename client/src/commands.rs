//! The operations behind each `strata` command, as library calls that return data (the binary
//! prints it). A [`Context`] holds what every command needs: the local store, registry options
//! and credentials.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::auth::{Credentials, DockerConfig};
use crate::error::{ClientError, Result};
use crate::reference::Reference;
use crate::registry::{ClientOptions, RegistryClient};
use crate::transfer::{self, Endpoint, Options, Report};
use strata_storage::oci::layout::OciLayout;

/// Shared state of one `strata` invocation.
#[derive(Debug)]
pub struct Context {
    /// `STRATA_HOME` (default `~/.local/share/strata`).
    pub home: PathBuf,
    /// How to reach registries.
    pub client_options: ClientOptions,
    /// Where docker credentials live.
    pub docker_config: PathBuf,
    /// Mirrors from the settings file, tried after those in `client_options`.
    pub mirrors: Vec<crate::settings::Mirror>,
    clients: Mutex<HashMap<String, Arc<RegistryClient>>>,
}

/// What `strata inspect` found.
#[derive(Debug, Clone)]
pub enum Inspection {
    /// The manifest's bytes, exactly as stored.
    Raw(bytes::Bytes),
    /// A summary or the config.
    Json(Value),
}

/// Where an image is: a registry, an OCI layout directory, or a docker-archive tarball.
#[derive(Debug, Clone)]
pub enum Target {
    /// `[registry/]repo[:tag][@digest]`.
    Registry(Reference),
    /// `oci:DIR[:NAME]`.
    Layout(PathBuf, Option<String>),
    /// `docker-archive:FILE[:REF]`.
    DockerArchive(PathBuf, Option<String>),
}

impl Target {
    /// Parses a command-line image argument.
    pub fn parse(value: &str) -> Result<Self> {
        if let Some(rest) = value.strip_prefix("oci:") {
            let (dir, name) = match rest.split_once(':') {
                Some((d, n)) => (d, Some(n.to_owned())),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(ClientError::Usage(format!("{value:?}: oci: needs a directory")));
            }
            return Ok(Target::Layout(PathBuf::from(dir), name));
        }
        if let Some(rest) = value.strip_prefix("docker-archive:") {
            let (file, name) = match rest.split_once(':') {
                Some((f, n)) => (f, Some(n.to_owned())),
                None => (rest, None),
            };
            return Ok(Target::DockerArchive(PathBuf::from(file), name));
        }
        Ok(Target::Registry(Reference::parse(value)?))
    }
}

impl Context {
    /// A context over `home`, reading credentials from `docker_config`.
    pub fn new(home: PathBuf, client_options: ClientOptions, docker_config: PathBuf) -> Self {
        Context {
            home,
            client_options,
            docker_config,
            mirrors: Vec::new(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The same context with mirrors from the settings file.
    #[must_use]
    pub fn with_mirrors(mut self, mirrors: Vec<crate::settings::Mirror>) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// The local image store (an OCI layout in `STRATA_HOME/store`).
    pub fn store(&self) -> Result<OciLayout> {
        Ok(OciLayout::open(&self.home.join("store"))?)
    }

    /// The journal of unfinished pushes (`STRATA_HOME/uploads`).
    pub fn journal(&self) -> transfer::Journal {
        transfer::Journal::new(self.home.join("uploads"))
    }

    /// A client for `registry`, with the credentials docker's config has for it.
    pub async fn client(&self, registry: &str) -> Result<Arc<RegistryClient>> {
        if let Some(c) = self.clients.lock().expect("clients").get(registry) {
            return Ok(c.clone());
        }
        let creds = DockerConfig::load(&self.docker_config)?.credentials(registry).await?;
        let client = Arc::new(RegistryClient::new(registry, creds, self.client_options.clone())?);
        client.detect_scheme().await;
        self.clients
            .lock()
            .expect("clients")
            .insert(registry.to_owned(), client.clone());
        Ok(client)
    }

    /// Clients for the configured mirrors, each asking for `registry`'s content (`?ns=`), in
    /// order of preference: those given in `client_options`, then the settings file's that
    /// serve `registry`.
    pub async fn mirror_clients(&self, registry: &str) -> Result<Vec<Arc<RegistryClient>>> {
        let mut clients = Vec::new();
        let configured = self.mirrors.iter().filter(|m| m.serves(registry)).map(|m| &m.url);
        for mirror in self.client_options.mirrors.iter().chain(configured) {
            let key = format!("mirror {mirror} for {registry}");
            if let Some(c) = self.clients.lock().expect("clients").get(&key) {
                clients.push(c.clone());
                continue;
            }
            let (plain, host) = match mirror.split_once("://") {
                Some(("http", host)) => (true, host),
                Some(("https", host)) => (false, host),
                Some((scheme, _)) => {
                    return Err(ClientError::Usage(format!(
                        "mirror {mirror:?}: scheme {scheme} is not http or https"
                    )));
                }
                None => (false, mirror.as_str()),
            };
            let host = host.trim_end_matches('/');
            let mut options = self.client_options.clone();
            options.plain_http |= plain;
            let creds = DockerConfig::load(&self.docker_config)?.credentials(host).await?;
            let client = Arc::new(RegistryClient::new(host, creds, options)?.for_namespace(registry));
            client.detect_scheme().await;
            self.clients.lock().expect("clients").insert(key, client.clone());
            clients.push(client);
        }
        Ok(clients)
    }

    async fn endpoint(&self, target: &Target) -> Result<Endpoint> {
        match target {
            Target::Registry(reference) => Ok(Endpoint::Registry {
                client: self.client(&reference.registry).await?,
                reference: reference.clone(),
            }),
            Target::Layout(dir, name) => Ok(Endpoint::Layout {
                layout: OciLayout::open(dir)?,
                name: name.clone(),
            }),
            Target::DockerArchive(..) => Err(ClientError::Usage(
                "docker-archive: is read and written through a scratch layout; this is a bug".into(),
            )),
        }
    }

    /// A scratch OCI layout under `STRATA_HOME/tmp`, removed when dropped.
    fn scratch(&self) -> Result<Scratch> {
        let dir = self.home.join("tmp").join(uuid_like());
        let layout = OciLayout::open(&dir)?;
        Ok(Scratch { dir, layout })
    }

    /// The endpoint to read `target` from; a docker-archive is imported into `scratch` first.
    async fn source(&self, target: &Target, scratch: &mut Option<Scratch>) -> Result<Endpoint> {
        let Target::DockerArchive(file, wanted) = target else {
            return self.endpoint(target).await;
        };
        let tmp = scratch.insert(self.scratch()?);
        crate::archive::import(file, wanted.as_deref(), &tmp.layout, ARCHIVE_NAME).await?;
        Ok(Endpoint::Layout {
            layout: tmp.layout.clone(),
            name: Some(ARCHIVE_NAME.into()),
        })
    }

    /// `strata pull --no-unpack`: an image from a registry into the local store, named by its
    /// full reference.
    pub async fn download(&self, image: &Reference, options: &Options) -> Result<Report> {
        let dst = Endpoint::Layout {
            layout: self.store()?,
            name: Some(image.to_string()),
        };
        self.copy_from_mirrors(image, &dst, options).await
    }

    /// `strata pull`: an image from a registry into the local store, its layers unpacked into
    /// the layer store. The name is recorded only once both are complete, so a pull that fails
    /// (or is killed) leaves no half-usable image behind; what it downloaded stays for the next
    /// try.
    #[cfg(feature = "runtime")]
    pub async fn pull(&self, image: &Reference, options: &Options) -> Result<Report> {
        Ok(self.pull_image(image, options).await?.0)
    }

    /// Copies `image` into `dest` through the first configured mirror that serves it, else
    /// from its registry.
    async fn copy_from_mirrors(&self, image: &Reference, dest: &Endpoint, options: &Options) -> Result<Report> {
        for mirror in self.mirror_clients(&image.registry).await? {
            let src = Endpoint::Registry {
                client: mirror.clone(),
                reference: image.clone(),
            };
            match transfer::copy(&src, dest, options).await {
                Ok(report) => return Ok(report),
                Err(e) => {
                    tracing::warn!(mirror = mirror.host(), error = %e.chain(), "the mirror failed; trying the next, then the registry");
                }
            }
        }
        let src = self.endpoint(&Target::Registry(image.clone())).await?;
        transfer::copy(&src, dest, options).await
    }

    /// [`Context::pull`], also returning the image it unpacked (manifest and config as read).
    #[cfg(feature = "runtime")]
    pub async fn pull_image(
        &self,
        image: &Reference,
        options: &Options,
    ) -> Result<(Report, strata_runtime::image::LocalImage)> {
        use strata_runtime::image;
        let store = self.store()?;
        let _lease = store.lease().await?;
        let unnamed = Endpoint::Layout {
            layout: store.clone(),
            name: None,
        };
        let report = self.copy_from_mirrors(image, &unnamed, options).await?;
        let digest = strata_storage::digest::parse_digest(&report.digest)?;
        let bytes = store
            .read_blob(&digest, strata_storage::oci::layout::MAX_SMALL_BLOB)
            .await?;
        let size = bytes.len();
        let name = image.to_string();
        let chosen = image::select(
            &store,
            &name,
            bytes,
            report.media_type.clone(),
            digest.clone(),
            &options.wanted(),
        )
        .await?;
        image::unpack_image(&store, &self.layers()?, &name, &chosen).await?;
        store.set_ref(
            &name,
            &strata_storage::oci::Descriptor::new(&report.media_type, digest, size as u64),
        )?;
        Ok((report, chosen))
    }

    /// `strata push IMAGE [DEST]`: an image from the local store to a registry.
    pub async fn push(&self, image: &Reference, dest: Option<&Reference>, options: &Options) -> Result<Report> {
        let store = self.store()?;
        if store.find(&image.to_string())?.is_none() {
            return Err(ClientError::NotFound(format!(
                "{image} is not in the local store (strata images lists it)"
            )));
        }
        let src = Endpoint::Layout {
            layout: store,
            name: Some(image.to_string()),
        };
        let dst = self.endpoint(&Target::Registry(dest.unwrap_or(image).clone())).await?;
        transfer::copy(&src, &dst, options).await
    }

    /// `strata copy SRC DST`. A docker-archive source is imported into a scratch layout first; a
    /// docker-archive destination is written from one (it holds a single image, so pick one
    /// platform).
    pub async fn copy(&self, src: &Target, dst: &Target, options: &Options) -> Result<Report> {
        let mut src_scratch = None;
        let source = self.source(src, &mut src_scratch).await?;
        let Target::DockerArchive(file, repo_tag) = dst else {
            let dst = self.endpoint(dst).await?;
            return transfer::copy(&source, &dst, options).await;
        };
        let tmp = self.scratch()?;
        let staging = Endpoint::Layout {
            layout: tmp.layout.clone(),
            name: Some(ARCHIVE_NAME.into()),
        };
        let report = transfer::copy(&source, &staging, options).await?;
        let repo_tag = match (repo_tag, src) {
            (Some(t), _) => Some(t.clone()),
            (None, Target::Registry(r)) => Some(r.to_string()),
            (None, _) => None,
        };
        crate::archive::export(&tmp.layout, ARCHIVE_NAME, file, repo_tag.as_deref()).await?;
        Ok(report)
    }

    /// `strata inspect`: the manifest as stored (`raw`), the config (`config`), or a summary.
    pub async fn inspect(&self, target: &Target, raw: bool, config: bool) -> Result<Inspection> {
        let mut scratch = None;
        let endpoint = self.source(target, &mut scratch).await?;
        let (bytes, media_type, digest) = transfer::resolve(&endpoint).await?;
        if raw {
            return Ok(Inspection::Raw(bytes));
        }
        let manifest: Value =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("manifest does not parse: {e}")))?;
        let config_digest = manifest
            .get("config")
            .and_then(|c| c.get("digest"))
            .and_then(Value::as_str);
        let config_value = match config_digest {
            Some(d) => {
                let d = strata_storage::digest::parse_digest(d)?;
                let bytes = transfer::read_small_blob(&endpoint, &d).await?;
                Some(
                    serde_json::from_slice::<Value>(&bytes)
                        .map_err(|e| invalid(format!("config does not parse: {e}")))?,
                )
            }
            None => None,
        };
        if config {
            return config_value
                .map(Inspection::Json)
                .ok_or_else(|| ClientError::Usage("an index has no config; pick a platform".into()));
        }
        let mut summary = json!({ "digest": digest.to_string(), "mediaType": media_type });
        if let Some(layers) = manifest.get("layers").and_then(Value::as_array) {
            summary["layers"] = layers.iter().filter_map(|l| l.get("digest").cloned()).collect();
            summary["size"] = json!(
                layers
                    .iter()
                    .filter_map(|l| l.get("size").and_then(Value::as_u64))
                    .sum::<u64>()
            );
        }
        if let Some(manifests) = manifest.get("manifests").and_then(Value::as_array) {
            summary["manifests"] = manifests
                .iter()
                .map(|m| json!({ "digest": m.get("digest"), "platform": m.get("platform") }))
                .collect();
        }
        if let Some(c) = config_value {
            for key in ["os", "architecture", "os.version", "created", "author"] {
                if let Some(v) = c.get(key) {
                    summary[key] = v.clone();
                }
            }
            if let Some(history) = c.get("history") {
                summary["history"] = history.clone();
            }
        }
        Ok(Inspection::Json(summary))
    }

    /// The local store as an inspect target for image `name`, if it holds it.
    pub fn local_target(&self, name: &str) -> Result<Option<Target>> {
        let name = local_name(name);
        Ok(self
            .store()?
            .find(&name)?
            .map(|_| Target::Layout(self.home.join("store"), Some(name))))
    }

    /// `strata tags REPO`.
    pub async fn tags(&self, repo: &Reference) -> Result<Vec<String>> {
        Ok(self.client(&repo.registry).await?.tags(&repo.repository).await?)
    }

    /// `strata catalog REGISTRY`.
    pub async fn catalog(&self, registry: &str) -> Result<Vec<String>> {
        Ok(self.client(registry).await?.catalog().await?)
    }

    /// `strata delete IMAGE`: deletes the manifest the reference names (by digest).
    pub async fn delete(&self, image: &Reference) -> Result<String> {
        let client = self.client(&image.registry).await?;
        let digest = match &image.digest {
            Some(d) => d.clone(),
            None => {
                let reference = image.manifest_reference();
                let (digest, _, _) = client
                    .head_manifest(&image.repository, &reference)
                    .await?
                    .ok_or_else(|| ClientError::NotFound(image.to_string()))?;
                digest
            }
        };
        client.delete_manifest(&image.repository, digest.as_ref()).await?;
        Ok(digest.to_string())
    }

    /// `strata tag SRC DST`: tags an image on its registry without moving blobs.
    pub async fn tag(&self, src: &Reference, dst: &Reference) -> Result<String> {
        if src.registry != dst.registry || src.repository != dst.repository {
            return Err(ClientError::Usage(
                "strata tag works within one repository; use strata copy".into(),
            ));
        }
        let tag = dst
            .tag
            .as_ref()
            .ok_or_else(|| ClientError::Usage(format!("{dst} has no tag")))?;
        let client = self.client(&src.registry).await?;
        let manifest = client.manifest(&src.repository, &src.manifest_reference()).await?;
        client
            .put_manifest(&src.repository, tag.as_str(), &manifest.media_type, manifest.bytes)
            .await?;
        Ok(manifest.digest.to_string())
    }

    /// `strata images`: the local store's named images.
    pub fn images(&self) -> Result<Vec<Value>> {
        Ok(self
            .store()?
            .refs()?
            .into_iter()
            .map(|(name, d)| json!({ "name": name, "digest": d.digest.to_string(), "mediaType": d.media_type, "size": d.size }))
            .collect())
    }

    /// `strata rmi IMAGE`: removes a name from the local store (and the layer store), then every
    /// blob and layer nothing needs. Refused while a container uses the image.
    pub async fn rmi(&self, image: &str) -> Result<u64> {
        let store = self.store()?;
        let exclusive = store.exclusive().await?;
        let name = local_name(image);
        #[cfg(feature = "runtime")]
        self.refuse_if_used(&name)?;
        let in_store = store.remove_ref(&name)?.is_some();
        #[cfg(feature = "runtime")]
        let unpacked = self.forget_unpacked(&name).await?;
        #[cfg(not(feature = "runtime"))]
        let unpacked = false;
        if !in_store && !unpacked {
            return Err(ClientError::NotFound(format!("{name} in the local store")));
        }
        let freed = store.prune(&exclusive).await?;
        #[cfg(feature = "runtime")]
        self.gc_layers().await?;
        Ok(freed)
    }

    /// `strata prune`: blobs and layers no image uses. Returns (blobs, layers) removed.
    pub async fn prune(&self) -> Result<(u64, usize)> {
        let store = self.store()?;
        let blobs = store.prune(&store.exclusive().await?).await?;
        #[cfg(feature = "runtime")]
        let layers = self.gc_layers().await?;
        #[cfg(not(feature = "runtime"))]
        let layers = 0;
        Ok((blobs, layers))
    }

    /// `strata login`: checks the credentials against the registry, then stores them.
    pub async fn login(&self, registry: &str, creds: Credentials) -> Result<()> {
        let client = RegistryClient::new(registry, Some(creds.clone()), self.client_options.clone())?;
        client.detect_scheme().await;
        client.ping().await?;
        let mut config = DockerConfig::load(&self.docker_config)?;
        config.store(registry, &creds).await?;
        config.save()
    }

    /// `strata logout`.
    pub async fn logout(&self, registry: &str) -> Result<bool> {
        let mut config = DockerConfig::load(&self.docker_config)?;
        let found = config.erase(registry).await?;
        config.save()?;
        Ok(found)
    }
}

/// A document that is not what the image model says it is.
fn invalid(message: String) -> ClientError {
    ClientError::Image(strata_storage::oci::OciError::Invalid(message))
}

/// The name an image has in the local stores: a reference normalized (`busybox` is
/// `docker.io/library/busybox:latest`), anything else as given.
pub fn local_name(image: &str) -> String {
    Reference::parse(image)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| image.to_owned())
}

/// The name an archive's image gets in a scratch layout.
const ARCHIVE_NAME: &str = "archive";

/// A scratch layout directory, removed on drop.
#[derive(Debug)]
struct Scratch {
    dir: PathBuf,
    layout: OciLayout,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A name unique enough for a scratch directory.
fn uuid_like() -> String {
    format!("{}-{:016x}", std::process::id(), rand::random::<u64>())
}

/// The default `STRATA_HOME`: `$STRATA_HOME`, else `$XDG_DATA_HOME/strata`, else
/// `~/.local/share/strata`.
pub fn default_home(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(h) = env("STRATA_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = env("XDG_DATA_HOME") {
        return Path::new(&x).join("strata");
    }
    Path::new(&env("HOME").unwrap_or_else(|| "/root".into())).join(".local/share/strata")
}
