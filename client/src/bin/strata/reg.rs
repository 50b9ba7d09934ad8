//! `strata reg`: print merged registry keys, diffs, and edit a container's registry.

use std::io::Write;

use serde_json::{Value, json};
use strata_client::ClientError;
use strata_client::commands::Context;
use strata_client::hives::{RegistrySource, parse_path, parse_value};
use strata_hive::data::{display, to_json, type_name};
use strata_hive::{Change, HiveError, HiveName, MergedKey};

use crate::args::{Format, Global, RegCommand};
use crate::output::{buffered, outln};

/// A value's name as `reg` shows it.
fn shown_name(name: &str) -> &str {
    if name.is_empty() { "(Default)" } else { name }
}

fn value_json(v: &strata_hive::Value) -> Value {
    json!({ "name": v.name, "type": type_name(v.kind), "data": to_json(v.kind, &v.data) })
}

/// A FILETIME as RFC 3339 (none before 1970).
fn filetime(ft: u64) -> Option<String> {
    let secs = (ft / 10_000_000).checked_sub(11_644_473_600)?;
    Some(humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string())
}

/// Writes one key: its path and values (and, for a single key, its subkeys' paths).
fn write_key(
    out: &mut dyn Write,
    key: &MergedKey<'_>,
    path: &str,
    json: bool,
    single: bool,
) -> std::io::Result<Result<(), HiveError>> {
    let values = match key.values() {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let subkeys = if single {
        match key.subkeys() {
            Ok(s) => s.iter().map(MergedKey::name).collect(),
            Err(e) => return Ok(Err(e)),
        }
    } else {
        Vec::new()
    };
    if json {
        let class = match key.class() {
            Ok(c) => c.map(|c| {
                String::from_utf16_lossy(
                    &c.chunks_exact(2)
                        .map(|p| u16::from_le_bytes([p[0], p[1]]))
                        .collect::<Vec<_>>(),
                )
            }),
            Err(e) => return Ok(Err(e)),
        };
        let mut object = json!({
            "key": path,
            "last_written": filetime(key.last_written()),
            "class": class,
            "values": values.iter().map(value_json).collect::<Vec<_>>(),
        });
        if single {
            object["subkeys"] = json!(subkeys);
            writeln!(out, "{}", serde_json::to_string_pretty(&object).expect("json"))?;
        } else {
            writeln!(out, "{object}")?;
        }
        return Ok(Ok(()));
    }
    writeln!(out, "{path}")?;
    for v in &values {
        writeln!(
            out,
            "    {}    {}    {}",
            shown_name(&v.name),
            type_name(v.kind),
            display(v.kind, &v.data)
        )?;
    }
    writeln!(out)?;
    if single {
        for name in subkeys {
            writeln!(out, "{path}\\{name}")?;
        }
    }
    Ok(Ok(()))
}

fn query(source: &RegistrySource, key: &str, recursive: bool, json: bool) -> Result<(), ClientError> {
    let path = parse_path(key)?;
    let stack = source.stack(path.hive)?;
    let root = stack
        .open(&path.keys)
        .map_err(ClientError::from)?
        .ok_or_else(|| ClientError::NotFound(format!("{}: no such key", path.display())))?;
    let base = path.display();
    let result = buffered(|out| {
        if !recursive {
            return write_key(out, &root, &base, json, true);
        }
        let mut failed = None;
        let mut paths: Vec<String> = Vec::new();
        let walked = root.walk(&mut |k, depth| {
            paths.truncate(depth);
            let p = match depth {
                0 => base.clone(),
                _ => format!("{}\\{}", paths[depth - 1], k.name()),
            };
            let written = write_key(out, k, &p, json, false);
            paths.push(p);
            match written {
                Ok(r) => r,
                Err(e) => {
                    failed = Some(e);
                    Err(HiveError::Invalid("stdout".into()))
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(walked),
        }
    });
    result.map_err(ClientError::from)
}

fn change_line(change: &Change) -> String {
    let value = |v: &strata_hive::Value| {
        format!(
            "{}  {}  {}",
            shown_name(&v.name),
            type_name(v.kind),
            display(v.kind, &v.data)
        )
    };
    match change {
        Change::KeyAdded(k) => format!("+ {k}"),
        Change::KeyDeleted(k) => format!("- {k}"),
        Change::ValueAdded(k, v) => format!("+ {k}  {}", value(v)),
        Change::ValueDeleted(k, v) => format!("- {k}  {}", value(v)),
        Change::ValueChanged(k, old, new) => format!(
            "~ {k}  {}  {}  {} -> {}  {}",
            shown_name(&new.name),
            type_name(old.kind),
            display(old.kind, &old.data),
            type_name(new.kind),
            display(new.kind, &new.data)
        ),
    }
}

fn change_json(change: &Change) -> Value {
    match change {
        Change::KeyAdded(k) => json!({ "change": "key-added", "key": k }),
        Change::KeyDeleted(k) => json!({ "change": "key-deleted", "key": k }),
        Change::ValueAdded(k, v) => json!({ "change": "value-added", "key": k, "value": value_json(v) }),
        Change::ValueDeleted(k, v) => json!({ "change": "value-deleted", "key": k, "value": value_json(v) }),
        Change::ValueChanged(k, old, new) => {
            json!({ "change": "value-changed", "key": k, "before": value_json(old), "after": value_json(new) })
        }
    }
}

/// The key at `keys` of a hive the image may not have.
fn open_in<'s>(stack: Option<&'s strata_hive::Stack>, keys: &[String]) -> Result<Option<MergedKey<'s>>, ClientError> {
    match stack {
        Some(s) => s.open(keys).map_err(ClientError::from),
        None => Ok(None),
    }
}

fn diff(a: &RegistrySource, b: &RegistrySource, key: Option<&str>) -> Result<Vec<Change>, ClientError> {
    let mut changes = Vec::new();
    let scopes: Vec<(HiveName, Vec<String>, String)> = match key {
        Some(k) => {
            let p = parse_path(k)?;
            vec![(p.hive, p.keys.clone(), p.display())]
        }
        None => HiveName::ALL
            .iter()
            .map(|h| (*h, Vec::new(), h.root().to_owned()))
            .collect(),
    };
    for (name, keys, shown) in scopes {
        let (sa, sb) = (a.try_stack(name)?, b.try_stack(name)?);
        let (ka, kb) = (open_in(sa.as_ref(), &keys)?, open_in(sb.as_ref(), &keys)?);
        changes.extend(strata_hive::diff(ka.as_ref(), kb.as_ref(), &shown).map_err(ClientError::from)?);
    }
    Ok(changes)
}

/// `strata reg …`.
pub(crate) fn run(ctx: &Context, global: &Global, command: &RegCommand) -> Result<(), ClientError> {
    let json = global.format == Format::Json;
    match command {
        RegCommand::Query {
            target,
            key,
            recursive,
            layer,
        } => {
            let mut source = ctx.registry_source(target)?;
            if let Some(n) = layer {
                source = source.up_to(*n)?;
            }
            query(&source, key, *recursive, json)
        }
        RegCommand::Diff { a, b, key } => {
            let changes = diff(&ctx.registry_source(a)?, &ctx.registry_source(b)?, key.as_deref())?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&changes.iter().map(change_json).collect::<Vec<_>>()).expect("json")
                );
            } else {
                buffered(|out| changes.iter().try_for_each(|c| writeln!(out, "{}", change_line(c))));
            }
            Ok(())
        }
        RegCommand::Set {
            container,
            key,
            name,
            kind,
            data,
        } => ctx.reg_set(container, &parse_path(key)?, parse_value(name, kind, data)?),
        RegCommand::Delete {
            container,
            key,
            value,
            rest,
        } => {
            let value = match (value, rest.as_slice()) {
                (v, []) => v.clone(),
                (None, [flag, name]) if flag.eq_ignore_ascii_case("/v") => Some(name.clone()),
                _ => {
                    return Err(ClientError::Usage(format!(
                        "reg delete: unexpected {:?} (to delete one value: /v NAME or --value NAME)",
                        rest.join(" ")
                    )));
                }
            };
            ctx.reg_delete(container, &parse_path(key)?, value.as_deref())
        }
    }
}
