//! What differs between two merged hives: keys and values added, changed and deleted.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::merge::{Guard, MergedKey};
use crate::model::Value;
use crate::names::fold;

/// One difference, at a key path (names from the root down, joined with `\`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A key only the second has (its values and subkeys follow as added).
    KeyAdded(String),
    /// A key only the first has (what was in it is not listed).
    KeyDeleted(String),
    /// A value only the second has.
    ValueAdded(String, Value),
    /// A value both have, with other type or data: before, after.
    ValueChanged(String, Value, Value),
    /// A value only the first has.
    ValueDeleted(String, Value),
}

/// The differences from `a` to `b` at and below `path`, in path order.
pub fn diff(a: Option<&MergedKey<'_>>, b: Option<&MergedKey<'_>>, path: &str) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let (mut guard_a, mut guard_b) = (Guard::default(), Guard::default());
    compare(a, b, path, 0, (&mut guard_a, &mut guard_b), &mut out)?;
    Ok(out)
}

fn compare(
    a: Option<&MergedKey<'_>>,
    b: Option<&MergedKey<'_>>,
    path: &str,
    depth: usize,
    guards: (&mut Guard, &mut Guard),
    out: &mut Vec<Change>,
) -> Result<()> {
    let (guard_a, guard_b) = guards;
    if let Some(a) = a {
        guard_a.enter(a, depth)?;
    }
    if let Some(b) = b {
        guard_b.enter(b, depth)?;
    }
    match (a, b) {
        (None, None) => return Ok(()),
        (Some(_), None) => {
            out.push(Change::KeyDeleted(path.to_owned()));
            return Ok(());
        }
        (None, Some(_)) => out.push(Change::KeyAdded(path.to_owned())),
        (Some(_), Some(_)) => {}
    }
    let by_name = |key: Option<&MergedKey<'_>>| -> Result<BTreeMap<String, Value>> {
        Ok(match key {
            Some(k) => k.values()?.into_iter().map(|v| (fold(&v.name), v)).collect(),
            None => BTreeMap::new(),
        })
    };
    let (mut before, after) = (by_name(a)?, by_name(b)?);
    for (name, new) in after {
        match before.remove(&name) {
            None => out.push(Change::ValueAdded(path.to_owned(), new)),
            Some(old) if old.kind != new.kind || old.data != new.data => {
                out.push(Change::ValueChanged(path.to_owned(), old, new));
            }
            Some(_) => {}
        }
    }
    out.extend(
        before
            .into_values()
            .map(|old| Change::ValueDeleted(path.to_owned(), old)),
    );

    let mut children: BTreeMap<String, (Option<MergedKey<'_>>, Option<MergedKey<'_>>)> = BTreeMap::new();
    for k in a.map(MergedKey::subkeys).transpose()?.unwrap_or_default() {
        let name = fold(&k.name());
        children.entry(name).or_default().0 = Some(k);
    }
    for k in b.map(MergedKey::subkeys).transpose()?.unwrap_or_default() {
        let name = fold(&k.name());
        children.entry(name).or_default().1 = Some(k);
    }
    for (ka, kb) in children.into_values() {
        let name = kb.as_ref().or(ka.as_ref()).map(MergedKey::name).unwrap_or_default();
        let child = if path.is_empty() {
            name
        } else {
            format!("{path}\\{name}")
        };
        compare(
            ka.as_ref(),
            kb.as_ref(),
            &child,
            depth + 1,
            (&mut *guard_a, &mut *guard_b),
            out,
        )?;
    }
    Ok(())
}
