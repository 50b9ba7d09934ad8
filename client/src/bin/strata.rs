//! `strata`: parse the command line, call the library, print results. Data goes to stdout,
//! messages to stderr. Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 auth, 5 integrity.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use strata_client::auth::{Credentials, DockerConfig};
use strata_client::commands::{Context, Target, default_home, local_name};
use strata_client::containers::{RunOptions, inspect_container, ps_rows};
use strata_client::platform::PlatformSpec;
use strata_client::progress::{Bars, Lines, Progress};
use strata_client::registry::ClientOptions;
use strata_client::transfer::{Options, Report, Selection};
use strata_client::{ClientError, Reference};
use strata_runtime::container::{Limits, Network};

/// Pull, push, copy, inspect, list and delete images on any OCI registry; unpack them into a
/// local layer store and run containers from it.
#[derive(Debug, Parser)]
#[command(name = "strata", version)]
struct Cli {
    /// Short for --verbose (before the command: `run -v` mounts a volume).
    #[arg(short = 'v')]
    verbose_short: bool,
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Local store and state directory (default $STRATA_HOME or ~/.local/share/strata).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Output format for data on stdout.
    #[arg(long, global = true, value_enum, default_value = "text")]
    format: Format,
    /// Print only essential output.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Say what happens to each blob, and log requests (`-v` before the command).
    #[arg(long, global = true)]
    verbose: bool,
    /// Blobs transferred at once.
    #[arg(long, global = true, default_value_t = 4)]
    jobs: usize,
    /// Use plain HTTP for every registry (loopback registries always get it).
    #[arg(long, global = true)]
    plain_http: bool,
    /// Accept invalid TLS certificates.
    #[arg(long, global = true)]
    insecure: bool,
    /// Blobs larger than this are pushed in chunks of this size, resumable by a later run
    /// (bytes, or with a K/M/G/KiB/MiB/GiB suffix).
    #[arg(long, global = true, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    chunk_size: u64,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Args, Clone, Default)]
struct PlatformArgs {
    /// Platform to select from an index (repeatable): os/arch[/variant][:os.version] or
    /// os(os.version)/arch. Default: this host's.
    #[arg(long = "platform", value_name = "PLATFORM")]
    platforms: Vec<String>,
    /// Transfer every platform of an index.
    #[arg(long, conflicts_with = "platforms")]
    all_platforms: bool,
    /// Windows host build to select images for (e.g. 10.0.20348.2113).
    #[arg(long, value_name = "VERSION")]
    os_version: Option<String>,
    /// Push foreign (non-distributable) layers too.
    #[arg(long)]
    include_foreign: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
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
        platform: PlatformArgs,
        /// Only download: do not unpack the layers.
        #[arg(long)]
        no_unpack: bool,
    },
    /// Push an image from the local store (to DEST if given).
    Push {
        /// Image in the local store.
        image: String,
        /// Where to push it (default: IMAGE).
        dest: Option<String>,
        #[command(flatten)]
        platform: PlatformArgs,
    },
    /// Copy an image: registry reference, oci:DIR[:NAME] or docker-archive:FILE[:REF].
    Copy {
        /// Source.
        src: String,
        /// Destination.
        dst: String,
        #[command(flatten)]
        platform: PlatformArgs,
    },
    /// Show a container, or an image's manifest summary, raw manifest or config.
    Inspect {
        /// Container, or image (registry reference, oci:DIR[:NAME], docker-archive:FILE).
        image: String,
        /// Print the manifest exactly as stored.
        #[arg(long, conflicts_with = "config")]
        raw: bool,
        /// Print the image config.
        #[arg(long)]
        config: bool,
        /// Read the image from the local store instead of its registry.
        #[arg(short, long)]
        local: bool,
    },
    /// List the tags of a repository.
    Tags {
        /// Repository ([registry/]name).
        repo: String,
    },
    /// List the repositories of a registry.
    Catalog {
        /// Registry host[:port].
        registry: String,
    },
    /// Delete an image (its manifest) from a registry.
    Delete {
        /// Image reference.
        image: String,
    },
    /// Give an image on a registry another tag.
    Tag {
        /// Existing image.
        src: String,
        /// New reference (same repository).
        dst: String,
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
}

#[derive(Debug, Args, Clone)]
struct RunArgs {
    /// Container name.
    #[arg(long)]
    name: Option<String>,
    /// Environment variable KEY=VALUE (or KEY: from this environment); repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory in the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// User (name or uid, optionally :group).
    #[arg(short, long)]
    user: Option<String>,
    /// A volume NAME:/path[:ro] or a bind mount /host/path:/path[:ro]; repeatable.
    #[arg(short = 'v', long = "volume", value_name = "SOURCE:/PATH[:ro]")]
    volumes: Vec<String>,
    /// `none` (loopback only) or `host`.
    #[arg(long, default_value = "none")]
    network: String,
    /// Memory limit (e.g. 256m, 1g).
    #[arg(long, value_parser = strata_client::containers::parse_memory)]
    memory: Option<u64>,
    /// CPUs (e.g. 0.5).
    #[arg(long)]
    cpus: Option<f64>,
    /// Most processes.
    #[arg(long)]
    pids_limit: Option<u64>,
}

impl RunArgs {
    fn options(&self, command: &[String]) -> Result<RunOptions, ClientError> {
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
            env: self.env.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            volumes: self.volumes.clone(),
            network,
            limits: Limits {
                memory: self.memory,
                cpus: self.cpus,
                pids: self.pids_limit,
            },
            command: command.to_vec(),
            auto_remove: false,
        })
    }
}

#[derive(Debug, Subcommand)]
enum VolumeCommand {
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

#[derive(Debug, Subcommand)]
enum LayerCommand {
    /// Import a layer tar (plain, gzip or zstd) as an image of the layer store.
    Import {
        /// The tar file.
        file: PathBuf,
        /// Name of the image it becomes.
        #[arg(long)]
        name: String,
        /// The image it goes on top of (default: it is a base layer).
        #[arg(long)]
        parent: Option<String>,
        /// `linux` or `windows` (default: `windows` when the tar starts with `Files`, `Hives`
        /// or `UtilityVM`, else `linux`).
        #[arg(long)]
        os: Option<String>,
    },
    /// List the images of the layer store and their layers.
    Ls,
}

#[derive(Debug, Subcommand)]
enum FsCommand {
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

fn transfer_options(p: &PlatformArgs, global: &Global, ctx: &Context, label: &str) -> Result<Options, ClientError> {
    let selection = if p.all_platforms {
        Selection::All
    } else if p.platforms.is_empty() {
        Selection::Platforms(vec![PlatformSpec::host()])
    } else {
        Selection::Platforms(
            p.platforms
                .iter()
                .map(|s| PlatformSpec::parse(s))
                .collect::<Result<_, _>>()?,
        )
    };
    Ok(Options {
        selection,
        os_version: p.os_version.clone(),
        jobs: global.jobs.max(1),
        include_foreign: p.include_foreign,
        chunk_size: global.chunk_size,
        journal: Some(ctx.journal()),
        progress: progress(global, label),
    })
}

/// Bars on a terminal, a summary line every 5 s otherwise, nothing with -q.
fn progress(global: &Global, label: &str) -> Option<Arc<dyn Progress>> {
    if global.quiet {
        None
    } else if std::io::stderr().is_terminal() {
        Some(Arc::new(Bars::default()))
    } else {
        Some(Lines::start(label, Duration::from_secs(5)))
    }
}

fn print_report(global: &Global, what: &str, target: &str, report: &Report) {
    if global.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report).expect("json"));
        return;
    }
    if !global.quiet {
        eprintln!(
            "{what} {target}: {} copied, {} already there, {} mounted, {} foreign skipped ({} bytes)",
            report.blobs_copied, report.blobs_existing, report.blobs_mounted, report.blobs_skipped, report.bytes
        );
    }
    println!("{}", report.digest);
}

fn print_list(global: &Global, items: &[String], key: &str) {
    if global.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ key: items })).expect("json")
        );
    } else {
        for item in items {
            println!("{item}");
        }
    }
}

fn print_value(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("json"));
}

fn reference(value: &str) -> Result<Reference, ClientError> {
    match Target::parse(value)? {
        Target::Registry(r) => Ok(r),
        _ => Err(ClientError::Usage(format!("{value:?}: expected a registry reference"))),
    }
}

/// A registry argument: a host, or a reference whose host is taken.
fn registry_host(value: &str) -> String {
    let trimmed = value
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    match trimmed {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.split('/').next().unwrap_or(other).to_owned(),
    }
}

async fn run(cli: Cli) -> Result<i32, ClientError> {
    let env = |k: &str| std::env::var(k).ok();
    let global = &cli.global;
    let home = global.home.clone().unwrap_or_else(|| default_home(env));
    let client_options = ClientOptions {
        plain_http: global.plain_http,
        insecure: global.insecure,
        ..Default::default()
    };
    let ctx = Context::new(home, client_options, DockerConfig::default_path(env));
    match &cli.command {
        Command::Login {
            registry,
            username,
            password,
            password_stdin,
        } => {
            let username = username
                .clone()
                .ok_or_else(|| ClientError::Usage("login needs -u USER".into()))?;
            let password = match password {
                Some(p) => p.clone(),
                None if *password_stdin => {
                    let mut password = String::new();
                    std::io::stdin()
                        .read_to_string(&mut password)
                        .map_err(|e| ClientError::Other(format!("read stdin: {e}")))?;
                    password.trim_end_matches(['\n', '\r']).to_owned()
                }
                None => {
                    return Err(ClientError::Usage(
                        "give the password on stdin with --password-stdin (or -p)".into(),
                    ));
                }
            };
            let host = registry_host(registry);
            ctx.login(
                &host,
                Credentials {
                    username,
                    secret: password,
                },
            )
            .await?;
            if !global.quiet {
                eprintln!("Login succeeded for {host}");
            }
        }
        Command::Logout { registry } => {
            let host = registry_host(registry);
            if !ctx.logout(&host).await? && !global.quiet {
                eprintln!("not logged in to {host}");
            }
        }
        Command::Pull {
            image,
            platform,
            no_unpack,
        } => {
            let image = reference(image)?;
            let options = transfer_options(platform, global, &ctx, "pull")?;
            let report = if *no_unpack {
                ctx.download(&image, &options).await?
            } else {
                ctx.pull(&image, &options).await?
            };
            print_report(global, "pulled", &image.to_string(), &report);
        }
        Command::Push { image, dest, platform } => {
            let image = reference(image)?;
            let dest = dest.as_deref().map(reference).transpose()?;
            let report = ctx
                .push(
                    &image,
                    dest.as_ref(),
                    &transfer_options(platform, global, &ctx, "push")?,
                )
                .await?;
            print_report(global, "pushed", &dest.unwrap_or(image).to_string(), &report);
        }
        Command::Copy { src, dst, platform } => {
            let report = ctx
                .copy(
                    &Target::parse(src)?,
                    &Target::parse(dst)?,
                    &transfer_options(platform, global, &ctx, "copy")?,
                )
                .await?;
            print_report(global, "copied to", dst, &report);
        }
        Command::Inspect {
            image,
            raw,
            config,
            local,
        } => {
            if *local {
                let target = Target::Layout(ctx.home.join("store"), Some(local_name(image)));
                print_value(&ctx.inspect(&target, *raw, *config).await?);
            } else if let Ok(c) = ctx.containers()?.find(image) {
                print_value(&inspect_container(&c));
            } else {
                print_value(&ctx.inspect(&Target::parse(image)?, *raw, *config).await?);
            }
        }
        Command::Tags { repo } => print_list(global, &ctx.tags(&reference(repo)?).await?, "tags"),
        Command::Catalog { registry } => {
            print_list(global, &ctx.catalog(&registry_host(registry)).await?, "repositories");
        }
        Command::Delete { image } => {
            let digest = ctx.delete(&reference(image)?).await?;
            if !global.quiet {
                eprintln!("deleted {digest}");
            }
        }
        Command::Tag { src, dst } => {
            let digest = ctx.tag(&reference(src)?, &reference(dst)?).await?;
            println!("{digest}");
        }
        Command::Images => {
            let images = ctx.images()?;
            if global.format == Format::Json {
                print_value(&Value::Array(images));
            } else {
                for i in images {
                    println!(
                        "{}\t{}",
                        i["name"].as_str().unwrap_or(""),
                        i["digest"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Command::Prune => {
            let (blobs, layers) = ctx.prune().await?;
            if !global.quiet {
                eprintln!("{blobs} blobs and {layers} layers freed");
            }
        }
        Command::Layer(command) => layer_command(&ctx, global, command).await?,
        Command::Fs(command) => fs_command(&ctx, global, command)?,
        Command::Run {
            run,
            rm,
            detach,
            image,
            command,
        } => {
            let mut options = run.options(command)?;
            options.auto_remove = *rm && *detach;
            let transfer = transfer_options(&PlatformArgs::default(), global, &ctx, "pull")?;
            let container = ctx.create(image, &options, &transfer).await?;
            let result = ctx.start(&container, *detach).await;
            if *detach {
                result?;
                println!("{}", container.config.id);
                return Ok(0);
            }
            if *rm {
                let container = ctx.containers()?.find(&container.config.id)?;
                ctx.remove_container(&container, true).await?;
            }
            return Ok(result?.unwrap_or(0));
        }
        Command::Create { run, image, command } => {
            let options = run.options(command)?;
            let transfer = transfer_options(&PlatformArgs::default(), global, &ctx, "pull")?;
            let container = ctx.create(image, &options, &transfer).await?;
            println!("{}", container.config.id);
        }
        Command::Start { container, attach } => {
            let c = ctx.containers()?.find(container)?;
            if let Some(code) = ctx.start(&c, !attach).await? {
                return Ok(code);
            }
            println!("{}", c.config.name);
        }
        Command::Stop { container, time } => {
            let c = ctx.containers()?.find(container)?;
            ctx.stop(&c, Duration::from_secs(*time)).await?;
            println!("{}", c.config.name);
        }
        Command::Kill { container, signal } => {
            let c = ctx.containers()?.find(container)?;
            ctx.signal(&c, signal)?;
            println!("{}", c.config.name);
        }
        Command::Ps { all } => {
            let list: Vec<_> = ctx
                .containers()?
                .list()?
                .into_iter()
                .filter(|c| *all || c.is_running())
                .collect();
            let rows = ps_rows(&list);
            if global.format == Format::Json {
                print_value(&Value::Array(rows));
            } else {
                println!(
                    "{:<12}  {:<20}  {:<30}  {:<10}  COMMAND",
                    "ID", "NAME", "IMAGE", "STATUS"
                );
                for c in &list {
                    let status = match (c.state.status, c.state.exit_code) {
                        (s, Some(code)) => format!("{s:?}({code})").to_lowercase(),
                        (s, None) => format!("{s:?}").to_lowercase(),
                    };
                    println!(
                        "{:<12}  {:<20}  {:<30}  {:<10}  {}",
                        &c.config.id[..12],
                        c.config.name,
                        c.config.image,
                        status,
                        c.config.process.args.join(" ")
                    );
                }
            }
        }
        Command::Rm { force, containers } => {
            let store = ctx.containers()?;
            for name in containers {
                let c = store.find(name)?;
                ctx.remove_container(&c, *force).await?;
                println!("{name}");
            }
        }
        Command::Logs { container } => {
            let c = ctx.containers()?.find(container)?;
            let mut log = match std::fs::File::open(c.log()) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(ClientError::Other(format!("read the log: {e}"))),
            };
            std::io::copy(&mut log, &mut std::io::stdout().lock())
                .map_err(|e| ClientError::Other(format!("write stdout: {e}")))?;
        }
        Command::Commit {
            author,
            message,
            container,
            image,
        } => {
            let c = ctx.containers()?.find(container)?;
            let target = image
                .clone()
                .unwrap_or_else(|| format!("committed/{}:latest", c.config.name.to_ascii_lowercase()));
            let digest = ctx.commit(&c, &target, author.as_deref(), message.as_deref()).await?;
            println!("{digest}");
        }
        Command::Cp { src, dst } => {
            let store = ctx.containers()?;
            let split = |s: &str| -> Option<(String, String)> {
                let (name, path) = s.split_once(':')?;
                (!name.is_empty() && !name.contains('/')).then(|| (name.to_owned(), path.to_owned()))
            };
            let bytes = match (split(src), split(dst)) {
                (Some((name, path)), None) => ctx.copy_out(&store.find(&name)?, &path, std::path::Path::new(dst))?,
                (None, Some((name, path))) => ctx.copy_in(&store.find(&name)?, std::path::Path::new(src), &path)?,
                _ => {
                    return Err(ClientError::Usage(
                        "cp copies between the host and a container: CONTAINER:PATH HOSTPATH or HOSTPATH CONTAINER:PATH"
                            .into(),
                    ));
                }
            };
            if !global.quiet {
                eprintln!("copied {bytes} bytes");
            }
        }
        Command::Volume(command) => volume_command(&ctx, global, command)?,
        Command::Rmi { image } => {
            let removed = ctx.rmi(image).await?;
            if !global.quiet {
                eprintln!("removed {image} ({removed} blobs freed)");
            }
        }
    }
    Ok(0)
}

async fn layer_command(ctx: &Context, global: &Global, command: &LayerCommand) -> Result<(), ClientError> {
    match command {
        LayerCommand::Import { file, name, parent, os } => {
            if let Some(os) = os.as_deref().filter(|os| !matches!(*os, "linux" | "windows")) {
                return Err(ClientError::Usage(format!("--os {os:?}: expected linux or windows")));
            }
            let image = ctx.layer_import(file, name, os.as_deref(), parent.as_deref()).await?;
            if global.format == Format::Json {
                print_value(&serde_json::to_value(&image).expect("json"));
            } else {
                println!("{}", image.chain.last().map(String::as_str).unwrap_or(""));
            }
        }
        LayerCommand::Ls => {
            let mut images = ctx.layers()?.images()?;
            images.sort_by(|a, b| a.name.cmp(&b.name));
            if global.format == Format::Json {
                print_value(&serde_json::to_value(&images).expect("json"));
            } else {
                for image in images {
                    println!("{}\t{}\t{} layers", image.name, image.os, image.chain.len());
                    for chain_id in &image.chain {
                        println!("  {chain_id}");
                    }
                }
            }
        }
    }
    Ok(())
}

fn fs_command(ctx: &Context, global: &Global, command: &FsCommand) -> Result<(), ClientError> {
    match command {
        FsCommand::Ls { image, path, recursive } => {
            let union = ctx.union(image)?;
            let nodes = if *recursive {
                let prefix = format!("{}/", path.trim_end_matches('/'));
                union
                    .walk()?
                    .into_iter()
                    .filter(|n| n.path.starts_with(&prefix) || prefix == "/")
                    .collect()
            } else {
                union.list(path)?
            };
            if global.format == Format::Json {
                print_value(&serde_json::to_value(&nodes).expect("json"));
                return Ok(());
            }
            for n in nodes {
                let size = match n.device {
                    Some((major, minor)) => format!("{major}, {minor}"),
                    None => n.size.to_string(),
                };
                let name = if *recursive {
                    n.path.clone()
                } else {
                    n.path.rsplit('/').next().unwrap_or("").to_owned()
                };
                let target = n.target.as_ref().map(|t| format!(" -> {t}")).unwrap_or_default();
                println!(
                    "{} {:>5} {:>5} {:>10} {name}{target}",
                    n.mode_string(),
                    n.uid,
                    n.gid,
                    size
                );
            }
        }
        FsCommand::Cat { image, path } => {
            let (_, mut file) = ctx.union(image)?.open_file(path)?;
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut file, &mut out).map_err(|e| ClientError::Other(format!("write stdout: {e}")))?;
        }
    }
    Ok(())
}

fn volume_command(ctx: &Context, global: &Global, command: &VolumeCommand) -> Result<(), ClientError> {
    let volumes = ctx.volumes()?;
    match command {
        VolumeCommand::Create { name } => println!("{}", volumes.create(name)?.name),
        VolumeCommand::Ls => {
            let list = volumes.list()?;
            if global.format == Format::Json {
                print_value(&serde_json::to_value(&list).expect("json"));
            } else {
                for v in list {
                    println!("{}", v.name);
                }
            }
        }
        VolumeCommand::Inspect { name } => print_value(&serde_json::to_value(volumes.get(name)?).expect("json")),
        VolumeCommand::Rm { name } => {
            volumes.remove(name, &ctx.containers()?)?;
            println!("{name}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // The container helper and PID 1 run before anything else (they need a single thread).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() >= 3 && (args[1] == "__init" || args[1] == "__pid1") {
        let dir = PathBuf::from(&args[2]);
        let exit = if args[1] == "__init" {
            strata_runtime::container::init::main(&dir, args.get(3).is_some_and(|a| a == "--detached"))
        } else {
            strata_runtime::container::init::pid1(&dir)
        };
        for message in &exit.messages {
            eprintln!("strata: {message}");
        }
        return ExitCode::from(exit.code.clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    let level = if cli.global.verbose || cli.verbose_short {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("strata: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
