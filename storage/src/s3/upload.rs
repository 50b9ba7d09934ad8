//! Appendable uploads on S3, with all of their state in the bucket so any process can continue
//! them.
//!
//! ```text
//! <home>/state          JSON: multipart upload id, committed parts, tail, length, checkpoint
//! <home>/tail-<length>  committed bytes not yet in a part (always under 5 MiB)
//! <home>/data           the multipart upload's target, present only while completing
//! ```
//!
//! S3 parts must be at least 5 MiB (except the last), while clients may append any size. So an
//! append takes the old tail plus the new bytes, uploads every full part into the multipart upload,
//! uploads a final remainder of 5 MiB or more as one more part, and writes a smaller remainder as
//! a new tail object. Then it replaces `state`: that single `PutObject` is the commit. A crash
//! before it leaves the old state, which names only the old parts and the old tail; parts
//! uploaded meanwhile are overwritten by the next append (part numbers come from the state).

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::client::backend_err;
use super::parts::{self, Held, MIN_PART, Part, PartBuffer, PartUploader};
use super::{Inner, MAX_PARTS, S3Backend};
use crate::backend::{Backend, Checkpoint, ObjectMeta, Prepare, UploadStatus};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::stream::ByteStream;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    upload_id: Option<String>,
    parts: Vec<Part>,
    tail: Option<Tail>,
    length: u64,
    checkpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Tail {
    name: String,
    size: u64,
}

fn child(home: &Key, name: &str) -> Key {
    home.join(name).expect("upload object names are valid key segments")
}

async fn read_state(inner: &Inner, home: &Key) -> Result<(State, SystemTime)> {
    let s3_key = inner.s3_key(&child(home, "state"));
    let (raw, modified) = inner.get_small(&s3_key).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::NotFound { key: home.to_string() },
        other => other,
    })?;
    let state = serde_json::from_slice(&raw).map_err(|e| backend_err("parse upload state", &s3_key, e))?;
    Ok((state, modified))
}

async fn write_state(inner: &Inner, home: &Key, state: &State) -> Result<()> {
    let json = serde_json::to_vec(state).expect("state serializes");
    inner
        .put_small(&inner.s3_key(&child(home, "state")), Bytes::from(json))
        .await
}

fn status_of(state: &State, updated: SystemTime) -> Result<UploadStatus> {
    let checkpoint = BASE64
        .decode(&state.checkpoint)
        .map_err(|e| backend_err("parse upload state", "checkpoint", e))?;
    Ok(UploadStatus {
        length: state.length,
        checkpoint: Bytes::from(checkpoint),
        updated,
    })
}

async fn read_tail(inner: &Inner, home: &Key, tail: &Tail) -> Result<Bytes> {
    let s3_key = inner.s3_key(&child(home, &tail.name));
    let (bytes, _) = inner.get_small(&s3_key).await?;
    if bytes.len() as u64 != tail.size {
        return Err(backend_err(
            "read upload tail",
            &s3_key,
            std::io::Error::other("tail has the wrong size"),
        ));
    }
    Ok(bytes)
}

pub(super) async fn create(inner: &Arc<Inner>, home: &Key) -> Result<UploadStatus> {
    match read_state(inner, home).await {
        Ok(_) => return Err(Error::AlreadyExists { key: home.to_string() }),
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let state = State::default();
    write_state(inner, home, &state).await?;
    status_of(&state, SystemTime::now())
}

pub(super) async fn status(inner: &Arc<Inner>, home: &Key) -> Result<UploadStatus> {
    let (state, updated) = read_state(inner, home).await?;
    status_of(&state, updated)
}

/// Makes sure the upload has a multipart upload, recording a new one in `state` right away so
/// that an abort can always find it.
async fn uploader<'a>(
    inner: &Arc<Inner>,
    home: &Key,
    state: &mut State,
    slot: &'a mut Option<PartUploader>,
) -> Result<&'a mut PartUploader> {
    if slot.is_none() {
        let data_key = inner.s3_key(&child(home, "data"));
        let uploader = match &state.upload_id {
            Some(id) => PartUploader::resume(inner.clone(), data_key, id.clone(), false),
            None => {
                let mut created = PartUploader::create(inner.clone(), data_key, false).await?;
                state.upload_id = Some(created.upload_id().to_owned());
                write_state(inner, home, state).await?;
                // The state names it now; an abort of the session finds it there.
                created.forget_record().await;
                created
            }
        };
        *slot = Some(uploader);
    }
    Ok(slot.as_mut().expect("just filled"))
}

pub(super) async fn append(
    inner: &Arc<Inner>,
    home: &Key,
    offset: u64,
    data: ByteStream,
    checkpoint: Checkpoint,
) -> Result<UploadStatus> {
    let (state, _) = read_state(inner, home).await?;
    if offset != state.length {
        return Err(Error::UploadOffset {
            length: state.length,
            offset,
        });
    }
    append_to(inner, home, state, data, checkpoint).await
}

/// Appends after `prepare` has seen the status: one read of the state for both.
pub(super) async fn append_after(inner: &Arc<Inner>, home: &Key, prepare: Prepare) -> Result<UploadStatus> {
    let (state, updated) = read_state(inner, home).await?;
    let (data, checkpoint) = prepare(&status_of(&state, updated)?)?;
    append_to(inner, home, state, data, checkpoint).await
}

/// Appends `data` to the upload whose state (just read) is `state`.
async fn append_to(
    inner: &Arc<Inner>,
    home: &Key,
    mut state: State,
    mut data: ByteStream,
    checkpoint: Checkpoint,
) -> Result<UploadStatus> {
    let mut buffer = PartBuffer::new(inner.part_size, inner.budget.clone());
    if let Some(tail) = &state.tail {
        let full = buffer.push(&read_tail(inner, home, tail).await?).await?;
        debug_assert!(full.is_empty(), "a tail is smaller than a part");
    }
    let mut slot = None;
    let mut next = state.parts.len() as u64 + 1;
    let mut appended = 0u64;
    let mut queue_part = async |state: &mut State, part: Held, next: &mut u64| -> Result<()> {
        if *next > MAX_PARTS {
            let too_many = std::io::Error::other("upload exceeds 10000 parts; raise part_size");
            return Err(backend_err("UploadPart", home.as_str(), too_many));
        }
        uploader(inner, home, state, &mut slot)
            .await?
            .upload(*next as i32, part)
            .await?;
        *next += 1;
        Ok(())
    };
    while let Some(chunk) = data.next().await {
        let chunk = chunk?;
        appended += chunk.len() as u64;
        for part in buffer.push(&chunk).await? {
            queue_part(&mut state, part, &mut next).await?;
        }
    }
    let rest = buffer.rest();
    let new_length = state.length + appended;
    let new_tail = if rest.bytes.len() as u64 >= MIN_PART {
        queue_part(&mut state, rest, &mut next).await?;
        None
    } else if rest.bytes.is_empty() {
        None
    } else {
        let tail = Tail {
            name: format!("tail-{new_length}"),
            size: rest.bytes.len() as u64,
        };
        if state.tail.as_ref() != Some(&tail) {
            inner
                .put_small(&inner.s3_key(&child(home, &tail.name)), rest.bytes)
                .await?;
        }
        Some(tail)
    };
    if let Some(uploader) = slot.as_mut() {
        state.parts.extend(uploader.wait().await?);
    }
    let old_tail = std::mem::replace(&mut state.tail, new_tail);
    state.length = new_length;
    state.checkpoint = BASE64.encode(checkpoint());
    write_state(inner, home, &state).await?;
    if let Some(old) = old_tail.filter(|old| state.tail.as_ref() != Some(old)) {
        let _ = inner.delete(&child(home, &old.name)).await; // unreferenced now; abort cleans up anyway
    }
    status_of(&state, SystemTime::now())
}

pub(super) async fn complete(inner: &Arc<Inner>, home: &Key, to: &Key) -> Result<ObjectMeta> {
    let (state, _) = read_state(inner, home).await?;
    let data = child(home, "data");
    match (&state.upload_id, &state.tail) {
        (Some(id), _) if state.length > 0 => {
            let mut parts = state.parts.clone();
            let mut uploader = PartUploader::resume(inner.clone(), inner.s3_key(&data), id.clone(), false);
            if let Some(tail) = &state.tail {
                uploader
                    .upload(parts.len() as i32 + 1, Held::free(read_tail(inner, home, tail).await?))
                    .await?;
                parts.extend(uploader.wait().await?);
            }
            match uploader.complete(&parts).await {
                Ok(()) => {}
                // A previous attempt completed it and failed later: the data object is there.
                Err(Error::NotFound { .. }) if inner.head(&data).await.is_ok_and(|m| m.size == state.length) => {}
                Err(e) => return Err(e),
            }
            inner.copy_sized(&data, state.length, to).await?;
        }
        (upload_id, tail) => {
            if let Some(id) = upload_id {
                parts::abort(inner, &inner.s3_key(&data), id).await?;
            }
            match tail {
                Some(tail) => inner.copy_sized(&child(home, &tail.name), tail.size, to).await?,
                None => inner.put_small(&inner.s3_key(to), Bytes::new()).await?,
            }
        }
    }
    S3Backend { inner: inner.clone() }.delete_prefix(home).await?;
    Ok(ObjectMeta {
        key: to.clone(),
        size: state.length,
        modified: SystemTime::now(),
    })
}

pub(super) async fn abort(inner: &Arc<Inner>, home: &Key) -> Result<()> {
    let (state, _) = read_state(inner, home).await?;
    if let Some(id) = &state.upload_id {
        parts::abort(inner, &inner.s3_key(&child(home, "data")), id).await?;
    }
    S3Backend { inner: inner.clone() }.delete_prefix(home).await?;
    Ok(())
}
