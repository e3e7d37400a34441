//! The Docker Engine runtime: each instance is a container of the local
//! engine (Docker, balenaEngine, Podman's compatible API), reached over its
//! unix socket with bollard.
//!
//! The engine holds all the state. Containers are named
//! `petrel-<namespace>.<instance>` and labelled with the namespace, the
//! instance and the spec they run (see [`container`]), so a new
//! [`DockerRuntime`] on the same namespace — after an agent restart —
//! adopts them without any file of its own, and services keep running while
//! no agent is there.
//!
//! Nothing can be pulled on a device: the spec's image is loaded into the
//! engine layer by layer from the device's layer store, tagged
//! `petrel/<name>:<tag>` (see [`layered`]), so releases share unchanged
//! layers; a spec without layers falls back to its assembled rootfs as a
//! one-layer image (see [`image`]). The spec's argv, env and working dir
//! go into the container, not the image.
//!
//! Layout:
//! - [`archive`]: the deterministic docker-save archive of a rootfs.
//! - [`image`]: loading it into the engine unless it is already there.
//! - [`layered`]: an image with its real layers; pruning unneeded images.
//! - [`container`]: names, labels, create body, state mapping.
//! - [`error`]: engine failures as [`RuntimeError`]s.

mod archive;
mod container;
mod error;
mod image;
mod layered;

pub use image::{LoadedImage, IMAGE_REPOSITORY};
pub use layered::docker_tag;

use crate::runtime::{ImageLayers, InstanceSpec, InstanceStatus, Runtime, RuntimeError};
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum as State};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use error::{engine_failed, is_conflict, is_not_found, is_not_modified, start_failed};
use futures_util::{future, StreamExt};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// Time between SIGTERM and SIGKILL when stopping, unless configured.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
/// Engine request timeout: loading a large rootfs on a slow SD card takes
/// minutes, far past bollard's default of 2.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs service instances as containers of the local Docker Engine. Cheap
/// to clone; clones share the same per-instance locks.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    namespace: String,
    stop_grace: Duration,
    locks: Arc<Locks>,
    /// Layer sums computed so far (layer trees never change).
    sums: Arc<layered::SumCache>,
}

/// Serialises the operations of this process on one instance, and image
/// loads (so one rootfs is loaded once even when two services start).
#[derive(Default)]
struct Locks {
    /// One entry per instance name ever used (a few bytes each).
    instances: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    images: tokio::sync::Mutex<()>,
}

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST` if it is a `unix://`
    /// URL, else `/var/run/docker.sock`) and negotiates the API version.
    /// `label_namespace` (e.g. the device id: `[A-Za-z0-9_-]`, 1-64 chars)
    /// scopes every container this runtime sees.
    pub async fn connect(label_namespace: &str) -> Result<DockerRuntime, RuntimeError> {
        validate_namespace(label_namespace)?;
        let unreachable = |e: bollard::errors::Error| RuntimeError::Io {
            op: "connect to the docker engine at",
            path: socket_path(),
            source: io::Error::other(error::message(&e)),
        };
        let docker = Docker::connect_with_local_defaults().map_err(unreachable)?;
        // bollard speaks a newer API than Docker 20.10's 1.41 by default.
        let docker = docker
            .with_timeout(REQUEST_TIMEOUT)
            .negotiate_version()
            .await
            .map_err(unreachable)?;
        Ok(DockerRuntime {
            docker,
            namespace: label_namespace.to_string(),
            stop_grace: DEFAULT_STOP_GRACE,
            locks: Arc::default(),
            sums: Arc::default(),
        })
    }

    /// Sets the time between SIGTERM and SIGKILL for [`Runtime::stop`]
    /// (whole seconds, rounded up: the engine's unit).
    pub fn with_stop_grace(mut self, grace: Duration) -> DockerRuntime {
        self.stop_grace = grace;
        self
    }

    /// The label namespace this runtime manages.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Loads `rootfs` into the engine as an image unless an image of the
    /// same content is there already. [`Runtime::start`] does this itself.
    pub async fn load_rootfs(&self, rootfs: &Path) -> Result<LoadedImage, RuntimeError> {
        let _loading = self.locks.images.lock().await;
        crate::rootfs::ensure_mounted(rootfs).map_err(|e| RuntimeError::Start {
            name: rootfs.display().to_string(),
            reason: format!("mount rootfs: {e}"),
        })?;
        image::ensure(&self.docker, rootfs).await
    }

    /// The last `tail` lines of the instance's stdout and stderr.
    pub async fn logs(&self, name: &str, tail: usize) -> Result<String, RuntimeError> {
        let cname = self.container_name(name);
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.docker.logs(&cname, Some(options));
        let mut bytes = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(output) => bytes.extend_from_slice(output.as_ref()),
                Err(e) if is_not_found(&e) => {
                    return Err(RuntimeError::NoSuchInstance(name.into()))
                }
                Err(e) => return Err(engine_failed("read logs of", &cname)(e)),
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The image of `spec`: its layers when the layer store has them all,
    /// else its assembled rootfs.
    pub async fn load_image(&self, spec: &InstanceSpec) -> Result<LoadedImage, RuntimeError> {
        match &spec.image {
            Some(image) if !image.layers.is_empty() && image.layers.iter().all(|l| l.is_dir()) => {
                let _loading = self.locks.images.lock().await;
                self.ensure_layers(image).await
            }
            _ => self.load_rootfs(&spec.rootfs).await,
        }
    }

    fn container_name(&self, name: &str) -> String {
        container::container_name(&self.namespace, name)
    }

    /// The container of instance `name`, if it exists and is ours.
    async fn find(&self, name: &str) -> Result<Option<ContainerInspectResponse>, RuntimeError> {
        let cname = self.container_name(name);
        match self.docker.inspect_container(&cname, None).await {
            Ok(found) if container::belongs_to(&found, &self.namespace, name) => Ok(Some(found)),
            Ok(_) => {
                tracing::warn!(container = %cname, "container without petrel labels ignored");
                Ok(None)
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_failed("inspect container", &cname)(e)),
        }
    }

    /// Brings an existing container with the right spec back to running.
    async fn resume(
        &self,
        spec: &InstanceSpec,
        found: &ContainerInspectResponse,
    ) -> Result<(), RuntimeError> {
        match container::state_of(found) {
            State::RUNNING | State::RESTARTING | State::PAUSED => Ok(()),
            State::CREATED | State::EXITED => {
                let cname = self.container_name(&spec.name);
                let started = self.docker.start_container(&cname, None).await;
                started.map_err(start_failed(&spec.name, "start container"))
            }
            _ => {
                self.remove(&spec.name).await?;
                self.create_and_start(spec).await
            }
        }
    }

    async fn create_and_start(&self, spec: &InstanceSpec) -> Result<(), RuntimeError> {
        let image = self.load_image(spec).await?;
        for m in &spec.mounts {
            // Else the engine would create a missing one, owned by root.
            crate::volumes::create_source(&spec.rootfs, &m.source, &m.target).map_err(
                |source| RuntimeError::Io {
                    op: "create volume",
                    path: m.source.clone(),
                    source,
                },
            )?;
        }
        let cname = self.container_name(&spec.name);
        let body = container::create_body(&self.namespace, spec, &image.tag, self.stop_grace)?;
        let options = CreateContainerOptionsBuilder::new().name(&cname).build();
        let mut created = self
            .docker
            .create_container(Some(options.clone()), body.clone())
            .await;
        if created.as_ref().is_err_and(is_not_found) {
            // Pruned (by another namespace's runtime) since we checked it.
            self.load_image(spec).await?;
            created = self.docker.create_container(Some(options), body).await;
        }
        created.map_err(|e| {
            if is_conflict(&e) {
                RuntimeError::AlreadyExists(cname.clone())
            } else {
                start_failed(&spec.name, "create container")(e)
            }
        })?;
        if let Err(e) = self.docker.start_container(&cname, None).await {
            // A container that never ran is no use: leave nothing behind.
            self.force_remove(&cname).await;
            return Err(start_failed(&spec.name, "start container")(e));
        }
        tracing::info!(name = %spec.name, container = %cname, image = %image.tag, "started");
        Ok(())
    }

    /// Stops the container (grace period, then SIGKILL) and removes it.
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let cname = self.container_name(name);
        let grace = container::whole_seconds(self.stop_grace);
        let options = StopContainerOptionsBuilder::new().t(grace).build();
        match self.docker.stop_container(&cname, Some(options)).await {
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) if !is_not_modified(&e) => {
                return Err(engine_failed("stop container", &cname)(e))
            }
            _ => {}
        }
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(&cname, Some(options)).await {
            Err(e) if !is_not_found(&e) => Err(engine_failed("remove container", &cname)(e)),
            _ => Ok(()),
        }
    }

    async fn force_remove(&self, cname: &str) {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        if let Err(e) = self.docker.remove_container(cname, Some(options)).await {
            tracing::warn!(container = %cname, error = %e, "cannot remove failed container");
        }
    }

    /// Instance names of every container of the namespace.
    async fn instance_names(&self) -> Result<Vec<String>, RuntimeError> {
        let filters = container::namespace_filters(&self.namespace);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let found = self.docker.list_containers(Some(options)).await;
        let found = found.map_err(engine_failed(
            "list containers of namespace",
            &self.namespace,
        ))?;
        let name_of =
            |c: bollard::models::ContainerSummary| c.labels?.remove(container::INSTANCE_LABEL);
        Ok(found.into_iter().filter_map(name_of).collect())
    }
}

impl Runtime for DockerRuntime {
    async fn prune_images(&self, keep: &[ImageLayers]) -> Result<Vec<String>, RuntimeError> {
        self.prune_unneeded(keep).await
    }

    async fn logs(&self, name: &str, tail: usize) -> Result<String, RuntimeError> {
        DockerRuntime::logs(self, name, tail).await
    }

    /// Keeps a running (or restarting) container of the same spec, starts
    /// it again if it exited, and replaces a container of another spec.
    async fn start(&self, spec: &InstanceSpec) -> Result<(), RuntimeError> {
        check_spec(spec)?;
        container::check_executable(spec)?;
        let _turn = self.locks.instance(&spec.name).await;
        match self.find(&spec.name).await? {
            None => self.create_and_start(spec).await,
            Some(found) if container::spec_of(&found).as_ref() == Some(spec) => {
                self.resume(spec, &found).await
            }
            Some(_) => {
                tracing::info!(name = %spec.name, "spec changed, replacing container");
                self.remove(&spec.name).await?;
                self.create_and_start(spec).await
            }
        }
    }

    async fn stop(&self, name: &str) -> Result<(), RuntimeError> {
        let _turn = self.locks.instance(name).await;
        match self.find(name).await? {
            Some(_) => self.remove(name).await,
            None => Ok(()),
        }
    }

    /// `None` also when the engine cannot be asked (logged).
    async fn inspect(&self, name: &str) -> Option<InstanceStatus> {
        match self.find(name).await {
            Ok(found) => found.map(|c| container::status(name, &c)),
            Err(e) => {
                tracing::warn!(%name, error = %e, "cannot inspect instance");
                None
            }
        }
    }

    /// Empty also when the engine cannot be asked (logged).
    async fn list(&self) -> Vec<InstanceStatus> {
        let names = match self.instance_names().await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list instances");
                return Vec::new();
            }
        };
        let found = future::join_all(names.iter().map(|name| self.inspect(name))).await;
        let mut all: Vec<_> = found.into_iter().flatten().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

impl Locks {
    async fn instance(&self, name: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self
                .instances
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.entry(name.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

fn check_spec(spec: &InstanceSpec) -> Result<(), RuntimeError> {
    let fail = |reason: String| RuntimeError::Start {
        name: spec.name.clone(),
        reason,
    };
    petrel_protocol::validate_name(&spec.name, 128).map_err(|e| fail(e.to_string()))?;
    if spec.argv.is_empty() {
        return Err(fail("empty argv".into()));
    }
    Ok(())
}

/// Namespaces are device ids without `.`, which separates the namespace
/// from the instance in container names.
fn validate_namespace(namespace: &str) -> Result<(), RuntimeError> {
    if petrel_protocol::validate_device_id(namespace).is_ok() && !namespace.contains('.') {
        return Ok(());
    }
    Err(RuntimeError::Io {
        op: "use label namespace",
        path: PathBuf::from(namespace),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            "a namespace is 1-64 characters of A-Z a-z 0-9 _ -",
        ),
    })
}

/// The socket `connect_with_local_defaults` uses, for error messages.
fn socket_path() -> PathBuf {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let path = host
        .strip_prefix("unix://")
        .unwrap_or("/var/run/docker.sock");
    PathBuf::from(path)
}
