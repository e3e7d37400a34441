//! How an [`InstanceSpec`] becomes a container, and a container an
//! [`InstanceStatus`]: names, labels, the create body, the state mapping.
//!
//! Containers carry everything needed to adopt them after an agent restart:
//! `io.petrel.namespace` and `io.petrel.instance` identify them, and
//! `io.petrel.spec` holds the spec they were created from, so `start` with
//! the same spec keeps them and a changed spec replaces them.

use super::archive::MANAGED_LABEL;
use crate::runtime::{InstanceSpec, InstanceStatus, RuntimeError};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum as State, HostConfig,
    RestartPolicy as DockerRestart, RestartPolicyNameEnum as PolicyName,
};
use petrel_protocol::RestartPolicy;
use std::collections::HashMap;
use std::path::{Component, Path};
use std::time::Duration;

pub(super) const NAMESPACE_LABEL: &str = "io.petrel.namespace";
pub(super) const INSTANCE_LABEL: &str = "io.petrel.instance";
pub(super) const SPEC_LABEL: &str = "io.petrel.spec";

/// Docker's `no_new_privs` option (as `docker run --security-opt`).
const NO_NEW_PRIVILEGES: &str = "no-new-privileges";

/// `PATH` given to services whose spec does not set one (as natively).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Container name of instance `name`. Namespaces contain no `.`, so the
/// first `.` separates the two and distinct pairs never collide.
pub(super) fn container_name(namespace: &str, name: &str) -> String {
    format!("petrel-{namespace}.{name}")
}

/// Label filters selecting every container of `namespace`.
pub(super) fn namespace_filters(namespace: &str) -> HashMap<&'static str, Vec<String>> {
    let labels = vec![
        format!("{MANAGED_LABEL}=true"),
        format!("{NAMESPACE_LABEL}={namespace}"),
    ];
    HashMap::from([("label", labels)])
}

/// Create body for `spec` on image `image`.
pub(super) fn create_body(
    namespace: &str,
    spec: &InstanceSpec,
    image: &str,
    stop_grace: Duration,
) -> Result<ContainerCreateBody, RuntimeError> {
    let spec_json = serde_json::to_string(spec).map_err(|e| RuntimeError::Start {
        name: spec.name.clone(),
        reason: format!("encode spec label: {e}"),
    })?;
    let labels = HashMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (NAMESPACE_LABEL.to_string(), namespace.to_string()),
        (INSTANCE_LABEL.to_string(), spec.name.clone()),
        (SPEC_LABEL.to_string(), spec_json),
    ]);
    Ok(ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(spec.argv.clone()),
        env: Some(env(spec)),
        working_dir: Some(spec.working_dir.clone().unwrap_or_else(|| "/".into())),
        // The engine resolves names in the container's own /etc/passwd.
        user: spec.user().map(str::to_string),
        labels: Some(labels),
        stop_timeout: Some(whole_seconds(stop_grace).into()),
        host_config: Some(host_config(spec)),
        ..Default::default()
    })
}

/// Host networking and an init process, so a service behaves as it does
/// natively: it listens on the device's ports (the spec has no port list)
/// and SIGTERM reaches it even when its program ignores signals as pid 1.
///
/// Confinement as natively: never privileged, no capability added or
/// dropped (the engine's default set is the one the native runtime keeps),
/// `no-new-privileges`, and the engine's default seccomp profile (nothing
/// in `security_opt` turns it off).
fn host_config(spec: &InstanceSpec) -> HostConfig {
    let name = match spec.restart {
        RestartPolicy::No => PolicyName::NO,
        RestartPolicy::OnFailure => PolicyName::ON_FAILURE,
        RestartPolicy::Always => PolicyName::ALWAYS,
        RestartPolicy::UnlessStopped => PolicyName::UNLESS_STOPPED,
    };
    HostConfig {
        restart_policy: Some(DockerRestart {
            name: Some(name),
            maximum_retry_count: None,
        }),
        init: Some(true),
        privileged: Some(false),
        security_opt: Some(vec![NO_NEW_PRIVILEGES.into()]),
        network_mode: Some(
            match spec.network {
                petrel_protocol::NetworkMode::Host => "host",
                petrel_protocol::NetworkMode::None => "none",
            }
            .into(),
        ),
        binds: Some(binds(spec)),
        memory: spec.memory_limit.and_then(|m| i64::try_from(m).ok()),
        nano_cpus: spec.cpu_millis.map(|m| i64::from(m) * 1_000_000),
        ..Default::default()
    }
}

/// Named volumes as `source:target[:ro]` binds.
fn binds(spec: &InstanceSpec) -> Vec<String> {
    spec.mounts
        .iter()
        .map(|m| {
            let ro = if m.read_only { ":ro" } else { "" };
            format!("{}:{}{ro}", m.source.display(), m.target)
        })
        .collect()
}

/// Fails unless `argv[0]` exists in the rootfs (as the native runtime
/// resolves it: relative to the working dir if it holds a `/`, else on the
/// `PATH`). Needed because with an init process the engine starts the
/// container fine and only init's exec of a missing program fails.
pub(super) fn check_executable(spec: &InstanceSpec) -> Result<(), RuntimeError> {
    let fail = |reason: String| RuntimeError::Start {
        name: spec.name.clone(),
        reason,
    };
    let root = &spec.rootfs;
    if !root.is_dir() {
        return Err(fail(format!(
            "rootfs {} is not a directory",
            root.display()
        )));
    }
    let argv0 = spec.argv.first().map_or("", String::as_str);
    let exists = |dir: &str| {
        let inside = Path::new("/").join(dir).join(argv0);
        let no_parent = !inside.components().any(|c| c == Component::ParentDir);
        let host = root.join(inside.strip_prefix("/").unwrap_or(&inside));
        no_parent && host.symlink_metadata().is_ok()
    };
    let found = if argv0.contains('/') {
        exists(spec.working_dir.as_deref().unwrap_or("/"))
    } else {
        let env = env(spec);
        let path = env.iter().rev().find_map(|kv| kv.strip_prefix("PATH="));
        let mut dirs = path.unwrap_or("").split(':');
        dirs.any(|dir| dir.starts_with('/') && exists(dir))
    };
    if found {
        Ok(())
    } else {
        Err(fail(format!(
            "executable {argv0} not found in {}",
            root.display()
        )))
    }
}

fn env(spec: &InstanceSpec) -> Vec<String> {
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env
}

/// Seconds for the engine's stop timeout, rounded up.
pub(super) fn whole_seconds(grace: Duration) -> i32 {
    let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn labels(container: &ContainerInspectResponse) -> Option<&HashMap<String, String>> {
    container.config.as_ref()?.labels.as_ref()
}

/// Whether `container` is instance `name` of `namespace` (and not some
/// foreign container that happens to have the name).
pub(super) fn belongs_to(
    container: &ContainerInspectResponse,
    namespace: &str,
    name: &str,
) -> bool {
    let Some(labels) = labels(container) else {
        return false;
    };
    let is = |key: &str, value: &str| labels.get(key).map(String::as_str) == Some(value);
    is(MANAGED_LABEL, "true") && is(NAMESPACE_LABEL, namespace) && is(INSTANCE_LABEL, name)
}

/// The spec the container was created from, if its label is readable.
pub(super) fn spec_of(container: &ContainerInspectResponse) -> Option<InstanceSpec> {
    serde_json::from_str(labels(container)?.get(SPEC_LABEL)?).ok()
}

/// Engine state of the container (`EMPTY` when it did not say).
pub(super) fn state_of(container: &ContainerInspectResponse) -> State {
    let status = container.state.as_ref().and_then(|s| s.status);
    status.unwrap_or(State::EMPTY)
}

/// What the agent sees of the container: `running`, `restarting`, `exited`
/// (with the exit code) or `stopped` (created, paused or being removed).
pub(super) fn status(name: &str, container: &ContainerInspectResponse) -> InstanceStatus {
    let state = container.state.as_ref();
    let exit_code = state
        .and_then(|s| s.exit_code)
        .and_then(|c| i32::try_from(c).ok());
    let (label, exit_code) = match state_of(container) {
        State::RUNNING => ("running", None),
        State::RESTARTING => ("restarting", exit_code),
        State::EXITED | State::DEAD => ("exited", exit_code),
        _ => ("stopped", None),
    };
    let pid = state
        .and_then(|s| s.pid)
        .filter(|pid| *pid > 0 && label == "running")
        .and_then(|pid| u32::try_from(pid).ok());
    let restarts = container.restart_count.unwrap_or(0);
    InstanceStatus {
        name: name.to_string(),
        state: label.into(),
        pid,
        restarts: u32::try_from(restarts).unwrap_or(0),
        exit_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerState};

    fn spec() -> InstanceSpec {
        InstanceSpec {
            name: "web-g1".into(),
            rootfs: "/var/lib/petrel/rootfs/x".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec![("A".into(), "1".into())],
            working_dir: None,
            restart: RestartPolicy::OnFailure,
            ..Default::default()
        }
    }

    fn inspected(body: &ContainerCreateBody, state: ContainerState) -> ContainerInspectResponse {
        let config = ContainerConfig {
            labels: body.labels.clone(),
            ..Default::default()
        };
        ContainerInspectResponse {
            config: Some(config),
            state: Some(state),
            restart_count: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn create_body_carries_argv_env_policy_and_the_spec_label() {
        let body = create_body(
            "dev-1",
            &spec(),
            "petrel/rootfs:ab",
            Duration::from_millis(1500),
        )
        .unwrap();
        assert_eq!(body.entrypoint, Some(spec().argv));
        assert_eq!(body.cmd, None);
        assert_eq!(body.working_dir.as_deref(), Some("/"));
        assert_eq!(body.stop_timeout, Some(2));
        let env = body.env.clone().unwrap();
        assert_eq!(env[0], "A=1");
        assert!(env[1].starts_with("PATH="));
        let policy = body
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.clone());
        assert_eq!(policy.and_then(|p| p.name), Some(PolicyName::ON_FAILURE));
        let container = inspected(&body, ContainerState::default());
        assert!(belongs_to(&container, "dev-1", "web-g1"));
        assert!(!belongs_to(&container, "dev-2", "web-g1"));
        assert_eq!(spec_of(&container), Some(spec()));
    }

    #[test]
    fn a_container_runs_as_the_image_user_unprivileged_with_no_new_privileges() {
        let mut spec = spec();
        let body = create_body("dev-1", &spec, "img", Duration::from_secs(5)).unwrap();
        assert_eq!(body.user, None, "no user given: the engine's default, root");
        spec.image = Some(crate::runtime::ImageLayers {
            config: petrel_protocol::ImageConfig {
                user: Some("app:gpio".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let body = create_body("dev-1", &spec, "img", Duration::from_secs(5)).unwrap();
        assert_eq!(body.user.as_deref(), Some("app:gpio"));
        let host = body.host_config.unwrap();
        assert_eq!(host.privileged, Some(false));
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges".into()]));
        assert_eq!((host.cap_add, host.cap_drop), (None, None));
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        // a compose user overrides the image's; network_mode none maps over
        spec.user = Some("1000:1000".into());
        spec.network = petrel_protocol::NetworkMode::None;
        let body = create_body("dev-1", &spec, "img", Duration::from_secs(5)).unwrap();
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
    }

    #[test]
    fn engine_states_map_to_instance_states() {
        let body = create_body("dev-1", &spec(), "img", Duration::from_secs(5)).unwrap();
        let state = |status, pid, exit_code| ContainerState {
            status: Some(status),
            pid: Some(pid),
            exit_code: Some(exit_code),
            ..Default::default()
        };
        let running = status("web-g1", &inspected(&body, state(State::RUNNING, 42, 0)));
        assert_eq!(
            (running.state.as_str(), running.pid, running.restarts),
            ("running", Some(42), 2)
        );
        let exited = status("web-g1", &inspected(&body, state(State::EXITED, 0, 3)));
        assert_eq!(
            (exited.state.as_str(), exited.pid, exited.exit_code),
            ("exited", None, Some(3))
        );
        let restarting = status("web-g1", &inspected(&body, state(State::RESTARTING, 0, 1)));
        assert_eq!(restarting.state, "restarting");
        let created = status("web-g1", &inspected(&body, state(State::CREATED, 0, 0)));
        assert_eq!(created.state, "stopped");
    }

    #[test]
    fn names_of_different_namespaces_never_collide() {
        assert_ne!(container_name("a-b", "c"), container_name("a", "b-c"));
        assert_eq!(container_name("dev-1", "web-g1"), "petrel-dev-1.web-g1");
    }
}
