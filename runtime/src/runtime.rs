//! The `Runtime` trait: how the agent creates, starts, stops and inspects
//! service instances, whatever runs them (native processes, Docker, or a
//! simulated runtime in the simulator).

use petrel_protocol::RestartPolicy;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;

/// A host directory made visible inside an instance: a named volume,
/// which outlives releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: PathBuf,
    /// Absolute path inside the instance.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// An instance's image layer by layer, for a runtime that keeps layers
/// (docker: unchanged layers are shared between releases in the engine);
/// the native runtime runs `rootfs`, assembled from the same layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayers {
    /// The image's name and tag as the controller knows them.
    pub name: String,
    pub tag: String,
    /// Unpacked, validated layer directories (layer store), base first;
    /// OCI whiteouts are their `.wh.` files.
    pub layers: Vec<PathBuf>,
    /// When the image was created (RFC 3339), from its config.
    #[serde(default)]
    pub created: Option<String>,
    /// The image's own process settings (entrypoint, cmd, env, working
    /// dir), kept in the runtime's image.
    #[serde(default)]
    pub config: petrel_protocol::ImageConfig,
}

/// Everything needed to run one service instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Unique instance name, e.g. `web-g7` (service name + generation).
    pub name: String,
    /// Assembled root filesystem of the image.
    pub rootfs: PathBuf,
    /// argv[0] is resolved inside `rootfs`.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory inside the rootfs (default `/`).
    pub working_dir: Option<String>,
    pub restart: RestartPolicy,
    /// Named volumes.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Ports the service listens on. Both runtimes use the device's host
    /// network, so a mapping must keep the port (`8080` or `8080:8080`).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Memory limit in bytes.
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// CPU limit in thousandths of a CPU.
    #[serde(default)]
    pub cpu_millis: Option<u32>,
    /// The image layer by layer (`None`: only `rootfs` is known).
    #[serde(default)]
    pub image: Option<ImageLayers>,
    /// The release's `user` for the service; `None`: the image's `USER`.
    #[serde(default)]
    pub user: Option<String>,
    /// The device's network (default) or a namespace with loopback only.
    #[serde(default)]
    pub network: petrel_protocol::NetworkMode,
}

impl InstanceSpec {
    /// The user the service runs as (`uid`, `uid:gid`, `name` or
    /// `name:group`, names looked up in the image): the release's compose
    /// `user`, else the image config's `USER`. `None`: root.
    pub fn user(&self) -> Option<&str> {
        if let Some(u) = self.user.as_deref().filter(|u| !u.is_empty()) {
            return Some(u);
        }
        let image = self.image.as_ref()?;
        image.config.user.as_deref().filter(|u| !u.is_empty())
    }
}

/// What the runtime knows of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    /// `running`, `restarting`, `exited` or `stopped`.
    pub state: String,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub exit_code: Option<i32>,
}

impl InstanceStatus {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// Failures of a runtime operation, naming the instance or path.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("instance {0} does not exist")]
    NoSuchInstance(String),
    #[error("instance {0} already exists")]
    AlreadyExists(String),
    #[error("cannot start {name}: {reason}")]
    Start { name: String, reason: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A container runtime as the agent sees it.
pub trait Runtime: Send + Sync + 'static {
    /// Starts (creating if needed) an instance; supervised per its policy.
    fn start(&self, spec: &InstanceSpec) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Stops an instance (SIGTERM, then SIGKILL after a grace period) and
    /// forgets it. Stopping an unknown instance is not an error.
    fn stop(&self, name: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Status of one instance, `None` if unknown.
    fn inspect(&self, name: &str) -> impl Future<Output = Option<InstanceStatus>> + Send;
    /// Every instance the runtime manages (including ones adopted after an
    /// agent restart).
    fn list(&self) -> impl Future<Output = Vec<InstanceStatus>> + Send;

    /// The last `tail` lines of an instance's output.
    fn logs(
        &self,
        name: &str,
        tail: usize,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    /// Removes images the runtime keeps (docker) that none of `keep` (the
    /// images of the current and previous release) needs; returns what
    /// went. A runtime that keeps no images has nothing to do.
    fn prune_images(
        &self,
        keep: &[ImageLayers],
    ) -> impl Future<Output = Result<Vec<String>, RuntimeError>> + Send {
        let _ = keep;
        async { Ok(Vec::new()) }
    }

    /// Runs `argv` (a health probe) in `spec`'s root filesystem and
    /// environment; its exit code, or -1 if it ran past `timeout`.
    fn exec(
        &self,
        spec: &InstanceSpec,
        argv: &[String],
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<i32, RuntimeError>> + Send {
        let _ = (argv, timeout);
        let name = spec.name.clone();
        async move {
            Err(RuntimeError::Start {
                name,
                reason: "this runtime cannot run probe commands".into(),
            })
        }
    }
}
