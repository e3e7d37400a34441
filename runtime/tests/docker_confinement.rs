//! Confinement of Docker Engine services, observed from inside the
//! container as in the native runtime's tests: the service prints its own
//! `/proc/self/status`; the user, capability sets, `NoNewPrivs` and
//! `Seccomp` lines must match what the native runtime gives. Skips when
//! `docker info` fails.

use dockerenv::{eventually, logs_contain, Env};
use petrel_protocol::{ImageConfig, RestartPolicy};
use petrel_runtime::{DockerRuntime, ImageLayers, InstanceSpec};
use std::fs;

mod dockerenv;
mod testfs;

/// `read` and `echo` are shell builtins: `/proc/self` is the service.
const PRINT_STATUS: &str =
    "while IFS= read -r l; do echo \"$l\"; done </proc/self/status; echo status-done";

/// Docker's default capability set, as `/proc/<pid>/status` shows it (the
/// native runtime's too).
const DOCKER_DEFAULT_CAPS: &str = "00000000a80425fb";

/// Starts `spec`, waits for its status dump; the lines by key.
async fn status_of(env: &Env, rt: &DockerRuntime, spec: &InstanceSpec) -> Vec<(String, String)> {
    env.start(rt, spec).await.expect("start");
    eventually("the service printed its status", || {
        logs_contain(rt, &spec.name, "status-done")
    })
    .await;
    let log = rt.logs(&spec.name, 200).await.expect("logs");
    eprintln!("{} sees:\n{log}", spec.name);
    log.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.into(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

fn field<'a>(status: &'a [(String, String)], key: &str) -> &'a str {
    let found = status.iter().find(|(k, _)| k == key);
    found.map_or("<missing>", |(_, v)| v.as_str())
}

#[tokio::test]
async fn a_docker_service_has_the_default_capabilities_no_new_privs_and_seccomp() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    let spec = env.spec("confined-g1", PRINT_STATUS, RestartPolicy::No);
    let status = status_of(&env, &rt, &spec).await;
    assert_eq!(field(&status, "Uid"), "0 0 0 0");
    assert_eq!(field(&status, "CapBnd"), DOCKER_DEFAULT_CAPS);
    assert_eq!(field(&status, "CapEff"), DOCKER_DEFAULT_CAPS);
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Seccomp"), "2");
}

#[tokio::test]
async fn a_docker_service_runs_as_the_images_user_resolved_in_the_container() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    fs::create_dir_all(env.rootfs.join("etc")).unwrap();
    fs::write(
        env.rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        env.rootfs.join("etc/group"),
        "root:x:0:\napp:x:1000:\ngpio:x:997:app\n",
    )
    .unwrap();
    let mut spec = env.spec("user-g1", PRINT_STATUS, RestartPolicy::No);
    spec.image = Some(ImageLayers {
        config: ImageConfig {
            user: Some("app".into()),
            ..Default::default()
        },
        ..Default::default()
    });
    let status = status_of(&env, &rt, &spec).await;
    assert_eq!(field(&status, "Uid"), "1000 1000 1000 1000");
    assert_eq!(field(&status, "Gid"), "1000 1000 1000 1000");
    assert_eq!(field(&status, "Groups"), "997 1000");
    assert_eq!(field(&status, "CapEff"), "0000000000000000");
    assert_eq!(field(&status, "CapBnd"), DOCKER_DEFAULT_CAPS);
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Seccomp"), "2");
}
