//! Layer plumbing shared by the importers: telling how a layer file is
//! compressed, checking a file against its digest, and storing the
//! uncompressed tar in the blob store with its expected `diff_id`.

use super::ImageError;
use crate::blobs::{BlobError, BlobStore};
use petrel_protocol::{Digest, LayerDescriptor};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// How a layer file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From an OCI or Docker layer media type; `None` if it is not a layer
    /// type we can read (e.g. encrypted layers).
    pub(crate) fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    /// From the first bytes of the file (gzip and zstd magic numbers).
    pub(crate) fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// The uncompressed tar stream of a layer file compressed as `compression`.
pub(crate) fn decompressed(file: File, compression: Compression) -> io::Result<Box<dyn Read>> {
    let buffered = BufReader::new(file);
    Ok(match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// The uncompressed tar stream of a layer file, compression told by its
/// magic bytes (docker-save layers carry no media type).
pub(crate) fn sniffed(file: File, path: &Path) -> Result<Box<dyn Read>, ImageError> {
    sniff_and_decompress(file).map_err(|source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The uncompressed stream of a file that may be plain, gzip or zstd.
pub(crate) fn sniff_and_decompress(file: File) -> io::Result<Box<dyn Read>> {
    let mut buffered = BufReader::new(file);
    let compression = Compression::sniff(buffered.fill_buf()?);
    // `fill_buf` consumed nothing, but the BufReader read ahead: rewind.
    let file = rewind(buffered.into_inner())?;
    decompressed(file, compression)
}

fn rewind(mut file: File) -> io::Result<File> {
    io::Seek::rewind(&mut file)?;
    Ok(file)
}

/// Stores one uncompressed layer, refusing it unless its sha256 is
/// `expected` (when the image config declares one). `layer` names it in
/// errors (archive path or blob digest).
pub(crate) fn store_layer(
    blobs: &BlobStore,
    tar: impl Read,
    expected: Option<&Digest>,
    layer: &str,
) -> Result<LayerDescriptor, ImageError> {
    let stored = match expected {
        Some(expected) => blobs.put_layer_tar_expecting(tar, expected),
        None => blobs.put_layer_tar(tar),
    };
    stored.map_err(|e| match e {
        BlobError::DiffIdMismatch { expected, actual } => ImageError::DiffIdMismatch {
            layer: layer.to_string(),
            expected,
            actual,
        },
        source => ImageError::StoreLayer {
            layer: layer.to_string(),
            source,
        },
    })
}

/// Streams a file through sha256 and checks it against `expected` (and
/// `size`, when the format states one). `entry` names it in errors.
pub(crate) fn verify_file(
    path: &Path,
    entry: &str,
    expected: &Digest,
    size: Option<u64>,
) -> Result<(), ImageError> {
    let io_err = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut hasher = Sha256::new();
    let file = File::open(path).map_err(io_err)?;
    let actual_size = io::copy(&mut BufReader::new(file), &mut hasher).map_err(io_err)?;
    if let Some(expected_size) = size.filter(|s| *s != actual_size) {
        return Err(ImageError::BlobSizeMismatch {
            entry: entry.to_string(),
            digest: expected.clone(),
            expected: expected_size,
            actual: actual_size,
        });
    }
    check_digest(entry, expected, Digest::from_hasher(hasher))
}

/// Checks in-memory bytes against `expected`.
pub(crate) fn verify_bytes(bytes: &[u8], entry: &str, expected: &Digest) -> Result<(), ImageError> {
    check_digest(entry, expected, Digest::of(bytes))
}

fn check_digest(entry: &str, expected: &Digest, actual: Digest) -> Result<(), ImageError> {
    if actual == *expected {
        return Ok(());
    }
    Err(ImageError::BlobDigestMismatch {
        entry: entry.to_string(),
        expected: expected.clone(),
        actual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn compression_is_told_by_magic_bytes_and_media_type() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/"), Compression::None);
        assert_eq!(Compression::sniff(b""), Compression::None);
        let zstd = Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd");
        assert_eq!(zstd, Some(Compression::Zstd));
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+encrypted"),
            None
        );
    }

    #[test]
    fn sniffed_layers_decompress_gzip_and_zstd_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let tar = b"layer bytes".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let variants = [
            tar.clone(),
            gz.finish().unwrap(),
            zstd::encode_all(&tar[..], 3).unwrap(),
        ];
        for (i, bytes) in variants.iter().enumerate() {
            let path = dir.path().join(i.to_string());
            std::fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            sniffed(File::open(&path).unwrap(), &path)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, tar, "variant {i}");
        }
    }
}
