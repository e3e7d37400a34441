//! The agent's data dir on a small tmpfs: an update that cannot fit is
//! refused before a byte is downloaded (`insufficient-disk`, with the
//! bytes needed and free) and the running release keeps running; when the
//! disk has room again the agent retries by itself. A disk that fills up
//! mid-download (ENOSPC) is handled the same way, and the download
//! resumes once space returns.

use petrel_protocol::{EventKind, Phase};
use petrel_tests::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A tmpfs mounted for the test, lazily unmounted at the end.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size_mb: u64) -> anyhow::Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir)
            .status()?
            .success();
        anyhow::ensure!(
            ok,
            "mounting a tmpfs on {} (this test needs root)",
            dir.display()
        );
        Ok(Tmpfs(dir.to_path_buf()))
    }

    fn free(&self) -> u64 {
        petrel_agent::facts::free_bytes(&self.0).expect("statvfs")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the disk until `leave` bytes are free.
fn fill(disk: &Tmpfs, path: &Path, leave: u64) -> anyhow::Result<()> {
    let size = disk.free().saturating_sub(leave);
    std::fs::write(path, vec![0x5a; size as usize])?;
    Ok(())
}

fn random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_that_cannot_fit_waits_for_room_and_a_full_disk_mid_download_resumes(
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    // 3 MB/s to the device: the big download takes seconds
    let proxy = Proxy::start(format!("127.0.0.1:{}", ctl.http_port), 3_000_000).await?;
    let disk = Tmpfs::mount(&tmp.path().join("disk-1"), 160)?;
    let agent = Agent::start(tmp.path(), "disk-1", &ctl.broker_url(), &proxy.url())?;
    let id = std::slice::from_ref(&agent.id);
    run_demo_v1(&client, tmp.path(), &agent).await?;
    let v1 = running_app(&agent.data_dir, "1").await?;
    // v2 carries 24 MB that compress to nothing
    sample_image(
        &client,
        tmp.path(),
        "v2",
        "2",
        &[("blob.bin", random(24 << 20))],
    )
    .await?;
    sample_release(&client, "2", "v2").await?;

    // not enough room, even after collection: refused before downloading
    let filler = agent.data_dir.join("filler");
    fill(&disk, &filler, 40 << 20)?;
    let seq = last_seq(&client, &agent.id).await;
    client.deploy("demo@2", id).await?;
    let refused = wait_event(&client, &agent.id, EventKind::InsufficientDisk, seq).await?;
    assert!(
        refused.message.contains("bytes") && refused.message.contains("free"),
        "{}",
        refused.message
    );
    eprintln!("refused: {}", refused.message);
    let view = wait_phase(&client, &agent.id, Phase::Failed).await?;
    assert_eq!(view.current.map(|c| c.version).as_deref(), Some("1"));
    assert!(
        pid_alive(v1),
        "a refused update touched the running release"
    );
    let partials = std::fs::read_dir(agent.data_dir.join("downloads"))?.count();
    assert_eq!(partials, 0, "the refused update downloaded something");

    // room again: the agent retries by itself; the disk fills mid-download
    let seq = last_seq(&client, &agent.id).await;
    std::fs::remove_file(&filler)?;
    wait_for(
        Duration::from_secs(60),
        "the download to get going",
        || async {
            let d = client.device(&agent.id).await.ok()?;
            (d.phase == Phase::Downloading && d.progress.bytes_done > 2 << 20).then_some(())
        },
    )
    .await?;
    fill(&disk, &filler, 4 << 20)?;
    let full = wait_event(&client, &agent.id, EventKind::InsufficientDisk, seq).await?;
    assert!(full.message.contains("filled up"), "{}", full.message);
    eprintln!("disk full: {}", full.message);
    assert!(
        pid_alive(v1),
        "a disk-full update touched the running release"
    );

    // space returns: the update resumes and completes
    std::fs::remove_file(&filler)?;
    // a loaded CI machine takes a while over the delta attempt, the resumed
    // download and the install; the agent's log tells where it stood
    let converged = wait_for(Duration::from_secs(300), "v2 to run", || async {
        let d = client.device(&agent.id).await.ok()?;
        let on_v2 = d.current.as_ref().is_some_and(|c| c.version == "2");
        (on_v2 && d.phase == Phase::Running).then_some(())
    })
    .await;
    converged.map_err(|e| {
        let free = disk.free();
        anyhow::anyhow!(
            "{e} ({free} bytes free)\nagent log:\n{}",
            agent.log_tail(80)
        )
    })?;
    running_app(&agent.data_dir, "2").await?;
    drop(agent);
    Ok(())
}
