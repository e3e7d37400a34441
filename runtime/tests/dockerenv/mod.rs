//! The fixture of the Docker Engine scenarios: one test's namespace,
//! rootfs and cleanup duty, and polling helpers. Shared by several test
//! files, each of which uses only part of it.
#![allow(dead_code)]

use petrel_protocol::RestartPolicy;
use petrel_runtime::{DockerRuntime, InstanceSpec, InstanceStatus, Runtime, RuntimeError};
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tempfile::TempDir;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One test's namespace, rootfs and cleanup duty.
pub struct Env {
    pub namespace: String,
    pub dir: TempDir,
    pub rootfs: PathBuf,
    images: Mutex<BTreeSet<String>>,
}

impl Env {
    /// `None` (after saying so) when no engine answers.
    pub fn new() -> Option<Env> {
        if !docker(&["info"]).0 {
            eprintln!("skipping: `docker info` failed, no Docker Engine to test against");
            return None;
        }
        let namespace = format!(
            "t{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = TempDir::new().expect("temp dir");
        let rootfs = crate::testfs::make_rootfs(dir.path(), "rootfs", &namespace);
        let images = Mutex::default();
        Some(Env {
            namespace,
            dir,
            rootfs,
            images,
        })
    }

    pub async fn runtime(&self) -> DockerRuntime {
        let rt = DockerRuntime::connect(&self.namespace)
            .await
            .expect("connect");
        rt.with_stop_grace(Duration::from_secs(2))
    }

    pub fn spec(&self, name: &str, script: &str, restart: RestartPolicy) -> InstanceSpec {
        InstanceSpec {
            name: name.into(),
            rootfs: self.rootfs.clone(),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            working_dir: None,
            restart,
            ..Default::default()
        }
    }

    /// Starts `spec`, remembering the images of the namespace's containers.
    pub async fn start(&self, rt: &DockerRuntime, spec: &InstanceSpec) -> Result<(), RuntimeError> {
        let result = rt.start(spec).await;
        let filter = format!("label=io.petrel.namespace={}", self.namespace);
        let (_, images) = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Image}}"]);
        self.track(images.lines());
        result
    }

    pub fn track<'a>(&self, images: impl IntoIterator<Item = &'a str>) {
        let mut tracked = self.images.lock().unwrap_or_else(|e| e.into_inner());
        tracked.extend(images.into_iter().map(str::to_string));
    }

    /// Ids of the namespace's containers, stopped ones included.
    pub fn containers(&self) -> Vec<String> {
        let filter = format!("label=io.petrel.namespace={}", self.namespace);
        let (_, ids) = docker(&["ps", "-aq", "--filter", &filter]);
        ids.lines().map(str::to_string).collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let containers = self.containers();
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(containers.iter().map(String::as_str));
            docker(&args);
        }
        let images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        for image in images.iter() {
            docker(&["rmi", "-f", image]);
        }
    }
}

/// Runs `docker args`: whether it succeeded, and its stdout.
pub fn docker(args: &[&str]) -> (bool, String) {
    match Command::new("docker").args(args).output() {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        Err(_) => (false, String::new()),
    }
}

/// Polls `check` until it holds, failing the test after 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn running(rt: &DockerRuntime, name: &str) -> InstanceStatus {
    let status = rt.inspect(name).await.expect("instance exists");
    assert!(status.is_running(), "{status:?}");
    assert!(status.pid.is_some(), "{status:?}");
    status
}

pub async fn logs_contain(rt: &DockerRuntime, name: &str, text: &str) -> bool {
    rt.logs(name, 100)
        .await
        .is_ok_and(|logs| logs.contains(text))
}
