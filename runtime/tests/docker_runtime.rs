//! Scenarios of the Docker Engine runtime against the real local engine.
//!
//! Every test skips (with a message) when `docker info` fails. Rootfs dirs
//! are built offline from the host's `/bin/sh` and `/bin/sleep` plus the
//! libraries `ldd` lists, and each holds a file naming its test, so every
//! test has its own image. Each test uses its own namespace, and a guard
//! removes the containers and images it created even when the test fails.

use dockerenv::{docker, eventually, logs_contain, running, Env};
use petrel_protocol::RestartPolicy;
use petrel_runtime::{DockerRuntime, Runtime, RuntimeError};
use std::process::Command;
use testfs::make_rootfs;

mod dockerenv;
mod testfs;

#[tokio::test]
async fn a_service_starts_from_an_assembled_rootfs_and_runs() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    let spec = env.spec("web-g1", "echo hi; sleep 600", RestartPolicy::Always);
    env.start(&rt, &spec).await.expect("start");
    let status = running(&rt, "web-g1").await;
    assert_eq!((status.restarts, status.exit_code), (0, None));
    eventually("the log shows the output", || {
        logs_contain(&rt, "web-g1", "hi\n")
    })
    .await;
    assert_eq!(rt.list().await, [status]);
}

#[tokio::test]
async fn env_and_working_dir_are_applied() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    let mut spec = env.spec(
        "env-g1",
        "echo \"$GREETING from $PWD\"; sleep 600",
        RestartPolicy::No,
    );
    spec.env = vec![("GREETING".into(), "hello".into())];
    spec.working_dir = Some("/srv".into());
    env.start(&rt, &spec).await.expect("start");
    eventually("the env and cwd show", || {
        logs_contain(&rt, "env-g1", "hello from /srv")
    })
    .await;
}

#[tokio::test]
async fn restart_policy_on_failure_restarts_a_failing_container() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    let spec = env.spec("fail-g1", "echo boom; exit 3", RestartPolicy::OnFailure);
    env.start(&rt, &spec).await.expect("start");
    let restarted = || async { rt.inspect("fail-g1").await.is_some_and(|s| s.restarts >= 2) };
    eventually("the engine restarted it twice", restarted).await;
    let logs = rt.logs("fail-g1", 100).await.expect("logs");
    assert!(logs.matches("boom").count() >= 2, "{logs}");
    rt.stop("fail-g1")
        .await
        .expect("stop a restarting container");
    assert!(env.containers().is_empty());
}

#[tokio::test]
async fn an_exited_service_keeps_its_exit_code_and_starts_again() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    let spec = env.spec("once-g1", "echo ran; exit 7", RestartPolicy::No);
    env.start(&rt, &spec).await.expect("start");
    let exited = || async {
        rt.inspect("once-g1")
            .await
            .is_some_and(|s| s.state == "exited")
    };
    eventually("it exited", exited).await;
    let status = rt.inspect("once-g1").await.expect("instance exists");
    assert_eq!(
        (status.exit_code, status.pid, status.restarts),
        (Some(7), None, 0)
    );
    env.start(&rt, &spec).await.expect("start again");
    let twice = || async {
        rt.logs("once-g1", 100)
            .await
            .is_ok_and(|l| l.matches("ran").count() == 2)
    };
    eventually("it ran a second time", twice).await;
}

#[tokio::test]
async fn start_is_idempotent_and_a_changed_spec_replaces_the_container() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    let mut spec = env.spec("app-g1", "echo \"v=$V\"; sleep 600", RestartPolicy::Always);
    spec.env = vec![("V".into(), "1".into())];
    env.start(&rt, &spec).await.expect("start");
    let first = running(&rt, "app-g1").await;
    env.start(&rt, &spec).await.expect("start again");
    assert_eq!(running(&rt, "app-g1").await.pid, first.pid);
    spec.env = vec![("V".into(), "2".into())];
    env.start(&rt, &spec).await.expect("start changed spec");
    assert_ne!(running(&rt, "app-g1").await.pid, first.pid);
    eventually("the new env shows", || logs_contain(&rt, "app-g1", "v=2")).await;
    assert_eq!(env.containers().len(), 1);
}

#[tokio::test]
async fn stop_removes_the_container() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    let spec = env.spec("web-g1", "sleep 600", RestartPolicy::Always);
    env.start(&rt, &spec).await.expect("start");
    running(&rt, "web-g1").await;
    rt.stop("web-g1").await.expect("stop");
    assert_eq!(rt.inspect("web-g1").await, None);
    assert!(rt.list().await.is_empty());
    assert!(env.containers().is_empty());
    rt.stop("web-g1").await.expect("stopping again is fine");
    rt.stop("never-started")
        .await
        .expect("stopping an unknown instance is fine");
    let err = rt
        .logs("web-g1", 10)
        .await
        .expect_err("no logs of a removed instance");
    assert!(matches!(err, RuntimeError::NoSuchInstance(_)), "{err}");
}

#[tokio::test]
async fn a_second_runtime_on_the_same_namespace_adopts_the_running_container() {
    let Some(env) = Env::new() else { return };
    let first = env.runtime().await;
    let spec = env.spec("web-g1", "sleep 600", RestartPolicy::Always);
    env.start(&first, &spec).await.expect("start");
    let before = running(&first, "web-g1").await;
    drop(first);
    let second = env.runtime().await;
    assert_eq!(second.list().await, std::slice::from_ref(&before));
    env.start(&second, &spec)
        .await
        .expect("start with the same spec");
    assert_eq!(running(&second, "web-g1").await.pid, before.pid);
    let other = DockerRuntime::connect(&format!("{}-other", env.namespace))
        .await
        .expect("connect");
    assert!(other.list().await.is_empty());
    assert_eq!(other.inspect("web-g1").await, None);
    second.stop("web-g1").await.expect("stop");
    assert!(env.containers().is_empty());
}

#[tokio::test]
async fn loading_the_same_rootfs_twice_loads_the_image_once() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    let first = rt.load_rootfs(&env.rootfs).await.expect("load");
    env.track([first.tag.as_str()]);
    assert!(first.loaded);
    assert!(first.tag.starts_with("petrel/rootfs:"), "{}", first.tag);
    let again = rt.load_rootfs(&env.rootfs).await.expect("load again");
    assert_eq!((again.loaded, &again.id), (false, &first.id));
    let copy = make_rootfs(env.dir.path(), "copy", &env.namespace);
    let elsewhere = rt.load_rootfs(&copy).await.expect("load a copy");
    assert_eq!((elsewhere.loaded, &elsewhere.tag), (false, &first.tag));
    let mut spec = env.spec("a-g1", "sleep 600", RestartPolicy::Always);
    env.start(&rt, &spec).await.expect("start a");
    (spec.name, spec.rootfs) = ("b-g1".into(), copy);
    env.start(&rt, &spec).await.expect("start b");
    running(&rt, "b-g1").await;
    let (_, images) = docker(&[
        "ps",
        "--filter",
        &format!("label=io.petrel.namespace={}", env.namespace),
        "--format",
        "{{.Image}}",
    ]);
    assert_eq!(images.lines().collect::<Vec<_>>(), [first.tag.as_str(); 2]);
}

#[tokio::test]
async fn a_missing_executable_is_a_clear_start_error() {
    let Some(env) = Env::new() else { return };
    let rt = env.runtime().await;
    let loaded = rt.load_rootfs(&env.rootfs).await.expect("load");
    env.track([loaded.tag.as_str()]);
    let mut spec = env.spec("bad-g1", "", RestartPolicy::Always);
    spec.argv = vec!["/bin/nope".into()];
    let err = env.start(&rt, &spec).await.expect_err("start must fail");
    match &err {
        RuntimeError::Start { name, reason } => {
            assert_eq!(name, "bad-g1");
            assert!(reason.contains("/bin/nope"), "{reason}");
        }
        other => panic!("expected a start error, got {other}"),
    }
    assert_eq!(rt.inspect("bad-g1").await, None);
    assert!(
        env.containers().is_empty(),
        "the failed container was left behind"
    );
}

#[tokio::test]
async fn a_namespace_with_a_dot_is_refused() {
    let err = DockerRuntime::connect("dev.1")
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("namespace"), "{err}");
}

#[tokio::test]
async fn an_unreachable_engine_is_a_clear_connect_error() {
    const CHILD: &str = "PETREL_TEST_NO_ENGINE";
    if std::env::var_os(CHILD).is_none() {
        // Only a child process may point DOCKER_HOST nowhere: tests share
        // their process's environment.
        let this = std::env::current_exe().expect("test binary");
        let test = "an_unreachable_engine_is_a_clear_connect_error";
        let out = Command::new(this)
            .args(["--exact", test, "--nocapture"])
            .env(CHILD, "1")
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .expect("run test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    let err = DockerRuntime::connect("dev-1")
        .await
        .err()
        .expect("no engine there");
    println!("connect error: {err}");
    assert!(
        err.to_string().contains("/nonexistent/docker.sock"),
        "{err}"
    );
}
