//! Users and groups: an htpasswd file of bcrypt entries (`htpasswd -B` writes them) and a groups
//! file of `group: user, user` lines, both reloaded when they change (a file that no longer
//! parses keeps the previous contents, and the reason is logged).
//!
//! bcrypt costs tens of milliseconds by design, so a successful check is remembered for a short
//! time under a SHA-256 of the credentials (never the password itself), and forgotten when the
//! htpasswd file changes. An unknown user costs the same bcrypt as a known one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::watch::{Stamps, stamps};

/// How long a verified password is remembered.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most remembered passwords.
const CACHE_ENTRIES: usize = 10_000;

/// The contents of the two files, and what they looked like on disk.
#[derive(Debug, Default)]
struct Loaded {
    /// user → bcrypt hash.
    passwords: HashMap<String, String>,
    /// user → groups.
    groups: HashMap<String, Vec<String>>,
    /// What the files looked like when read.
    stamps: Stamps,
}

/// The users and groups of `[auth]`.
#[derive(Debug)]
pub struct Users {
    htpasswd: Option<PathBuf>,
    groups: Option<PathBuf>,
    loaded: RwLock<Arc<Loaded>>,
    /// Bumped on every reload: cache keys include it, so old entries stop matching.
    generation: AtomicU64,
    cache: Mutex<HashMap<[u8; 32], Instant>>,
}

fn parse_htpasswd(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| format!("{} line {}: expected user:hash", path.display(), n + 1))?;
        if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
            return Err(format!(
                "{} line {}: the entry for {user:?} is not bcrypt (create it with htpasswd -B)",
                path.display(),
                n + 1
            ));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

fn parse_groups(path: &Path) -> Result<HashMap<String, Vec<String>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut of_user: HashMap<String, Vec<String>> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (group, members) = line
            .split_once(':')
            .ok_or_else(|| format!("{} line {}: expected group: user, user", path.display(), n + 1))?;
        for user in members.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            of_user
                .entry(user.to_owned())
                .or_default()
                .push(group.trim().to_owned());
        }
    }
    Ok(of_user)
}

/// A bcrypt hash to check unknown users against, so that they cost the same time.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| bcrypt::hash("strata decoy password", 10).expect("bcrypt of a fixed password"))
}

impl Users {
    /// Reads the files; an unreadable or malformed file is a configuration error.
    pub fn open(htpasswd: Option<&Path>, groups: Option<&Path>) -> Result<Self, String> {
        let users = Users {
            htpasswd: htpasswd.map(Path::to_owned),
            groups: groups.map(Path::to_owned),
            loaded: RwLock::new(Arc::new(Loaded::default())),
            generation: AtomicU64::new(0),
            cache: Mutex::new(HashMap::new()),
        };
        *users.loaded.write().expect("users lock") = Arc::new(users.read()?);
        Ok(users)
    }

    fn read(&self) -> Result<Loaded, String> {
        let mut loaded = Loaded::default();
        if let Some(path) = &self.htpasswd {
            loaded.passwords = parse_htpasswd(path)?;
        }
        if let Some(path) = &self.groups {
            loaded.groups = parse_groups(path)?;
        }
        loaded.stamps = self.stamps();
        Ok(loaded)
    }

    fn stamps(&self) -> Stamps {
        stamps(
            [&self.htpasswd, &self.groups]
                .into_iter()
                .flatten()
                .map(PathBuf::as_path),
        )
    }

    /// Re-reads the files if they changed; returns whether they were reloaded.
    pub fn reload_if_changed(&self) -> bool {
        if self.loaded.read().expect("users lock").stamps == self.stamps() {
            return false;
        }
        match self.read() {
            Ok(loaded) => {
                *self.loaded.write().expect("users lock") = Arc::new(loaded);
                self.generation.fetch_add(1, Ordering::SeqCst);
                self.cache.lock().expect("cache lock").clear();
                tracing::info!("reloaded users and groups");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "users or groups file changed but does not parse; keeping the previous one");
                false
            }
        }
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.generation.load(Ordering::SeqCst).to_le_bytes());
        hasher.update(user.as_bytes());
        hasher.update([0]);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    /// Whether `password` is `user`'s. Runs bcrypt unless the pair was verified moments ago;
    /// call it off the async threads.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let key = self.cache_key(user, password);
        if let Some(at) = self.cache.lock().expect("cache lock").get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return true;
        }
        let loaded = self.loaded.read().expect("users lock").clone();
        let ok = match loaded.passwords.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, decoy());
                false
            }
        };
        if ok {
            let mut cache = self.cache.lock().expect("cache lock");
            if cache.len() >= CACHE_ENTRIES {
                cache.retain(|_, at| at.elapsed() < CACHE_TTL);
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(key, Instant::now());
        }
        ok
    }

    /// Whether `user` is in the htpasswd file (or, without one, may sign in some other way).
    pub fn exists(&self, user: &str) -> bool {
        self.htpasswd.is_none() || self.loaded.read().expect("users lock").passwords.contains_key(user)
    }

    /// The groups `user` is in.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.loaded
            .read()
            .expect("users lock")
            .groups
            .get(user)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_entries_groups_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let groups = dir.path().join("groups");
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        std::fs::write(&htpasswd, format!("# users\nalice:{hash}\n")).unwrap();
        std::fs::write(&groups, "ci: alice, runner\nadmins: root\n").unwrap();
        let users = Users::open(Some(&htpasswd), Some(&groups)).unwrap();
        assert!(users.verify("alice", "s3cret"));
        assert!(users.verify("alice", "s3cret"), "from the cache");
        assert!(!users.verify("alice", "wrong"));
        assert!(!users.verify("mallory", "s3cret"));
        assert_eq!(users.groups_of("alice"), ["ci"]);
        assert!(users.exists("alice") && !users.exists("bob"));

        // A broken file keeps the old users.
        std::fs::write(&htpasswd, "alice:plaintext\n").unwrap();
        assert!(!users.reload_if_changed());
        assert!(users.verify("alice", "s3cret"));
        // A new file replaces them, and the cache forgets the old password.
        let hash = bcrypt::hash("new password", 4).unwrap();
        std::fs::write(&htpasswd, format!("alice:{hash}\nbob:{hash}\n")).unwrap();
        assert!(users.reload_if_changed());
        assert!(!users.verify("alice", "s3cret"));
        assert!(users.verify("bob", "new password"));
    }

    #[test]
    fn non_bcrypt_entries_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, "alice:{SHA}abc\n").unwrap();
        let err = Users::open(Some(&htpasswd), None).unwrap_err();
        assert!(err.contains("htpasswd -B") && err.contains("line 1"), "{err}");
    }
}
