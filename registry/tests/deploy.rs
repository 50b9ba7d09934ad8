//! What `deploy/` ships holds together: the Kubernetes manifests render (kustomize, offline),
//! their registry configuration parses and fits the pod's shutdown grace, the probes and the
//! security context are what the README promises, the container configuration parses, the
//! Dockerfile's health check is a command the binary has, the compose file is valid (Debian's
//! docker-compose) and configures the registries with variables the registry reads, and the
//! Grafana dashboard asks only for metrics the registry serves.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::TestRegistry;
use strata_registry::Config;

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The block scalar under `key: |` in a YAML document, dedented.
fn yaml_block(text: &str, key: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let header = lines.next().expect("the key");
    let indent = header.len() - header.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_kubernetes_manifests_render_and_fit_the_registry() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let rendered = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl (apt-get install kubectl)");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rendered = String::from_utf8(rendered.stdout).unwrap();
    let kinds: BTreeSet<&str> = rendered.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap",
            "Deployment",
            "Namespace",
            "PodDisruptionBudget",
            "Secret",
            "Service"
        ])
    );

    let config = Config::from_toml(&yaml_block(&deploy("kubernetes/configmap.yaml"), "registry.toml")).unwrap();
    let deployment = deploy("kubernetes/deployment.yaml");
    let grace: u64 = deployment
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        config.server.shutdown_timeout.as_secs() < grace,
        "SIGTERM must leave the registry time to finish requests"
    );
    for promise in [
        "replicas: 3",
        "path: /healthz",
        "path: /readyz",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "secretRef:",
    ] {
        assert!(deployment.contains(promise), "deployment.yaml lacks {promise:?}");
    }
    assert!(deploy("kubernetes/poddisruptionbudget.yaml").contains("minAvailable: 2"));
}

#[test]
fn the_container_image_configuration_and_health_check_work() {
    let config = Config::from_toml(&deploy("container.toml")).unwrap();
    assert_eq!(config.listen.port(), 5000);
    let dockerfile = deploy("Dockerfile");
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains(r#""--config", "/etc/strata/registry.toml", "health"]"#));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_strata-registry"))
        .args(["health", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "the health command the image's HEALTHCHECK runs");
    // The image script builds the same: the same user, entrypoint and configuration.
    let script = deploy("image.sh");
    for same in [
        "USER 65532:65532",
        "/etc/strata/registry.toml",
        "VOLUME /var/lib/strata",
    ] {
        assert!(script.contains(same), "image.sh lacks {same:?}");
    }
}

#[test]
fn the_compose_file_is_valid_and_configures_its_registries() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/compose");
    let compose = |env: &[(&str, &str)]| {
        std::process::Command::new("docker-compose")
            .args(["-f", "compose.yaml", "config"])
            .current_dir(&dir)
            .env_remove("GARAGE_KEY_ID")
            .env_remove("GARAGE_SECRET")
            .envs(env.iter().copied())
            .output()
            .expect("docker-compose (apt-get install docker-compose)")
    };
    // Without the keys bootstrap.sh writes, it refuses to start and says why.
    let refused = compose(&[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("run bootstrap.sh"));

    let rendered = compose(&[("GARAGE_KEY_ID", "GKbootstrapped"), ("GARAGE_SECRET", "s3cret")]);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rendered = String::from_utf8(rendered.stdout).unwrap();
    let top = |l: &&str| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':');
    let services: BTreeSet<&str> = rendered
        .lines()
        .skip_while(|l| *l != "services:")
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter(top)
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["balancer", "garage", "registry-1", "registry-2"])
    );
    assert_eq!(rendered.matches("read_only: true").count(), 2, "both registries");
    assert!(rendered.contains("host_ip: 127.0.0.1") || rendered.contains("127.0.0.1:5000:5000"));

    // The registries' variables over the image's configuration: every one is a variable the
    // registry reads, and together they make a valid S3 configuration.
    let env: Vec<(String, String)> = rendered
        .lines()
        .skip_while(|l| l.trim() != "registry-1:")
        .skip_while(|l| l.trim() != "environment:")
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    assert!(env.len() >= 7, "{env:?}");
    let asked = std::sync::Mutex::new(BTreeSet::new());
    let config = Config::load(
        Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/container.toml")),
        |name| {
            asked.lock().unwrap().insert(name.to_owned());
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        },
        &strata_registry::Overrides {
            insecure_open: true,
            ..Default::default()
        },
    )
    .unwrap();
    let asked = asked.into_inner().unwrap();
    for (name, _) in &env {
        assert!(asked.contains(name), "the registry never reads {name}");
    }
    match config.storage {
        strata_storage::StorageConfig::S3(s3) => {
            assert_eq!(s3.endpoint_urls(), ["http://garage:3900"]);
            assert!(s3.path_style);
            assert_eq!(s3.access_key_id.as_deref(), Some("GKbootstrapped"));
        }
        other => panic!("compose runs the registries over Garage, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_asks_only_for_metrics_the_registry_serves() {
    let r = TestRegistry::fs().await;
    // A request of each kind the panels count, so every labelled series exists.
    r.get("/v2/").await;
    r.push_blob("dash/app", "counted").await;
    let served: BTreeSet<String> = r
        .get("/metrics")
        .await
        .text()
        .await
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next().map(String::from))
        .collect();
    let dashboard: serde_json::Value = serde_json::from_str(&deploy("grafana-dashboard.json")).unwrap();
    let mut asked = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("strata_") {
                    asked.insert(word.to_owned());
                }
            }
        }
    }
    assert!(!asked.is_empty());
    for metric in &asked {
        assert!(served.contains(metric), "{metric} is not served (series: {served:?})");
    }
}
