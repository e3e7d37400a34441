//! An agent killed between spawning a process and recording its pid: the
//! child wrote its pid itself, so the next agent adopts that process
//! instead of starting the instance a second time.

use super::*;

/// Rewrites the record of `name` as `launch` leaves it before the spawn:
/// spec only, no pid.
fn forget_pid(fx: &Fixture, name: &str) {
    let paths = Paths::create(&fx.state_dir()).expect("paths");
    let mut record = paths
        .load_records()
        .expect("records")
        .into_iter()
        .find(|r| r.spec.name == name)
        .expect("a record");
    (record.pid, record.start_time) = (None, None);
    paths.write_record(&record).expect("write record");
}

#[tokio::test]
async fn a_process_spawned_but_never_recorded_is_adopted_not_started_twice() {
    let mut fx = Fixture::new();
    fx.rt
        .start(&fx.spec("web", "exec sleep 30", RestartPolicy::Always))
        .await
        .expect("start");
    let pid = running_pid(&fx.rt.inspect("web").await.expect("known"));
    fx.kill_agent();
    forget_pid(&fx, "web");
    fx.restart_agent();
    let status = wait_for(&fx.rt, "web", |s| s.is_running()).await;
    assert_eq!(status.pid, Some(pid), "the same process, adopted");
    assert_eq!(status.restarts, 0);
    let group = group_members(pgid_of(pid));
    fx.rt.stop("web").await.expect("stop");
    assert!(!alive(pid));
    assert!(group.iter().all(|&p| !alive(p)), "nothing of it is left");
}

#[tokio::test]
async fn a_stray_pid_file_naming_another_process_is_not_adopted() {
    let mut fx = Fixture::new();
    fx.rt
        .start(&fx.spec("web", "exec sleep 30", RestartPolicy::No))
        .await
        .expect("start");
    let pid = running_pid(&fx.rt.inspect("web").await.expect("known"));
    fx.kill_agent();
    forget_pid(&fx, "web");
    // The pid file names a live process that is not this instance's (ours,
    // the test process): it must be left alone.
    let pid_file = fx.state_dir().join("instances/web.pid");
    fs::write(&pid_file, std::process::id().to_string()).expect("write pid file");
    fx.restart_agent();
    let status = fx.rt.inspect("web").await.expect("known");
    assert!(!status.is_running(), "not adopted: {status:?}");
    kill_group(pgid_of(pid));
}
