//! Image and release manifests: what a device is asked to run.
//!
//! A release embeds the full manifests of its images, so a desired-state
//! message alone tells the agent every layer it needs.

use crate::{validate_name, Digest, InvalidName, SCHEMA};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One layer: a tar change set, shipped zstd-compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDescriptor {
    /// sha256 of the compressed blob (what `GET /v1/blobs/{digest}` serves).
    pub digest: Digest,
    /// sha256 of the uncompressed tar (OCI `diff_id`).
    pub diff_id: Digest,
    /// Compressed size in bytes.
    pub size: u64,
    /// Bytes of the uncompressed tar: about what the layer takes unpacked
    /// (the agent's disk preflight). Images registered before it was
    /// recorded have none; the agent then assumes a ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_size: Option<u64>,
}

/// The process settings an image carries (OCI config subset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE` strings, as in OCI.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Vec<String>,
    /// When the image was created (RFC 3339, from its config or set at
    /// registration); runtimes that keep images show it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// An image: ordered layers (base first) and its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    pub schema: u32,
    pub name: String,
    pub tag: String,
    pub layers: Vec<LayerDescriptor>,
    #[serde(default)]
    pub config: ImageConfig,
    /// What the image is built for (from its config at import); `None`
    /// for an image built from a directory, which runs anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<crate::Platform>,
}

impl ImageManifest {
    /// Content identity of the image: digest of its canonical JSON.
    pub fn id(&self) -> Digest {
        Digest::of(&serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A service's network (compose `network_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// The device's own network (the default: devices serve on their
    /// ports, and there is no bridge to configure).
    #[default]
    Host,
    /// A network namespace of its own with only loopback: a service that
    /// needs no network gets none.
    None,
}

impl NetworkMode {
    pub fn is_host(&self) -> bool {
        *self == NetworkMode::Host
    }
}

/// Restart policy of a service (compose names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    OnFailure,
    #[default]
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Whether a process that exited with `success` should be started again.
    pub fn restarts_after(self, success: bool) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

/// Health check of a service, compose-shaped (`test` is the command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub test: Vec<String>,
    #[serde(default)]
    pub interval_s: Option<u64>,
    #[serde(default)]
    pub timeout_s: Option<u64>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_period_s: Option<u64>,
}

/// One service of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub image: ImageManifest,
    /// Overrides the image's `cmd` when set.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub healthcheck: Option<HealthCheck>,
    /// How the service is replaced by its next version.
    #[serde(default)]
    pub swap: SwapStrategy,
    /// Memory limit in bytes (compose `mem_limit`).
    #[serde(default)]
    pub mem_limit: Option<u64>,
    /// CPU limit in thousandths of a CPU (compose `cpus: 0.5` is 500).
    #[serde(default)]
    pub cpu_millis: Option<u32>,
    /// Services of the same release started before this one (and stopped
    /// after it): compose `depends_on`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Every platform variant of a multi-platform image (`image` is the
    /// default one); emptied when the release is resolved for a device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<ImageManifest>,
    /// Keep the setuid/setgid bits of the image's files (compose
    /// `x-petrel-allow-setid: true`); stripped by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_setid: bool,
    /// Compose `user` (`uid`, `uid:gid`, `name` or `name:group`, names
    /// from the image's own /etc/passwd); default: the image's `USER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Compose `network_mode`: `host` (default) or `none`.
    #[serde(default, skip_serializing_if = "NetworkMode::is_host")]
    pub network_mode: NetworkMode,
}

/// How a service is swapped for its new version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwapStrategy {
    /// Start the new version, wait until healthy, then stop the old one.
    #[default]
    Handover,
    /// Stop the old version first (ports, devices that cannot be shared).
    StopFirst,
}

/// A named volume of a service: compose `name:/target[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub name: String,
    pub target: String,
    pub read_only: bool,
}

impl ServiceSpec {
    /// The service's named volumes. Host paths are refused: a release must
    /// not reach into the device's filesystem.
    pub fn volume_mounts(&self) -> Result<Vec<VolumeMount>, String> {
        self.volumes
            .iter()
            .map(|v| {
                let parts: Vec<&str> = v.split(':').collect();
                let (name, target, mode) = match parts.as_slice() {
                    [n, t] => (*n, *t, None),
                    [n, t, m] => (*n, *t, Some(*m)),
                    _ => return Err(format!("volume {v:?}: expected name:/path[:ro]")),
                };
                validate_name(name, 128).map_err(|_| {
                    format!("volume {v:?}: only named volumes are allowed, not host paths")
                })?;
                let clean = target.starts_with('/') && !target.split('/').any(|c| c == "..");
                if !clean {
                    return Err(format!(
                        "volume {v:?}: the target must be an absolute path without .."
                    ));
                }
                let read_only = match mode {
                    None | Some("rw") => false,
                    Some("ro") => true,
                    Some(m) => return Err(format!("volume {v:?}: unknown mode {m:?} (ro, rw)")),
                };
                Ok(VolumeMount {
                    name: name.into(),
                    target: target.into(),
                    read_only,
                })
            })
            .collect()
    }

    /// Ports the service listens on. Services share the device's network,
    /// so a mapping must keep the port: `8080`, `8080:8080`, `8080/tcp`.
    pub fn listen_ports(&self) -> Result<Vec<u16>, String> {
        self.ports
            .iter()
            .map(|p| {
                let spec = p.split('/').next().unwrap_or(p);
                let parts: Vec<&str> = spec.rsplit(':').collect();
                let port: u16 = parts[0].parse().map_err(|_| format!("port {p:?}: not a port number"))?;
                match parts.get(1) {
                    Some(host) if host.parse::<u16>().ok() != Some(port) => {
                        Err(format!("port {p:?}: services use the device's network, so the host port must equal the container port"))
                    }
                    _ => Ok(port),
                }
            })
            .collect()
    }

    /// The argv the service runs: entrypoint + (command or image cmd).
    pub fn argv(&self) -> Vec<String> {
        let cmd = self.command.as_ref().unwrap_or(&self.image.config.cmd);
        let mut argv = self.image.config.entrypoint.clone();
        argv.extend(cmd.iter().cloned());
        argv
    }
}

/// `name@version` of a release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReleaseRef {
    pub name: String,
    pub version: String,
}

impl fmt::Display for ReleaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl std::str::FromStr for ReleaseRef {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, version) = s
            .split_once('@')
            .ok_or_else(|| InvalidName(s.to_string()))?;
        validate_name(name, 128)?;
        validate_name(version, 128)?;
        Ok(ReleaseRef {
            name: name.to_string(),
            version: version.to_string(),
        })
    }
}

/// A named, versioned set of services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    pub schema: u32,
    pub name: String,
    pub version: String,
    pub services: BTreeMap<String, ServiceSpec>,
}

/// Why a manifest is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Name(#[from] InvalidName),
    #[error("release {0} has no services")]
    NoServices(String),
    #[error("service {service}: image {image} has no layers")]
    NoLayers { service: String, image: String },
    #[error("service {service}: nothing to run (no entrypoint, cmd or command)")]
    NoCommand { service: String },
    #[error("service {service}: {reason}")]
    Service { service: String, reason: String },
    #[error("unsupported manifest schema {found} (this build reads {SCHEMA})")]
    Schema { found: u32 },
}

impl ReleaseManifest {
    pub fn reference(&self) -> ReleaseRef {
        ReleaseRef {
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }

    /// Checks names, schema and that every service has something to run.
    pub fn validate(&self) -> Result<(), ManifestError> {
        validate_name(&self.name, 128)?;
        validate_name(&self.version, 128)?;
        if self.schema != SCHEMA {
            return Err(ManifestError::Schema { found: self.schema });
        }
        if self.services.is_empty() {
            return Err(ManifestError::NoServices(self.reference().to_string()));
        }
        for (name, svc) in &self.services {
            validate_name(name, 128)?;
            if svc.image.layers.is_empty() {
                return Err(ManifestError::NoLayers {
                    service: name.clone(),
                    image: format!("{}:{}", svc.image.name, svc.image.tag),
                });
            }
            if svc.argv().is_empty() {
                return Err(ManifestError::NoCommand {
                    service: name.clone(),
                });
            }
            let invalid = |reason| ManifestError::Service {
                service: name.clone(),
                reason,
            };
            svc.volume_mounts().map_err(invalid)?;
            svc.listen_ports().map_err(invalid)?;
            if let Some(check) = &svc.healthcheck {
                check.probe().map_err(invalid)?;
            }
        }
        self.start_order()?;
        Ok(())
    }
    /// Every distinct layer of the release, in first-use order.
    pub fn layers(&self) -> Vec<&LayerDescriptor> {
        let mut seen = std::collections::HashSet::new();
        self.services
            .values()
            .flat_map(|s| s.image.layers.iter())
            .filter(|l| seen.insert(&l.diff_id))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_release(version: &str) -> ReleaseManifest {
        let layer = LayerDescriptor {
            digest: Digest::of(b"blob"),
            diff_id: Digest::of(b"tar"),
            size: 4,
            unpacked_size: None,
        };
        let image = ImageManifest {
            schema: SCHEMA,
            name: "app".into(),
            tag: version.into(),
            layers: vec![layer.clone(), layer],
            config: ImageConfig {
                entrypoint: vec!["/app/run".into()],
                ..Default::default()
            },
            platform: None,
        };
        let svc = ServiceSpec {
            image,
            command: Some(vec!["--port".into(), "1".into()]),
            environment: BTreeMap::new(),
            ports: vec![],
            volumes: vec![],
            restart: RestartPolicy::Always,
            healthcheck: None,
            swap: Default::default(),
            mem_limit: None,
            cpu_millis: None,
            depends_on: vec![],
            variants: vec![],
            allow_setid: false,
            user: None,
            network_mode: NetworkMode::Host,
        };
        ReleaseManifest {
            schema: SCHEMA,
            name: "demo".into(),
            version: version.into(),
            services: BTreeMap::from([("web".to_string(), svc)]),
        }
    }

    #[test]
    fn argv_is_entrypoint_then_command_override() {
        let r = sample_release("1");
        assert_eq!(r.services["web"].argv(), ["/app/run", "--port", "1"]);
    }

    #[test]
    fn release_layers_are_deduplicated_by_diff_id() {
        assert_eq!(sample_release("1").layers().len(), 1);
    }

    #[test]
    fn release_without_services_or_with_bad_names_is_invalid() {
        let mut r = sample_release("1");
        r.services.clear();
        assert!(matches!(r.validate(), Err(ManifestError::NoServices(_))));
        let mut r = sample_release("1");
        r.version = "../x".into();
        assert!(r.validate().is_err());
        assert!(sample_release("1").validate().is_ok());
    }

    #[test]
    fn release_refs_parse_name_at_version() {
        let r: ReleaseRef = "app@1.2".parse().unwrap();
        assert_eq!(r.to_string(), "app@1.2");
        assert!("app".parse::<ReleaseRef>().is_err());
    }

    #[test]
    fn named_volumes_parse_and_host_paths_are_refused() {
        let mut svc = sample_release("1").services["web"].clone();
        svc.volumes = vec!["data:/var/lib/app".into(), "cfg:/etc/app:ro".into()];
        let v = svc.volume_mounts().unwrap();
        assert_eq!((v[0].name.as_str(), v[1].read_only), ("data", true));
        for bad in [
            "/etc:/etc",
            "data:relative",
            "data:/x/../y",
            "data:/x:rx",
            "x",
        ] {
            svc.volumes = vec![bad.into()];
            assert!(svc.volume_mounts().is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_must_keep_their_number_on_the_device_network() {
        let mut svc = sample_release("1").services["web"].clone();
        svc.ports = vec!["8080".into(), "9090:9090".into(), "53:53/udp".into()];
        assert_eq!(svc.listen_ports().unwrap(), [8080, 9090, 53]);
        svc.ports = vec!["8080:80".into()];
        assert!(svc.listen_ports().unwrap_err().contains("host port"));
    }

    #[test]
    fn restart_policies_follow_compose_semantics() {
        assert!(!RestartPolicy::No.restarts_after(false));
        assert!(RestartPolicy::OnFailure.restarts_after(false));
        assert!(!RestartPolicy::OnFailure.restarts_after(true));
        assert!(RestartPolicy::Always.restarts_after(true));
    }
}
