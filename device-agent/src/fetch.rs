//! Resumable, verified downloads of layer blobs and deltas.
//!
//! Bytes go to `downloads/<name>.partial`, which survives restarts and link
//! drops; a retry asks for the rest with `Range`. The server's ETag (the
//! content digest) is kept beside the partial file: if it changes, the
//! partial bytes belong to other content and are dropped. A declared size
//! caps what is accepted. Blobs are sha256-checked before they become the
//! device's copy of the layer (`bases/<diff_id>.tar.zst`); deltas are
//! verified by applying them (from- and to-digests). Nothing unverified
//! leaves the downloads dir.

use crate::retry::{self, Answer};

pub mod partial;
mod paths;

use futures_util::StreamExt;
use partial::Sidecar;
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
    /// The server is preparing it (a delta being encoded): ask again
    /// after `retry_after`.
    #[error("fetching {url}: being prepared, retry after {retry_after:?}")]
    Preparing { url: String, retry_after: Duration },
    #[error("blob {expected} failed verification: got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |source| FetchError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How a download's announced length must relate to the cap.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Size {
    /// A blob: exactly its declared size.
    Exact,
    /// A delta: any length up to the cap.
    AtMost,
}

/// What one resumable GET produced.
enum Got {
    Complete,
    NotFound,
}

#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    base: String,
    downloads: PathBuf,
    bases: PathBuf,
    /// Layer path lists already fetched, `<hex>.json`.
    paths_cache: PathBuf,
    /// Time without progress a download may take before the update fails.
    retry_budget: Duration,
    /// How long a delta the controller is preparing is waited for.
    delta_wait: Duration,
}

/// Default [`Fetcher::retry_budget`]: 30 minutes without a byte.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(1800);

/// Default [`Fetcher::delta_wait`]: 10 minutes.
pub const DEFAULT_DELTA_WAIT: Duration = Duration::from_secs(600);

impl Fetcher {
    /// `tls`: the fleet CA and this device's certificate, for `https://`.
    pub fn new(
        base: &str,
        data_dir: &Path,
        tls: Option<petrel_tls::rustls::ClientConfig>,
    ) -> Result<Fetcher, FetchError> {
        let downloads = data_dir.join("downloads");
        let bases = data_dir.join("bases");
        let paths_cache = data_dir.join("layer-paths");
        for d in [&downloads, &bases, &paths_cache] {
            std::fs::create_dir_all(d).map_err(io("create", d))?;
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // a stalled link is a dropped link: give up and resume
            .read_timeout(Duration::from_secs(20));
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder.build().map_err(|e| FetchError::Permanent {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Fetcher {
            http,
            base: base.trim_end_matches('/').to_string(),
            downloads,
            bases,
            paths_cache,
            retry_budget: DEFAULT_RETRY_BUDGET,
            delta_wait: DEFAULT_DELTA_WAIT,
        })
    }

    /// Sets how long a download may go without progress before the
    /// update fails (the agent's `download_retry_budget_s`).
    pub fn with_retry_budget(mut self, budget: Duration) -> Fetcher {
        self.retry_budget = budget;
        self
    }

    pub fn retry_budget(&self) -> Duration {
        self.retry_budget
    }

    /// Sets how long a delta the controller is still preparing is waited
    /// for before the full blob (the agent's `delta_wait_s`).
    pub fn with_delta_wait(mut self, wait: Duration) -> Fetcher {
        self.delta_wait = wait;
        self
    }

    pub fn delta_wait(&self) -> Duration {
        self.delta_wait
    }

    /// The device's copy of a layer: its tar, zstd-compressed, by diff_id.
    /// Kept as a delta base for the next update.
    pub fn base_path(&self, diff_id: &Digest) -> PathBuf {
        self.bases.join(format!("{}.tar.zst", diff_id.hex()))
    }

    pub fn bases_dir(&self) -> &Path {
        &self.bases
    }

    pub fn downloads_dir(&self) -> &Path {
        &self.downloads
    }

    /// Bytes of `layer`'s blob already on disk (complete or partial).
    pub fn have(&self, layer: &LayerDescriptor) -> u64 {
        if self.base_path(&layer.diff_id).exists() {
            return layer.size;
        }
        std::fs::metadata(self.blob_partial(&layer.digest)).map_or(0, |m| m.len().min(layer.size))
    }

    fn blob_partial(&self, d: &Digest) -> PathBuf {
        self.downloads.join(format!("blob-{}.partial", d.hex()))
    }

    /// Where the patch from `from` to `to` is downloaded.
    pub fn delta_partial(&self, from: &Digest, to: &Digest) -> PathBuf {
        self.downloads
            .join(format!("delta-{}-{}.partial", from.hex(), to.hex()))
    }

    /// Bytes of a delta already downloaded.
    pub fn have_delta(&self, from: &Digest, to: &Digest) -> u64 {
        std::fs::metadata(self.delta_partial(from, to)).map_or(0, |m| m.len())
    }

    /// One attempt at the full blob: resume, verify, move into `bases/`.
    pub async fn fetch_blob_once(
        &self,
        layer: &LayerDescriptor,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<PathBuf, FetchError> {
        let done = self.base_path(&layer.diff_id);
        if done.exists() {
            return Ok(done);
        }
        let url = format!("{}/v1/blobs/{}", self.base, layer.digest);
        let part = self.blob_partial(&layer.digest);
        let got = self
            .get_resumable(&url, &part, layer.size, Size::Exact, on_bytes, &|_| {})
            .await
            .map_err(|e| match e {
                // the controller never prepares blobs; a busy proxy is a
                // retry like any other, within the retry budget
                FetchError::Preparing { url, retry_after } => FetchError::Transient {
                    url,
                    reason: format!("server busy: retry after {retry_after:?}"),
                },
                other => other,
            })?;
        match got {
            Got::NotFound => {
                return Err(FetchError::Permanent {
                    url,
                    reason: "blob not found".into(),
                })
            }
            Got::Complete => {}
        }
        let actual = hash_file(&part).await?;
        if actual != layer.digest {
            discard(&part).await;
            return Err(FetchError::DigestMismatch {
                expected: layer.digest.clone(),
                actual,
            });
        }
        commit(&part, &done).await?;
        Ok(done)
    }

    /// One attempt at the delta `from` → `to`, accepted only while smaller
    /// than `cap` (the full blob). `Ok(None)`: the server has no delta.
    /// `on_size` learns the patch size once the server states it.
    pub async fn fetch_delta_once(
        &self,
        from: &Digest,
        to: &Digest,
        cap: u64,
        on_bytes: &(dyn Fn(u64) + Sync),
        on_size: &(dyn Fn(u64) + Sync),
    ) -> Result<Option<PathBuf>, FetchError> {
        let url = format!("{}/v1/deltas/{from}/{to}", self.base);
        let part = self.delta_partial(from, to);
        match self
            .get_resumable(&url, &part, cap, Size::AtMost, on_bytes, on_size)
            .await?
        {
            Got::NotFound => Ok(None),
            Got::Complete => Ok(Some(part)),
        }
    }

    /// Resumes `url` into `part` until complete. `cap`: most bytes accepted.
    async fn get_resumable(
        &self,
        url: &str,
        part: &Path,
        cap: u64,
        size: Size,
        on_bytes: &(dyn Fn(u64) + Sync),
        on_size: &(dyn Fn(u64) + Sync),
    ) -> Result<Got, FetchError> {
        let transient = |reason: String| FetchError::Transient {
            url: url.to_string(),
            reason,
        };
        let permanent = |reason: String| FetchError::Permanent {
            url: url.to_string(),
            reason,
        };
        let etag_file = part.with_extension("etag");
        let on_disk = std::fs::metadata(part).map_or(0, |m| m.len());
        let saved = std::fs::read_to_string(&etag_file)
            .ok()
            .and_then(|t| Sidecar::parse(&t));
        // bytes past the last sync may not be what was received (a power
        // cut): resume from the synced length; no sidecar, no resume
        let have = saved.as_ref().map_or(0, |s| s.resume_at(on_disk));
        if have < on_disk {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(part)
                .map_err(io("open", part))?;
            f.set_len(have).map_err(io("truncate", part))?;
        }
        let saved = saved.unwrap_or_default();
        if have > 0 && saved.total == have {
            return Ok(Got::Complete); // finished before a crash, not yet verified
        }
        let mut req = self.http.get(url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let resp = req.send().await.map_err(|e| match retry::tls_failure(&e) {
            // no retry mends a wrong scheme, CA or host name
            Some(tls) => permanent(format!(
                "TLS with the controller failed ({tls}): check controller_url (https:// only to a TLS server) and ca_file (the fleet CA)"
            )),
            None => transient(e.to_string()),
        })?;
        let status = resp.status().as_u16();
        if status == 503 {
            if let Some(retry_after) = partial::retry_after(&resp) {
                return Err(FetchError::Preparing {
                    url: url.to_string(),
                    retry_after,
                });
            }
        }
        let answer = retry::answer(status);
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let total = match answer {
            Answer::Whole => resp.content_length(),
            Answer::Rest => partial::content_range_total(&resp),
            _ => None,
        };
        let mut file = match answer {
            Answer::Rest if saved.etag != etag => {
                // the content changed since we started: start over
                discard(part).await;
                return Err(transient(
                    "content changed while resuming; starting over".into(),
                ));
            }
            Answer::Rest if partial::content_range_start(&resp) != Some(have) => {
                // not the rest of what we hold: start over
                discard(part).await;
                return Err(transient(format!(
                    "server resumed at {:?}, not at the {have} bytes held; starting over",
                    partial::content_range_start(&resp)
                )));
            }
            Answer::Rest => tokio::fs::OpenOptions::new()
                .append(true)
                .open(part)
                .await
                .map_err(io("open", part))?,
            Answer::Whole => {
                let sidecar = Sidecar {
                    etag: etag.clone(),
                    total: total.unwrap_or(0),
                    synced: Some(0),
                };
                partial::write_durably(&etag_file, &sidecar.render())
                    .await
                    .map_err(io("write", &etag_file))?;
                tokio::fs::File::create(part)
                    .await
                    .map_err(io("create", part))?
            }
            Answer::Shorter => {
                // we hold bytes the server does not have
                // (a partial file a power loss left longer than it was):
                // start again from nothing; a blob truly shorter than
                // declared then fails its digest
                discard(part).await;
                return Err(transient(format!("server has fewer bytes than the {have} already received (truncated or replaced); starting again")));
            }
            Answer::Missing => return Ok(Got::NotFound),
            Answer::Later => return Err(transient(format!("server busy or failing ({status})"))),
            Answer::Refused => {
                return Err(permanent(format!(
                    "refused ({status}): this device may not download it (a revoked certificate, or a token or certificate missing)"
                )))
            }
            Answer::Unexpected => return Err(permanent(format!("unexpected status {status}"))),
        };
        let Some(total) = total.filter(|t| *t <= cap) else {
            discard(part).await;
            return Err(permanent(format!(
                "server offers {total:?} bytes, expected at most {cap}"
            )));
        };
        if size == Size::Exact && total != cap {
            discard(part).await;
            let why = format!("server has {total} bytes of {cap} (blob truncated)");
            return Err(permanent(why));
        }
        on_size(total);
        let mut written = if status == 206 { have } else { 0 };
        let mut sidecar = Sidecar {
            etag,
            total,
            synced: Some(written),
        };
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            // reqwest calls a body cut short "error decoding response
            // body": say what happened, with the underlying cause.
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // what arrived before the drop is good: sync it, so the
                    // resume starts right after it (only a crash or power
                    // cut falls back to the last periodic sync)
                    partial::sync(&mut file, part, &mut sidecar, written).await?;
                    return Err(transient(format!(
                        "connection lost after {written} of {total} bytes ({})",
                        cause_chain(&e)
                    )));
                }
            };
            written += chunk.len() as u64;
            if written > total {
                drop(file);
                discard(part).await;
                return Err(permanent(format!(
                    "server sent more than the {total} bytes it announced"
                )));
            }
            file.write_all(&chunk).await.map_err(io("write", part))?;
            on_bytes(chunk.len() as u64);
            if written - sidecar.synced.unwrap_or(0) >= partial::SYNC_EVERY {
                partial::sync(&mut file, part, &mut sidecar, written).await?;
            }
        }
        partial::sync(&mut file, part, &mut sidecar, written).await?;
        if written < total {
            return Err(transient(format!(
                "connection ended at {written} of {total} bytes"
            )));
        }
        Ok(Got::Complete)
    }
}

/// Removes a partial download and its ETag.
pub async fn discard(part: &Path) {
    let _ = tokio::fs::remove_file(part).await;
    let _ = tokio::fs::remove_file(part.with_extension("etag")).await;
    let _ = tokio::fs::remove_file(part.with_extension("etag-new")).await;
}

/// fsyncs `part`, renames it to `done` and fsyncs the directory: the
/// layer copy is on disk before the phase that relies on it is journaled.
pub async fn commit(part: &Path, done: &Path) -> Result<(), FetchError> {
    let f = tokio::fs::File::open(part)
        .await
        .map_err(io("open", part))?;
    f.sync_all().await.map_err(io("sync", part))?;
    tokio::fs::rename(part, done)
        .await
        .map_err(io("rename", part))?;
    partial::sync_dir(done).await.map_err(io("sync", done))?;
    let _ = tokio::fs::remove_file(part.with_extension("etag")).await;
    Ok(())
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

/// The causes of a reqwest error without its own text ("connection reset
/// by peer" rather than "error decoding response body").
fn cause_chain(e: &reqwest::Error) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), petrel_protocol::error_text)
}
