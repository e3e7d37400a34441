//! The controller's default delta is the tar-aware one: a release whose
//! layer differs from the previous one by a gzipped changelog (made by
//! `gzip -9n`, as Debian makes them) gets a patch that diffs the inflated
//! text and rebuilds the exact `.gz` on the device, which applies it and
//! runs the new release.

use petrel_tests::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// `text` compressed by the gzip program with `-9n`.
fn gzip_9n(text: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("gzip")
        .arg("-9n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("stdin").write_all(text)?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "gzip failed");
    Ok(out.stdout)
}

/// A changelog of `entries` releases, newest first.
fn changelog(entries: u32) -> Vec<u8> {
    let mut text = String::new();
    for n in (1..=entries).rev() {
        text.push_str(&format!(
            "demo (1.{n}) stable; urgency=medium\n\n  * Fix issue #{} in the parser ({} bytes).\n  * Rebuild against libfoo {}.{}.\n\n -- Petrel <ops@example.org>  day {n}\n\n",
            n * 7919 % 10007,
            n * 31,
            n % 13,
            n % 7
        ));
    }
    text.into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_gzip_changelog_travels_as_a_small_tar_aware_patch() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "ta-1", &ctl.broker_url(), &ctl.url())?;
    let devices = vec![agent.id.clone()];

    let v1_log = gzip_9n(&changelog(3000))?;
    let v1 = sample_image(&client, tmp.path(), "v1", "1", &[("changelog.gz", v1_log)]).await?;
    sample_release(&client, "1", "v1").await?;
    client.deploy("demo@1", &devices).await?;
    wait_converged(&client, &agent.id, "1").await?;

    let v2_log = gzip_9n(&changelog(3001))?;
    let v2_log_len = v2_log.len();
    let v2 = sample_image(&client, tmp.path(), "v2", "2", &[("changelog.gz", v2_log)]).await?;
    sample_release(&client, "2", "v2").await?;
    client.deploy("demo@2", &devices).await?;
    wait_converged(&client, &agent.id, "2").await?;
    running_app(&agent.data_dir, "2").await?;

    let url = format!(
        "{}/v1/deltas/{}/{}",
        ctl.url(),
        v1.layers[0].diff_id,
        v2.layers[0].diff_id
    );
    let patch = ctl
        .get_delta(&url)
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let header = petrel_delta::read_header(&mut patch.as_ref())?;
    assert_eq!(
        header.method,
        petrel_delta::Method::TarAware,
        "controller log:\n{}",
        ctl.log()
    );
    // The new changelog.gz alone shares no bytes with the old one after
    // its first change; the patch carries the one new entry instead.
    assert!(
        patch.len() < v2_log_len / 4,
        "patch {} bytes vs a {v2_log_len}-byte changelog.gz",
        patch.len()
    );
    let log = agent.log();
    assert!(
        log.contains("layer rebuilt from delta"),
        "agent log:\n{log}"
    );
    assert!(
        !log.contains("falling back to the full blob"),
        "agent log:\n{log}"
    );
    Ok(())
}
