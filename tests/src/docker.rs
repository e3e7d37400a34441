//! The local Docker Engine as the docker-runtime scenarios see it: the
//! `docker` CLI, a device's running containers, and cleanup on drop.

use std::process::Command;

/// Runs `docker ARGS` and returns its trimmed stdout ("" on failure).
pub fn docker(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Removes the device's containers (and Petrel-built images) on drop.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.petrel.namespace={}", self.0),
        ]);
        for id in ids.lines().filter(|l| !l.is_empty()) {
            docker(&["rm", "-f", id]);
        }
        let images = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        for image in images.lines().filter(|i| i.starts_with("petrel/")) {
            docker(&["rmi", "-f", image]);
        }
    }
}

/// Instance names of the device's running containers.
pub fn running(device: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "--filter",
        &format!("label=io.petrel.namespace={device}"),
        "--format",
        "{{.Label \"io.petrel.instance\"}}",
    ]);
    out.lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}
