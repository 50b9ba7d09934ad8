//! Container verbs: run, create, start, exec, stop, kill, ps, rm, logs, commit, cp.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use strata_client::ClientError;
use strata_client::commands::Context;
use strata_client::containers::ps_rows;
use strata_runtime::container::ExecOptions;
use strata_runtime::image::History;

use crate::args::{Command, Format, Global};
use crate::output::{copy_to_stdout, outln, print_value};

/// Runs a container verb; the exit code (a container's, or 0).
pub(crate) async fn run(ctx: &Context, global: &Global, command: &Command) -> Result<i32, ClientError> {
    match command {
        Command::Run {
            run,
            rm,
            detach,
            image,
            command,
        } => {
            let mut options = run.options(command)?;
            options.auto_remove = *rm && *detach;
            let container = ctx.create(image, &options, &run.transfer(ctx)?).await?;
            let result = ctx.start(&container, *detach, options.stdin).await;
            if *detach {
                result?;
                outln!("{}", container.config.id);
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
            let container = ctx.create(image, &options, &run.transfer(ctx)?).await?;
            outln!("{}", container.config.id);
        }
        Command::Start {
            container,
            attach,
            interactive,
        } => {
            let c = ctx.containers()?.find(container)?;
            if let Some(code) = ctx.start(&c, !attach, *interactive).await? {
                return Ok(code);
            }
            outln!("{}", c.config.name);
        }
        Command::Exec {
            process,
            container,
            command,
        } => {
            let c = ctx.containers()?.find(container)?;
            let options = ExecOptions {
                command: command.clone(),
                env: process.env.clone(),
                workdir: process.workdir.clone(),
                user: process.user.clone(),
                stdin: process.interactive,
                tty: process.tty,
            };
            return ctx.exec(&c, &options).await;
        }
        Command::Stop { container, time } => {
            let c = ctx.containers()?.find(container)?;
            ctx.stop(&c, Duration::from_secs(*time)).await?;
            outln!("{}", c.config.name);
        }
        Command::Kill { container, signal } => {
            let c = ctx.containers()?.find(container)?;
            ctx.signal(&c, signal)?;
            outln!("{}", c.config.name);
        }
        Command::Ps { all } => {
            let list: Vec<_> = ctx
                .containers()?
                .list()?
                .into_iter()
                .filter(|c| *all || c.is_running())
                .collect();
            if global.format == Format::Json {
                print_value(&Value::Array(ps_rows(&list)));
                return Ok(0);
            }
            outln!(
                "{:<12}  {:<20}  {:<30}  {:<10}  COMMAND",
                "ID",
                "NAME",
                "IMAGE",
                "STATUS"
            );
            for c in &list {
                let status = match (c.state.status, c.state.exit_code) {
                    (s, Some(code)) => format!("{s:?}({code})").to_lowercase(),
                    (s, None) => format!("{s:?}").to_lowercase(),
                };
                outln!(
                    "{:<12}  {:<20}  {:<30}  {:<10}  {}",
                    &c.config.id[..12],
                    c.config.name,
                    c.config.image,
                    status,
                    c.config.process.args.join(" ")
                );
            }
        }
        Command::Rm { force, containers } => {
            let store = ctx.containers()?;
            for name in containers {
                let c = store.find(name)?;
                ctx.remove_container(&c, *force).await?;
                outln!("{name}");
            }
        }
        Command::Logs { container } => {
            let c = ctx.containers()?.find(container)?;
            let mut log = match std::fs::File::open(c.log()) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(source) => {
                    return Err(ClientError::Io {
                        context: format!("read {}", c.log().display()),
                        source,
                    });
                }
            };
            copy_to_stdout(&mut log);
        }
        Command::Commit {
            author,
            message,
            changes,
            container,
            image,
        } => {
            let c = ctx.containers()?.find(container)?;
            let target = image
                .clone()
                .unwrap_or_else(|| format!("committed/{}:latest", c.config.name.to_ascii_lowercase()));
            let history = History {
                created_by: c.config.process.args.join(" "),
                author: author.clone(),
                comment: message.clone(),
            };
            outln!("{}", ctx.commit(&c, &target, &history, &changes.changes).await?);
        }
        Command::Cp { src, dst } => {
            let store = ctx.containers()?;
            let split = |s: &str| -> Option<(String, String)> {
                let (name, path) = s.split_once(':')?;
                (!name.is_empty() && !name.contains('/')).then(|| (name.to_owned(), path.to_owned()))
            };
            let bytes = match (split(src), split(dst)) {
                (Some((name, path)), None) => ctx.copy_out(&store.find(&name)?, &path, Path::new(dst))?,
                (None, Some((name, path))) => ctx.copy_in(&store.find(&name)?, Path::new(src), &path)?,
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
        other => unreachable!("{other:?} is not a container verb"),
    }
    Ok(0)
}
