//! The controller binaries fail clearly on bad input.

use std::process::Command;

#[test]
fn petrel_cli_names_the_controller_it_cannot_reach() {
    let out = Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["--controller", "http://127.0.0.1:9", "devices"])
        .output()
        .expect("run petrel");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach controller at http://127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn petrel_controller_refuses_a_data_dir_it_cannot_create() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_petrel-controller"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--broker",
            "mqtt://127.0.0.1:9",
            "--data",
        ])
        .arg(file.join("sub"))
        .output()
        .expect("run petrel-controller");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot create data dir"), "{err}");
}
