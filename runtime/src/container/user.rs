//! `--user` / the image's `User`: `name`, `uid`, `name:group`, `uid:gid`, looked up in the
//! container's `/etc/passwd` and `/etc/group` (read after the root switch).

/// Who the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: String,
}

/// Resolves `spec` against the current root's `/etc/passwd` and `/etc/group`.
pub(crate) fn resolve(spec: &str) -> Result<User, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    resolve_with(spec, &passwd, &group)
}

fn resolve_with(spec: &str, passwd: &str, group: &str) -> Result<User, String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries = |file: &str| -> Vec<Vec<String>> {
        file.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.split(':').map(str::to_owned).collect())
            .collect()
    };
    let users = entries(passwd);
    let mut out = User {
        uid: 0,
        gid: 0,
        home: "/".into(),
    };
    if !user.is_empty() {
        let found = users
            .iter()
            .find(|e| e.first().map(String::as_str) == Some(user) || e.get(2).map(String::as_str) == Some(user));
        match (found, user.parse::<u32>()) {
            (Some(e), _) => {
                out.uid = e
                    .get(2)
                    .and_then(|v| v.parse().ok())
                    .ok_or(format!("bad /etc/passwd entry for {user}"))?;
                out.gid = e.get(3).and_then(|v| v.parse().ok()).unwrap_or(0);
                out.home = e
                    .get(5)
                    .cloned()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "/".into());
            }
            (None, Ok(uid)) => out.uid = uid,
            (None, Err(_)) => {
                return Err(format!(
                    "unable to find user {user}: no matching entries in /etc/passwd"
                ));
            }
        }
    }
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        let groups = entries(group);
        let found = groups.iter().find(|e| e.first().map(String::as_str) == Some(g));
        out.gid = match (found, g.parse::<u32>()) {
            (Some(e), _) => e
                .get(2)
                .and_then(|v| v.parse().ok())
                .ok_or(format!("bad /etc/group entry for {g}"))?,
            (None, Ok(gid)) => gid,
            (None, Err(_)) => return Err(format!("unable to find group {g}: no matching entries in /etc/group")),
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\n";

    #[test]
    fn names_numbers_and_groups() {
        let r = |s| resolve_with(s, PASSWD, GROUP);
        assert_eq!(
            r("").unwrap(),
            User {
                uid: 0,
                gid: 0,
                home: "/".into()
            }
        );
        assert_eq!(r("nobody").unwrap().uid, 65534);
        assert_eq!(r("nobody").unwrap().gid, 65534);
        assert_eq!(
            r("1000").unwrap(),
            User {
                uid: 1000,
                gid: 0,
                home: "/".into()
            }
        );
        assert_eq!(r("1000:staff").unwrap().gid, 50);
        assert_eq!(r("root:7").unwrap().gid, 7);
        assert!(r("ghost").unwrap_err().contains("ghost"));
    }
}
