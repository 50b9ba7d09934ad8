//! Docker credential helpers: `docker-credential-<name> get|store|erase`, speaking JSON on
//! stdin/stdout as docker does.

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::{ClientError, Result};
use strata_distribution::Credentials;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

async fn run(helper: &str, action: &str, input: &[u8]) -> Result<(bool, String)> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| ClientError::Auth(format!("run credential helper {program}: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(input)
        .await
        .map_err(|e| ClientError::io(format!("write to {program}"), e))?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| ClientError::io(format!("wait for {program}"), e))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    Ok((
        output.status.success(),
        if output.status.success() {
            text
        } else {
            format!("{text}{err}")
        },
    ))
}

/// Credentials the helper holds for `server`, if any.
pub(crate) async fn get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let (ok, out) = run(helper, "get", server.as_bytes()).await?;
    if !ok {
        if out.to_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(ClientError::Auth(format!("credential helper {helper}: {}", out.trim())));
    }
    let answer: HelperAnswer = serde_json::from_str(&out).map_err(|e| {
        ClientError::Auth(format!(
            "credential helper {helper} answered something else than JSON: {e}"
        ))
    })?;
    Ok(Some(Credentials {
        username: answer.username,
        secret: answer.secret,
    }))
}

/// Gives credentials for `server` to the helper.
pub(crate) async fn store(helper: &str, server: &str, creds: &Credentials) -> Result<()> {
    let input = serde_json::json!({ "ServerURL": server, "Username": creds.username, "Secret": creds.secret });
    let (ok, out) = run(helper, "store", input.to_string().as_bytes()).await?;
    if ok {
        Ok(())
    } else {
        Err(ClientError::Auth(format!("credential helper {helper}: {}", out.trim())))
    }
}

/// Makes the helper forget `server`.
pub(crate) async fn erase(helper: &str, server: &str) -> Result<()> {
    let (ok, out) = run(helper, "erase", server.as_bytes()).await?;
    if ok || out.to_lowercase().contains("not found") {
        Ok(())
    } else {
        Err(ClientError::Auth(format!("credential helper {helper}: {}", out.trim())))
    }
}
