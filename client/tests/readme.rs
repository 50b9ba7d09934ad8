//! The README's examples, run as they are written (as root): every shell block between
//! `<!-- readme-test: begin` and `<!-- readme-test: end -->` markers, in order, in one bash
//! session in an empty directory, with `strata` on PATH, its home in that directory, and our
//! registry standing in for the `127.0.0.1:5000` the README names. A README example that stops
//! working fails this test.

use std::process::Command;

use strata_tests::local_registry;

/// The shell blocks of the marked sections, in order.
fn tested_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut in_section = false;
    let mut block: Option<String> = None;
    for line in readme.lines() {
        if line.starts_with("<!-- readme-test: begin") {
            in_section = true;
        } else if line.starts_with("<!-- readme-test: end") {
            in_section = false;
        } else if in_section && line.trim() == "```sh" {
            block = Some(String::new());
        } else if line.trim() == "```" {
            if let Some(b) = block.take() {
                blocks.push(b);
            }
        } else if let Some(b) = block.as_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks
}

#[test]
fn the_readme_examples_work_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let blocks = tested_blocks(&readme);
    assert!(blocks.len() >= 3, "the README lost its tested examples");
    let script = blocks.concat();
    assert!(script.contains("strata import") && script.contains("strata run"));

    let (_runtime, registry) = local_registry();
    let script = script.replace("127.0.0.1:5000", &registry.addr.to_string());
    let work = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_strata"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-x", "-c", &script])
        .current_dir(work.path())
        .env("PATH", path)
        .env("STRATA_HOME", work.path().join("home"))
        .env("DOCKER_CONFIG", work.path().join("docker"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the README's examples failed:\n{stdout}\n{stderr}"
    );
    // "configured" on a line of its own comes from the committed image's new CMD.
    for expected in ["hello\n", "hi\n", "piped\n", "Linux\n", "uid=65534", "\nconfigured\n"] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
}
