//! Registry paths as users write them (`HKLM\SOFTWARE\Microsoft`), and which hive file each
//! root names.

use crate::error::{HiveError, Result};
use crate::model::MAX_DEPTH;

/// Longest key name Windows accepts, in characters.
const MAX_NAME: usize = 255;

/// A hive of a Windows image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HiveName {
    /// `HKLM\SYSTEM`.
    System,
    /// `HKLM\SOFTWARE`.
    Software,
    /// `HKLM\SAM`.
    Sam,
    /// `HKLM\SECURITY`.
    Security,
    /// `HKU\.DEFAULT`.
    Default,
}

impl HiveName {
    /// Every hive.
    pub const ALL: [HiveName; 5] = [
        HiveName::System,
        HiveName::Software,
        HiveName::Sam,
        HiveName::Security,
        HiveName::Default,
    ];

    /// Its file in `Windows/System32/config/` of a base layer.
    pub fn config_file(self) -> &'static str {
        match self {
            HiveName::System => "SYSTEM",
            HiveName::Software => "SOFTWARE",
            HiveName::Sam => "SAM",
            HiveName::Security => "SECURITY",
            HiveName::Default => "DEFAULT",
        }
    }

    /// The name of its files under a layer's `Hives/` (`<name>_BASE`, `<name>_Delta`).
    pub fn layer_name(self) -> &'static str {
        match self {
            HiveName::Default => "DEFAULTUSER",
            other => other.config_file(),
        }
    }

    /// Its root as a path (`HKLM\SOFTWARE`).
    pub fn root(self) -> &'static str {
        match self {
            HiveName::System => "HKLM\\SYSTEM",
            HiveName::Software => "HKLM\\SOFTWARE",
            HiveName::Sam => "HKLM\\SAM",
            HiveName::Security => "HKLM\\SECURITY",
            HiveName::Default => "HKU\\.DEFAULT",
        }
    }
}

/// A key of an image's registry: its hive and the names below the hive's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegPath {
    /// The hive.
    pub hive: HiveName,
    /// Key names below the hive's root.
    pub keys: Vec<String>,
}

impl RegPath {
    /// Parses `HKLM\SOFTWARE\…`, `HKEY_LOCAL_MACHINE\SYSTEM\…`, `HKU\.DEFAULT\…` (any case;
    /// `\` separates names; a trailing `\` is ignored).
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.trim_end_matches('\\').split('\\');
        let root = parts.next().unwrap_or_default().to_ascii_uppercase();
        let second = parts.next().unwrap_or_default().to_ascii_uppercase();
        let hive = match (root.as_str(), second.as_str()) {
            ("HKLM" | "HKEY_LOCAL_MACHINE", "SYSTEM") => HiveName::System,
            ("HKLM" | "HKEY_LOCAL_MACHINE", "SOFTWARE") => HiveName::Software,
            ("HKLM" | "HKEY_LOCAL_MACHINE", "SAM") => HiveName::Sam,
            ("HKLM" | "HKEY_LOCAL_MACHINE", "SECURITY") => HiveName::Security,
            ("HKU" | "HKEY_USERS", ".DEFAULT") => HiveName::Default,
            _ => {
                return Err(HiveError::Invalid(format!(
                    "{text:?}: a key of an image starts with HKLM\\SYSTEM, HKLM\\SOFTWARE, HKLM\\SAM, HKLM\\SECURITY or HKU\\.DEFAULT"
                )));
            }
        };
        let keys: Vec<String> = parts.map(str::to_owned).collect();
        if keys.len() > MAX_DEPTH {
            return Err(HiveError::Invalid(format!("{text:?}: deeper than {MAX_DEPTH} keys")));
        }
        if let Some(bad) = keys.iter().find(|k| k.is_empty() || k.chars().count() > MAX_NAME) {
            return Err(HiveError::Invalid(format!(
                "{text:?}: key name {bad:?} is empty or longer than {MAX_NAME} characters"
            )));
        }
        Ok(RegPath { hive, keys })
    }

    /// The path as text, from the hive's root.
    pub fn display(&self) -> String {
        let mut out = self.hive.root().to_owned();
        for key in &self.keys {
            out.push('\\');
            out.push_str(key);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_map_to_hives_as_windows_names_them() {
        let p = RegPath::parse("hkey_local_machine\\Software\\Microsoft\\Windows NT\\").unwrap();
        assert_eq!(p.hive, HiveName::Software);
        assert_eq!(p.keys, ["Microsoft", "Windows NT"]);
        assert_eq!(p.display(), "HKLM\\SOFTWARE\\Microsoft\\Windows NT");
        assert_eq!(
            RegPath::parse("HKU\\.DEFAULT").unwrap().hive.layer_name(),
            "DEFAULTUSER"
        );
        assert_eq!(RegPath::parse("HKLM\\SYSTEM").unwrap().keys.len(), 0);
        for bad in ["HKCU\\Software", "HKLM", "HKLM\\SOFTWARE\\a\\\\b", "SOFTWARE\\x"] {
            assert!(RegPath::parse(bad).is_err(), "{bad}");
        }
        let deep = format!("HKLM\\SOFTWARE{}", "\\k".repeat(MAX_DEPTH + 1));
        assert!(RegPath::parse(&deep).is_err());
    }
}
