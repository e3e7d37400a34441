//! `petrel-agent` refuses bad configuration with a clear error.

use std::process::Command;

#[test]
fn agent_refuses_a_config_with_an_invalid_device_id() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "device_id = \"bad/id\"\nbroker = \"mqtt://127.0.0.1:1883\"\ncontroller_url = \"http://127.0.0.1:7700\"\ndata_dir = \"/tmp/x\"\n",
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_petrel-agent"))
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run petrel-agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not valid") && err.contains("bad/id"),
        "{err}"
    );
}

#[test]
fn agent_names_a_missing_config_file_once_without_a_backtrace() {
    for cmd in ["run", "stop-services"] {
        let out = Command::new(env!("CARGO_BIN_EXE_petrel-agent"))
            .args([cmd, "--config", "/nonexistent/agent.toml"])
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("run petrel-agent");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("/nonexistent/agent.toml"), "{err}");
        assert_eq!(err.matches("No such file").count(), 1, "{err}");
        assert!(!err.contains("backtrace"), "{err}");
    }
}
