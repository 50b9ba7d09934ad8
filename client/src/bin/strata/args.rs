//! The command line: every verb with the flags that apply to it (and only those, so each
//! command's `--help` is accurate).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use strata_client::ClientError;
use strata_client::commands::Context;
use strata_client::registry::ClientOptions;
use strata_client::transfer::{DEFAULT_CHUNK, Options, Selection};
use strata_runtime::container::RunOptions;
use strata_runtime::container::{Limits, Network, Port, Seccomp, Security};
use strata_storage::oci::PlatformSpec;

/// Pull, push, copy, inspect, list and delete images on any OCI registry; make images from
/// directories and tars; unpack them into a local layer store and run containers from it.
#[derive(Debug, Parser)]
#[command(name = "strata", version)]
pub(crate) struct Cli {
    /// Short for --verbose (before the command: `run -v` mounts a volume).
    #[arg(short = 'v')]
    pub(crate) verbose_short: bool,
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Local store and state directory (default $STRATA_HOME or ~/.local/share/strata).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// Output format for data on stdout.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Print only essential output.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Say what happens to each blob, log requests, and show every cause of an error (`-v`
    /// before the command).
    #[arg(long, global = true)]
    pub(crate) verbose: bool,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Lines for people.
    Text,
    /// JSON.
    Json,
}

/// How to reach registries (commands that talk to one).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct RegistryArgs {
    /// Use plain HTTP for every registry (loopback registries always get it).
    #[arg(long)]
    pub(crate) plain_http: bool,
    /// Accept invalid TLS certificates.
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Certificates for the registry: CA certificates (*.crt) and a client certificate
    /// (*.cert with its *.key), as skopeo's --cert-dir and docker's certs.d hold them.
    #[arg(long, value_name = "DIR")]
    pub(crate) cert_dir: Option<PathBuf>,
    /// A mirror to pull through first (repeatable, in order; `http://host:port` or
    /// `https://host`), asked with `?ns=REGISTRY` as containerd asks; the registry itself when
    /// every mirror fails. Also `STRATA_MIRRORS` (comma-separated).
    #[arg(long = "mirror", value_name = "URL", env = "STRATA_MIRRORS", value_delimiter = ',')]
    pub(crate) mirrors: Vec<String>,
}

impl RegistryArgs {
    pub(crate) fn client_options(&self) -> ClientOptions {
        ClientOptions {
            plain_http: self.plain_http,
            insecure: self.insecure,
            cert_dir: self.cert_dir.clone(),
            mirrors: self.mirrors.clone(),
            ..Default::default()
        }
    }
}

/// Which images of an index to transfer, and how many blobs at once.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct TransferArgs {
    /// Platform to select from an index (repeatable): os/arch[/variant][:os.version] or
    /// os(os.version)/arch. Default: this host's.
    #[arg(long = "platform", value_name = "PLATFORM")]
    pub(crate) platforms: Vec<String>,
    /// Transfer every platform of an index.
    #[arg(long, conflicts_with = "platforms")]
    pub(crate) all_platforms: bool,
    /// Windows host build to select images for (e.g. 10.0.20348.2113).
    #[arg(long, value_name = "VERSION")]
    pub(crate) os_version: Option<String>,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 4)]
    pub(crate) jobs: usize,
}

/// What only applies when the destination is a registry.
#[derive(Debug, Args, Clone)]
pub(crate) struct PushArgs {
    /// Push foreign layers (layers with `urls`, which registries may serve from there) too.
    #[arg(long)]
    pub(crate) include_foreign: bool,
    /// Blobs larger than this are pushed in chunks of this size, resumable by a later run
    /// (bytes, or with a K/M/G/KiB/MiB/GiB suffix).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub(crate) chunk_size: u64,
}

impl Default for PushArgs {
    fn default() -> Self {
        PushArgs {
            include_foreign: false,
            chunk_size: DEFAULT_CHUNK,
        }
    }
}

/// `64MiB`, `8M`, `1048576`.
fn parse_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(digits);
    let n: u64 = n.parse().map_err(|_| format!("{value:?} is not a size"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{value:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(scale)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{value:?} is out of range"))
}

impl TransferArgs {
    /// Transfer options for these flags (and `push`'s, when the destination is a registry).
    pub(crate) fn options(&self, push: &PushArgs, ctx: &Context) -> Result<Options, ClientError> {
        let selection = if self.all_platforms {
            Selection::All
        } else if self.platforms.is_empty() {
            Selection::Platforms(vec![PlatformSpec::host()])
        } else {
            Selection::Platforms(
                self.platforms
                    .iter()
                    .map(|s| PlatformSpec::parse(s))
                    .collect::<Result<_, _>>()?,
            )
        };
        Ok(Options {
            selection,
            os_version: self.os_version.clone(),
            jobs: self.jobs.max(1),
            include_foreign: push.include_foreign,
            chunk_size: push.chunk_size,
            journal: Some(ctx.journal()),
            progress: None,
        })
    }
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Store credentials for a registry in docker's config.json.
    Login {
        /// Registry host[:port].
        registry: String,
        /// User name.
        #[arg(short, long)]
        username: Option<String>,
        /// Password (visible to other users in the process list; prefer --password-stdin).
        #[arg(short, long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// Forget the credentials of a registry.
    Logout {
        /// Registry host[:port].
        registry: String,
    },
    /// Pull an image into the local store and unpack it into the layer store.
    Pull {
        /// Image reference.
        image: String,
        #[command(flatten)]
        transfer: TransferArgs,
        /// Only download: do not unpack the layers.
        #[arg(long)]
        no_unpack: bool,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// Push an image from the local store (to DEST if given).
    Push {
        /// Image in the local store.
        image: String,
        /// Where to push it (default: IMAGE).
        dest: Option<String>,
        #[command(flatten)]
        transfer: TransferArgs,
        #[command(flatten)]
        push: PushArgs,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// Copy an image: registry reference, oci:DIR[:NAME] or docker-archive:FILE[:REF].
    Copy {
        /// Source.
        src: String,
        /// Destination.
        dst: String,
        #[command(flatten)]
        transfer: TransferArgs,
        #[command(flatten)]
        push: PushArgs,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// Make an image from a directory or a layer tar (plain, gzip or zstd), like `docker import`.
    Import {
        /// A directory (its tree becomes the layer) or a layer tar.
        source: PathBuf,
        /// Name of the new image.
        image: String,
        #[command(flatten)]
        make: MakeArgs,
    },
    /// Show a container, or an image's manifest summary, raw manifest or config.
    Inspect {
        /// Container, or image (registry reference, oci:DIR[:NAME], docker-archive:FILE).
        image: String,
        /// Print the manifest exactly as stored (its SHA-256 is the digest).
        #[arg(long, conflicts_with = "config")]
        raw: bool,
        /// Print the image config.
        #[arg(long)]
        config: bool,
        /// Read the image from the local store, not its registry.
        #[arg(short, long)]
        local: bool,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// List the tags of a repository.
    Tags {
        /// Repository ([registry/]name).
        repo: String,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// List the repositories of a registry.
    Catalog {
        /// Registry host[:port].
        registry: String,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// Delete an image (its manifest) from a registry.
    Delete {
        /// Image reference.
        image: String,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// Give an image on a registry another tag.
    Tag {
        /// Existing image.
        src: String,
        /// New reference (same repository).
        dst: String,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// List the images in the local store.
    Images,
    /// Remove an image from the local store (and blobs nothing else uses).
    Rmi {
        /// Image name as `strata images` shows it.
        image: String,
    },
    /// Remove every blob and layer of the local stores that no image uses.
    Prune,
    /// The layer store: layers of unpacked images.
    #[command(subcommand)]
    Layer(LayerCommand),
    /// Run a command in a new container (exit code: the command's).
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// Remove the container when it exits.
        #[arg(long)]
        rm: bool,
        /// Run in the background; print the container id (output: strata logs).
        #[arg(short, long)]
        detach: bool,
        /// Image (pulled if not in the local store).
        image: String,
        /// Command and arguments (default: the image's).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Create a container without starting it; print its id.
    Create {
        #[command(flatten)]
        run: RunArgs,
        /// Image (pulled if not in the local store).
        image: String,
        /// Command and arguments (default: the image's).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Start a created or stopped container (in the background unless -a).
    Start {
        /// Container name or id.
        container: String,
        /// Wait for it, with its output here; exit with its code.
        #[arg(short, long)]
        attach: bool,
        /// With -a: pass stdin on to the container.
        #[arg(short, long, requires = "attach")]
        interactive: bool,
    },
    /// Run a command in a running container (exit code: the command's).
    Exec {
        #[command(flatten)]
        process: ProcessArgs,
        /// Container name or id.
        container: String,
        /// Command and arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Stop a container: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Container name or id.
        container: String,
        /// Seconds to wait before SIGKILL.
        #[arg(short, long, default_value_t = 10)]
        time: u64,
    },
    /// Send a signal to a container's main process.
    Kill {
        /// Container name or id.
        container: String,
        /// Signal name or number.
        #[arg(short, long, default_value = "KILL")]
        signal: String,
    },
    /// List containers (running ones unless -a).
    Ps {
        /// Every container.
        #[arg(short, long)]
        all: bool,
    },
    /// Remove containers.
    Rm {
        /// Kill running ones first.
        #[arg(short, long)]
        force: bool,
        /// Container names or ids.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Print the output of a detached container.
    Logs {
        /// Container name or id.
        container: String,
    },
    /// Make a container's changes a new image (layer and history entry).
    Commit {
        /// Author.
        #[arg(short, long)]
        author: Option<String>,
        /// Commit message.
        #[arg(short, long)]
        message: Option<String>,
        #[command(flatten)]
        changes: ChangeArgs,
        /// Container name or id.
        container: String,
        /// Name of the new image (default: committed/CONTAINER:latest).
        image: Option<String>,
    },
    /// Copy between the host and a container: CONTAINER:PATH HOSTPATH or HOSTPATH CONTAINER:PATH.
    Cp {
        /// Source.
        src: String,
        /// Destination.
        dst: String,
    },
    /// Named volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Read an unpacked image's files: the union of its layers.
    #[command(subcommand)]
    Fs(FsCommand),
    /// Read the registry of Windows images and containers (each hive's base under the delta
    /// hives of the layers above), and edit a Windows container's.
    #[command(subcommand)]
    Reg(RegCommand),
}

impl Command {
    /// How this command reaches registries.
    pub(crate) fn registry_args(&self) -> RegistryArgs {
        match self {
            Command::Login { registry_args, .. }
            | Command::Pull { registry_args, .. }
            | Command::Push { registry_args, .. }
            | Command::Copy { registry_args, .. }
            | Command::Inspect { registry_args, .. }
            | Command::Tags { registry_args, .. }
            | Command::Catalog { registry_args, .. }
            | Command::Delete { registry_args, .. }
            | Command::Tag { registry_args, .. } => registry_args.clone(),
            Command::Run { run, .. } | Command::Create { run, .. } => run.registry_args.clone(),
            _ => RegistryArgs::default(),
        }
    }
}

/// Config defaults a new image gets (`import`, `layer import`, `commit`).
#[derive(Debug, Args, Clone)]
pub(crate) struct ChangeArgs {
    /// Set a config default with a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR,
    /// USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL); repeatable.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub(crate) changes: Vec<String>,
}

/// How a new image is made from a layer (`import`, `layer import`).
#[derive(Debug, Args, Clone)]
pub(crate) struct MakeArgs {
    #[command(flatten)]
    pub(crate) changes: ChangeArgs,
    /// History comment.
    #[arg(short, long)]
    pub(crate) message: Option<String>,
    /// The image the layer goes on top of (default: a new base image).
    #[arg(long)]
    pub(crate) parent: Option<String>,
    /// `linux` or `windows` (default: `windows` when the tar starts with `Files`, `Hives` or
    /// `UtilityVM`, else `linux`).
    #[arg(long)]
    pub(crate) os: Option<String>,
}

/// What a process in a container gets (`run`, `create`, `exec`).
#[derive(Debug, Args, Clone)]
pub(crate) struct ProcessArgs {
    /// Environment variable KEY=VALUE (or KEY: from this environment); repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Working directory in the container.
    #[arg(short, long)]
    pub(crate) workdir: Option<String>,
    /// User (name or uid, optionally :group).
    #[arg(short, long)]
    pub(crate) user: Option<String>,
    /// Pass stdin on to the process (without it the process reads nothing).
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// A pseudo-terminal for the process (its size follows this terminal's; with -i, keys such as
    /// Ctrl-C reach it); piped -i input passes through as it is.
    #[arg(short, long)]
    pub(crate) tty: bool,
}

/// `run` and `create`.
#[derive(Debug, Args, Clone)]
pub(crate) struct RunArgs {
    /// Container name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) process: ProcessArgs,
    /// Replace the image's entrypoint (and with it its default command); "" clears it.
    #[arg(long, value_name = "COMMAND")]
    pub(crate) entrypoint: Option<String>,
    /// A volume NAME:/path[:ro] or a bind mount /host/path:/path[:ro]; repeatable.
    #[arg(short = 'v', long = "volume", value_name = "SOURCE:/PATH[:ro]")]
    pub(crate) volumes: Vec<String>,
    /// Publish a container port on the host: [IP:]HOST:CONTAINER[/udp]; repeatable (the
    /// container then gets a user-mode network from pasta, Debian's passt).
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CONTAINER")]
    pub(crate) publish: Vec<String>,
    /// `none` (loopback only) or `host`.
    #[arg(long, default_value = "none")]
    pub(crate) network: String,
    /// `auto`: a user namespace with host ids of the container's own (its root is not the
    /// host's), or `host`.
    #[arg(long, default_value = "host", value_name = "auto|host")]
    pub(crate) userns: String,
    /// Memory limit (e.g. 256m, 1g).
    #[arg(long, value_parser = strata_client::containers::parse_memory)]
    pub(crate) memory: Option<u64>,
    /// CPUs (e.g. 0.5).
    #[arg(long)]
    pub(crate) cpus: Option<f64>,
    /// Most processes.
    #[arg(long)]
    pub(crate) pids_limit: Option<u64>,
    /// Platform to pull when the image is not in the local store.
    #[arg(long, value_name = "PLATFORM")]
    pub(crate) platform: Option<String>,
    /// Add a capability to the default set (NET_RAW, CAP_SYS_PTRACE, ALL); repeatable.
    #[arg(long = "cap-add", value_name = "CAP")]
    pub(crate) cap_add: Vec<String>,
    /// Remove a capability from the default set (ALL removes every one); repeatable.
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub(crate) cap_drop: Vec<String>,
    /// Every capability, device nodes on the root and volumes, nothing of /proc or /sys hidden.
    #[arg(long)]
    pub(crate) privileged: bool,
    /// `no-new-privileges` (setuid binaries and file capabilities grant nothing) or
    /// `seccomp=unconfined` (no seccomp filter); repeatable.
    #[arg(long = "security-opt", value_name = "OPTION")]
    pub(crate) security_opt: Vec<String>,
    #[command(flatten)]
    pub(crate) registry_args: RegistryArgs,
}

impl RunArgs {
    /// `--cap-add`, `--cap-drop`, `--privileged` and `--security-opt`.
    fn security(&self) -> Result<Security, ClientError> {
        let mut no_new_privileges = false;
        let mut seccomp = Seccomp::Default;
        for option in &self.security_opt {
            match option.as_str() {
                "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => no_new_privileges = true,
                "no-new-privileges=false" | "no-new-privileges:false" => no_new_privileges = false,
                "seccomp=unconfined" | "seccomp:unconfined" => seccomp = Seccomp::Unconfined,
                other if other.starts_with("seccomp=") || other.starts_with("seccomp:") => {
                    seccomp = Seccomp::Profile(read_profile(&other["seccomp=".len()..])?);
                }
                other => {
                    return Err(ClientError::Usage(format!(
                        "--security-opt {other:?}: expected no-new-privileges[=true|false], seccomp=unconfined or seccomp=FILE"
                    )));
                }
            }
        }
        let security = Security {
            privileged: self.privileged,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            no_new_privileges,
            seccomp,
        };
        // Capability names and the profile are checked by the runtime when it creates the
        // container (a usage error, exit 2).
        Ok(security)
    }

    pub(crate) fn options(&self, command: &[String]) -> Result<RunOptions, ClientError> {
        let network = match self.network.as_str() {
            "none" => Network::None,
            "host" => Network::Host,
            other => {
                return Err(ClientError::Usage(format!(
                    "--network {other:?}: expected none or host"
                )));
            }
        };
        if self.cpus.is_some_and(|c| c <= 0.0 || !c.is_finite()) {
            return Err(ClientError::Usage("--cpus must be positive".into()));
        }
        Ok(RunOptions {
            name: self.name.clone(),
            env: self.process.env.clone(),
            workdir: self.process.workdir.clone(),
            user: self.process.user.clone(),
            entrypoint: self.entrypoint.clone(),
            volumes: self.volumes.clone(),
            network,
            limits: Limits {
                memory: self.memory,
                cpus: self.cpus,
                pids: self.pids_limit,
            },
            command: command.to_vec(),
            auto_remove: false,
            stdin: self.process.interactive,
            tty: self.process.tty,
            security: self.security()?,
            userns: self.userns.parse().map_err(ClientError::Usage)?,
            ports: self
                .publish
                .iter()
                .map(|p| Port::parse(p).map_err(ClientError::Usage))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Transfer options for pulling the image.
    pub(crate) fn transfer(&self, ctx: &Context) -> Result<Options, ClientError> {
        let transfer = TransferArgs {
            platforms: self.platform.iter().cloned().collect(),
            jobs: 4,
            ..TransferArgs::default()
        };
        transfer.options(&PushArgs::default(), ctx)
    }
}

/// A seccomp profile file (docker's JSON format), read whole up to a limit.
fn read_profile(path: &str) -> Result<String, ClientError> {
    use std::io::Read;
    let io = |source| ClientError::Io {
        context: format!("read the seccomp profile {path}"),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(strata_runtime::container::MAX_SECCOMP_PROFILE + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > strata_runtime::container::MAX_SECCOMP_PROFILE {
        return Err(ClientError::Usage(format!("seccomp profile {path}: larger than 1 MiB")));
    }
    Ok(text)
}

/// `strata reg`. Keys are written as Windows writes them: `HKLM\SOFTWARE\…`, `HKLM\SYSTEM\…`,
/// `HKLM\SAM`, `HKLM\SECURITY`, `HKU\.DEFAULT\…`.
#[derive(Debug, Subcommand)]
pub(crate) enum RegCommand {
    /// Show a key's values and subkeys, like `reg query`.
    Query {
        /// Unpacked Windows image, or Windows container.
        target: String,
        /// The key.
        key: String,
        /// Every key below it too, with its values.
        #[arg(short = 'r', long)]
        recursive: bool,
        /// The registry as of layer N (0: the base layer alone).
        #[arg(long, value_name = "N")]
        layer: Option<usize>,
    },
    /// Keys and values added, changed and deleted from one image (or container) to another.
    Diff {
        /// The image before.
        a: String,
        /// The image after.
        b: String,
        /// Only at and below this key (default: every hive).
        key: Option<String>,
    },
    /// Set a value in a Windows container's registry, like `reg add /v NAME /t TYPE /d DATA`.
    Set {
        /// The container.
        container: String,
        /// The key (made when missing).
        key: String,
        /// The value's name (`@` for the key's default value).
        name: String,
        /// REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ (strings separated by \0), REG_DWORD,
        /// REG_QWORD (decimal or 0x hex), REG_BINARY (hex bytes), REG_NONE.
        #[arg(value_name = "TYPE")]
        kind: String,
        /// The data.
        data: String,
    },
    /// Delete a key and everything below it from a Windows container's registry, or one value
    /// of it with `/v NAME` (or `--value NAME`).
    Delete {
        /// The container.
        container: String,
        /// The key.
        key: String,
        /// Delete only this value of the key.
        #[arg(long, value_name = "NAME")]
        value: Option<String>,
        /// `/v NAME`, as `reg delete` takes it.
        #[arg(hide = true, num_args = 0..=2, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

/// `strata volume`.
#[derive(Debug, Subcommand)]
pub(crate) enum VolumeCommand {
    /// Create a named volume.
    Create {
        /// Name.
        name: String,
    },
    /// List volumes.
    Ls,
    /// Show a volume.
    Inspect {
        /// Name.
        name: String,
    },
    /// Remove a volume (refused while a container uses it).
    Rm {
        /// Name.
        name: String,
    },
}

/// `strata layer`.
#[derive(Debug, Subcommand)]
pub(crate) enum LayerCommand {
    /// Import a layer tar (plain, gzip or zstd) as an image (the same as `strata import`).
    Import {
        /// The tar file.
        file: PathBuf,
        /// Name of the image it becomes.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        make: MakeArgs,
    },
    /// List the images of the layer store and their layers.
    Ls,
}

/// `strata fs`.
#[derive(Debug, Subcommand)]
pub(crate) enum FsCommand {
    /// List a directory of an image (default /), like `ls -l`.
    Ls {
        /// Image name (as pulled or imported).
        image: String,
        /// Path in the image.
        #[arg(default_value = "/")]
        path: String,
        /// List every entry below PATH.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Write a file of an image to stdout.
    Cat {
        /// Image name (as pulled or imported).
        image: String,
        /// Path in the image.
        path: String,
    },
}
