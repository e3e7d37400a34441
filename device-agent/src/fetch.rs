//! Resumable, verified layer downloads.
//!
//! Bytes go to `downloads/<hex>.partial`, which survives restarts and link
//! drops; a retry asks for the rest with `Range`. The declared size caps
//! what is accepted, and the sha256 is checked before the blob is moved to
//! `blobs/<hex>`: nothing unverified ever leaves the downloads dir.

use futures_util::StreamExt;
use petrel_protocol::{Digest, LayerDescriptor};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Worth retrying: the link dropped, the server was unreachable.
    #[error("fetching {url}: {reason}")]
    Transient { url: String, reason: String },
    /// Not worth retrying as is.
    #[error("fetching {url}: {reason}")]
    Permanent { url: String, reason: String },
    #[error("blob {expected} failed verification: got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |source| FetchError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    base: String,
    downloads: PathBuf,
    blobs: PathBuf,
}

impl Fetcher {
    pub fn new(base: &str, data_dir: &Path) -> Result<Fetcher, FetchError> {
        let downloads = data_dir.join("downloads");
        let blobs = data_dir.join("blobs");
        for d in [&downloads, &blobs] {
            std::fs::create_dir_all(d).map_err(io("create", d))?;
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // a stalled link is a dropped link: give up and resume
            .read_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| FetchError::Permanent {
                url: base.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Fetcher {
            http,
            base: base.trim_end_matches('/').to_string(),
            downloads,
            blobs,
        })
    }

    /// Where a verified blob lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    /// Bytes of `layer` already on disk (verified or partial).
    pub fn have(&self, layer: &LayerDescriptor) -> u64 {
        if self.blob_path(&layer.digest).exists() {
            return layer.size;
        }
        std::fs::metadata(self.partial(&layer.digest)).map_or(0, |m| m.len().min(layer.size))
    }

    fn partial(&self, d: &Digest) -> PathBuf {
        self.downloads.join(format!("{}.partial", d.hex()))
    }

    /// One attempt: resume the partial file, verify when complete.
    /// `on_bytes` is told of every chunk written.
    pub async fn fetch_once(
        &self,
        layer: &LayerDescriptor,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<PathBuf, FetchError> {
        let done = self.blob_path(&layer.digest);
        if done.exists() {
            return Ok(done);
        }
        let part = self.partial(&layer.digest);
        let have = std::fs::metadata(&part).map_or(0, |m| m.len());
        if have > layer.size {
            tokio::fs::remove_file(&part)
                .await
                .map_err(io("remove", &part))?;
        }
        let have = have.min(layer.size);
        if have < layer.size {
            self.download_rest(layer, &part, have, on_bytes).await?;
        }
        self.verify_and_commit(layer, &part, &done).await?;
        Ok(done)
    }

    async fn download_rest(
        &self,
        layer: &LayerDescriptor,
        part: &Path,
        have: u64,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<(), FetchError> {
        let url = format!("{}/v1/blobs/{}", self.base, layer.digest);
        let transient = |reason: String| FetchError::Transient {
            url: url.clone(),
            reason,
        };
        let mut req = self.http.get(&url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let resp = req.send().await.map_err(|e| transient(e.to_string()))?;
        let status = resp.status().as_u16();
        let mut file = match status {
            206 => tokio::fs::OpenOptions::new()
                .append(true)
                .open(part)
                .await
                .map_err(io("open", part))?,
            200 => tokio::fs::File::create(part)
                .await
                .map_err(io("create", part))?,
            416 => {
                // we hold fewer bytes than declared, and the server has no more
                let _ = tokio::fs::remove_file(part).await;
                return Err(FetchError::Permanent {
                    url,
                    reason: format!(
                        "server has fewer bytes than the declared {} (blob truncated)",
                        layer.size
                    ),
                });
            }
            404 => {
                return Err(FetchError::Permanent {
                    url,
                    reason: "blob not found".into(),
                })
            }
            s if s >= 500 => return Err(transient(format!("server error {s}"))),
            s => {
                return Err(FetchError::Permanent {
                    url,
                    reason: format!("unexpected status {s}"),
                })
            }
        };
        let mut written = if status == 206 { have } else { 0 };
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transient(e.to_string()))?;
            written += chunk.len() as u64;
            if written > layer.size {
                drop(file);
                let _ = tokio::fs::remove_file(part).await;
                return Err(FetchError::Permanent {
                    url,
                    reason: format!("server sent more than the declared {} bytes", layer.size),
                });
            }
            file.write_all(&chunk).await.map_err(io("write", part))?;
            on_bytes(chunk.len() as u64);
        }
        file.flush().await.map_err(io("write", part))?;
        if written < layer.size {
            return Err(transient(format!(
                "connection ended at {written} of {} bytes",
                layer.size
            )));
        }
        Ok(())
    }

    async fn verify_and_commit(
        &self,
        layer: &LayerDescriptor,
        part: &Path,
        done: &Path,
    ) -> Result<(), FetchError> {
        let actual = hash_file(part).await?;
        if actual != layer.digest {
            let _ = tokio::fs::remove_file(part).await;
            return Err(FetchError::DigestMismatch {
                expected: layer.digest.clone(),
                actual,
            });
        }
        let f = tokio::fs::File::open(part)
            .await
            .map_err(io("open", part))?;
        f.sync_all().await.map_err(io("sync", part))?;
        tokio::fs::rename(part, done)
            .await
            .map_err(io("rename", part))?;
        Ok(())
    }
}

async fn hash_file(path: &Path) -> Result<Digest, FetchError> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(io("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).await.map_err(io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest::from_hasher(hasher))
}

/// Exponential backoff with full jitter: attempt 0 → up to 200 ms, doubling
/// to a 10 s ceiling.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (200u64 << attempt.min(6)).min(10_000);
    let jitter = rand::random::<u64>() % (ceiling_ms / 2 + 1);
    Duration::from_millis(ceiling_ms / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(200));
        assert!(backoff(20) <= Duration::from_secs(10));
        assert!(backoff(20) >= Duration::from_secs(5));
    }
}
