//! The controller side: [`diff`] encodes a layer pair with every allowed
//! method, keeps the smallest patch and writes it atomically, so a cache
//! never holds a half-written delta.

use crate::header::{Header, FORMAT_VERSION, HEADER_LEN};
use crate::{methods, DeltaError, Method};
use petrel_protocol::Digest;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// What [`diff`] may try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Methods to try; the smallest patch wins.
    pub methods: Vec<Method>,
    /// zstd level for every method's compression step.
    pub zstd_level: i32,
    /// Largest old layer for which `zstd-ref` is tried: its decoder holds
    /// the whole old layer in memory, so this is the device's decode budget.
    pub max_ref_prefix: u64,
}

impl Default for EncodeOptions {
    /// All methods, level 19 (measured on the corpus: 3–9% smaller than
    /// level 9, and level 22 gained under 0.5% at 2–10× the time), 32 MiB.
    fn default() -> Self {
        EncodeOptions {
            methods: Method::ALL.to_vec(),
            zstd_level: 19,
            max_ref_prefix: 32 << 20,
        }
    }
}

impl EncodeOptions {
    /// Whether [`diff`] would try `method` on layers of these sizes; the
    /// error says why not (zstd-ref above `max_ref_prefix`, for instance).
    pub fn applicable(&self, method: Method, old_len: u64, new_len: u64) -> Result<(), DeltaError> {
        methods::check_applicable(method, old_len, new_len, self)
    }

    /// [`EncodeOptions::applicable`] for the layers at these paths, also
    /// looking inside them where a method needs to: tar-aware applies only
    /// to layers whose tar headers it can follow (it reads only headers).
    pub fn applicable_to_files(
        &self,
        method: Method,
        old: &Path,
        new: &Path,
    ) -> Result<(), DeltaError> {
        let len = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(DeltaError::io(p))
        };
        self.applicable(method, len(old)?, len(new)?)?;
        methods::check_files(method, old, new)
    }
}

/// What [`diff`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffReport {
    /// The method of the patch written.
    pub chosen: Method,
    /// Size of the patch file written, header included.
    pub patch_size: u64,
    /// Every method tried: patch size (header included) and encode time.
    pub tried: Vec<(Method, u64, Duration)>,
}

/// Encodes `old` → `new` (uncompressed layer tars) with every allowed
/// method at once, one thread each, and writes the smallest patch to `patch_out` via a temporary file in the same directory and a
/// rename. Methods not applicable to these inputs (zstd-ref above
/// `max_ref_prefix`, tar-aware on a layer that is not a tar) are skipped;
/// if none remains, the first reason is returned.
pub fn diff(
    old: &Path,
    new: &Path,
    patch_out: &Path,
    opts: &EncodeOptions,
) -> Result<DiffReport, DeltaError> {
    let old_bytes = std::fs::read(old).map_err(DeltaError::io(old))?;
    let new_bytes = std::fs::read(new).map_err(DeltaError::io(new))?;
    let (best, tried) = encode_all(&old_bytes, &new_bytes, opts)?;
    let header = Header {
        version: FORMAT_VERSION,
        method: best.0,
        from: Digest::of(&old_bytes),
        to: Digest::of(&new_bytes),
        from_size: old_bytes.len() as u64,
        to_size: new_bytes.len() as u64,
    };
    write_atomically(patch_out, &header, &best.1)?;
    Ok(DiffReport {
        chosen: best.0,
        patch_size: patch_len(&best.1),
        tried,
    })
}

type Tried = Vec<(Method, u64, Duration)>;

/// Runs every applicable method; returns the smallest payload and the log.
fn encode_all(
    old: &[u8],
    new: &[u8],
    opts: &EncodeOptions,
) -> Result<((Method, Vec<u8>), Tried), DeltaError> {
    let mut skipped = None;
    let mut runnable = Vec::new();
    for method in unique(&opts.methods) {
        match opts.applicable(method, old.len() as u64, new.len() as u64) {
            Ok(()) => runnable.push(method),
            Err(reason) => {
                skipped.get_or_insert(reason);
            }
        }
    }
    // The methods run side by side (the controller has the cores; the
    // wall time becomes the slowest method's, not their sum).
    let results: Vec<(Method, Result<Vec<u8>, DeltaError>, Duration)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = runnable
                .iter()
                .map(|&method| {
                    scope.spawn(move || {
                        let start = Instant::now();
                        let payload = methods::encode(method, old, new, opts);
                        (method, payload, start.elapsed())
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(&runnable)
                .map(|(h, &method)| {
                    h.join().unwrap_or_else(|_| {
                        let failed = Err(DeltaError::Encode {
                            method,
                            source: std::io::Error::other("encoder panicked"),
                        });
                        (method, failed, Duration::ZERO)
                    })
                })
                .collect()
        });
    let mut best: Option<(Method, Vec<u8>)> = None;
    let mut tried = Vec::new();
    for (method, payload, took) in results {
        let payload = match payload {
            Ok(payload) => payload,
            // tar-aware on a layer that is not a tar: the others will do.
            Err(reason @ DeltaError::NotApplicable { .. }) => {
                skipped.get_or_insert(reason);
                continue;
            }
            Err(e) => return Err(e),
        };
        tried.push((method, patch_len(&payload), took));
        if !matches!(&best, Some((_, b)) if b.len() <= payload.len()) {
            best = Some((method, payload));
        }
    }
    match best {
        Some(best) => Ok((best, tried)),
        None => Err(skipped.unwrap_or(DeltaError::NoMethod)),
    }
}

/// The methods in order, each once.
fn unique(methods: &[Method]) -> Vec<Method> {
    let mut out: Vec<Method> = Vec::new();
    for m in methods {
        if !out.contains(m) {
            out.push(*m);
        }
    }
    out
}

fn patch_len(payload: &[u8]) -> u64 {
    (HEADER_LEN + payload.len()) as u64
}

/// Writes header + payload to a temp file beside `path`, syncs, renames.
fn write_atomically(path: &Path, header: &Header, payload: &[u8]) -> Result<(), DeltaError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(DeltaError::io(dir))?;
    let io = DeltaError::io(tmp.path().to_path_buf());
    let written = header
        .write_to(&mut tmp)
        .and_then(|()| tmp.write_all(payload))
        .and_then(|()| tmp.as_file().sync_all());
    written.map_err(io)?;
    tmp.persist(path)
        .map_err(|e| DeltaError::io(path)(e.error))?;
    Ok(())
}
