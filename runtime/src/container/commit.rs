//! `strata commit`: a container's changes as a new image.

use super::Container;
use super::cgroup::Cgroup;
use super::diff::write_diff;
use super::error::{ContainerError, Result};
use crate::home::Home;
use crate::image::{ConfigChanges, History, Wanted, append_layer, name_image, resolve, write_layer};
use crate::windows::scratch;

/// `strata commit`: the container's changes as a new gzip layer on top of its image, and a
/// new image `target` (config: the parent's plus the diff_id, a history entry and
/// `changes`). A running container is frozen while its scratch layer is read. Returns the
/// new manifest digest.
pub async fn commit(
    home: &Home,
    container: &Container,
    target: &str,
    history: &History,
    changes: &[String],
) -> Result<String> {
    let changes = ConfigChanges::parse(changes)?;
    let windows = container.config.os == "windows";
    let store = home.store()?;
    let _lease = store.lease().await?;
    let parent = resolve(&store, &container.config.image, &Wanted::default()).await?;

    let cgroup = Cgroup::new(&container.config.id);
    let frozen = container.is_running();
    if frozen {
        cgroup
            .freeze(true)
            .map_err(|e| ContainerError::io(format!("freeze {}", container.config.name), e))?;
    }
    let upper = container.upper();
    let written = write_layer(&store, move |out| {
        if windows {
            scratch::write_layer(&upper, out).map(|_| ())
        } else {
            write_diff(&upper, out).map(|_| ())
        }
    })
    .await;
    if frozen {
        let _ = cgroup.freeze(false);
    }
    let image = append_layer(
        &store,
        Some(&parent),
        &written?,
        history,
        &changes,
        &container.config.os,
    )
    .await?;
    name_image(&store, &home.layers()?, target, &image).await?;
    Ok(image.digest.to_string())
}
