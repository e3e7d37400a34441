//! Scenario tests of the native runtime with real processes in a real
//! rootfs (chrooted when the tests run as root). Every test stops what it
//! started; the fixture kills recorded processes if a test fails midway.

use super::process::{self, kill_group};
use super::record::Paths;
use super::testfs::make_rootfs;
use super::NativeRuntime;
use crate::runtime::{InstanceSpec, InstanceStatus, Runtime, RuntimeError};
use nix::unistd::geteuid;
use petrel_protocol::RestartPolicy;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

mod confinement;
mod isolation;
mod recovery;

const DEADLINE: Duration = Duration::from_secs(10);

struct Fixture {
    dir: TempDir,
    rootfs: PathBuf,
    rt: NativeRuntime,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = make_rootfs(dir.path());
        let rt = runtime_on(&dir.path().join("state"));
        Fixture { dir, rootfs, rt }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn spec(&self, name: &str, script: &str, restart: RestartPolicy) -> InstanceSpec {
        InstanceSpec {
            name: name.into(),
            rootfs: self.rootfs.clone(),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![],
            working_dir: None,
            restart,
            ..Default::default()
        }
    }

    /// Simulates the agent being SIGKILLed: supervision ends, processes run on.
    fn kill_agent(&self) {
        self.rt.abandon_supervision();
    }

    /// A fresh runtime on the same state dir, as after an agent restart.
    fn restart_agent(&mut self) {
        self.kill_agent();
        self.rt = runtime_on(&self.state_dir());
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill_agent();
        let records = Paths::create(&self.state_dir()).and_then(|p| p.load_records());
        for pid in records.into_iter().flatten().filter_map(|r| r.pid) {
            kill_group(pid);
        }
    }
}

fn runtime_on(state_dir: &std::path::Path) -> NativeRuntime {
    let rt = NativeRuntime::new(state_dir.to_path_buf()).expect("runtime");
    rt.with_stop_grace(Duration::from_secs(2))
}

fn alive(pid: u32) -> bool {
    process::start_time(pid).is_some_and(|start| process::is_alive(pid, start))
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for(
    rt: &NativeRuntime,
    name: &str,
    check: impl Fn(&InstanceStatus) -> bool,
) -> InstanceStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = rt.inspect(name).await;
        if let Some(status) = status.as_ref().filter(|s| check(s)) {
            return status.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out, last status of {name}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn running_pid(status: &InstanceStatus) -> u32 {
    assert!(status.is_running(), "not running: {status:?}");
    status.pid.expect("running instance has a pid")
}

fn read(path: PathBuf) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn started_instance_runs_and_its_output_lands_in_the_log() {
    let fx = Fixture::new();
    let script = "echo hello from service; echo oops >&2; exec sleep 30";
    fx.rt
        .start(&fx.spec("web", script, RestartPolicy::No))
        .await
        .expect("start");
    let pid = running_pid(&fx.rt.inspect("web").await.expect("known"));
    assert!(alive(pid));
    let log = fx.state_dir().join("logs/web.log");
    eventually("log output", || {
        read(log.clone()) == "hello from service\noops\n"
    })
    .await;
    fx.rt.stop("web").await.expect("stop");
    assert!(!alive(pid));
    assert_eq!(fx.rt.inspect("web").await, None);
}

#[tokio::test]
async fn env_and_working_dir_are_applied() {
    let fx = Fixture::new();
    fs::create_dir(fx.rootfs.join("work")).expect("mkdir");
    let script =
        r#"printf '%s\n%s\n%s\n' "$FOO" "$(pwd)" "${HOME:-unset}" > out.txt; exec sleep 30"#;
    let mut spec = fx.spec("envy", script, RestartPolicy::No);
    spec.env = vec![("FOO".into(), "bar baz".into())];
    spec.working_dir = Some("/work".into());
    fx.rt.start(&spec).await.expect("start");
    let out = fx.rootfs.join("work/out.txt");
    eventually("out.txt", || read(out.clone()).lines().count() == 3).await;
    let text = read(out);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "bar baz");
    // Chrooted as root; without root the host path of the rootfs shows.
    assert!(
        lines[1] == "/work" || (!geteuid().is_root() && lines[1].ends_with("/work")),
        "{lines:?}"
    );
    assert_eq!(lines[2], "unset", "only the spec's environment is passed");
    fx.rt.stop("envy").await.expect("stop");
}

#[tokio::test]
async fn on_failure_policy_restarts_a_failing_process() {
    let fx = Fixture::new();
    fx.rt
        .start(&fx.spec("flaky", "exit 1", RestartPolicy::OnFailure))
        .await
        .expect("start");
    let status = wait_for(&fx.rt, "flaky", |s| s.restarts >= 2).await;
    assert_ne!(status.state, "exited");
    fx.rt.stop("flaky").await.expect("stop");
    assert_eq!(fx.rt.list().await, []);
    assert!(!fx.state_dir().join("instances/flaky.json").exists());
}

#[tokio::test]
async fn no_policy_leaves_a_failed_process_exited() {
    let fx = Fixture::new();
    fx.rt
        .start(&fx.spec("once", "exit 3", RestartPolicy::No))
        .await
        .expect("start");
    let status = wait_for(&fx.rt, "once", |s| s.state == "exited").await;
    assert_eq!(
        (status.exit_code, status.restarts, status.pid),
        (Some(3), 0, None)
    );
    fx.rt.stop("once").await.expect("stop");
    assert_eq!(fx.rt.inspect("once").await, None);
}

#[tokio::test]
async fn on_failure_policy_does_not_restart_a_successful_exit() {
    let fx = Fixture::new();
    fx.rt
        .start(&fx.spec("job", "exit 0", RestartPolicy::OnFailure))
        .await
        .expect("start");
    let status = wait_for(&fx.rt, "job", |s| s.state == "exited").await;
    assert_eq!((status.exit_code, status.restarts), (Some(0), 0));
    fx.rt.stop("job").await.expect("stop");
}

#[tokio::test]
async fn stop_terminates_the_whole_process_group() {
    let fx = Fixture::new();
    // A pipeline: the shell waits for two helper processes in its group.
    // (Not `sleep &`: dash opens /dev/null for background jobs, and the test
    // rootfs has no /dev.)
    let script = "sleep 30 | sleep 31";
    fx.rt
        .start(&fx.spec("parent", script, RestartPolicy::Always))
        .await
        .expect("start");
    let pid = running_pid(&fx.rt.inspect("parent").await.expect("known"));
    let pgid = pgid_of(pid);
    // The shell and both helpers (plus, as root, the shim and the init).
    eventually("helpers to start", || group_members(pgid).len() >= 3).await;
    fx.rt.stop("parent").await.expect("stop");
    assert!(!alive(pid));
    eventually("helpers to die", || group_members(pgid).is_empty()).await;
}

/// Process group of `pid` (field 5 of its stat): the service's group is
/// led by the shim when the service runs in its own PID namespace.
fn pgid_of(pid: u32) -> u32 {
    let stat = read(PathBuf::from(format!("/proc/{pid}/stat")));
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let pgid = rest.split_whitespace().nth(2).and_then(|f| f.parse().ok());
    pgid.expect("a live process has a process group")
}

/// Live (non-zombie) processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let entries = fs::read_dir("/proc").expect("read /proc");
    let pids = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
    pids.filter(|&pid| {
        let stat = read(PathBuf::from(format!("/proc/{pid}/stat")));
        let fields: Vec<_> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        fields.get(2) == Some(&pgid.to_string().as_str())
            && !matches!(fields.first(), Some(&"Z" | &"X"))
    })
    .collect()
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_the_grace_period() {
    let fx = Fixture::new();
    let rt = fx.rt.clone().with_stop_grace(Duration::from_millis(300));
    let script = "trap '' TERM; echo ready; sleep 30";
    rt.start(&fx.spec("stubborn", script, RestartPolicy::Always))
        .await
        .expect("start");
    let pid = running_pid(&rt.inspect("stubborn").await.expect("known"));
    let log = fx.state_dir().join("logs/stubborn.log");
    eventually("trap installed", || read(log.clone()).contains("ready")).await;
    let begun = Instant::now();
    rt.stop("stubborn").await.expect("stop");
    assert!(begun.elapsed() >= Duration::from_millis(300));
    // the shim is reaped when stop returns; the service, SIGKILLed in its
    // namespace, may take a moment more to go
    eventually("the service to be gone", || !alive(pid)).await;
}

#[tokio::test]
async fn second_runtime_adopts_a_running_instance_and_can_stop_it() {
    let mut fx = Fixture::new();
    fx.rt
        .start(&fx.spec("web", "exec sleep 30", RestartPolicy::Always))
        .await
        .expect("start");
    let pid = running_pid(&fx.rt.inspect("web").await.expect("known"));
    fx.restart_agent();
    let adopted = fx.rt.inspect("web").await.expect("adopted");
    assert_eq!((running_pid(&adopted), adopted.restarts), (pid, 0));
    assert_eq!(fx.rt.list().await, [adopted]);
    fx.rt.stop("web").await.expect("stop");
    assert!(!alive(pid));
    assert_eq!(fx.rt.inspect("web").await, None);
    assert!(!fx.state_dir().join("instances/web.json").exists());
}

#[tokio::test]
async fn instance_that_died_unwatched_is_restarted_per_policy() {
    let mut fx = Fixture::new();
    fx.rt
        .start(&fx.spec("keep", "exec sleep 30", RestartPolicy::OnFailure))
        .await
        .expect("start");
    fx.rt
        .start(&fx.spec("drop", "exec sleep 30", RestartPolicy::No))
        .await
        .expect("start");
    let keep = running_pid(&fx.rt.inspect("keep").await.expect("known"));
    let dropped = running_pid(&fx.rt.inspect("drop").await.expect("known"));
    fx.kill_agent();
    let groups = [pgid_of(keep), pgid_of(dropped)];
    groups.into_iter().for_each(kill_group);
    eventually("services to die", || {
        groups.iter().all(|&g| group_members(g).is_empty())
    })
    .await;
    fx.restart_agent();
    let status = wait_for(&fx.rt, "keep", |s| s.is_running()).await;
    assert_ne!(status.pid, Some(keep));
    assert_eq!(status.restarts, 1);
    let status = fx.rt.inspect("drop").await.expect("known");
    assert_eq!((status.state.as_str(), status.pid), ("exited", None));
    fx.rt.stop("keep").await.expect("stop");
    fx.rt.stop("drop").await.expect("stop");
}

#[tokio::test]
async fn starting_a_running_instance_again_keeps_its_process() {
    let fx = Fixture::new();
    let spec = fx.spec("web", "exec sleep 30", RestartPolicy::Always);
    fx.rt.start(&spec).await.expect("start");
    let pid = running_pid(&fx.rt.inspect("web").await.expect("known"));
    fx.rt.start(&spec).await.expect("second start");
    assert_eq!(fx.rt.inspect("web").await.and_then(|s| s.pid), Some(pid));
    fx.rt.stop("web").await.expect("stop");
}

#[tokio::test]
async fn missing_executable_is_a_start_error() {
    let fx = Fixture::new();
    let mut spec = fx.spec("ghost", "", RestartPolicy::Always);
    spec.argv = vec!["/bin/no-such-program".into()];
    let err = fx.rt.start(&spec).await.expect_err("must fail");
    assert!(
        matches!(&err, RuntimeError::Start { name, .. } if name == "ghost"),
        "{err}"
    );
    assert_eq!(fx.rt.list().await, []);
}

#[tokio::test]
async fn names_that_are_not_safe_file_names_are_rejected() {
    let fx = Fixture::new();
    for name in ["", ".hidden", "../escape", "a/b", "sp ace"] {
        let spec = fx.spec(name, "exit 0", RestartPolicy::No);
        let err = fx.rt.start(&spec).await.expect_err(name);
        assert!(matches!(err, RuntimeError::Start { .. }), "{name}: {err}");
    }
    assert_eq!(fx.rt.list().await, []);
}

#[tokio::test]
async fn oversized_log_is_rotated_when_the_instance_starts() {
    let fx = Fixture::new();
    let log = fx.state_dir().join("logs/chatty.log");
    fs::write(&log, vec![b'x'; 1024 * 1024 + 1]).expect("write old log");
    let spec = fx.spec("chatty", "echo fresh; exec sleep 30", RestartPolicy::No);
    fx.rt.start(&spec).await.expect("start");
    eventually("fresh log", || read(log.clone()) == "fresh\n").await;
    let rotated = fs::metadata(log.with_extension("log.1")).expect("rotated log");
    assert_eq!(rotated.len(), 1024 * 1024 + 1);
    fx.rt.stop("chatty").await.expect("stop");
}

#[tokio::test]
async fn stopping_an_unknown_instance_is_ok() {
    let fx = Fixture::new();
    fx.rt.stop("never-started").await.expect("stop");
}

#[tokio::test]
async fn a_named_volume_is_bound_into_the_root_and_keeps_what_is_written() {
    if !nix::unistd::geteuid().is_root() {
        return; // volumes need root; the start error is covered below
    }
    let fx = Fixture::new();
    let volume = fx.dir.path().join("volumes/appdata");
    let mut spec = fx.spec(
        "vol",
        "echo kept > /data/note; exec sleep 30",
        RestartPolicy::No,
    );
    spec.mounts = vec![crate::runtime::Mount {
        source: volume.clone(),
        target: "/data".into(),
        read_only: false,
    }];
    fx.rt.start(&spec).await.expect("start");
    eventually("the note in the volume", || {
        std::fs::read_to_string(volume.join("note")).is_ok_and(|s| s == "kept\n")
    })
    .await;
    fx.rt.stop("vol").await.expect("stop");
    assert!(
        volume.join("note").exists(),
        "the volume outlives the instance"
    );
}

#[tokio::test]
async fn a_volume_target_escaping_the_root_is_a_start_error() {
    let fx = Fixture::new();
    let mut spec = fx.spec("esc", "exec sleep 30", RestartPolicy::No);
    spec.mounts = vec![crate::runtime::Mount {
        source: fx.dir.path().join("v"),
        target: "/../etc".into(),
        read_only: false,
    }];
    let err = fx.rt.start(&spec).await.expect_err("refused");
    assert!(matches!(err, RuntimeError::Start { .. }), "{err}");
}

#[tokio::test]
async fn memory_and_cpu_limits_put_the_service_in_its_own_cgroups() {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let usable = nix::unistd::geteuid().is_root()
        && (root.join("cgroup.controllers").exists() || root.join("memory").is_dir());
    if !usable {
        eprintln!("no writable cgroups here: limits not exercised");
        return;
    }
    let fx = Fixture::new();
    let name = format!("lim{}", std::process::id());
    let mut spec = fx.spec(&name, "exec sleep 30", RestartPolicy::No);
    spec.memory_limit = Some(64 << 20);
    spec.cpu_millis = Some(250);
    fx.rt.start(&spec).await.expect("start");
    let pid = running_pid(&fx.rt.inspect(&name).await.expect("known"));
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup file");
    assert!(cgroups.contains(&format!("petrel/{name}")), "{cgroups}");
    let (mem, quota) = if root.join("cgroup.controllers").exists() {
        let dir = root.join("petrel").join(&name);
        (
            std::fs::read_to_string(dir.join("memory.max")),
            std::fs::read_to_string(dir.join("cpu.max")),
        )
    } else {
        (
            std::fs::read_to_string(
                root.join("memory/petrel")
                    .join(&name)
                    .join("memory.limit_in_bytes"),
            ),
            std::fs::read_to_string(root.join("cpu/petrel").join(&name).join("cpu.cfs_quota_us")),
        )
    };
    assert_eq!(mem.expect("memory limit").trim(), (64u64 << 20).to_string());
    assert!(quota.expect("cpu quota").trim().starts_with("25000"));
    fx.rt.stop(&name).await.expect("stop");
    assert!(
        !root.join("memory/petrel").join(&name).exists()
            && !root.join("petrel").join(&name).exists(),
        "groups removed"
    );
}
