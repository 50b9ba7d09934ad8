//! Image verbs: login, logout, pull, push, copy, inspect, tags, catalog, delete, tag, images,
//! rmi, prune.

use std::io::Read;

use serde_json::Value;
use strata_client::ClientError;
use strata_client::auth::Credentials;
use strata_client::commands::{Context, Inspection, Target};
use strata_client::containers::inspect_container;
use strata_client::transfer::Options;

use crate::args::{Command, Format, Global, PushArgs, TransferArgs};
use crate::output::{copy_to_stdout, outln, print_list, print_report, print_value, progress, reference, registry_host};

fn transfer_options(
    transfer: &TransferArgs,
    push: &PushArgs,
    global: &Global,
    ctx: &Context,
    label: &str,
) -> Result<Options, ClientError> {
    let mut options = transfer.options(push, ctx)?;
    options.progress = progress(global, label);
    Ok(options)
}

fn show(inspection: Inspection) -> Result<(), ClientError> {
    match inspection {
        Inspection::Raw(bytes) => copy_to_stdout(&mut &bytes[..]),
        Inspection::Json(value) => print_value(&value),
    }
    Ok(())
}

/// `strata inspect`: a container; else the image on its registry (or `--local`: in the local
/// store). When the registry has no such image, or cannot be reached, and the local store has
/// one of that name, the error says how to see it.
async fn inspect(ctx: &Context, image: &str, raw: bool, config: bool, local: bool) -> Result<(), ClientError> {
    if local {
        let target = ctx.local_target(image)?.ok_or_else(|| {
            ClientError::NotFound(format!("{image} is not in the local store (strata images lists it)"))
        })?;
        return show(ctx.inspect(&target, raw, config).await?);
    }
    if let Ok(c) = ctx.containers()?.find(image) {
        print_value(&inspect_container(&c));
        return Ok(());
    }
    let target = Target::parse(image)?;
    match ctx.inspect(&target, raw, config).await {
        Ok(found) => show(found),
        Err(e) if matches!(target, Target::Registry(_)) && ctx.local_target(image)?.is_some() => Err(e.advise(
            &format!("the local store has an image of that name: strata inspect --local {image}"),
        )),
        Err(e) => Err(e),
    }
}

/// Runs an image verb.
pub(crate) async fn run(ctx: &Context, global: &Global, command: &Command) -> Result<(), ClientError> {
    match command {
        Command::Login {
            registry,
            username,
            password,
            password_stdin,
            ..
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
                        .map_err(|source| ClientError::Io {
                            context: "read stdin".into(),
                            source,
                        })?;
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
            transfer,
            no_unpack,
            ..
        } => {
            let image = reference(image)?;
            let options = transfer_options(transfer, &PushArgs::default(), global, ctx, "pull")?;
            let report = if *no_unpack {
                ctx.download(&image, &options).await?
            } else {
                ctx.pull(&image, &options).await?
            };
            print_report(global, "pulled", &image.to_string(), &report);
        }
        Command::Push {
            image,
            dest,
            transfer,
            push,
            ..
        } => {
            let image = reference(image)?;
            let dest = dest.as_deref().map(reference).transpose()?;
            let options = transfer_options(transfer, push, global, ctx, "push")?;
            let report = ctx.push(&image, dest.as_ref(), &options).await?;
            print_report(global, "pushed", &dest.unwrap_or(image).to_string(), &report);
        }
        Command::Copy {
            src,
            dst,
            transfer,
            push,
            ..
        } => {
            let options = transfer_options(transfer, push, global, ctx, "copy")?;
            let report = ctx.copy(&Target::parse(src)?, &Target::parse(dst)?, &options).await?;
            print_report(global, "copied to", dst, &report);
        }
        Command::Inspect {
            image,
            raw,
            config,
            local,
            ..
        } => inspect(ctx, image, *raw, *config, *local).await?,
        Command::Tags { repo, .. } => print_list(global, &ctx.tags(&reference(repo)?).await?, "tags"),
        Command::Catalog { registry, .. } => {
            print_list(global, &ctx.catalog(&registry_host(registry)).await?, "repositories");
        }
        Command::Delete { image, .. } => {
            let digest = ctx.delete(&reference(image)?).await?;
            if !global.quiet {
                eprintln!("deleted {digest}");
            }
        }
        Command::Tag { src, dst, .. } => {
            let digest = ctx.tag(&reference(src)?, &reference(dst)?).await?;
            outln!("{digest}");
        }
        Command::Images => {
            let images = ctx.images()?;
            if global.format == Format::Json {
                print_value(&Value::Array(images));
            } else {
                for i in images {
                    outln!(
                        "{}\t{}",
                        i["name"].as_str().unwrap_or(""),
                        i["digest"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Command::Rmi { image } => {
            let removed = ctx.rmi(image).await?;
            if !global.quiet {
                eprintln!("removed {image} ({removed} blobs freed)");
            }
        }
        Command::Prune => {
            let (blobs, layers) = ctx.prune().await?;
            if !global.quiet {
                eprintln!("{blobs} blobs and {layers} layers freed");
            }
        }
        other => unreachable!("{other:?} is not an image verb"),
    }
    Ok(())
}
