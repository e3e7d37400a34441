//! Confinement of root-mode services, observed from inside the service:
//! it prints its own `/proc/self/status`, and the test reads the user,
//! groups, capability sets, `NoNewPrivs` and `Seccomp` lines from its log.

use super::*;
use crate::runtime::ImageLayers;
use petrel_protocol::ImageConfig;

/// Prints the service's own status (`read` and `echo` are shell
/// builtins, so `/proc/self` is the service's shell itself).
const PRINT_STATUS: &str =
    "while IFS= read -r l; do echo \"$l\"; done </proc/self/status; echo status-done";

/// Docker's default capability set, as `/proc/<pid>/status` shows it.
const DOCKER_DEFAULT_CAPS: &str = "00000000a80425fb";

fn root_or_skip(what: &str) -> bool {
    if !geteuid().is_root() {
        eprintln!("skipped: {what} needs root");
    }
    geteuid().is_root()
}

/// A fixture whose rootfs has `/proc` (so the service's init mounts it)
/// and the given passwd and group files.
fn fixture_with_users(passwd: &str, group: &str) -> Fixture {
    let fx = Fixture::new();
    fs::create_dir_all(fx.rootfs.join("proc")).unwrap();
    fs::create_dir_all(fx.rootfs.join("etc")).unwrap();
    fs::write(fx.rootfs.join("etc/passwd"), passwd).unwrap();
    fs::write(fx.rootfs.join("etc/group"), group).unwrap();
    fx
}

/// `spec` running as `user`, as the image config says.
fn as_user(mut spec: InstanceSpec, user: &str) -> InstanceSpec {
    spec.image = Some(ImageLayers {
        config: ImageConfig {
            user: Some(user.into()),
            ..Default::default()
        },
        ..Default::default()
    });
    spec
}

/// Runs `spec` (printing its status) to its exit; the status lines by key.
async fn status_of(fx: &Fixture, spec: &InstanceSpec) -> Vec<(String, String)> {
    fx.rt.start(spec).await.expect("start");
    wait_for(&fx.rt, &spec.name, |s| s.state == "exited").await;
    let log = fx.rt.logs(&spec.name, 200).await.expect("logs");
    assert!(log.contains("status-done"), "log: {log}");
    eprintln!("{} sees:\n{log}", spec.name);
    log.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

fn field<'a>(status: &'a [(String, String)], key: &str) -> &'a str {
    let found = status.iter().find(|(k, _)| k == key);
    found.map_or("<missing>", |(_, v)| v.as_str())
}

#[tokio::test]
async fn a_root_service_keeps_only_dockers_default_capabilities_under_no_new_privs_and_seccomp() {
    if !root_or_skip("confinement") {
        return;
    }
    let fx = fixture_with_users("root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n");
    let spec = fx.spec("confined-root", PRINT_STATUS, RestartPolicy::No);
    let status = status_of(&fx, &spec).await;
    assert_eq!(field(&status, "Uid"), "0 0 0 0");
    assert_eq!(field(&status, "Gid"), "0 0 0 0");
    assert_eq!(
        field(&status, "Groups"),
        "0",
        "the agent's groups are not inherited"
    );
    assert_eq!(field(&status, "CapBnd"), DOCKER_DEFAULT_CAPS);
    assert_eq!(field(&status, "CapEff"), DOCKER_DEFAULT_CAPS);
    assert_eq!(field(&status, "CapPrm"), DOCKER_DEFAULT_CAPS);
    assert_eq!(field(&status, "CapInh"), "0000000000000000");
    assert_eq!(field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(
        field(&status, "Seccomp"),
        "2",
        "a seccomp filter is installed"
    );
}

#[tokio::test]
async fn a_service_runs_as_the_images_user_resolved_in_the_images_own_passwd_and_group() {
    if !root_or_skip("changing user") {
        return;
    }
    let fx = fixture_with_users(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        "root:x:0:\napp:x:1000:\ngpio:x:997:app\n",
    );
    let spec = as_user(
        fx.spec("confined-app", PRINT_STATUS, RestartPolicy::No),
        "app",
    );
    let status = status_of(&fx, &spec).await;
    assert_eq!(field(&status, "Uid"), "1000 1000 1000 1000");
    assert_eq!(field(&status, "Gid"), "1000 1000 1000 1000");
    assert_eq!(field(&status, "Groups"), "997 1000");
    assert_eq!(field(&status, "CapBnd"), DOCKER_DEFAULT_CAPS);
    assert_eq!(field(&status, "CapEff"), "0000000000000000");
    assert_eq!(field(&status, "CapPrm"), "0000000000000000");
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Seccomp"), "2");
}

#[tokio::test]
async fn a_uid_and_gid_pair_runs_without_any_passwd_entry() {
    if !root_or_skip("changing user") {
        return;
    }
    let fx = fixture_with_users("", "");
    let spec = as_user(
        fx.spec("confined-num", PRINT_STATUS, RestartPolicy::No),
        "4242:4343",
    );
    let status = status_of(&fx, &spec).await;
    assert_eq!(field(&status, "Uid"), "4242 4242 4242 4242");
    assert_eq!(field(&status, "Gid"), "4343 4343 4343 4343");
    assert_eq!(field(&status, "Groups"), "4343");
}

#[tokio::test]
async fn a_user_the_image_does_not_list_fails_the_start_naming_the_user_and_the_service() {
    if !root_or_skip("changing user") {
        return;
    }
    let fx = fixture_with_users("root:x:0:0:root:/root:/bin/sh\n", "");
    let spec = as_user(
        fx.spec("ghostly", "exec sleep 30", RestartPolicy::No),
        "ghost",
    );
    let err = fx.rt.start(&spec).await.expect_err("no such user");
    let text = err.to_string();
    assert!(matches!(err, RuntimeError::Start { ref name, .. } if name == "ghostly"));
    assert!(
        text.contains("ghostly") && text.contains("\"ghost\""),
        "{text}"
    );
    assert!(text.contains("etc/passwd"), "{text}");
    assert!(fx.rt.inspect("ghostly").await.is_none());
}

#[tokio::test]
async fn a_health_probe_runs_as_the_service_user_and_confined() {
    if !root_or_skip("changing user") {
        return;
    }
    let fx = fixture_with_users("app:x:1000:1000::/:/bin/sh\n", "app:x:1000:\n");
    let spec = as_user(fx.spec("probed", "exec sleep 30", RestartPolicy::No), "app");
    fx.rt.start(&spec).await.expect("start");
    let check = "while read k a b; do \
                 [ \"$k\" = Uid: ] && [ \"$a\" = 1000 ] && u=1; \
                 [ \"$k\" = NoNewPrivs: ] && [ \"$a\" = 1 ] && n=1; \
                 done </proc/self/status; [ \"$u$n\" = 11 ]";
    let argv = ["/bin/sh".to_string(), "-c".into(), check.into()];
    let code = fx.rt.exec(&spec, &argv, DEADLINE).await.expect("probe");
    assert_eq!(code, 0, "the probe ran as uid 1000 with no_new_privs");
    fx.rt.stop("probed").await.expect("stop");
}

#[tokio::test]
async fn a_new_volume_is_writable_by_the_user_owning_the_images_directory() {
    if !root_or_skip("volumes") {
        return;
    }
    let fx = fixture_with_users("app:x:1000:1000::/:/bin/sh\n", "app:x:1000:\n");
    let data = fx.rootfs.join("data");
    fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(1000), Some(1000)).unwrap();
    let volume = fx.dir.path().join("volumes/appdata");
    let mut spec = as_user(
        fx.spec("volumed", "echo kept > /data/note", RestartPolicy::No),
        "app",
    );
    spec.mounts = vec![crate::runtime::Mount {
        source: volume.clone(),
        target: "/data".into(),
        read_only: false,
    }];
    fx.rt.start(&spec).await.expect("start");
    let status = wait_for(&fx.rt, "volumed", |s| s.state == "exited").await;
    assert_eq!(
        status.exit_code,
        Some(0),
        "{:?}",
        fx.rt.logs("volumed", 10).await
    );
    assert_eq!(read(volume.join("note")), "kept\n");
}
