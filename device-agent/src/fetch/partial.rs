//! What survives a power cut of a partial download. Bytes appended to a
//! `.partial` file are durable only once synced: after a power loss the
//! file may be longer than what reached the disk (its tail zeros or stale
//! blocks). So every [`SYNC_EVERY`] bytes the agent syncs the file and
//! records the synced length in the sidecar (`.etag`: the server's ETag,
//! the total, the synced length), and the sidecar itself is replaced
//! atomically (write, fsync, rename, fsync the directory). A resume
//! starts from the synced length, cutting anything after it.

use super::{io, FetchError};
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// Bytes between two syncs of a partial download: what an agent stopped
/// uncleanly (power cut or SIGKILL: the two cannot be told apart) fetches
/// again at most.
pub const SYNC_EVERY: u64 = 1 << 20;

/// The sidecar of a partial download.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sidecar {
    pub etag: String,
    pub total: u64,
    /// Bytes known to be on the disk. `None`: an older agent's sidecar,
    /// which did not say (its file length is trusted).
    pub synced: Option<u64>,
}

impl Sidecar {
    pub fn parse(text: &str) -> Option<Sidecar> {
        let mut lines = text.lines();
        let etag = lines.next()?.to_string();
        let total = lines.next()?.trim().parse().ok()?;
        let synced = match lines.next() {
            Some(l) => Some(l.trim().parse().ok()?),
            None => None,
        };
        Some(Sidecar {
            etag,
            total,
            synced,
        })
    }

    pub fn render(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.etag,
            self.total,
            self.synced.unwrap_or_default()
        )
    }

    /// Where to resume a partial file `len` bytes long: the synced length
    /// (never past the file's end).
    pub fn resume_at(&self, len: u64) -> u64 {
        self.synced.map_or(len, |s| s.min(len))
    }
}

/// Replaces `path` with `text` atomically and durably.
pub async fn write_durably(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("etag-new");
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(text.as_bytes()).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, path).await?;
    sync_dir(path).await
}

/// fsyncs the directory holding `path` (a rename is durable only then).
pub async fn sync_dir(path: &Path) -> std::io::Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    tokio::fs::File::open(dir).await?.sync_all().await
}

/// The first byte of a `Content-Range: bytes a-b/total` answer.
pub fn range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes ")?;
    range.split_once('-')?.0.trim().parse().ok()
}

/// Makes the first `written` bytes of `part` durable and says so in its
/// sidecar.
pub(super) async fn sync(
    file: &mut tokio::fs::File,
    part: &Path,
    sidecar: &mut Sidecar,
    written: u64,
) -> Result<(), FetchError> {
    file.flush().await.map_err(io("write", part))?;
    file.sync_data().await.map_err(io("sync", part))?;
    sidecar.synced = Some(written);
    let etag_file = part.with_extension("etag");
    write_durably(&etag_file, &sidecar.render())
        .await
        .map_err(io("write", &etag_file))
}

/// First byte of `Content-Range: bytes a-b/total`.
pub(super) fn content_range_start(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get(reqwest::header::CONTENT_RANGE)?;
    range_start(v.to_str().ok()?)
}

/// Total length from `Content-Range: bytes a-b/total`.
pub(super) fn content_range_total(resp: &reqwest::Response) -> Option<u64> {
    let v = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    v.rsplit_once('/')?.1.parse().ok()
}

/// `Retry-After: N` (seconds; an HTTP date is not used by the
/// controller and reads as absent).
pub(super) fn retry_after(resp: &reqwest::Response) -> Option<std::time::Duration> {
    let v = resp.headers().get(reqwest::header::RETRY_AFTER)?;
    let secs: u64 = v.to_str().ok()?.trim().parse().ok()?;
    Some(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_starts_at_the_synced_length_and_an_old_sidecar_trusts_the_file() {
        let s = Sidecar::parse("\"abc\"\n1000\n400").unwrap();
        assert_eq!(s.synced, Some(400));
        assert_eq!(s.resume_at(700), 400); // 300 bytes past the last sync: cut
        assert_eq!(s.resume_at(300), 300);
        assert_eq!(Sidecar::parse(&s.render()), Some(s));
        let old = Sidecar::parse("\"abc\"\n1000").unwrap();
        assert_eq!(old.resume_at(700), 700);
        assert_eq!(Sidecar::parse("garbage"), None);
        assert_eq!(Sidecar::parse("\"e\"\n10\nnot-a-number"), None);
    }

    #[test]
    fn the_range_start_is_read_from_content_range() {
        assert_eq!(range_start("bytes 400-999/1000"), Some(400));
        assert_eq!(range_start("bytes */1000"), None);
        assert_eq!(range_start("items 1-2/3"), None);
    }

    #[tokio::test]
    async fn a_sidecar_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.etag");
        write_durably(&path, "a\n1\n0").await.unwrap();
        write_durably(&path, "b\n2\n1").await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n2\n1");
        assert!(!dir.path().join("x.etag-new").exists());
    }
}
