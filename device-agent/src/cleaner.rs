//! Clean-up in the background: a collection ([`crate::gc`]) runs as a task
//! of its own, so a large removal never delays a new desired state or a
//! report, and it yields to updates: before the driver downloads,
//! installs, swaps or rolls back, it stops the collection at its next
//! removal and waits for it (the update may need what it was about to
//! remove, and the disk). The driver collects after a swap, after a
//! failed or rolled-back update, and at start-up, so what a crash left
//! behind goes without waiting for the next successful update.

use crate::apply::Paths;
use petrel_protocol::ReleaseManifest;
use petrel_runtime::Runtime;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The background collection, if one runs.
#[derive(Default)]
pub struct Cleaner {
    task: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
}

impl Cleaner {
    /// Starts collecting what `keep` does not need (stopping a collection
    /// under way first: the newer keep list is the one that holds).
    pub async fn start<R: Runtime>(
        &mut self,
        paths: &Paths,
        keep: Vec<ReleaseManifest>,
        runtime: Arc<R>,
    ) {
        self.pause().await;
        let stop = Arc::new(AtomicBool::new(false));
        let (paths, flag) = (paths.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let images = crate::gc::images_of(&paths, &keep);
            tracing::info!("collecting unused layers and root filesystems");
            let started = std::time::Instant::now();
            let removed =
                tokio::task::spawn_blocking(move || crate::gc::collect_until(&paths, &keep, &flag))
                    .await;
            let took = started.elapsed();
            tracing::info!(
                ?removed,
                ?took,
                "collected unused layers and root filesystems"
            );
            match runtime.prune_images(&images).await {
                Ok(gone) if !gone.is_empty() => tracing::info!(?gone, "removed unneeded images"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not remove unneeded images"),
            }
        });
        self.task = Some((task, stop));
    }

    /// Stops the collection under way at its next removal and waits for
    /// it; at once if none runs.
    pub async fn pause(&mut self) {
        if let Some((task, stop)) = self.task.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = task.await;
        }
    }
}

/// The driver drops its cleaner with itself: a collection under way stops
/// at its next removal (the blocking part cannot be aborted mid-file).
impl Drop for Cleaner {
    fn drop(&mut self) {
        if let Some((task, stop)) = self.task.take() {
            stop.store(true, Ordering::Relaxed);
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_collection_removes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::for_tests(dir.path());
        std::fs::create_dir_all(&paths.rootfs_dir).unwrap();
        for junk in ["old-root-a", "old-root-b"] {
            std::fs::create_dir_all(paths.rootfs_dir.join(junk)).unwrap();
        }
        std::fs::write(
            paths.fetcher.downloads_dir().join("blob-dead.partial"),
            b"x",
        )
        .unwrap();
        let stopped = crate::gc::collect_until(&paths, &[], &AtomicBool::new(true));
        assert_eq!(stopped, crate::gc::Collected::default());
        assert!(paths.rootfs_dir.join("old-root-a").exists());
        let done = crate::gc::collect(&paths, &[]);
        assert_eq!((done.rootfs, done.partials), (2, 1));
        assert_eq!(std::fs::read_dir(&paths.rootfs_dir).unwrap().count(), 0);
    }
}
