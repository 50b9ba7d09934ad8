//! `strata`: parse the command line, call the library, print results. Data goes to stdout,
//! messages to stderr. Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 auth, 5 integrity,
//! 6 refused content.

mod args;
mod containers;
mod images;
mod local;
mod output;
mod reg;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use args::{Cli, Command};
use clap::Parser;
use strata_client::ClientError;
use strata_client::auth::DockerConfig;
use strata_client::commands::{Context, default_home};
use strata_client::settings::Settings;

/// Runs one command; the exit code on success (a container's, or 0).
async fn run(cli: Cli) -> Result<i32, ClientError> {
    let env = |k: &str| std::env::var(k).ok();
    let global = &cli.global;
    let home = global.home.clone().unwrap_or_else(|| default_home(env));
    let client_options = cli.command.registry_args().client_options();
    let settings = Settings::load(&Settings::default_path(env))?;
    let ctx = Context::new(home, client_options, DockerConfig::default_path(env)).with_mirrors(settings.mirrors);
    match &cli.command {
        Command::Layer(command) => local::layer(&ctx, global, command).await.map(|()| 0),
        Command::Fs(command) => local::fs(&ctx, global, command).map(|()| 0),
        Command::Reg(command) => reg::run(&ctx, global, command).map(|()| 0),
        Command::Volume(command) => local::volume(&ctx, global, command).map(|()| 0),
        Command::Import { source, image, make } => local::import(&ctx, global, source, image, make).await.map(|()| 0),
        Command::Run { .. }
        | Command::Create { .. }
        | Command::Start { .. }
        | Command::Exec { .. }
        | Command::Stop { .. }
        | Command::Kill { .. }
        | Command::Ps { .. }
        | Command::Rm { .. }
        | Command::Logs { .. }
        | Command::Commit { .. }
        | Command::Cp { .. } => containers::run(&ctx, global, &cli.command).await,
        _ => images::run(&ctx, global, &cli.command).await.map(|()| 0),
    }
}

/// The container helpers (`__init`, `__pid1`, `__exec`, `__exec-child`, `__userns`) run before anything
/// else, single-threaded: they enter namespaces. `None` when this is not one of them.
fn helper(args: &[std::ffi::OsString]) -> Option<ExitCode> {
    use strata_runtime::container::{exec, init, userns};
    let verb = args.get(1)?.to_str()?;
    let dir = PathBuf::from(args.get(2)?);
    let spec = || args.get(3).and_then(|s| s.to_str()).unwrap_or_default();
    let exit = match verb {
        "__init" => init::main(&dir, args.get(3).is_some_and(|a| a == "--detached")),
        "__pid1" => init::pid1(&dir),
        "__exec" => exec::helper(&dir, spec()),
        "__exec-child" => exec::child(&dir, spec()),
        "__userns" => init::Exit {
            code: userns::hold(spec()),
            messages: Vec::new(),
        },
        _ => return None,
    };
    for message in &exit.messages {
        eprintln!("strata: {message}");
    }
    Some(ExitCode::from(exit.code.clamp(0, 255) as u8))
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = helper(&args) {
        return code;
    }
    let cli = Cli::parse();
    let verbose = cli.global.verbose || cli.verbose_short;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if verbose { "info" } else { "warn" }));
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
            eprintln!("strata: {}", e.chain());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
