//! `strata-registry`: parse flags, load configuration, set up logging, serve until SIGTERM or
//! SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use strata_registry::{AppState, Config, LogFormat, Overrides};

/// An OCI Distribution registry. With no options it serves 127.0.0.1:5000 with files in
/// ./strata-data.
#[derive(Debug, Parser)]
#[command(name = "strata-registry", version, after_long_help = CONFIG_HELP)]
struct Args {
    /// Configuration file (TOML); see deploy/registry.example.toml. STRATA_* variables override it.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the file and STRATA_LISTEN).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Store data in this directory (filesystem storage; overrides the file and environment).
    #[arg(long, value_name = "DIR", global = true)]
    root: Option<PathBuf>,
    /// Serve a non-loopback address without [auth] (anyone who reaches it can push, overwrite
    /// and delete).
    #[arg(long)]
    insecure_open: bool,
    /// On a start-up error, show every detail (with RUST_BACKTRACE=1, the backtrace too); with
    /// `gc`, one line per repository.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run one garbage-collection cycle against the configured storage (safe beside running
    /// replicas) and print what it freed.
    Gc {
        /// Decide and report, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the registry this configuration describes whether it is live (`/healthz`; with
    /// `--ready`, `/readyz`) and exit 0 if so: a container health check that needs no curl.
    /// Plain HTTP only (with [tls], probe from outside).
    Health {
        /// Ask readiness (storage answers) instead of liveness.
        #[arg(long)]
        ready: bool,
    },
}

/// The configuration file's sections, for `--help`.
const CONFIG_HELP: &str = "\
Configuration (TOML; every key with its default: deploy/registry.example.toml):
  listen, log_format, delete_enabled, upload_purge_age, upload_purge_interval
  [storage]        type = \"fs\" (root) or \"s3\" (bucket, prefix, region, endpoint or endpoints,
                   path_style, access_key_id, secret_access_key, part_size, upload_concurrency,
                   buffer_budget, max_attempts, redirect, redirect_expiry, ...)
  [limits]         max_manifest_bytes, max_blob_bytes, catalog_max_entries, tags_max_entries,
                   buffered_body_bytes, max_manifest_references, max_tags_per_push
  [server]         max_connections, header_read_timeout, idle_timeout, request_timeout,
                   min_body_rate_bytes, body_rate_window, shutdown_timeout, sweep_interval,
                   sweep_age, readiness_interval, reference_cache_ttl
  [foreign_layers] allow, deny, fetch
  [tls]            cert, key, client_ca (mutual TLS: the certificate's CN is the user)
  [auth]           htpasswd (bcrypt), groups, anonymous, realm, max_failed_logins, login_window,
                   admin_users, admin_groups (may use /admin/gc)
  [auth.token]     issuer, service, key (built-in /token) or jwks / certificates (existing issuer),
                   realm, algorithm, ttl, refresh_ttl, leeway
  [[access]]       repositories (globs), users, groups, actions (pull, push, delete)
  [gc]             interval, grace, claim_ttl, lease, delete_untagged
  [[gc.retention]] repositories (globs), keep_last, keep_tags (regex), delete_older_than
Durations are written \"30s\", \"100ms\", \"24h\", \"7days\".
Without [auth] only a loopback address is served, unless --insecure-open.
Environment: STRATA_* overrides the file (STRATA_LISTEN, STRATA_STORAGE_ROOT, ...).
SIGHUP re-reads the TLS files; htpasswd and groups are re-read when they change.";

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,aws=warn,hyper=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let verbose = args.verbose;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strata-registry: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.command {
        Some(Command::Gc { dry_run, json }) => {
            runtime.block_on(collect(args.config, args.root, dry_run, json, verbose))
        }
        Some(Command::Health { ready }) => health(args.config.as_deref(), args.listen, ready),
        None => runtime.block_on(serve(args)),
    };
    // Work still on the blocking pool after the shutdown deadline is not waited for long.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // One line with every cause; the backtrace only when asked for.
        Err(e) if verbose => {
            eprintln!("strata-registry: {e:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("strata-registry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `strata-registry health`: one HTTP/1.0 GET of `/healthz` (or `/readyz`) on the configured
/// listen address (loopback for a wildcard one), within 2 seconds.
fn health(config: Option<&Path>, listen: Option<SocketAddr>, ready: bool) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    // Only the address matters here: a configuration the server would refuse still names it.
    let flags = Overrides {
        listen,
        insecure_open: true,
        ..Overrides::default()
    };
    let config = Config::load(config, |k| std::env::var(k).ok(), &flags)?;
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let path = if ready { "/readyz" } else { "/healthz" };
    let timeout = std::time::Duration::from_secs(2);
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut answer = Vec::new();
    stream.take(4096).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    anyhow::ensure!(
        status.split_whitespace().nth(1) == Some("200"),
        "{path} on {addr}: {status}"
    );
    Ok(())
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let flags = Overrides {
        listen: args.listen,
        root: args.root,
        insecure_open: args.insecure_open,
    };
    let config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok(), &flags)?;
    init_logging(config.log_format);
    match strata_registry::serve::raise_open_file_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let listen = config.listen;
    let storage = format!("{:?}", config.storage);
    let state = AppState::open(config).await.context("open storage")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, storage = %storage, "strata-registry serving");
    strata_registry::run(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// `strata-registry gc`: one cycle, then a summary (or the JSON report).
async fn collect(
    config: Option<PathBuf>,
    root: Option<PathBuf>,
    dry_run: bool,
    json: bool,
    verbose: bool,
) -> anyhow::Result<()> {
    let flags = Overrides {
        listen: None,
        root,
        // Nothing is served.
        insecure_open: true,
    };
    let config = Config::load(config.as_deref(), |k| std::env::var(k).ok(), &flags)?;
    init_logging(config.log_format);
    let state = AppState::open(config).await.context("open storage")?;
    let holder = format!("cli-{}", std::process::id());
    let report = strata_registry::gc::cycle(&state, &holder, dry_run)
        .await
        .context("garbage collection")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print!("{}", strata_registry::gc::summary(&report, verbose));
    Ok(())
}
