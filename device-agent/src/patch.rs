//! Applying a downloaded delta on the device, in bounded memory: the base
//! layer tar is decompressed to a scratch file (read by seeks), the patch
//! streams through the decoder, and the new tar is hashed and recompressed
//! as it is written. The result becomes the layer's copy in `bases/` only
//! after the delta library has verified both the base and the result
//! digests; on any error nothing is kept.

use crate::apply::Paths;
use petrel_protocol::{Digest, LayerDescriptor};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// zstd level for the device's own copy of a layer (cheap on a Pi).
const BASE_LEVEL: i32 = 3;

pub fn apply(
    paths: &Paths,
    base: &Digest,
    layer: &LayerDescriptor,
    patch: &Path,
) -> Result<(), String> {
    let fetcher = &paths.fetcher;
    let mut head = File::open(patch).map_err(|e| format!("open {}: {e}", patch.display()))?;
    let header = petrel_delta::read_header(&mut head).map_err(|e| e.to_string())?;
    if &header.from != base || header.to != layer.diff_id {
        return Err(format!(
            "patch is for {} -> {}, wanted {base} -> {}",
            header.from, header.to, layer.diff_id
        ));
    }
    let work = tempfile::tempdir_in(fetcher.downloads_dir()).map_err(|e| e.to_string())?;
    let old = work.path().join("base.tar");
    decompress(&fetcher.base_path(base), &old)?;
    let out = tempfile::NamedTempFile::new_in(fetcher.bases_dir()).map_err(|e| e.to_string())?;
    let mut enc = zstd::stream::write::Encoder::new(BufWriter::new(out.as_file()), BASE_LEVEL)
        .map_err(|e| e.to_string())?;
    let report = petrel_delta::apply(&old, patch, &mut enc)
        .map_err(|e| format!("delta {base} -> {}: {e}", layer.diff_id))?;
    let mut inner = enc.finish().map_err(|e| e.to_string())?;
    inner.flush().map_err(|e| e.to_string())?;
    drop(inner);
    out.as_file().sync_all().map_err(|e| e.to_string())?;
    out.persist(fetcher.base_path(&layer.diff_id))
        .map_err(|e| e.to_string())?;
    // the rename is durable once its directory is synced
    File::open(fetcher.bases_dir())
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("sync {}: {e}", fetcher.bases_dir().display()))?;
    tracing::info!(from = %base, to = %layer.diff_id, bytes = report.bytes_written, "layer rebuilt from delta");
    Ok(())
}

fn decompress(blob: &Path, out: &Path) -> Result<(), String> {
    let src = File::open(blob).map_err(|e| format!("open {}: {e}", blob.display()))?;
    let mut dec = zstd::stream::read::Decoder::new(src).map_err(|e| e.to_string())?;
    let mut dst = BufWriter::new(File::create(out).map_err(|e| e.to_string())?);
    std::io::copy(&mut dec, &mut dst)
        .map_err(|e| format!("decompressing {}: {e}", blob.display()))?;
    dst.flush().map_err(|e| e.to_string())
}
