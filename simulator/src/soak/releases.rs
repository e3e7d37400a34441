//! The soak's releases: every version is new content (its own payload of
//! small files), so each update downloads, unpacks and assembles for
//! real, and the collection after it has a release to remove. A broken
//! version's service exits soon after it starts, so its swap fails its
//! health check and the device rolls back.

use crate::sample;
use anyhow::{Context, Result};
use petrel_controller::client::Client;
use petrel_protocol::{ImageConfig, SwapStrategy};
use rand::{RngCore, SeedableRng};
use std::path::{Path, PathBuf};

/// Each payload file's size: many files make unpacking and removal take
/// long enough to be hit.
const FILE_BYTES: usize = 4096;

pub struct Releases {
    bin: PathBuf,
    work: PathBuf,
    swap: &'static str,
    payload: usize,
}

impl Releases {
    pub fn new(work: &Path, strategy: SwapStrategy, payload: usize) -> Result<Releases> {
        Ok(Releases {
            bin: sample::sample_app_binary()?,
            work: work.to_path_buf(),
            swap: match strategy {
                SwapStrategy::Handover => "handover",
                SwapStrategy::StopFirst => "stop-first",
            },
            payload,
        })
    }

    /// Builds `soak-app:<version>` and the release `soak@<version>`.
    pub async fn publish(&self, client: &Client, version: u32, broken: bool) -> Result<()> {
        let v = version.to_string();
        let dir = self.work.join(format!("app-v{v}"));
        sample::app_dir(&self.bin, &v, &dir)?;
        write_payload(&dir.join("app/data"), self.payload, u64::from(version))?;
        let config = ImageConfig {
            entrypoint: vec!["/app/sample-app".into()],
            working_dir: Some("/app".into()),
            ..Default::default()
        };
        client.build_image(&dir, "soak-app", &v, config).await?;
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        let exit = if broken {
            ", \"--exit-after-ms\", \"300\""
        } else {
            ""
        };
        let compose = format!(
            "services:\n  app:\n    image: soak-app:{v}\n    command: [\"--interval-ms\", \"50\"{exit}]\n    x-petrel-swap: {swap}\n    healthcheck:\n      test: [\"RUNNING\", \"1\"]\n",
            swap = self.swap
        );
        client.create_release("soak", &v, &compose).await?;
        Ok(())
    }

    /// Deletes a version no device can need any more, and its image, so
    /// a long soak's controller does not fill the disk. A refusal (still
    /// in use) is not an error: it goes later.
    pub async fn retire(&self, client: &Client, version: u32) {
        let v = version.to_string();
        if client.delete_release("soak", &v).await.is_ok() {
            let _ = client.delete_image("soak-app", &v).await;
        }
    }
}

/// `bytes` of random data in files of [`FILE_BYTES`], different for
/// every `seed`.
fn write_payload(dir: &Path, bytes: usize, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; FILE_BYTES];
    for i in 0..bytes.div_ceil(FILE_BYTES) {
        rng.fill_bytes(&mut buf);
        let path = dir.join(format!("{i:05}.bin"));
        std::fs::write(&path, &buf).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
