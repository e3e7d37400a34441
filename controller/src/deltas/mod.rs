//! The delta cache: `GET /v1/deltas/{from}/{to}` serves a patch from the
//! layer tar `from` to the layer tar `to` (both named by diff_id).
//!
//! A patch is generated once per pair, even under concurrent requests
//! (later callers wait on the first one's cell), on first request or ahead
//! of a deployment, and kept on disk as `deltas/<from>-<to>.v<format>.patch` with its
//! sha256 (the ETag a resuming agent compares). When the best patch does
//! not save at least 10% of the full blob, a `.none` marker records that
//! there is no useful delta, and the API answers 404: fetch the full blob.
//! So does a pair whose file lists show no patch could save that much
//! ([`estimate`]): it is never encoded.
//!
//! The encoding runs in a task of its own, never in the request that
//! asked for it: a request waits a little ([`DeltaCache::get_within`])
//! and, if the patch is not ready, the device is told to come back
//! later (503 with Retry-After) instead of holding a connection open
//! for minutes or racing to the full blob.

use crate::blobs::BlobStore;
use crate::store::Store;
use petrel_protocol::Digest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

pub mod estimate;

/// A delta asked for within a wait: ready (a patch, or none worth
/// sending), or still being prepared.
#[derive(Debug, Clone)]
pub enum Ready {
    Done(Option<CachedDelta>),
    /// Ask again after this long.
    Preparing(Duration),
}

/// A cached patch: its file and sha256.
#[derive(Debug, Clone)]
pub struct CachedDelta {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

type Cell = Arc<OnceCell<Result<Option<CachedDelta>, String>>>;

#[derive(Clone)]
pub struct DeltaCache {
    dir: PathBuf,
    /// The layers' cached file lists (shared with the path-list API).
    files_dir: PathBuf,
    blobs: Arc<BlobStore>,
    store: Store,
    cells: Arc<Mutex<HashMap<(Digest, Digest), Cell>>>,
    generated: Arc<std::sync::atomic::AtomicU64>,
    /// Encodings running at once: one per core. A burst of requests for
    /// new pairs queues here instead of taking every core and the memory
    /// of as many encoders.
    encoders: Arc<tokio::sync::Semaphore>,
    /// The encoders' memory, in MiB ([`ENCODER_MEMORY_MIB`]): each
    /// encoding takes its estimated peak (at most the whole) before it
    /// starts, so large pairs run one at a time.
    memory: Arc<tokio::sync::Semaphore>,
    /// Where encode times go (a detached histogram unless
    /// [`DeltaCache::timed_by`] gave the controller's).
    encode_seconds: prometheus::Histogram,
}

/// The memory all encodings together may take, MiB.
pub const ENCODER_MEMORY_MIB: u32 = 2048;

/// Encodings allowed at once (one per core).
fn encoder_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Debug, thiserror::Error)]
pub enum DeltaCacheError {
    #[error("layer {0} is not known to the controller")]
    UnknownLayer(Digest),
    #[error("delta {from} -> {to}: {reason}")]
    Generate {
        from: Digest,
        to: Digest,
        reason: String,
    },
}

impl DeltaCache {
    /// A cache in `dir`; the layers' file lists are kept in `files_dir`.
    pub fn new(
        dir: PathBuf,
        files_dir: PathBuf,
        blobs: Arc<BlobStore>,
        store: Store,
    ) -> std::io::Result<DeltaCache> {
        std::fs::create_dir_all(&dir)?;
        // an encoding's work dir left by a crash holds two whole layers
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(DeltaCache {
            dir,
            files_dir,
            blobs,
            store,
            cells: Default::default(),
            generated: Default::default(),
            encoders: Arc::new(tokio::sync::Semaphore::new(encoder_slots())),
            memory: Arc::new(tokio::sync::Semaphore::new(ENCODER_MEMORY_MIB as usize)),
            encode_seconds: prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
                "petrel_delta_encode_seconds",
                "Time to encode one delta.",
            ))
            .unwrap_or_else(|e| unreachable!("encode histogram: {e}")),
        })
    }

    /// Records every encode's time in `h`.
    pub fn timed_by(mut self, h: prometheus::Histogram) -> DeltaCache {
        self.encode_seconds = h;
        self
    }

    /// Where the cached deltas live.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// How many patches this cache has computed (observability, tests).
    pub fn generations(&self) -> u64 {
        self.generated.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Cache entries carry the delta format version, so patches cached by
    /// an older build are never served to a device expecting another.
    fn file(&self, from: &Digest, to: &Digest, ext: &str) -> PathBuf {
        let v = petrel_delta::FORMAT_VERSION;
        self.dir
            .join(format!("{}-{}.v{v}.{ext}", from.hex(), to.hex()))
    }

    /// The patch from `from` to `to`, generating it if needed; `None` when
    /// no delta is worth sending.
    pub async fn get(
        &self,
        from: &Digest,
        to: &Digest,
    ) -> Result<Option<CachedDelta>, DeltaCacheError> {
        if let Some(found) = self.on_disk(from, to) {
            return Ok(found);
        }
        for d in [from, to] {
            if self.store.layer(d).ok().flatten().is_none() {
                return Err(DeltaCacheError::UnknownLayer(d.clone()));
            }
        }
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            cells.entry((from.clone(), to.clone())).or_default().clone()
        };
        let result = cell
            .get_or_init(|| {
                let this = self.clone();
                let (f, t) = (from.clone(), to.clone());
                async move {
                    // decided from the file lists, before queueing for an encoder
                    if this.hopeless(&f, &t).await {
                        return Ok(None);
                    }
                    // memory first: a slot is held only by an encoding that runs
                    let mib = this.peak_mib(&f, &t);
                    let _memory = this.memory.clone().acquire_many_owned(mib).await;
                    let _slot = this.encoders.clone().acquire_owned().await;
                    tokio::task::spawn_blocking(move || this.generate(&f, &t))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r)
                }
            })
            .await
            .clone();
        if result.is_err() {
            // let a later request try again (unless one already does)
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            let key = (from.clone(), to.clone());
            if cells.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                cells.remove(&key);
            }
        }
        result.map_err(|reason| DeltaCacheError::Generate {
            from: from.clone(),
            to: to.clone(),
            reason,
        })
    }

    /// The patch from `from` to `to` if it is decided within `wait`;
    /// otherwise its encoding goes on in the background and the answer
    /// says when to ask again.
    pub async fn get_within(
        &self,
        from: &Digest,
        to: &Digest,
        wait: Duration,
    ) -> Result<Ready, DeltaCacheError> {
        if let Some(found) = self.on_disk(from, to) {
            return Ok(Ready::Done(found));
        }
        let this = self.clone();
        let (f, t) = (from.clone(), to.clone());
        // a task of its own: a request that gives up does not cancel it
        let task = tokio::spawn(async move { this.get(&f, &t).await });
        match tokio::time::timeout(wait, task).await {
            Ok(Ok(result)) => result.map(Ready::Done),
            Ok(Err(e)) => Err(DeltaCacheError::Generate {
                from: from.clone(),
                to: to.clone(),
                reason: format!("encoding task: {e}"),
            }),
            Err(_) => Ok(Ready::Preparing(self.retry_hint(to))),
        }
    }

    /// The encoding's estimated peak memory, MiB (at most the pool).
    fn peak_mib(&self, from: &Digest, to: &Digest) -> u32 {
        let (old, new) = (self.unpacked(from), self.unpacked(to));
        let peak = petrel_delta::peak_memory(&encode_options(old, new), old, new);
        u32::try_from(peak >> 20).map_or(ENCODER_MEMORY_MIB, |m| m.clamp(1, ENCODER_MEMORY_MIB))
    }

    /// A layer's tar size (its blob's, times 4, if the layer predates
    /// recorded tar sizes).
    fn unpacked(&self, d: &Digest) -> u64 {
        let layer = self.store.layer(d).ok().flatten();
        layer.map_or(0, |l| l.unpacked_size.unwrap_or(l.size.saturating_mul(4)))
    }

    /// When to ask again for a delta to `to` under way: about the time a
    /// layer of its size takes to encode, between 2 s and 30 s.
    fn retry_hint(&self, to: &Digest) -> Duration {
        let size = self.store.layer(to).ok().flatten().map_or(0, |l| l.size);
        Duration::from_secs((size / (4 << 20)).clamp(2, 30))
    }

    /// Starts generating a pair in the background (ahead of a deployment).
    pub fn prepare(&self, from: Digest, to: Digest) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.get(&from, &to).await {
                tracing::warn!(error = %e, "delta generation ahead of deployment failed");
            }
        });
    }

    /// Whether the pair is decided on disk already (a patch or "none").
    pub fn is_cached(&self, from: &Digest, to: &Digest) -> bool {
        self.on_disk(from, to).is_some()
    }

    /// Whether the pair is decided or being decided: asking for it again
    /// (a device told to retry after N s) costs no new encoding.
    pub fn is_known(&self, from: &Digest, to: &Digest) -> bool {
        let key = (from.clone(), to.clone());
        self.is_cached(from, to)
            || self
                .cells
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&key)
    }

    fn on_disk(&self, from: &Digest, to: &Digest) -> Option<Option<CachedDelta>> {
        if self.file(from, to, "none").exists() {
            return Some(None);
        }
        let path = self.file(from, to, "patch");
        let digest = std::fs::read_to_string(self.file(from, to, "sha256")).ok()?;
        let digest = digest.trim().parse().ok()?;
        let size = std::fs::metadata(&path).ok()?.len();
        Some(Some(CachedDelta { path, digest, size }))
    }

    /// Blocking: decompresses both layers, diffs them, keeps the patch if
    /// it is smaller than the full blob of `to`.
    fn generate(&self, from: &Digest, to: &Digest) -> Result<Option<CachedDelta>, String> {
        let started = std::time::Instant::now();
        self.generated
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let layer = |d: &Digest| {
            self.store
                .layer(d)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("layer {d} unknown"))
        };
        let (old, new) = (layer(from)?, layer(to)?);
        let work = tempfile::tempdir_in(&self.dir).map_err(|e| e.to_string())?;
        let old_tar = self.unpack_blob(&old.digest, &work.path().join("old.tar"))?;
        let new_tar = self.unpack_blob(&new.digest, &work.path().join("new.tar"))?;
        let patch = work.path().join("patch");
        let lens = [&old_tar, &new_tar].map(|p| std::fs::metadata(p).map_or(0, |m| m.len()));
        let opts = encode_options(lens[0], lens[1]);
        let encoded = petrel_delta::diff(&old_tar, &new_tar, &patch, &opts);
        self.encode_seconds.observe(started.elapsed().as_secs_f64());
        let report = match encoded {
            Ok(report) => report,
            // Deterministic: no candidate decodes within the devices'
            // limits, so remember "no delta" instead of retrying each time.
            Err(e @ petrel_delta::DeltaError::NoVerifiedPatch(_)) => {
                tracing::warn!(%from, %to, error = %e, "no delta: every candidate failed the verifying apply");
                std::fs::write(self.file(from, to, "none"), b"").map_err(|e| e.to_string())?;
                return Ok(None);
            }
            Err(e) => return Err(e.to_string()),
        };
        if !worth_sending(report.patch_size, new.size) {
            std::fs::write(self.file(from, to, "none"), b"").map_err(|e| e.to_string())?;
            tracing::info!(%from, %to, patch = report.patch_size, full = new.size, "delta not smaller than the blob");
            return Ok(None);
        }
        let digest = file_digest(&patch)?;
        let path = self.file(from, to, "patch");
        std::fs::rename(&patch, &path).map_err(|e| e.to_string())?;
        std::fs::write(self.file(from, to, "sha256"), digest.to_string())
            .map_err(|e| e.to_string())?;
        let tried: Vec<String> = report
            .tried
            .iter()
            .map(|(m, size, took)| format!("{m} {size} B in {took:.1?}"))
            .collect();
        for (method, why) in &report.rejected {
            tracing::warn!(%from, %to, %method, reason = %why, "delta candidate failed the verifying apply; not shipped");
        }
        tracing::info!(%from, %to, method = %report.chosen, patch = report.patch_size, full = new.size, elapsed = ?started.elapsed(), ?tried, "delta generated");
        Ok(Some(CachedDelta {
            path,
            digest,
            size: report.patch_size,
        }))
    }

    /// Whether the layers' file lists show no patch could pay off. Not
    /// written to disk: cheap to decide again, and a better estimate
    /// later decides afresh. An unreadable list means: encode and see.
    async fn hopeless(&self, from: &Digest, to: &Digest) -> bool {
        let this = self.clone();
        let (f, t) = (from.clone(), to.clone());
        let judged = tokio::task::spawn_blocking(move || {
            let files = |d: &Digest| {
                crate::layer_paths::layer_files(&this.store, &this.blobs, &this.files_dir, d)
            };
            let blob = this.store.layer(&t).ok().flatten().map(|l| l.size)?;
            match (files(&f), files(&t)) {
                (Ok(Some(old)), Ok(Some(new))) => Some((estimate::Estimate::of(&old, &new), blob)),
                _ => None,
            }
        })
        .await;
        let Ok(Some((e, blob))) = judged else {
            return false;
        };
        let hopeless = e.hopeless(blob);
        if hopeless {
            tracing::info!(%from, %to, best_saving = e.best_saving(), blob, "no delta: the layers share too little to pay off");
        }
        hopeless
    }

    fn unpack_blob(&self, digest: &Digest, out: &Path) -> Result<PathBuf, String> {
        let blob = self.blobs.open_blob(digest).map_err(|e| e.to_string())?;
        let mut dec = zstd::stream::read::Decoder::new(blob).map_err(|e| e.to_string())?;
        let mut file = std::fs::File::create(out).map_err(|e| e.to_string())?;
        std::io::copy(&mut dec, &mut file).map_err(|e| format!("decompressing {digest}: {e}"))?;
        Ok(out.to_path_buf())
    }
}

/// The encoder's options for layers of these tar sizes: methods side by
/// side while they fit in twice the two layers (at least 512 MiB), one at
/// a time on large pairs. Measured (release, `best`): 100 MiB pairs and
/// postgresql-15 peaked at 2.2–2.8× their layers (6.7×, 4.4× and 5.4×
/// before); a small pair peaks at its layers plus the compressors' fixed
/// state (libc6, 25 MiB of layers: 231 MiB).
fn encode_options(old: u64, new: u64) -> petrel_delta::EncodeOptions {
    petrel_delta::EncodeOptions {
        max_memory: Some((2 * (old + new)).max(512 << 20)),
        ..Default::default()
    }
}

/// A delta costs the device CPU and disk to apply: it is worth it only if
/// it saves at least a tenth of the blob.
fn worth_sending(patch: u64, blob: u64) -> bool {
    patch.saturating_mul(10) < blob.saturating_mul(9)
}

fn file_digest(path: &Path) -> Result<Digest, String> {
    use sha2::Digest as _;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| e.to_string())?;
    Ok(Digest::from_hasher(h))
}

#[cfg(test)]
mod tests;
