//! The PID namespace of root-mode services: the service sees itself as pid
//! 2 under an init, the runtime reports its host pid, SIGTERM from a stop
//! still reaches it, and its exit status comes through the shim.

use super::*;

/// Innermost pid of a host process (last field of `NSpid`) and how many
/// namespaces deep it is.
fn ns_pids(pid: u32) -> Vec<u32> {
    let status = read(PathBuf::from(format!("/proc/{pid}/status")));
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"));
    let fields = line.unwrap_or_default().split_whitespace();
    fields.filter_map(|f| f.parse().ok()).collect()
}

#[tokio::test]
async fn a_root_service_is_pid_2_of_its_own_namespace_and_a_stop_still_terminates_it() {
    if !geteuid().is_root() {
        eprintln!("skipped: PID namespaces need root");
        return;
    }
    let fx = Fixture::new();
    let script = "trap 'echo got-term; exit 0' TERM; echo inside=$$; sleep 30 | sleep 31";
    fx.rt
        .start(&fx.spec("isolated", script, RestartPolicy::No))
        .await
        .expect("start");
    let pid = running_pid(&fx.rt.inspect("isolated").await.expect("known"));
    eventually("the service to print its pid", || {
        read(fx.state_dir().join("logs/isolated.log")).contains("inside=")
    })
    .await;
    assert_eq!(ns_pids(pid), vec![pid, 2], "host pid, then pid 2 inside");
    assert_ne!(pgid_of(pid), pid, "the group is led by the shim");
    let log = fx.rt.logs("isolated", 10).await.expect("logs");
    assert!(log.contains("inside=2"), "log: {log}");
    // Shim, init, shell and both sleeps: a stop before the pipeline is
    // whole would leave a sleep that never got the SIGTERM. Both must have
    // exec'd `sleep`: a shell child between fork and exec still has the
    // shell's TERM trap, which swallows the signal, and the pipeline then
    // outlives the grace period.
    let pgid = pgid_of(pid);
    let sleeping = || {
        let comm = |p: &u32| read(PathBuf::from(format!("/proc/{p}/comm")));
        let members = group_members(pgid);
        members.len() == 5 && members.iter().filter(|p| comm(p).trim() == "sleep").count() == 2
    };
    eventually("the pipeline to start", sleeping).await;

    let begun = std::time::Instant::now();
    fx.rt.stop("isolated").await.expect("stop");
    let took = begun.elapsed();
    let log = fx.rt.logs("isolated", 10).await.expect("logs");
    assert!(
        log.contains("got-term"),
        "SIGTERM reached the service: {log} (stop took {took:?})"
    );
    assert!(fx.rt.inspect("isolated").await.is_none(), "stop removes it");
    assert!(!alive(pid));
}

#[tokio::test]
async fn the_exit_code_of_a_namespaced_service_comes_through_the_shim() {
    let fx = Fixture::new();
    fx.rt
        .start(&fx.spec("fails", "exit 3", RestartPolicy::No))
        .await
        .expect("start");
    let status = wait_for(&fx.rt, "fails", |s| s.state == "exited").await;
    assert_eq!(status.exit_code, Some(3));
}

#[tokio::test]
async fn processes_left_behind_by_a_namespaced_service_die_with_it() {
    if !geteuid().is_root() {
        eprintln!("skipped: PID namespaces need root");
        return;
    }
    let fx = Fixture::new();
    let setsid = std::path::Path::new("/usr/bin/setsid");
    crate::hostbin::copy_with_libs(setsid, &fx.rootfs).expect("copy setsid");
    // The helper leaves the service's session and process group, so no
    // group signal reaches it: only the end of the namespace can.
    let script = "setsid sleep 60 </bin/sh & \
                  while [ ! -e /go ]; do sleep 0.05; done; exit 0";
    fx.rt
        .start(&fx.spec("leaver", script, RestartPolicy::No))
        .await
        .expect("start");
    let pid = running_pid(&fx.rt.inspect("leaver").await.expect("known"));
    let ns = fs::read_link(format!("/proc/{pid}/ns/pid")).expect("pid ns of the service");
    // (the wait loop's own short sleeps come and go: look for the helper)
    let helper = || {
        let cmdline = |p: &u32| fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        in_namespace(&ns)
            .iter()
            .any(|p| cmdline(p) == b"sleep\x0060\x00")
    };
    eventually("the helper to start", helper).await;
    fs::write(fx.rootfs.join("go"), b"").expect("release the service");
    wait_for(&fx.rt, "leaver", |s| s.state == "exited").await;
    eventually("the namespace to be empty", || in_namespace(&ns).is_empty()).await;
}

/// Host pids of the live processes in the PID namespace `ns`.
fn in_namespace(ns: &std::path::Path) -> Vec<u32> {
    let entries = fs::read_dir("/proc").expect("read /proc");
    let pids = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
    pids.filter(|pid| {
        let link = fs::read_link(format!("/proc/{pid}/ns/pid"));
        let state = read(PathBuf::from(format!("/proc/{pid}/stat")));
        link.is_ok_and(|l| l == ns) && !state.contains(") Z ")
    })
    .collect()
}

#[tokio::test]
async fn a_root_service_gets_a_dev_with_the_usual_nodes_whatever_its_image_shipped() {
    if !geteuid().is_root() {
        eprintln!("skipped: mount namespaces need root");
        return;
    }
    let fx = Fixture::new();
    let spec = fx.spec(
        "devs",
        "for n in null zero full random urandom tty console; do [ -c /dev/$n ] || echo missing=$n; done; \
         [ -d /dev/shm ] && [ -L /dev/ptmx ] && [ -L /dev/stdout ] || echo missing=dirs; \
         echo written > /dev/null && echo devok",
        RestartPolicy::No,
    );
    // The image's own /dev held a plain file where a node belongs.
    std::fs::create_dir_all(spec.rootfs.join("dev")).unwrap();
    std::fs::write(spec.rootfs.join("dev/null"), "not a device").unwrap();
    fx.rt.start(&spec).await.expect("start");
    wait_for(&fx.rt, "devs", |s| s.state == "exited").await;
    let log = fx.rt.logs("devs", 20).await.expect("logs");
    assert!(
        log.contains("devok") && !log.contains("missing="),
        "log: {log}"
    );
    // The tmpfs lived in the service's namespace only.
    let null = std::fs::read_to_string(spec.rootfs.join("dev/null")).unwrap();
    assert_eq!(null, "not a device");
}
