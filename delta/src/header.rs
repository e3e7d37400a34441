//! The self-describing patch header: which method, which old layer it
//! applies to, which new layer it must produce, and their sizes. A device
//! reads it first to decide whether it can apply the patch at all.
//!
//! Layout (91 bytes, integers little-endian):
//! `PTRLDLT\0` | version u16 | method u8 | from sha256 (32 raw bytes) |
//! to sha256 (32 raw bytes) | from_size u64 | to_size u64 | payload to EOF.

use crate::{DeltaError, Method};
use petrel_protocol::Digest;
use std::io::{self, Read, Write};

/// The first 8 bytes of every patch.
pub const MAGIC: [u8; 8] = *b"PTRLDLT\0";
/// The format version this build writes and reads. Version 2 changed the
/// bsdiff+zstd payload to three separately compressed streams; version 1
/// patches (one interleaved stream) were never deployed and are refused.
pub const FORMAT_VERSION: u16 = 2;
/// Length of the encoded header in bytes.
pub const HEADER_LEN: usize = 8 + 2 + 1 + 32 + 32 + 8 + 8;

/// What a patch transforms, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub method: Method,
    /// sha256 of the old (uncompressed) layer.
    pub from: Digest,
    /// sha256 of the new (uncompressed) layer.
    pub to: Digest,
    pub from_size: u64,
    pub to_size: u64,
}

impl Header {
    /// The header bytes, ready to be followed by the payload.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.version.to_le_bytes());
        out[10] = self.method.id();
        out[11..43].copy_from_slice(&digest_bytes(&self.from));
        out[43..75].copy_from_slice(&digest_bytes(&self.to));
        out[75..83].copy_from_slice(&self.from_size.to_le_bytes());
        out[83..91].copy_from_slice(&self.to_size.to_le_bytes());
        out
    }

    /// Writes the header (not the payload).
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.to_bytes())
    }
}

/// Reads and checks a header: magic first, then version, then method.
pub fn read_header(r: &mut impl Read) -> Result<Header, DeltaError> {
    let mut buf = [0u8; HEADER_LEN];
    read_exact(r, &mut buf[..8])?;
    if buf[..8] != MAGIC {
        return Err(DeltaError::BadMagic);
    }
    read_exact(r, &mut buf[8..])?;
    let version = u16::from_le_bytes([buf[8], buf[9]]);
    if version != FORMAT_VERSION {
        return Err(DeltaError::UnsupportedVersion(version));
    }
    Ok(Header {
        version,
        method: Method::from_id(buf[10])?,
        from: digest_from_bytes(&buf[11..43]),
        to: digest_from_bytes(&buf[43..75]),
        from_size: u64_at(&buf, 75),
        to_size: u64_at(&buf, 83),
    })
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), DeltaError> {
    r.read_exact(buf).map_err(DeltaError::from_patch_read)
}

fn u64_at(buf: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The 32 raw bytes of a digest.
fn digest_bytes(d: &Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Invariant, not input: a `Digest` always holds 64 lowercase hex digits.
    hex::decode_to_slice(d.hex(), &mut out).expect("Digest holds 64 hex digits");
    out
}

/// Any 32 bytes are a valid sha256 value.
fn digest_from_bytes(raw: &[u8]) -> Digest {
    Digest::from_hex(&hex::encode(raw)).expect("64 lowercase hex digits form a digest")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            version: FORMAT_VERSION,
            method: Method::ZstdRef,
            from: Digest::of(b"old"),
            to: Digest::of(b"new"),
            from_size: 3,
            to_size: u64::MAX,
        }
    }

    #[test]
    fn header_round_trips_through_its_bytes() {
        let h = sample();
        let bytes = h.to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(&bytes[..8], b"PTRLDLT\0");
        assert_eq!(read_header(&mut &bytes[..]).unwrap(), h);
    }

    #[test]
    fn a_short_header_is_truncated_not_a_panic() {
        let bytes = sample().to_bytes();
        for len in 0..HEADER_LEN {
            let err = read_header(&mut &bytes[..len]).unwrap_err();
            assert!(matches!(err, DeltaError::Truncated), "len {len}: {err}");
        }
    }

    #[test]
    fn bad_magic_unknown_version_and_unknown_method_are_named() {
        let mut bytes = sample().to_bytes();
        bytes[0] = b'X';
        assert!(matches!(
            read_header(&mut &bytes[..]),
            Err(DeltaError::BadMagic)
        ));
        for version in [1u16, 3] {
            let mut bytes = sample().to_bytes();
            bytes[8..10].copy_from_slice(&version.to_le_bytes());
            let err = read_header(&mut &bytes[..]).unwrap_err();
            assert!(
                matches!(err, DeltaError::UnsupportedVersion(v) if v == version),
                "{err}"
            );
        }
        let mut bytes = sample().to_bytes();
        bytes[10] = 200;
        let err = read_header(&mut &bytes[..]).unwrap_err();
        assert!(matches!(err, DeltaError::UnknownMethod(200)), "{err}");
    }
}
