//! `--change` / `-c` for `strata import` and `strata commit`: Dockerfile instructions that set
//! the image config's defaults, as `docker import -c` and `docker commit -c` read them: `CMD`,
//! `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`, `LABEL`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`.

use strata_storage::oci::ImageConfig;

use super::{ImageError, Result};

/// Parsed changes, applied in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigChanges(Vec<Change>);

#[derive(Debug, Clone, PartialEq)]
enum Change {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    WorkingDir(String),
    User(String),
    StopSignal(String),
    /// `Env` entries set (replacing the same key).
    Env(Vec<(String, String)>),
    /// Labels added (replacing the same key).
    Labels(Vec<(String, String)>),
    /// `port/proto` keys added.
    ExposedPorts(Vec<String>),
    /// Volume paths added.
    Volumes(Vec<String>),
}

impl ConfigChanges {
    /// Parses `INSTRUCTION ARGS` lines; an unknown instruction or malformed argument is a usage
    /// error naming it.
    pub fn parse(lines: &[String]) -> Result<Self> {
        lines
            .iter()
            .map(|l| parse_line(l))
            .collect::<Result<_>>()
            .map(ConfigChanges)
    }

    /// Applies the changes to the `config` object of an image config.
    pub fn apply(&self, image_config: &mut ImageConfig) {
        let config = image_config.container_mut();
        let empty = || serde_json::Value::Object(serde_json::Map::new());
        for change in &self.0 {
            match change {
                Change::Cmd(items) => config.cmd = Some(items.clone()),
                Change::Entrypoint(items) => config.entrypoint = Some(items.clone()),
                Change::WorkingDir(text) => config.working_dir = Some(text.clone()),
                Change::User(text) => config.user = Some(text.clone()),
                Change::StopSignal(text) => config.stop_signal = Some(text.clone()),
                Change::Env(pairs) => {
                    let env = config.env.get_or_insert_with(Vec::new);
                    for (k, v) in pairs {
                        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(key, _)| key) != k);
                        env.push(format!("{k}={v}"));
                    }
                }
                Change::Labels(pairs) => config.labels.get_or_insert_default().extend(pairs.iter().cloned()),
                Change::ExposedPorts(keys) => {
                    let ports = config.exposed_ports.get_or_insert_default();
                    ports.extend(keys.iter().map(|k| (k.clone(), empty())));
                }
                Change::Volumes(keys) => {
                    let volumes = config.volumes.get_or_insert_default();
                    volumes.extend(keys.iter().map(|k| (k.clone(), empty())));
                }
            }
        }
    }
}

fn parse_line(line: &str) -> Result<Change> {
    let bad = |why: &str| ImageError::Usage(format!("--change '{line}': {why}"));
    let line = line.trim();
    let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(bad("needs an argument"));
    }
    Ok(match instruction.to_ascii_uppercase().as_str() {
        "CMD" => Change::Cmd(command(rest).map_err(|e| bad(&e))?),
        "ENTRYPOINT" => Change::Entrypoint(command(rest).map_err(|e| bad(&e))?),
        "WORKDIR" => Change::WorkingDir(rest.to_owned()),
        "USER" => Change::User(rest.to_owned()),
        "STOPSIGNAL" => Change::StopSignal(rest.to_owned()),
        "ENV" => Change::Env(pairs(rest, true).map_err(|e| bad(&e))?),
        "LABEL" => Change::Labels(pairs(rest, false).map_err(|e| bad(&e))?),
        "EXPOSE" => Change::ExposedPorts(
            rest.split_whitespace()
                .map(|p| {
                    let port = if p.contains('/') {
                        p.to_owned()
                    } else {
                        format!("{p}/tcp")
                    };
                    let number = port.split('/').next().unwrap_or_default();
                    number
                        .parse::<u16>()
                        .map(|_| port.clone())
                        .map_err(|_| bad(&format!("{p:?} is not a port")))
                })
                .collect::<Result<_>>()?,
        ),
        "VOLUME" => Change::Volumes(words_or_json(rest).map_err(|e| bad(&e))?),
        other => {
            return Err(bad(&format!(
                "unknown instruction {other}; expected CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME or STOPSIGNAL"
            )));
        }
    })
}

/// `["a","b"]` (exec form) or `a b` (shell form, run by `/bin/sh -c`).
fn command(rest: &str) -> std::result::Result<Vec<String>, String> {
    if rest.starts_with('[') {
        return serde_json::from_str(rest).map_err(|e| format!("not a JSON array of strings: {e}"));
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

/// A JSON array of strings, or words.
fn words_or_json(rest: &str) -> std::result::Result<Vec<String>, String> {
    if rest.starts_with('[') {
        return serde_json::from_str(rest).map_err(|e| format!("not a JSON array of strings: {e}"));
    }
    Ok(rest.split_whitespace().map(str::to_owned).collect())
}

/// `K=V K2="V 2"`, or (for ENV, without `=`) the legacy `K V with spaces`.
fn pairs(rest: &str, legacy: bool) -> std::result::Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        if !legacy {
            return Err("expected KEY=VALUE".into());
        }
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or("expected KEY=VALUE or KEY VALUE")?;
        return Ok(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    let mut out = Vec::new();
    for word in shell_words(rest)? {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("{word:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            return Err(format!("{word:?} has an empty key"));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Splits on whitespace outside double or single quotes, removing the quotes; `\` escapes the
/// next character outside single quotes.
fn shell_words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.push(c),
            (_, '\\') => {
                word.push(chars.next().ok_or("a trailing backslash")?);
                in_word = true;
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn applied(lines: &[&str], start: Value) -> Value {
        let lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        let mut config: ImageConfig = serde_json::from_value(start).unwrap();
        ConfigChanges::parse(&lines).unwrap().apply(&mut config);
        serde_json::to_value(config.config).unwrap()
    }

    #[test]
    fn instructions_set_the_config_as_docker_does() {
        let c = applied(
            &[
                r#"CMD ["sh", "-c", "echo hi"]"#,
                "ENTRYPOINT /bin/tini --",
                "ENV A=1 B=\"two words\"",
                "ENV LEGACY value with spaces",
                "workdir /srv",
                "USER nobody:nogroup",
                "LABEL org.example=yes other='x y'",
                "EXPOSE 80 53/udp",
                "VOLUME /data /cache",
                "STOPSIGNAL SIGINT",
            ],
            json!({ "config": { "Env": ["A=0", "PATH=/bin"] } }),
        );
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/tini --"]));
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "A=1", "B=two words", "LEGACY=value with spaces"])
        );
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["User"], "nobody:nogroup");
        assert_eq!(c["Labels"], json!({ "org.example": "yes", "other": "x y" }));
        assert_eq!(c["ExposedPorts"], json!({ "80/tcp": {}, "53/udp": {} }));
        assert_eq!(c["Volumes"], json!({ "/data": {}, "/cache": {} }));
        assert_eq!(c["StopSignal"], "SIGINT");
    }

    #[test]
    fn a_config_without_a_config_object_gets_one() {
        assert_eq!(applied(&["CMD [\"sh\"]"], json!({})), json!({ "Cmd": ["sh"] }));
    }

    #[test]
    fn bad_changes_are_usage_errors_naming_the_line() {
        for line in [
            "RUN make",
            "CMD",
            "CMD [\"unclosed\"",
            "EXPOSE http",
            "LABEL novalue",
            "ENV A=\"open",
        ] {
            let err = ConfigChanges::parse(&[line.to_owned()]).unwrap_err();
            assert!(
                matches!(err, ImageError::Usage(ref m) if m.contains(line)),
                "{line}: {err}"
            );
        }
    }
}
