//! Platform selection from an image index.
//!
//! `--platform os/arch[/variant][:os.version]` or containerd's `os(os.version)/arch[/variant]`.
//! Windows follows containerd's compatibility rules — a host below build 20348 runs only its own
//! build; from 20348 (LTSC 2022) on, images from 20348 up to the host build run; an empty
//! `os.version` matches — but picks numerically among matches: the exact build and revision,
//! then the same build with the highest revision, then the highest compatible build.

use std::cmp::Ordering;
use std::fmt;

use super::{Descriptor, OciError};

type Result<T> = std::result::Result<T, OciError>;

/// First Windows build of the LTSC 2022 era (Windows Server 2022).
const LTSC2022: u32 = 20348;
/// Windows LTSC builds with a stable container ABI (Server 2022, Server 2025).
const LTSC_BUILDS: [u32; 2] = [LTSC2022, 26100];

/// A wanted platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub arch: String,
    /// `v7`, `v8`, ... when it matters.
    pub variant: Option<String>,
    /// Windows host version to select for (`10.0.20348.2113`).
    pub os_version: Option<String>,
    /// OS features the host offers (`windows(10.0.20348+win32k)/amd64`).
    pub os_features: Vec<String>,
}

fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
        other => other,
    }
}

impl PlatformSpec {
    /// The platform of this machine.
    pub fn host() -> Self {
        PlatformSpec {
            os: std::env::consts::OS.to_owned(),
            arch: normalize_arch(std::env::consts::ARCH).to_owned(),
            variant: None,
            os_version: None,
            os_features: Vec::new(),
        }
    }

    /// Parses `os/arch[/variant][:os.version]` or `os(os.version)/arch[/variant]`.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |why: &str| OciError::Platform {
            value: value.to_owned(),
            why: why.to_owned(),
        };
        let (value_main, mut os_version) = match value.split_once(':') {
            Some((main, v)) => (main, Some(v.to_owned())),
            None => (value, None),
        };
        let mut parts = value_main.split('/');
        let mut os = parts.next().unwrap_or("").to_owned();
        let mut os_features = Vec::new();
        if let Some(open) = os.find('(') {
            let inner = os[open + 1..].strip_suffix(')').ok_or_else(|| bad("unclosed '('"))?;
            let mut fields = inner.split('+');
            let version = fields.next().unwrap_or("");
            if !version.is_empty() {
                os_version = Some(version.to_owned());
            }
            os_features = fields.filter(|f| !f.is_empty()).map(String::from).collect();
            os.truncate(open);
        }
        let arch = parts.next().ok_or_else(|| bad("expected os/arch"))?;
        let variant = parts.next().map(String::from);
        if parts.next().is_some() || os.is_empty() || arch.is_empty() {
            return Err(bad("expected os/arch[/variant][:os.version]"));
        }
        if let Some(v) = &os_version
            && WinVersion::parse(v).is_none()
        {
            return Err(bad("os.version must look like 10.0.20348[.2113]"));
        }
        Ok(PlatformSpec {
            os: os.to_lowercase(),
            arch: normalize_arch(arch).to_owned(),
            variant,
            os_version,
            os_features,
        })
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        if let Some(v) = &self.os_version {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}

/// A Windows version `major.minor.build[.revision]`, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct WinVersion {
    major: u32,
    minor: u32,
    build: u32,
    revision: u32,
}

impl WinVersion {
    fn parse(v: &str) -> Option<Self> {
        let mut it = v.trim().split('.').map(|p| p.parse::<u32>());
        let major = it.next()?.ok()?;
        let minor = it.next()?.ok()?;
        let build = it.next()?.ok()?;
        let revision = match it.next() {
            Some(r) => r.ok()?,
            None => 0,
        };
        it.next().is_none().then_some(WinVersion {
            major,
            minor,
            build,
            revision,
        })
    }
}

/// Why an index entry was not chosen.
fn reject_reason(d: &Descriptor, want: &PlatformSpec, host: Option<WinVersion>) -> std::result::Result<Rank, String> {
    let Some(p) = &d.platform else {
        return Err("no platform in the index entry".into());
    };
    let os = p.os.to_lowercase();
    let arch = normalize_arch(&p.architecture).to_owned();
    if os != want.os {
        return Err(format!("os {os} is not {}", want.os));
    }
    if arch != want.arch {
        return Err(format!("architecture {arch} is not {}", want.arch));
    }
    if let Some(v) = &want.variant {
        let theirs = p.variant.clone();
        let default_v8 = want.arch == "arm64" && v == "v8" && theirs.is_none();
        if theirs.as_deref() != Some(v.as_str()) && !default_v8 {
            return Err(format!(
                "variant {} is not {v}",
                theirs.unwrap_or_else(|| "(none)".into())
            ));
        }
    }
    // Features the image needs must be offered; `win32k` is not checked (containerd strips it).
    if let Some(missing) = p
        .os_features
        .iter()
        .find(|f| *f != "win32k" && !want.os_features.contains(f))
    {
        return Err(format!("requires os.features {missing}"));
    }
    if os != "windows" {
        return Ok(Rank::Plain);
    }
    let theirs = p.os_version.as_deref().filter(|v| !v.is_empty());
    let Some(theirs) = theirs else {
        return Ok(Rank::Unversioned);
    };
    let Some(theirs) = WinVersion::parse(theirs) else {
        return Err(format!("os.version {theirs:?} is not a Windows version"));
    };
    let Some(host) = host else {
        return Ok(Rank::Version(theirs, 0));
    };
    if (theirs.major, theirs.minor) != (host.major, host.minor) {
        return Err(format!(
            "os.version {}.{} does not match the host's {}.{}",
            theirs.major, theirs.minor, host.major, host.minor
        ));
    }
    host_runs(host.build, theirs.build)?;
    let closeness = if theirs.build == host.build && theirs.revision == host.revision {
        3
    } else if theirs.build == host.build {
        2
    } else {
        1
    };
    Ok(Rank::Version(theirs, closeness))
}

/// Whether a Windows host of build `host` runs (process-isolated) an image of build `image`,
/// and why not.
fn host_runs(host: u32, image: u32) -> std::result::Result<(), String> {
    if host < LTSC2022 {
        if image != host {
            return Err(format!(
                "build {image} cannot run on host build {host} (before 20348 builds must match)"
            ));
        }
        return Ok(());
    }
    // From the newest LTSC strictly below the host build (20348 at least) up to the host build.
    let lowest = LTSC_BUILDS
        .iter()
        .copied()
        .filter(|b| *b < host)
        .max()
        .unwrap_or(LTSC2022);
    if image < lowest || image > host {
        return Err(format!(
            "build {image} is outside {lowest}..={host} that host build {host} runs"
        ));
    }
    Ok(())
}

/// The Windows host builds that run an image of `os_version` (`10.0.20348.2113`) under the
/// rules above: `(first, last)`, `last` none when every later build does (as far as the LTSC
/// builds known here tell). None for a version that is not a Windows version.
pub fn windows_host_builds(os_version: &str) -> Option<(u32, Option<u32>)> {
    let image = WinVersion::parse(os_version)?.build;
    if image < LTSC2022 {
        return Some((image, Some(image)));
    }
    // Every later host up to the first LTSC above the image: that one's range starts at the
    // newest LTSC below it, which is at most the image's build.
    let last = LTSC_BUILDS.iter().copied().find(|b| *b > image);
    debug_assert!(last.is_none_or(|l| host_runs(l, image).is_ok()));
    Some((image, last))
}

/// How good a match is; greater is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rank {
    /// A Windows entry with no os.version.
    Unversioned,
    /// A non-Windows entry.
    Plain,
    /// A Windows entry: its version and closeness class (3 exact, 2 same build, 1 compatible).
    Version(WinVersion, u8),
}

impl Rank {
    fn cmp_key(&self) -> (u8, u8, Option<WinVersion>) {
        match self {
            Rank::Unversioned => (0, 0, None),
            Rank::Plain => (1, 0, None),
            Rank::Version(v, c) => (1, *c, Some(*v)),
        }
    }
}

/// Picks the best entry of an index's `manifests` for `want`. `host_os_version` is the Windows
/// host build to select for (it overrides `want.os_version`). With no match, the error lists
/// every entry and why it was rejected.
pub fn select<'a>(
    manifests: &'a [Descriptor],
    want: &PlatformSpec,
    host_os_version: Option<&str>,
) -> Result<&'a Descriptor> {
    let host_version = host_os_version
        .or(want.os_version.as_deref())
        .and_then(WinVersion::parse);
    let mut best: Option<(Rank, &Descriptor)> = None;
    let mut reasons = Vec::new();
    for d in manifests {
        match reject_reason(d, want, host_version) {
            Ok(rank) => {
                let better = best
                    .as_ref()
                    .is_none_or(|(b, _)| rank.cmp_key().cmp(&b.cmp_key()) == Ordering::Greater);
                if better {
                    best = Some((rank, d));
                }
            }
            Err(why) => {
                let platform = d.platform.as_ref().map_or("(none)".to_string(), |p| p.to_string());
                reasons.push(format!("  {platform} ({}): {why}", d.digest));
            }
        }
    }
    best.map(|(_, d)| d).ok_or_else(|| OciError::NoMatch {
        want: want.to_string(),
        rejected: reasons.join("\n"),
    })
}

/// The entry of an index in a local store to use for `want`: the best match among `present`
/// (the entries whose manifests the store holds), or the only one present when none matches —
/// a store holding one image of an index means that image (one pulled for another platform, to
/// be inspected or unpacked here).
pub fn select_present<'a>(
    present: &'a [Descriptor],
    want: &PlatformSpec,
    host_os_version: Option<&str>,
) -> Result<&'a Descriptor> {
    match select(present, want, host_os_version) {
        Err(_) if present.len() == 1 => Ok(&present[0]),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_images_name_the_host_builds_that_run_them() {
        assert_eq!(windows_host_builds("10.0.17763.5830"), Some((17763, Some(17763))));
        assert_eq!(windows_host_builds("10.0.20348.2113"), Some((20348, Some(26100))));
        assert_eq!(windows_host_builds("10.0.22631.1"), Some((22631, Some(26100))));
        assert_eq!(windows_host_builds("10.0.26100.1742"), Some((26100, None)));
        assert_eq!(windows_host_builds("ltsc2022"), None);
        // The range agrees with selection: each end runs the image, one past it does not.
        for (image, (first, last)) in [(20348, (20348, 26100)), (22631, (22631, 26100))] {
            assert!(host_runs(first, image).is_ok() && host_runs(last, image).is_ok());
            assert!(host_runs(first - 1, image).is_err() && host_runs(last + 1, image).is_err());
        }
    }

    fn entry(platform: &str, n: u8) -> Descriptor {
        let spec = PlatformSpec::parse(platform).unwrap();
        let mut p = serde_json::json!({ "os": spec.os, "architecture": spec.arch });
        if let Some(v) = spec.variant {
            p["variant"] = v.into();
        }
        if let Some(v) = spec.os_version {
            p["os.version"] = v.into();
        }
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", format!("{n:02x}").repeat(32)),
            "size": 1,
            "platform": p,
        }))
        .unwrap()
    }

    fn pick(entries: &[Descriptor], want: &str, host: Option<&str>) -> Option<u8> {
        let d = select(entries, &PlatformSpec::parse(want).unwrap(), host).ok()?;
        Some(u8::from_str_radix(&d.digest.digest()[..2], 16).unwrap())
    }

    #[test]
    fn platform_syntax() {
        let p = PlatformSpec::parse("windows(10.0.20348+win32k)/amd64").unwrap();
        assert_eq!(
            (p.os.as_str(), p.arch.as_str(), p.os_version.as_deref()),
            ("windows", "amd64", Some("10.0.20348"))
        );
        let p = PlatformSpec::parse("linux/arm/v7").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        let p = PlatformSpec::parse("windows/amd64:10.0.17763.1234").unwrap();
        assert_eq!(p.os_version.as_deref(), Some("10.0.17763.1234"));
        assert_eq!(PlatformSpec::parse("linux/x86_64").unwrap().arch, "amd64");
        for bad in ["linux", "linux/", "a/b/c/d", "windows/amd64:ten", "windows(10/amd64"] {
            assert!(PlatformSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn linux_selection_by_os_arch_variant() {
        let idx = [
            entry("linux/amd64", 1),
            entry("linux/arm64", 2),
            entry("linux/arm/v7", 3),
            entry("linux/arm/v6", 4),
        ];
        assert_eq!(pick(&idx, "linux/amd64", None), Some(1));
        assert_eq!(
            pick(&idx, "linux/arm64/v8", None),
            Some(2),
            "arm64 without variant is v8"
        );
        assert_eq!(pick(&idx, "linux/arm/v6", None), Some(4));
        assert_eq!(pick(&idx, "linux/s390x", None), None);
    }

    #[test]
    fn windows_builds_below_ltsc2022_must_match_exactly() {
        let idx = [
            entry("windows/amd64:10.0.17763.5000", 1),
            entry("windows/amd64:10.0.19041.100", 2),
        ];
        assert_eq!(pick(&idx, "windows/amd64", Some("10.0.17763.1")), Some(1));
        assert_eq!(pick(&idx, "windows/amd64", Some("10.0.18363")), None);
    }

    #[test]
    fn windows_from_ltsc2022_runs_20348_up_to_the_host_build() {
        let idx = [
            entry("windows/amd64:10.0.17763.5000", 1),
            entry("windows/amd64:10.0.20348.2113", 2),
            entry("windows/amd64:10.0.20348.2500", 3),
            entry("windows/amd64:10.0.26100.100", 4),
        ];
        // Exact build and revision wins.
        assert_eq!(pick(&idx, "windows/amd64", Some("10.0.20348.2113")), Some(2));
        // Same build, highest revision next.
        assert_eq!(pick(&idx, "windows/amd64", Some("10.0.20348.9999")), Some(3));
        // A 2025 host runs 2022 and 2025 images; the highest compatible build wins.
        assert_eq!(pick(&idx, "windows/amd64", Some("10.0.26100.1")), Some(4));
        // A host between LTSCs cannot run newer builds.
        assert_eq!(pick(&idx, "windows/amd64", Some("10.0.22000.1")), Some(3));
        // The same choice from --platform's own os.version.
        assert_eq!(pick(&idx, "windows/amd64:10.0.20348.2113", None), Some(2));
        // 17763 images never run on 20348+ hosts.
        let old = [entry("windows/amd64:10.0.17763.5000", 1)];
        let err = select(&old, &PlatformSpec::parse("windows/amd64").unwrap(), Some("10.0.20348")).unwrap_err();
        assert!(err.to_string().contains("outside 20348"), "{err}");
        // Past Server 2025 the window starts at 26100.
        assert_eq!(pick(&idx, "windows/amd64", Some("10.0.26200.1")), Some(4));
        assert_eq!(pick(&idx[..3], "windows/amd64", Some("10.0.26200.1")), None);
    }

    #[test]
    fn os_features_must_be_offered_except_win32k() {
        let mut needs = entry("windows/amd64:10.0.20348.1", 1);
        needs.platform.as_mut().unwrap().os_features = vec!["win32k".into()];
        assert_eq!(
            pick(std::slice::from_ref(&needs), "windows/amd64", Some("10.0.20348.1")),
            Some(1)
        );
        needs.platform.as_mut().unwrap().os_features = vec!["fancy".into()];
        assert_eq!(
            pick(std::slice::from_ref(&needs), "windows/amd64", Some("10.0.20348.1")),
            None
        );
        assert_eq!(pick(&[needs], "windows(10.0.20348.1+fancy)/amd64", None), Some(1));
    }

    #[test]
    fn empty_os_version_matches_but_loses_to_versioned_entries() {
        let idx = [entry("windows/amd64", 1), entry("windows/amd64:10.0.20348.100", 2)];
        assert_eq!(pick(&idx, "windows/amd64", Some("10.0.20348.200")), Some(2));
        assert_eq!(pick(&idx[..1], "windows/amd64", Some("10.0.17763")), Some(1));
    }

    #[test]
    fn no_match_lists_every_entry_and_why() {
        let idx = [entry("linux/arm64", 1), entry("windows/amd64:10.0.17763.1", 2)];
        let err = select(&idx, &PlatformSpec::parse("linux/amd64").unwrap(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux/arm64") && err.contains("architecture arm64 is not amd64"),
            "{err}"
        );
        assert!(
            err.contains("windows/amd64:10.0.17763.1") && err.contains("os windows is not linux"),
            "{err}"
        );
    }

    #[test]
    fn a_store_holding_one_image_of_an_index_means_that_image() {
        let only = [entry("linux/arm64", 1)];
        let want = PlatformSpec::parse("linux/amd64").unwrap();
        assert!(select(&only, &want, None).is_err());
        assert_eq!(select_present(&only, &want, None).unwrap(), &only[0]);
        let two = [entry("linux/arm64", 1), entry("linux/ppc64le", 2)];
        assert!(matches!(
            select_present(&two, &want, None),
            Err(OciError::NoMatch { .. })
        ));
    }
}
