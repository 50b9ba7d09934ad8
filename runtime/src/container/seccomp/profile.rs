//! Seccomp profiles in docker's JSON format (`--security-opt seccomp=FILE`): `defaultAction`
//! (with `defaultErrnoRet`), and `syscalls` entries of `names`, `action` (with `errnoRet`),
//! `args` (`index`, `value`, `valueTwo`, `op`), and `includes` / `excludes` by capability,
//! architecture and minimum kernel, read as docker reads them: an entry applies when the
//! container has every capability it includes and none it excludes. Names this architecture
//! does not have are skipped; `archMap` is not needed (libseccomp filters for this machine).

use std::collections::BTreeSet;

use caps::CapsHashSet;
use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use serde::Deserialize;

/// Largest profile read.
pub(crate) const MAX_PROFILE: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<i32>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// The older single-name form.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<i32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// Docker's name of this machine's architecture, as `includes.arches` lists it.
fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// This kernel's `major.minor`.
fn kernel() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn at_least(min: &str) -> bool {
    let mut parts = min.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    kernel() >= (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn action(name: &str, errno: Option<i32>) -> Result<ScmpAction, String> {
    let value = match name {
        "SCMP_ACT_ERRNO" => Some(errno.unwrap_or(libc::EPERM)),
        "SCMP_ACT_TRACE" => Some(errno.unwrap_or(0)),
        _ => None,
    };
    match ScmpAction::from_str(name, value) {
        Ok(ScmpAction::Notify) | Err(_) => Err(format!("seccomp profile: unsupported action {name:?}")),
        Ok(action) => Ok(action),
    }
}

fn compare(arg: &Arg) -> Result<ScmpArgCompare, String> {
    let op = match arg.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        // Docker's `value` is the mask and `valueTwo` the value the masked argument must equal.
        "SCMP_CMP_MASKED_EQ" => {
            return Ok(ScmpArgCompare::new(
                arg.index,
                ScmpCompareOp::MaskedEqual(arg.value),
                arg.value_two,
            ));
        }
        other => return Err(format!("seccomp profile: unknown comparison {other:?}")),
    };
    Ok(ScmpArgCompare::new(arg.index, op, arg.value))
}

/// Whether `rule` applies to a container holding `caps` (`CAP_…` names) on this machine.
fn applies(rule: &Rule, caps: &BTreeSet<String>) -> bool {
    let has = |c: &String| caps.contains(&caps::to_canonical(c));
    let arch = docker_arch();
    rule.includes.caps.iter().all(has)
        && !rule.excludes.caps.iter().any(has)
        && (rule.includes.arches.is_empty() || rule.includes.arches.iter().any(|a| a == arch))
        && !rule.excludes.arches.iter().any(|a| a == arch)
        && rule.includes.min_kernel.as_deref().is_none_or(at_least)
        && !rule.excludes.min_kernel.as_deref().is_some_and(at_least)
}

/// The filter `json` describes, for a container holding `capabilities`.
pub(crate) fn filter(json: &str, capabilities: &CapsHashSet) -> Result<ScmpFilterContext, String> {
    let profile: Profile =
        serde_json::from_str(json).map_err(|e| format!("seccomp profile is not docker's JSON format: {e}"))?;
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    let err = |e: libseccomp::error::SeccompError| format!("seccomp profile: {e}");
    let mut filter = ScmpFilterContext::new(default).map_err(err)?;
    filter.set_ctl_nnp(false).map_err(err)?;
    let caps: BTreeSet<String> = capabilities.iter().map(|c| c.to_string()).collect();
    for rule in profile.syscalls.iter().filter(|r| applies(r, &caps)) {
        let action = action(&rule.action, rule.errno_ret)?;
        if action == default {
            continue; // libseccomp refuses a rule that changes nothing
        }
        let args = rule.args.iter().flatten().map(compare).collect::<Result<Vec<_>, _>>()?;
        let indexes: BTreeSet<u32> = rule.args.iter().flatten().map(|a| a.index).collect();
        for name in rule.names.iter().chain(&rule.name) {
            // A call this architecture does not have cannot be made here anyway.
            let Ok(call) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if indexes.len() == args.len() {
                filter.add_rule_conditional(action, call, &args).map_err(err)?;
            } else {
                // Several comparisons of one argument: any of them (as docker adds them).
                for arg in &args {
                    filter
                        .add_rule_conditional(action, call, std::slice::from_ref(arg))
                        .map_err(err)?;
                }
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_profiles_build_and_bad_ones_are_named() {
        let caps: CapsHashSet = crate::container::DEFAULT_CAPABILITIES.into_iter().collect();
        let profile = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
            {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
                {"index":0,"value":8,"op":"SCMP_CMP_EQ"},{"index":0,"value":131072,"op":"SCMP_CMP_EQ"}]},
            {"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[
                {"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}],
             "excludes":{"caps":["CAP_SYS_ADMIN"]}},
            {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}},
            {"name":"reboot","action":"SCMP_ACT_KILL"}]}"#;
        filter(profile, &caps).unwrap();
        for (bad, why) in [
            ("not json", "docker's JSON format"),
            (r#"{"defaultAction":"SCMP_ACT_DANCE"}"#, "SCMP_ACT_DANCE"),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_ABOUT"}]}]}"#,
                "SCMP_CMP_ABOUT",
            ),
        ] {
            let e = filter(bad, &caps).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn entries_follow_includes_and_excludes() {
        let rule = |json: &str| serde_json::from_str::<Rule>(json).unwrap();
        let caps: BTreeSet<String> = ["CAP_SYS_ADMIN".to_owned()].into();
        assert!(applies(
            &rule(r#"{"names":[],"action":"x","includes":{"caps":["SYS_ADMIN"]}}"#),
            &caps
        ));
        assert!(!applies(
            &rule(r#"{"names":[],"action":"x","excludes":{"caps":["CAP_SYS_ADMIN"]}}"#),
            &caps
        ));
        assert!(!applies(
            &rule(r#"{"names":[],"action":"x","includes":{"arches":["s390x"]}}"#),
            &caps
        ));
        assert!(!applies(
            &rule(r#"{"names":[],"action":"x","includes":{"minKernel":"99.0"}}"#),
            &caps
        ));
    }
}
