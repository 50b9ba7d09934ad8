//! Publishing container ports on the host (`-p [IP:]HOST:CONTAINER[/udp]`): the container's
//! network namespace gets a user-mode network from `pasta` (Debian's `passt`), which copies the
//! host's addresses and routes into it, forwards the published host ports into it, and quits
//! when the container's helper (the namespace's first process) ends. Without `-p` a container
//! keeps loopback only.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// The host address to listen on (all when `None`).
    #[serde(default)]
    pub host_ip: Option<String>,
    /// The host port.
    pub host: u16,
    /// The container port.
    pub container: u16,
    /// `udp` instead of `tcp`.
    #[serde(default)]
    pub udp: bool,
}

impl Port {
    /// Parses `[IP:]HOST:CONTAINER[/tcp|/udp]` (docker's `-p` form, one port).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("-p {spec:?}: {why}");
        let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            _ => return Err(bad("the protocol is tcp or udp")),
        };
        let parts: Vec<&str> = ports.rsplitn(3, ':').collect();
        let (host_ip, host, container) = match parts.as_slice() {
            [container, host] => (None, *host, *container),
            [container, host, ip] if !ip.is_empty() => (Some((*ip).to_owned()), *host, *container),
            _ => return Err(bad("expected [IP:]HOST:CONTAINER[/udp]")),
        };
        if let Some(ip) = &host_ip
            && ip.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_err()
        {
            return Err(bad("not an IP address"));
        }
        let number = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| bad("ports are 1-65535"))
        };
        Ok(Port {
            host_ip: host_ip.map(|ip| ip.trim_matches(['[', ']']).to_owned()),
            host: number(host)?,
            container: number(container)?,
            udp,
        })
    }

    /// pasta's forwarding spec: `[ADDR/]HOST:CONTAINER`.
    fn pasta_spec(&self) -> String {
        match &self.host_ip {
            Some(ip) => format!("{ip}/{}:{}", self.host, self.container),
            None => format!("{}:{}", self.host, self.container),
        }
    }
}

/// pasta, started in the host's network namespace before the container's exists, waiting to be
/// pointed at it ([`Publisher::start`]): pasta reads the host's interfaces and routes from the
/// namespace it runs in.
#[derive(Debug)]
pub(super) struct Publisher {
    waiting: Child,
}

impl Publisher {
    /// Prepares pasta for `ports`. Call before the container's network namespace is made.
    pub(super) fn prepare(ports: &[Port]) -> Result<Self, String> {
        // `sh` waits for a line, then becomes pasta with the PID given on it.
        let waiting = Command::new("sh")
            .arg("-c")
            .arg("read netns && exec pasta \"$@\" --netns \"$netns\"")
            .arg("pasta")
            .args(pasta_args(ports))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start pasta: {e}"))?;
        Ok(Publisher { waiting })
    }

    /// Points pasta at the container's network namespace, bound at `netns` (a file in the host's
    /// mount namespace: pasta cannot open `/proc/PID/ns/net` of a process holding more
    /// capabilities than it); returns once pasta has set it up and gone to the background,
    /// where it stays until `netns` is unmounted and removed ([`unbind`]).
    pub(super) fn start(mut self, netns: &Path) -> Result<(), String> {
        let mut stdin = self.waiting.stdin.take().expect("piped");
        writeln!(stdin, "{}", netns.display()).map_err(|e| format!("start pasta: {e}"))?;
        drop(stdin);
        let output = self
            .waiting
            .wait_with_output()
            .map_err(|e| format!("start pasta: {e}"))?;
        match output.status.code() {
            Some(0) => Ok(()),
            Some(127) => Err("publishing ports needs pasta (Debian package passt)".into()),
            _ => Err(format!(
                "pasta could not publish the ports: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        }
    }
}

/// The file in a container's directory where its network namespace is bound while ports are
/// published.
pub(crate) const NETNS: &str = "netns";

/// Binds the calling process's network namespace at `file` (created), for pasta to join.
pub(super) fn bind(file: &Path) -> Result<(), String> {
    std::fs::write(file, b"").map_err(|e| format!("create {}: {e}", file.display()))?;
    nix::mount::mount(
        Some("/proc/self/ns/net"),
        file,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind the network namespace at {}: {e}", file.display()))
}

/// Undoes [`bind`] (pasta then quits); nothing to do if it was not bound.
pub(super) fn unbind(file: &Path) {
    let _ = nix::mount::umount2(file, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(file);
}

/// pasta's options for `ports`: the host's addresses and routes copied in, `ports` forwarded
/// from the host, nothing else forwarded either way.
fn pasta_args(ports: &[Port]) -> Vec<String> {
    let mut args: Vec<String> = vec!["--config-net".into(), "--quiet".into()];
    for port in ports {
        args.push(if port.udp { "-u" } else { "-t" }.into());
        args.push(port.pasta_spec());
    }
    // Nothing else is forwarded: pasta's default would forward every port.
    if !ports.iter().any(|p| !p.udp) {
        args.extend(["-t".into(), "none".into()]);
    }
    if !ports.iter().any(|p| p.udp) {
        args.extend(["-u".into(), "none".into()]);
    }
    args.extend(["-T", "none", "-U", "none", "--runas", "0"].map(String::from));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_port_specs_parse() {
        assert_eq!(
            Port::parse("8080:80").unwrap(),
            Port {
                host_ip: None,
                host: 8080,
                container: 80,
                udp: false
            }
        );
        let p = Port::parse("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(
            (p.host_ip.as_deref(), p.host, p.container, p.udp),
            (Some("127.0.0.1"), 5353, 53, true)
        );
        assert_eq!(Port::parse("[::1]:8080:80").unwrap().host_ip.as_deref(), Some("::1"));
        for bad in ["80", "0:80", "8080:80/sctp", "x:80", "nohost:8080:80", "70000:80"] {
            assert!(Port::parse(bad).is_err(), "{bad}");
        }
    }
}
