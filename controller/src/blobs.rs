//! Content-addressed store of layer blobs on the controller.
//!
//! Every layer is kept zstd-compressed at `root/sha256/<hex>`, where `<hex>`
//! is the sha256 of the compressed bytes (the blob digest devices fetch).
//! Writes stream through two hashers at once: the uncompressed tar gives the
//! layer's `diff_id`, the compressed output its `digest`. A blob appears
//! under its final name only after it is complete and fsynced (temp file in
//! `root/tmp/`, then an atomic rename), so a reader never sees a partial blob.
//!
//! Synchronous std I/O: async callers use `spawn_blocking`.

use petrel_protocol::{Digest, LayerDescriptor};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use tempfile::TempPath;

/// zstd level for stored layers: fast to write, close to level 19 on tars.
const ZSTD_LEVEL: i32 = 3;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store i/o on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("reading the layer tar being stored as {path}: {source}")]
    ReadLayer { path: PathBuf, source: io::Error },
    #[error("blob {digest} not found at {path}")]
    NotFound { digest: Digest, path: PathBuf },
    #[error("layer diff_id is {actual}, expected {expected}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Layer blobs under one root directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore, BlobError> {
        let store = BlobStore { root: root.into() };
        for dir in [store.root.join("sha256"), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(store)
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("sha256").join(digest.hex())
    }

    /// Scratch space on the store's filesystem (temp blobs, import unpacking).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Every stored blob with its path (files not named by a digest, such
    /// as a crashed writer's leftovers, are not listed).
    pub fn list(&self) -> Vec<(Digest, PathBuf)> {
        let Ok(entries) = fs::read_dir(self.root.join("sha256")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let digest = Digest::from_hex(&e.file_name().to_string_lossy()).ok()?;
                Some((digest, e.path()))
            })
            .collect()
    }

    /// Whether the blob is stored.
    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, BlobError> {
        let path = self.path(digest);
        File::open(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => BlobError::NotFound {
                digest: digest.clone(),
                path,
            },
            _ => BlobError::Io { path, source },
        })
    }

    /// Stores an uncompressed layer tar as a zstd blob.
    pub fn put_layer_tar(&self, tar: impl Read) -> Result<LayerDescriptor, BlobError> {
        self.put_inner(tar, None)
    }

    /// Like [`BlobStore::put_layer_tar`], but refuses to keep the blob unless
    /// the tar's sha256 is `expected` (the diff_id an image config declares).
    pub fn put_layer_tar_expecting(
        &self,
        tar: impl Read,
        expected: &Digest,
    ) -> Result<LayerDescriptor, BlobError> {
        self.put_inner(tar, Some(expected))
    }

    fn put_inner(
        &self,
        mut tar: impl Read,
        expected: Option<&Digest>,
    ) -> Result<LayerDescriptor, BlobError> {
        let mut writer = self.layer_writer()?;
        let path = writer.tmp.to_path_buf();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match tar.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(BlobError::ReadLayer { path, source }),
            };
            writer.write_all(&buf[..n]).map_err(io_err(&path))?;
        }
        writer.finish(expected)
    }

    /// A writer that takes an uncompressed layer tar; call
    /// [`LayerWriter::finish`] to commit it (dropping it discards the blob).
    pub fn layer_writer(&self) -> Result<LayerWriter, BlobError> {
        let dir = self.tmp_dir();
        let (file, tmp) = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?
            .into_parts();
        let sink = HashingWriter::new(BufWriter::new(file));
        let encoder = zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL).map_err(io_err(&tmp))?;
        Ok(LayerWriter {
            root: self.clone(),
            diff: Sha256::new(),
            encoder,
            tmp,
            tar_bytes: 0,
        })
    }
}

/// Streams one uncompressed layer tar into the store (see
/// [`BlobStore::layer_writer`]).
pub struct LayerWriter {
    root: BlobStore,
    diff: Sha256,
    encoder: zstd::stream::write::Encoder<'static, HashingWriter<BufWriter<File>>>,
    tmp: TempPath,
    /// Bytes of the uncompressed tar written so far.
    tar_bytes: u64,
}

impl Write for LayerWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(buf)?;
        self.diff.update(&buf[..n]);
        self.tar_bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

impl LayerWriter {
    /// Completes the blob: fsync, check `expected` diff_id if given, then
    /// atomically rename into place (or drop it if the blob already exists).
    pub fn finish(self, expected: Option<&Digest>) -> Result<LayerDescriptor, BlobError> {
        let LayerWriter {
            root,
            diff,
            encoder,
            tmp,
            tar_bytes,
        } = self;
        let sink = encoder.finish().map_err(io_err(&tmp))?;
        let (buffered, hasher, size) = (sink.inner, sink.hasher, sink.count);
        let file = buffered
            .into_inner()
            .map_err(|e| io_err(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp))?;
        let diff_id = Digest::from_hasher(diff);
        if let Some(expected) = expected.filter(|e| **e != diff_id) {
            return Err(BlobError::DiffIdMismatch {
                expected: expected.clone(),
                actual: diff_id,
            });
        }
        let digest = Digest::from_hasher(hasher);
        root.commit(tmp, &digest)?;
        Ok(LayerDescriptor {
            digest,
            diff_id,
            size,
            unpacked_size: Some(tar_bytes),
        })
    }
}

impl BlobStore {
    /// Moves a complete temp blob to its final name. Same content, same name:
    /// if the blob is already there the temp file is simply removed.
    fn commit(&self, tmp: TempPath, digest: &Digest) -> Result<(), BlobError> {
        let dest = self.path(digest);
        if dest.is_file() {
            return Ok(()); // dropping `tmp` deletes it
        }
        tmp.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
        let dir = self.root.join("sha256");
        // fsync the directory so the rename itself survives a power loss.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))
    }
}

/// Passes bytes through while hashing and counting them.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        (dir, store)
    }

    #[test]
    fn stored_layer_has_tar_diff_id_and_compressed_digest() {
        let (_dir, store) = store();
        let tar = b"pretend this is a tar".repeat(1000);
        let layer = store.put_layer_tar(&tar[..]).unwrap();
        assert_eq!(layer.diff_id, Digest::of(&tar));
        let blob = fs::read(store.path(&layer.digest)).unwrap();
        assert_eq!(Digest::of(&blob), layer.digest);
        assert_eq!(blob.len() as u64, layer.size);
        assert!(layer.size < tar.len() as u64);
        let back = zstd::decode_all(store.open_blob(&layer.digest).unwrap()).unwrap();
        assert_eq!(back, tar);
    }

    #[test]
    fn storing_the_same_layer_twice_keeps_one_blob_and_no_temp_files() {
        let (_dir, store) = store();
        let a = store.put_layer_tar(&b"same"[..]).unwrap();
        let b = store.put_layer_tar(&b"same"[..]).unwrap();
        assert_eq!(a, b);
        assert!(store.has(&a.digest));
        assert_eq!(fs::read_dir(store.root.join("sha256")).unwrap().count(), 1);
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn layer_with_unexpected_diff_id_is_not_kept() {
        let (_dir, store) = store();
        let wrong = Digest::of(b"other");
        let err = store
            .put_layer_tar_expecting(&b"tar"[..], &wrong)
            .unwrap_err();
        assert!(err.to_string().contains(&wrong.to_string()), "{err}");
        assert_eq!(fs::read_dir(store.root.join("sha256")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn opening_a_missing_blob_names_its_digest() {
        let (_dir, store) = store();
        let d = Digest::of(b"absent");
        let err = store.open_blob(&d).unwrap_err();
        assert!(matches!(err, BlobError::NotFound { .. }));
        assert!(err.to_string().contains(d.hex()));
    }
}
