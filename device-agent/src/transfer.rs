//! Getting the layers a release needs onto the device, moving as few bytes
//! as possible: for each layer the device lacks, a delta from the best
//! base it holds (the layer at the same position of the same service in the
//! release it runs, then in the previous one, then in any held image),
//! falling back to the full blob on 404, on a patch that fails to apply or
//! verify, or when the delta is not smaller than the blob. Transient
//! failures retry with backoff until done or cancelled.

use crate::apply::{Paths, ProgressCounter};
use crate::fetch::{discard, FetchError, Fetcher};
use crate::machine::Target;
use crate::retry::{backoff, Stall};
use petrel_protocol::policy::{DataBudget, FullFallback};
use petrel_protocol::{Digest, LayerDescriptor, ReleaseManifest};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Download attempts that fail verification before the update gives up.
const MAX_BAD_DOWNLOADS: u32 = 3;

/// Delta attempts in a row without progress before falling back to the
/// blob. The first request of a pair may wait while the controller
/// computes the delta (seconds for a large layer, more on a busy
/// controller) on a link that drops meanwhile: 8 tries with backoff give
/// it about half a minute, where 3 gave it 5 s and sent a 2 MB blob for a
/// 165-byte patch on a loaded test machine.
const MAX_STALLED_DELTA_TRIES: u32 = 8;

/// Layers of `release` the device holds no copy of.
fn missing<'a>(paths: &Paths, release: &'a ReleaseManifest) -> Vec<&'a LayerDescriptor> {
    release
        .layers()
        .into_iter()
        .filter(|l| !paths.layers.has(&l.diff_id) && !paths.fetcher.base_path(&l.diff_id).exists())
        .collect()
}

/// Candidate delta bases for the layer at `index` of `service`, best first:
/// same service and position in each held release, then that position in
/// any held image. Only layers whose tar the device keeps qualify.
pub fn delta_bases(
    fetcher: &Fetcher,
    held: &[ReleaseManifest],
    service: &str,
    index: usize,
    to: &Digest,
) -> Vec<Digest> {
    let same_service = held.iter().filter_map(|r| r.services.get(service));
    let any_service = held.iter().flat_map(|r| r.services.values());
    let mut out: Vec<Digest> = Vec::new();
    for svc in same_service.chain(any_service) {
        if let Some(l) = svc.image.layers.get(index) {
            if &l.diff_id != to
                && !out.contains(&l.diff_id)
                && fetcher.base_path(&l.diff_id).exists()
            {
                out.push(l.diff_id.clone());
            }
        }
    }
    out
}

/// Where each layer sits in the release: (service, index) of first use.
fn position<'a>(release: &'a ReleaseManifest, diff_id: &Digest) -> Option<(&'a str, usize)> {
    release.services.iter().find_map(|(name, svc)| {
        let i = svc
            .image
            .layers
            .iter()
            .position(|l| &l.diff_id == diff_id)?;
        Some((name.as_str(), i))
    })
}

/// Fetches every layer of the target the device lacks, within the
/// target's data budget. `held` are the releases the device keeps
/// (current, previous): the delta bases. Returns the bytes received.
pub async fn download(
    paths: &Paths,
    target: &Target,
    held: &[ReleaseManifest],
    progress: &ProgressCounter,
) -> Result<u64, String> {
    let Some(release) = &target.release else {
        return Ok(0);
    };
    let budget = target.budget.unwrap_or_default();
    let need = missing(paths, release);
    let total: u64 = need.iter().map(|l| l.size).sum();
    let have: u64 = need.iter().map(|l| paths.fetcher.have(l)).sum();
    progress.total.store(total, Ordering::Relaxed);
    progress.done.store(have, Ordering::Relaxed);
    for layer in need {
        let (service, index) = position(release, &layer.diff_id).unwrap_or(("", 0));
        let mut tried = delta_bases(&paths.fetcher, held, service, index, &layer.diff_id);
        let mut fetched = false;
        for base in &tried {
            if via_delta(paths, base, layer, progress, &budget).await? {
                fetched = true;
                break;
            }
        }
        if !fetched {
            if let Some(base) = sharing_paths(paths, held, &layer.diff_id, &tried).await {
                fetched = via_delta(paths, &base, layer, progress, &budget).await?;
                tried.push(base);
            }
        }
        if !fetched {
            let used = progress.received.load(Ordering::Relaxed);
            let held_bytes = paths.fetcher.have(layer);
            budget
                .allow_full(&layer.digest.to_string(), layer.size, held_bytes, used)
                .map_err(|e| e.to_string())?;
            full_blob(&paths.fetcher, layer, progress).await?;
        }
    }
    Ok(progress.received.load(Ordering::Relaxed))
}

/// The held layer (not yet tried) that shares the most regular-file paths
/// with the layer `to`, if any shares at least one.
async fn sharing_paths(
    paths: &Paths,
    held: &[ReleaseManifest],
    to: &Digest,
    tried: &[Digest],
) -> Option<Digest> {
    let candidates: Vec<Digest> = held
        .iter()
        .flat_map(|r| r.layers())
        .map(|l| l.diff_id.clone())
        .filter(|d| d != to && !tried.contains(d) && paths.fetcher.base_path(d).exists())
        .collect();
    // No held base to compare with: the path list would be wasted bytes.
    if candidates.is_empty() {
        return None;
    }
    let wanted = match paths.fetcher.layer_paths(to).await {
        // outside input: only plain relative paths may be looked up
        Ok(p) => p
            .into_iter()
            .filter(|p| is_plain_relative(p))
            .collect::<Vec<_>>(),
        Err(e) => {
            tracing::info!(error = %e, "no path list; skipping path-based base choice");
            return None;
        }
    };
    let layers = paths.layers.clone();
    tokio::task::spawn_blocking(move || {
        let score = |d: &Digest| {
            wanted
                .iter()
                .filter(|p| layers.path(d).join(p).is_file())
                .count()
        };
        candidates
            .into_iter()
            .map(|d| (score(&d), d))
            .filter(|(s, _)| *s > 0)
            .max_by_key(|(s, _)| *s)
            .map(|(_, d)| d)
    })
    .await
    .ok()
    .flatten()
}

/// Tries the delta `base` → `layer`; `Ok(false)` means: use another way.
/// A delta larger than what the data budget has left is refused like one
/// larger than the blob.
async fn via_delta(
    paths: &Paths,
    base: &Digest,
    layer: &LayerDescriptor,
    progress: &ProgressCounter,
    budget: &DataBudget,
) -> Result<bool, String> {
    let fetcher = &paths.fetcher;
    let accounted = std::sync::atomic::AtomicU64::new(0);
    let on_bytes = |n: u64| progress.add_received(n);
    let mut have = fetcher.have_delta(base, &layer.diff_id);
    let left = budget.remaining(progress.received.load(Ordering::Relaxed));
    let cap = layer.size.min(left.saturating_add(have));
    // the patch replaces the blob in the total, once its size is known
    let on_size = |size: u64| {
        if accounted.swap(size, Ordering::Relaxed) == 0 {
            progress
                .total
                .fetch_sub(layer.size.saturating_sub(size), Ordering::Relaxed);
        }
    };
    let mut attempt = 0;
    let mut stall = Stall::new(fetcher.retry_budget());
    let mut waiting: Option<std::time::Instant> = None;
    let patch = loop {
        match fetcher
            .fetch_delta_once(base, &layer.diff_id, cap, &on_bytes, &on_size)
            .await
        {
            Ok(Some(p)) => break p,
            Ok(None) => return Ok(false),
            Err(FetchError::Preparing { url, retry_after }) => {
                // the controller is encoding it: worth waiting for, within
                // the device's delta_wait
                let waited = waiting
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed();
                // with no full fallback, the delta is worth the retry budget
                let limit = match budget.full_fallback {
                    FullFallback::Allow => fetcher.delta_wait(),
                    FullFallback::Deny => fetcher.retry_budget(),
                };
                if waited.saturating_add(asked_wait(retry_after)) > limit {
                    tracing::warn!(%url, ?waited, "delta still being prepared; falling back to the full blob");
                    undo_accounting(progress, layer, &accounted);
                    return Ok(false);
                }
                tracing::info!(%url, "delta being prepared by the controller; asking again in {retry_after:?}");
                tokio::time::sleep(asked_wait(retry_after)).await;
                stall.progressed();
            }
            Err(FetchError::Transient { url, reason }) => {
                let wait = backoff(attempt);
                let before = have;
                have = fetcher.have_delta(base, &layer.diff_id);
                // progress made: a drop, keep resuming; none: a few tries,
                // then the blob (a delta is only an optimisation)
                if have > before {
                    attempt = 0;
                    stall.progressed();
                } else {
                    attempt += 1;
                }
                // with no full fallback, the delta is worth the whole
                // retry budget; else a few tries
                let give_up = match budget.full_fallback {
                    FullFallback::Allow => attempt > MAX_STALLED_DELTA_TRIES,
                    FullFallback::Deny => stall.stalled(std::time::Instant::now()).is_some(),
                };
                if give_up {
                    tracing::warn!(%url, %reason, "delta keeps failing; falling back to the full blob");
                    undo_accounting(progress, layer, &accounted);
                    return Ok(false);
                }
                tracing::info!(%url, %reason, "delta download interrupted; resuming in {wait:?}");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "delta unusable; falling back to the full blob");
                undo_accounting(progress, layer, &accounted);
                return Ok(false);
            }
        }
    };
    let (paths2, base2, layer2, patch2) =
        (paths.clone(), base.clone(), layer.clone(), patch.clone());
    let applied =
        tokio::task::spawn_blocking(move || crate::patch::apply(&paths2, &base2, &layer2, &patch2))
            .await;
    discard(&patch).await;
    match applied {
        Ok(Ok(())) => Ok(true),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "delta did not apply; falling back to the full blob");
            undo_accounting(progress, layer, &accounted);
            Ok(false)
        }
        Err(e) => Err(format!("delta apply task: {e}")),
    }
}

fn undo_accounting(
    progress: &ProgressCounter,
    layer: &LayerDescriptor,
    accounted: &std::sync::atomic::AtomicU64,
) {
    let size = accounted.swap(0, Ordering::Relaxed);
    if size > 0 {
        progress
            .total
            .fetch_add(layer.size.saturating_sub(size), Ordering::Relaxed);
    }
}

async fn full_blob(
    fetcher: &Fetcher,
    layer: &LayerDescriptor,
    progress: &ProgressCounter,
) -> Result<(), String> {
    let (mut attempt, mut bad) = (0u32, 0u32);
    let mut stall = Stall::new(fetcher.retry_budget());
    loop {
        let before = fetcher.have(layer);
        let on_bytes = |n: u64| progress.add_received(n);
        match fetcher.fetch_blob_once(layer, &on_bytes).await {
            Ok(_) => {
                progress.set_problem(None);
                return Ok(());
            }
            Err(FetchError::Transient { url, reason }) => {
                let wait = backoff(attempt);
                // progress made: this was a drop, not a dead link
                if fetcher.have(layer) > before {
                    attempt = 0;
                    stall.progressed();
                    progress.set_problem(None);
                    tracing::debug!(%url, %reason, "download interrupted; resuming in {wait:?}");
                } else {
                    attempt += 1;
                    if let Some(stalled) = stall.stalled(std::time::Instant::now()) {
                        // the budget is spent: the update fails, the
                        // device stays on its release
                        return Err(format!(
                            "no progress downloading {url} for {} s (download_retry_budget_s is {} s): {reason}",
                            stalled.as_secs(),
                            fetcher.retry_budget().as_secs()
                        ));
                    }
                    let problem = format!("cannot download {url}: {reason}");
                    if progress.set_problem(Some(problem)) {
                        tracing::warn!(%url, %reason, "download not progressing; retrying with backoff");
                    }
                }
                tokio::time::sleep(wait).await;
            }
            Err(e @ FetchError::DigestMismatch { .. }) if bad + 1 < MAX_BAD_DOWNLOADS => {
                bad += 1;
                tracing::warn!(error = %e, "download failed verification; fetching again");
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A server's Retry-After, kept between 1 s and a minute (outside input).
fn asked_wait(retry_after: Duration) -> Duration {
    retry_after.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

fn is_plain_relative(p: &str) -> bool {
    let path = std::path::Path::new(p);
    !p.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_looked_up() {
        assert!(is_plain_relative("usr/lib/x.so"));
        for bad in ["/etc/passwd", "../x", "a/../../b", ""] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }
}
