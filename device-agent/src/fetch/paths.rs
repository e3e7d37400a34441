//! Layer path lists: which regular files a layer holds, asked of the
//! controller to choose delta bases by content (small; not resumed).

use super::{FetchError, Fetcher};
use petrel_protocol::Digest;

/// Largest path list accepted (decompressed): outside input.
const MAX_PATH_LIST: usize = 64 << 20;

impl Fetcher {
    /// The regular-file paths of a layer, from the controller (small; not
    /// resumed: on failure the caller just skips path-based base choice).
    /// The regular-file paths of layer `diff_id`: from the on-disk cache,
    /// else fetched (zstd-compressed when the controller offers it) and
    /// cached, since a layer's paths never change.
    pub async fn layer_paths(&self, diff_id: &Digest) -> Result<Vec<String>, FetchError> {
        let cached = self.paths_cache.join(format!("{}.json", diff_id.hex()));
        if let Ok(bytes) = std::fs::read(&cached) {
            if let Ok(paths) = serde_json::from_slice(&bytes) {
                return Ok(paths);
            }
        }
        let url = format!("{}/v1/layers/{diff_id}/paths", self.base);
        let err = |reason: String| FetchError::Transient {
            url: url.clone(),
            reason,
        };
        let resp = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT_ENCODING, "zstd")
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        let resp = resp.error_for_status().map_err(|e| err(e.to_string()))?;
        let zstd = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes() == b"zstd");
        let body = resp.bytes().await.map_err(|e| err(e.to_string()))?;
        let json = match zstd {
            true => zstd::bulk::decompress(&body, MAX_PATH_LIST)
                .map_err(|e| err(format!("bad zstd path list: {e}")))?,
            false => body.to_vec(),
        };
        let paths: Vec<String> =
            serde_json::from_slice(&json).map_err(|e| err(format!("bad path list: {e}")))?;
        let tmp = cached.with_extension("tmp");
        if std::fs::write(&tmp, &json)
            .and_then(|()| std::fs::rename(&tmp, &cached))
            .is_err()
        {
            tracing::debug!(path = %cached.display(), "could not cache a layer path list");
        }
        Ok(paths)
    }
}
