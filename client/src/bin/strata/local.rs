//! Local verbs: import, layer, fs, volume.

use std::path::Path;

use strata_client::ClientError;
use strata_client::commands::Context;
use strata_runtime::image::ImportOptions;

use crate::args::{Format, FsCommand, Global, LayerCommand, MakeArgs, VolumeCommand};
use crate::output::{copy_to_stdout, outln, print_value};

fn import_options(make: &MakeArgs) -> Result<ImportOptions, ClientError> {
    if let Some(os) = make.os.as_deref().filter(|os| !matches!(*os, "linux" | "windows")) {
        return Err(ClientError::Usage(format!("--os {os:?}: expected linux or windows")));
    }
    Ok(ImportOptions {
        parent: make.parent.clone(),
        os: make.os.clone(),
        changes: make.changes.changes.clone(),
        message: make.message.clone(),
    })
}

/// `strata import SOURCE IMAGE`: prints the new image's manifest digest.
pub(crate) async fn import(
    ctx: &Context,
    global: &Global,
    source: &Path,
    image: &str,
    make: &MakeArgs,
) -> Result<(), ClientError> {
    let (made, layers) = ctx.import(source, image, &import_options(make)?).await?;
    if global.format == Format::Json {
        print_value(
            &serde_json::json!({ "digest": made.digest.to_string(), "mediaType": made.media_type, "layers": layers }),
        );
    } else {
        outln!("{}", made.digest);
    }
    Ok(())
}

/// `strata layer`.
pub(crate) async fn layer(ctx: &Context, global: &Global, command: &LayerCommand) -> Result<(), ClientError> {
    match command {
        LayerCommand::Import { file, name, make } => {
            let (_, image) = ctx.import(file, name, &import_options(make)?).await?;
            if global.format == Format::Json {
                print_value(&serde_json::to_value(&image).expect("json"));
            } else {
                outln!("{}", image.chain.last().map(String::as_str).unwrap_or(""));
            }
        }
        LayerCommand::Ls => {
            let mut images = ctx.layers()?.images()?;
            images.sort_by(|a, b| a.name.cmp(&b.name));
            if global.format == Format::Json {
                print_value(&serde_json::to_value(&images).expect("json"));
            } else {
                for image in images {
                    outln!("{}\t{}\t{} layers", image.name, image.os, image.chain.len());
                    for chain_id in &image.chain {
                        outln!("  {chain_id}");
                    }
                }
            }
        }
    }
    Ok(())
}
/// `strata fs`.
pub(crate) fn fs(ctx: &Context, global: &Global, command: &FsCommand) -> Result<(), ClientError> {
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
                outln!(
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
            copy_to_stdout(&mut file);
        }
    }
    Ok(())
}

/// `strata volume`.
pub(crate) fn volume(ctx: &Context, global: &Global, command: &VolumeCommand) -> Result<(), ClientError> {
    let volumes = ctx.volumes()?;
    match command {
        VolumeCommand::Create { name } => outln!("{}", volumes.create(name)?.name),
        VolumeCommand::Ls => {
            let list = volumes.list()?;
            if global.format == Format::Json {
                print_value(&serde_json::to_value(&list).expect("json"));
            } else {
                for v in list {
                    outln!("{}", v.name);
                }
            }
        }
        VolumeCommand::Inspect { name } => print_value(&serde_json::to_value(volumes.get(name)?).expect("json")),
        VolumeCommand::Rm { name } => {
            volumes.remove(name, &ctx.containers()?)?;
            outln!("{name}");
        }
    }
    Ok(())
}
