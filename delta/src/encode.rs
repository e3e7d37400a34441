//! The controller side: [`diff`] encodes a layer pair with every allowed
//! method, keeps the smallest patch that a device's decoder accepts
//! (checked by applying it) and writes it atomically, so a cache never
//! holds a half-written or undecodable delta.

use crate::decode::apply_with_limits;
use crate::error::DeltaError;
use crate::header::{Header, FORMAT_VERSION, HEADER_LEN};
use crate::method::Method;
use crate::methods;
use crate::options::EncodeOptions;
use petrel_protocol::Digest;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

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
    /// Every method that produced a patch: its size (header included) and
    /// encode time.
    pub tried: Vec<(Method, u64, Duration)>,
    /// Candidates smaller than the chosen one that the verifying apply
    /// refused, with the reason: they were not shipped.
    pub rejected: Vec<(Method, String)>,
}

/// Encodes `old` → `new` (uncompressed layer tars) with every allowed
/// method at once, one thread each, then, smallest patch first, applies
/// each candidate to `old` with the devices' limits (`opts.limits`) and
/// writes the first whose output verifies to `patch_out` (via a temporary
/// file in the same directory and a rename). So a patch a device would
/// refuse — over a decoder budget, or wrong through an encoder bug — is
/// never shipped: the next candidate is, and if none verifies the error
/// lists every reason. Methods not applicable to these inputs (zstd-ref
/// above `max_ref_prefix`, tar-aware on a layer that is not a tar) are
/// skipped; if none remains, the first reason is returned.
pub fn diff(
    old: &Path,
    new: &Path,
    patch_out: &Path,
    opts: &EncodeOptions,
) -> Result<DiffReport, DeltaError> {
    let (candidates, tried, base) = {
        let old_bytes = std::fs::read(old).map_err(DeltaError::io(old))?;
        let new_bytes = std::fs::read(new).map_err(DeltaError::io(new))?;
        let (candidates, tried) = encode_all(&old_bytes, &new_bytes, opts)?;
        let base = Header {
            version: FORMAT_VERSION,
            method: Method::ALL[0],
            from: Digest::of(&old_bytes),
            to: Digest::of(&new_bytes),
            from_size: old_bytes.len() as u64,
            to_size: new_bytes.len() as u64,
        };
        (candidates, tried, base)
    };
    // Both layers are freed before verifying: the apply streams them.
    let mut rejected = Vec::new();
    for (method, payload) in candidates {
        let header = Header {
            method,
            ..base.clone()
        };
        let tmp = write_temp(patch_out, &header, &payload)?;
        match apply_with_limits(old, tmp.path(), std::io::sink(), &opts.limits) {
            Ok(_) => {
                persist(tmp, patch_out)?;
                return Ok(DiffReport {
                    chosen: method,
                    patch_size: patch_len(&payload),
                    tried,
                    rejected,
                });
            }
            Err(reason) => rejected.push((method, reason.to_string())),
        }
    }
    Err(DeltaError::NoVerifiedPatch(rejected))
}

type Tried = Vec<(Method, u64, Duration)>;
/// Encoded payloads, each with its method.
type Candidates = Vec<(Method, Vec<u8>)>;

/// Runs every applicable method; returns the payloads, smallest first (the
/// earlier method on a tie), and the log.
fn encode_all(
    old: &[u8],
    new: &[u8],
    opts: &EncodeOptions,
) -> Result<(Candidates, Tried), DeltaError> {
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
    let mut candidates = Vec::new();
    let mut tried = Vec::new();
    let mut encoded = Vec::new();
    for batch in batches(
        &runnable,
        old.len() as u64,
        new.len() as u64,
        opts.max_memory,
    ) {
        encoded.extend(encode_side_by_side(&batch, old, new, opts));
    }
    for (method, payload, took) in encoded {
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
        candidates.push((method, payload));
    }
    if candidates.is_empty() {
        return Err(skipped.unwrap_or(DeltaError::NoMethod));
    }
    // Stable: on equal sizes the earlier method stays first.
    candidates.sort_by_key(|(_, payload)| payload.len());
    Ok((candidates, tried))
}

/// About the most memory [`diff`] takes on layers of these sizes under
/// `opts`: both layers, and the largest group of methods it runs side by
/// side (see [`EncodeOptions::max_memory`]).
pub fn peak_memory(opts: &EncodeOptions, old_len: u64, new_len: u64) -> u64 {
    let runnable: Vec<Method> = unique(&opts.methods)
        .into_iter()
        .filter(|m| opts.applicable(*m, old_len, new_len).is_ok())
        .collect();
    let group = batches(&runnable, old_len, new_len, opts.max_memory)
        .iter()
        .map(|b| {
            b.iter()
                .map(|m| methods::memory_needed(*m, old_len, new_len))
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    old_len + new_len + group
}

/// The methods in groups to run one after another, each group side by
/// side within `budget` (their estimated needs summed); a method over the
/// budget alone runs alone.
fn batches(
    methods: &[Method],
    old_len: u64,
    new_len: u64,
    budget: Option<u64>,
) -> Vec<Vec<Method>> {
    let Some(budget) = budget else {
        return vec![methods.to_vec()];
    };
    let mut out: Vec<(u64, Vec<Method>)> = Vec::new();
    for &m in methods {
        let need = methods::memory_needed(m, old_len, new_len);
        match out.last_mut() {
            Some((used, batch)) if *used + need <= budget => {
                *used += need;
                batch.push(m);
            }
            _ => out.push((need, vec![m])),
        }
    }
    out.into_iter().map(|(_, batch)| batch).collect()
}

/// Encodes with each method at once, one thread each (the controller has
/// the cores; the wall time becomes the slowest method's, not their sum).
fn encode_side_by_side(
    methods: &[Method],
    old: &[u8],
    new: &[u8],
    opts: &EncodeOptions,
) -> Vec<(Method, Result<Vec<u8>, DeltaError>, Duration)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = methods
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
            .zip(methods)
            .map(|(h, &method)| {
                h.join().unwrap_or_else(|_| {
                    let failed = Err(DeltaError::Encode {
                        method,
                        error: std::io::Error::other("encoder panicked"),
                    });
                    (method, failed, Duration::ZERO)
                })
            })
            .collect()
    })
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

/// Writes header + payload to a synced temp file beside `path`.
fn write_temp(
    path: &Path,
    header: &Header,
    payload: &[u8],
) -> Result<tempfile::NamedTempFile, DeltaError> {
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
    Ok(tmp)
}

/// Renames the verified temp file to `path`.
fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), DeltaError> {
    tmp.persist(path)
        .map_err(|e| DeltaError::io(path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    #[test]
    fn methods_run_side_by_side_only_while_their_needs_fit_the_budget() {
        let all = Method::ALL.to_vec();
        let (o, n) = (100 << 20, 100 << 20);
        assert_eq!(batches(&all, o, n, None), vec![all.clone()]);
        let alone: Vec<Vec<Method>> = all.iter().map(|m| vec![*m]).collect();
        assert_eq!(batches(&all, o, n, Some(1)), alone);
        assert_eq!(batches(&all, o, n, Some(u64::MAX)), vec![all.clone()]);
        // the estimate of a whole encode follows the grouping
        let mut opts = EncodeOptions::default();
        let together = peak_memory(&opts, o, n);
        opts.max_memory = Some(1);
        let one_by_one = peak_memory(&opts, o, n);
        assert!(one_by_one < together, "{one_by_one} < {together}");
        assert!(one_by_one > o + n);
    }

    #[test]
    fn an_encoding_one_method_at_a_time_keeps_the_same_best_patch() {
        let dir = tempfile::tempdir().unwrap();
        let old: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut new = old.clone();
        new[1000..1100].fill(9);
        let (o, n) = (dir.path().join("old"), dir.path().join("new"));
        std::fs::write(&o, &old).unwrap();
        std::fs::write(&n, &new).unwrap();
        let mut opts = EncodeOptions::default();
        let side_by_side = diff(&o, &n, &dir.path().join("a"), &opts).unwrap();
        opts.max_memory = Some(1);
        let in_turn = diff(&o, &n, &dir.path().join("b"), &opts).unwrap();
        assert_eq!(side_by_side.chosen, in_turn.chosen);
        assert_eq!(side_by_side.patch_size, in_turn.patch_size);
        assert_eq!(in_turn.tried.len(), side_by_side.tried.len());
    }
}
