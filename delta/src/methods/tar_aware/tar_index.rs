//! The tar parser of the tar-aware method. It exists because both sides
//! must split a layer into the same pieces: the encoder indexes the old and
//! new tars to match files, and the decoder indexes the old tar (already
//! verified against the header's digest) to find each old file's contents
//! and the old skeleton. Both call this one parser, so the old layer's file
//! list is identical on both sides by construction.
//!
//! It reads only headers (512-byte blocks) and the few metadata payloads
//! that name or size the next member — GNU `L`/`K` long names, pax `x`/`g`
//! records with `path` and `size` — and seeks over file data, so indexing
//! a 100 MB layer reads a few hundred KB. It never panics: every field is
//! parsed with checked arithmetic, every checksum verified, metadata
//! payloads are capped at [`MAX_META`], and anything it cannot follow is a
//! [`DeltaError::NotATar`] naming the offset.
//!
//! A regular file (`0`, NUL or `7`) is a "file": its data range is what
//! the method diffs. Everything else — headers, long-name and pax blocks,
//! links, directories, padding, the end-of-archive blocks and whatever
//! follows them — is "skeleton".

use crate::DeltaError;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// A tar block.
pub(crate) const BLOCK: u64 = 512;
/// Largest long-name or pax payload read: names are at most a few KB.
const MAX_META: u64 = 1 << 20;

/// One member of the archive (metadata blocks are not members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The member's path as stored (pax `path`, GNU long name, ustar
    /// prefix + name or name); empty when the index was built without paths.
    pub path: Vec<u8>,
    /// The typeflag byte.
    pub kind: u8,
    /// Offset of the member's own header block.
    pub header_offset: u64,
    /// Offset of its first data byte.
    pub data_offset: u64,
    /// Bytes of data (0 for links, directories, devices and FIFOs).
    pub size: u64,
}

impl Entry {
    /// Regular files: the only members whose data the method diffs.
    pub(crate) fn is_file(&self) -> bool {
        is_file_kind(self.kind)
    }
}

fn is_file_kind(kind: u8) -> bool {
    matches!(kind, b'0' | 0 | b'7')
}

/// Types that carry no data whatever their size field says (as GNU tar,
/// libarchive and Go's archive/tar read them).
fn is_header_only(kind: u8) -> bool {
    matches!(kind, b'1'..=b'6')
}

/// What to keep while indexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Every member with its path (the encoder).
    Full,
    /// Regular files only, without paths (the decoder: memory stays at a
    /// few bytes per file whatever the names).
    FilesOnly,
}

/// The members of a tar.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TarIndex {
    /// Regular files in archive order; an op's old index points in here.
    pub files: Vec<Entry>,
    /// Every other member (only with [`Detail::Full`]).
    pub others: Vec<Entry>,
}

/// Random access to the bytes being indexed.
pub(crate) trait Source {
    fn len(&self) -> u64;
    /// Fills `buf` from `offset`; the caller has checked the range.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeltaError>;
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeltaError> {
        let start = usize::try_from(offset).map_err(|_| DeltaError::Truncated)?;
        let end = start.checked_add(buf.len()).ok_or(DeltaError::Truncated)?;
        let src = self.get(start..end).ok_or(DeltaError::Truncated)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A file on disk, read with positioned reads.
pub(crate) struct FileSource {
    pub file: File,
    pub len: u64,
    pub path: PathBuf,
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeltaError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(DeltaError::io(&self.path))
    }
}

/// Path and size overrides from pax records.
#[derive(Debug, Default, Clone)]
struct Pax {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Pax {
    fn merge(&mut self, other: Pax) {
        if other.path.is_some() {
            self.path = other.path;
        }
        if other.size.is_some() {
            self.size = other.size;
        }
    }
}

/// Metadata waiting for the member it describes.
#[derive(Debug, Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    pax: Pax,
}

/// Indexes `src`, which `which` names in errors ("old", "new").
pub(crate) fn index(
    src: &mut impl Source,
    detail: Detail,
    which: &'static str,
) -> Result<TarIndex, DeltaError> {
    let len = src.len();
    let bad = |offset: u64, reason: &str| DeltaError::NotATar {
        which,
        offset,
        reason: reason.to_string(),
    };
    let mut out = TarIndex::default();
    let mut pending = Pending::default();
    let mut global = Pax::default();
    let mut off = 0u64;
    let mut block = [0u8; BLOCK as usize];
    loop {
        if off == len {
            return Ok(out); // no end-of-archive blocks: accepted
        }
        if len - off < BLOCK {
            return Err(bad(off, "archive ends inside a header block"));
        }
        src.read_at(off, &mut block)?;
        if block.iter().all(|b| *b == 0) {
            return Ok(out); // end of archive: the rest is skeleton
        }
        let header = Header::parse(&block).map_err(|reason| bad(off, reason))?;
        let data_offset = off + BLOCK;
        let declared = match header.kind {
            b'x' | b'g' | b'L' | b'K' => header.size,
            _ => pending.pax.size.or(global.size).unwrap_or(header.size),
        };
        let size = if is_header_only(header.kind) {
            0
        } else {
            declared
        };
        let data_end = data_offset
            .checked_add(size)
            .filter(|end| *end <= len)
            .ok_or_else(|| bad(off, "member data runs past the end of the archive"))?;
        // The archive may end inside the padding of its last member.
        let next = data_end
            .saturating_add((BLOCK - data_end % BLOCK) % BLOCK)
            .min(len);
        if matches!(header.kind, b'L' | b'K' | b'x' | b'g') && size > MAX_META {
            return Err(bad(off, "long-name or pax payload is over 1 MiB"));
        }
        match header.kind {
            b'L' | b'K' => {
                let name = read_meta(src, data_offset, size)?;
                if header.kind == b'L' {
                    pending.long_name = Some(trim_nul(&name).to_vec());
                }
            }
            b'x' | b'g' => {
                let raw = read_meta(src, data_offset, size)?;
                let pax = parse_pax(&raw).map_err(|r| bad(off, r))?;
                if header.kind == b'x' {
                    pending.pax.merge(pax);
                } else {
                    global.merge(pax);
                }
            }
            kind => {
                let taken = std::mem::take(&mut pending);
                let keep = detail == Detail::Full || is_file_kind(kind);
                if keep {
                    let path = match detail {
                        Detail::Full => taken
                            .pax
                            .path
                            .or_else(|| global.path.clone())
                            .or(taken.long_name)
                            .unwrap_or_else(|| header.path()),
                        Detail::FilesOnly => Vec::new(),
                    };
                    let entry = Entry {
                        path,
                        kind,
                        header_offset: off,
                        data_offset,
                        size,
                    };
                    if entry.is_file() {
                        out.files.push(entry);
                    } else {
                        out.others.push(entry);
                    }
                }
            }
        }
        off = next;
    }
}

/// A metadata payload (its size already checked against [`MAX_META`]).
fn read_meta(src: &mut impl Source, offset: u64, size: u64) -> Result<Vec<u8>, DeltaError> {
    let mut buf = vec![0u8; size.min(MAX_META) as usize];
    src.read_at(offset, &mut buf)?;
    Ok(buf)
}

fn trim_nul(raw: &[u8]) -> &[u8] {
    raw.iter()
        .position(|b| *b == 0)
        .map_or(raw, |end| &raw[..end])
}

/// The fields of a header block the index needs.
struct Header<'a> {
    block: &'a [u8; BLOCK as usize],
    kind: u8,
    size: u64,
}

impl<'a> Header<'a> {
    fn parse(block: &'a [u8; BLOCK as usize]) -> Result<Header<'a>, &'static str> {
        let stored = parse_octal(&block[148..156]).ok_or("header checksum is not octal")?;
        let (unsigned, signed) = checksums(block);
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err("header checksum does not match");
        }
        Ok(Header {
            block,
            kind: block[156],
            size: parse_size(&block[124..136]).ok_or("bad size field")?,
        })
    }

    /// ustar prefix + "/" + name (POSIX magic only: GNU headers use the
    /// prefix area for other fields), else the name field.
    fn path(&self) -> Vec<u8> {
        let name = trim_nul(&self.block[0..100]);
        let prefix = trim_nul(&self.block[345..500]);
        if &self.block[257..263] == b"ustar\0" && !prefix.is_empty() {
            let mut path = prefix.to_vec();
            path.push(b'/');
            path.extend_from_slice(name);
            path
        } else {
            name.to_vec()
        }
    }
}

/// The header sum with the checksum field read as spaces, unsigned and
/// signed (some old tars summed signed chars).
fn checksums(block: &[u8; BLOCK as usize]) -> (u64, i64) {
    let mut unsigned = 0u64;
    let mut signed = 0i64;
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    (unsigned, signed)
}

/// An octal field: optional leading spaces, digits, then NULs or spaces.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let mut value = 0u64;
    let mut digits = false;
    let mut ended = false;
    for &b in field {
        match b {
            b'0'..=b'7' if !ended => {
                value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
                digits = true;
            }
            b' ' if !digits => {}
            b' ' | 0 => ended = true,
            _ => return None,
        }
    }
    Some(value)
}

/// A size field: octal, or GNU base-256 (high bit of the first byte set;
/// negative values are refused).
fn parse_size(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(0x80) => field[1..]
            .iter()
            .try_fold(0u64, |v, b| v.checked_mul(256)?.checked_add(u64::from(*b))),
        Some(b) if b & 0x80 != 0 => None,
        _ => parse_octal(field),
    }
}

/// pax records: `LEN KEY=VALUE\n`, LEN counting the whole record.
fn parse_pax(mut raw: &[u8]) -> Result<Pax, &'static str> {
    let mut pax = Pax::default();
    while !raw.is_empty() {
        if raw.iter().all(|b| *b == 0) {
            break; // zero padding after the last record
        }
        let space = raw
            .iter()
            .position(|b| *b == b' ')
            .ok_or("pax record without a length")?;
        let len = decimal(&raw[..space]).ok_or("bad pax record length")?;
        let len = usize::try_from(len).map_err(|_| "bad pax record length")?;
        if len <= space + 1 || len > raw.len() || raw[len - 1] != b'\n' {
            return Err("pax record length does not fit its record");
        }
        let record = &raw[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or("pax record without '='")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" if !value.is_empty() => pax.path = Some(value.to_vec()),
            b"size" => pax.size = Some(decimal(value).ok_or("bad pax size")?),
            _ => {}
        }
        raw = &raw[len..];
    }
    Ok(pax)
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |v, b| {
        if b.is_ascii_digit() {
            v.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
#[path = "tar_index_tests.rs"]
mod tests;
