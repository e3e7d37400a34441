//! The sample app writes a heartbeat naming its version and pid.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn sample_app_heartbeat_names_its_version_and_pid() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::write(app.join("version.txt"), "7\n").expect("write version");
    let mut child = Command::new(env!("CARGO_BIN_EXE_petrel-sample-app"))
        .args(["--interval-ms", "50"])
        .current_dir(&app)
        .spawn()
        .expect("spawn sample app");
    let deadline = Instant::now() + Duration::from_secs(10);
    let beat = loop {
        if let Some(b) = petrel_simulator::sample::read_heartbeat(tmp.path()) {
            break Some(b);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let beat = beat.expect("a heartbeat within 10 s");
    assert_eq!(beat.version, "7");
    assert_eq!(beat.pid, child.id());
}
