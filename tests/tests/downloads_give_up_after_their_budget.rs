//! Bounded retries (issue 19, point 3): a download that gets no byte for
//! longer than the agent's `download_retry_budget_s` fails the update with
//! the reason, and the device keeps running its release; a TLS
//! misconfiguration (`https://` to a server that does not speak TLS) fails
//! the update at once instead of retrying for the whole budget.

use petrel_protocol::Phase;
use petrel_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_download_without_progress_fails_the_update_after_its_budget_and_the_release_keeps_running(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let proxy = Proxy::start(format!("127.0.0.1:{}", ctl.http_port), 0).await?;
    let agent = Agent::start_with(
        tmp.path(),
        "budget-1",
        &ctl.broker_url(),
        &proxy.url(),
        "download_retry_budget_s = 4\n",
    )?;
    let pid = run_demo_v1(&client, tmp.path(), &agent).await?;

    let grown = vec![("data.bin", images::noise(200_000, 3))];
    sample_image(&client, tmp.path(), "v2", "2", &grown).await?;
    sample_release(&client, "2", "v2").await?;
    proxy.refuse(true); // the link to the controller is dead from now on
    let deployed = Instant::now();
    client
        .deploy("demo@2", std::slice::from_ref(&agent.id))
        .await?;
    let failed = wait_phase(&client, &agent.id, Phase::Failed).await?;
    let took = deployed.elapsed();
    let why = failed.last_error.unwrap_or_default();
    assert!(
        why.contains("no progress") && why.contains("download_retry_budget_s is 4 s"),
        "{why}"
    );
    // 4 s of budget, backoff waits of at most 30 s: well under a minute
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_eq!(failed.current.map(|c| c.version), Some("1".to_string()));
    assert!(pid_alive(pid), "the running release was touched");
    assert_eq!(running_app(&agent.data_dir, "1").await?, pid);

    // the link back: the same release deployed again goes through
    proxy.refuse(false);
    client
        .deploy("demo@2", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "2").await?;
    Ok(())
}

/// A TCP server that answers anything with a plain HTTP error: what a
/// TLS client meets at a plaintext port.
async fn plain_http_server() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = conn
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_url_to_a_plaintext_server_fails_the_update_at_once_naming_tls(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::secure(&tmp.path().join("ctl"), None)?;
    let client = ctl.client();
    let mut agent = Agent::provisioned(tmp.path(), "tls-1", &ctl, "")?;
    // the operator typed the wrong port: a plaintext server behind https://
    let port = plain_http_server().await?;
    let config = std::fs::read_to_string(agent.config_path())?;
    let wrong: String = config
        .lines()
        .map(|l| match l.trim_start().starts_with("controller_url") {
            true => format!("controller_url = \"https://127.0.0.1:{port}\""),
            false => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(wrong, config, "no controller_url line in {config}");
    std::fs::write(agent.config_path(), wrong + "\n")?;
    agent.restart()?;

    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    sample_release(&client, "1", "v1").await?;
    wait_for(Duration::from_secs(30), "tls-1 to report", || async {
        let d = client.devices().await.ok()?;
        d.into_iter()
            .find(|d| d.id == "tls-1" && d.reported_at_ms > 0)
    })
    .await?;
    let deployed = Instant::now();
    client.deploy("demo@1", &["tls-1".to_string()]).await?;
    let failed = wait_for(Duration::from_secs(30), "tls-1 to fail", || async {
        let d = client.devices().await.ok()?;
        d.into_iter()
            .find(|d| d.id == "tls-1" && d.phase == Phase::Failed)
    })
    .await
    .map_err(|e| {
        let log = std::fs::read_to_string(agent.data_dir.join("agent.log")).unwrap_or_default();
        let tail: String = log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
        anyhow::anyhow!("{e}; the agent's log ends:\n{tail}")
    })?;
    let why = failed.last_error.unwrap_or_default();
    assert!(
        why.contains("TLS") && why.contains("controller_url"),
        "{why}"
    );
    // at once: not after the 30-minute default budget
    assert!(
        deployed.elapsed() < Duration::from_secs(30),
        "{:?}",
        deployed.elapsed()
    );
    Ok(())
}
