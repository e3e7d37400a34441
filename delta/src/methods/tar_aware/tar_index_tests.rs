//! The parser on archives written by the `tar` crate (GNU and ustar) and
//! on hand-made headers for what it does not write (pax overrides,
//! base-256 sizes), and on damaged input, which must give an error, never
//! a panic.

use super::*;
use crate::testdata::{layer, Rng};

/// A header block with `name`, `kind` and a raw size field, checksummed.
fn block(name: &[u8], kind: u8, size: [u8; 12], magic: &[u8; 8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(&size);
    h[156] = kind;
    h[257..265].copy_from_slice(magic);
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h.to_vec()
}

fn octal(size: usize) -> [u8; 12] {
    let mut f = [0u8; 12];
    f[..11].copy_from_slice(format!("{size:011o}").as_bytes());
    f
}

const USTAR: &[u8; 8] = b"ustar\x0000";

/// `data` padded to whole blocks.
fn padded(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out.resize(data.len().next_multiple_of(512), 0);
    out
}

fn full(tar: &[u8]) -> TarIndex {
    index(&mut &tar[..], Detail::Full, "test").unwrap()
}

fn gnu_archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let long = format!("usr/share/{}/file.txt", "d".repeat(150));
    for (path, data) in [
        ("usr/bin/tool", &b"#!/bin/sh\necho hi\n"[..]),
        (long.as_str(), b"long name contents"),
        ("usr/empty", b""),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    }
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    b.append_data(&mut dir, "usr/lib/", &b""[..]).unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    b.append_link(&mut link, "usr/bin/alias", "tool").unwrap();
    b.into_inner().unwrap()
}

#[test]
fn gnu_long_names_links_and_empty_files_are_indexed_with_their_offsets() {
    let tar = gnu_archive();
    let idx = full(&tar);
    let paths: Vec<String> = idx
        .files
        .iter()
        .map(|f| String::from_utf8_lossy(&f.path).into_owned())
        .collect();
    assert_eq!(paths[0], "usr/bin/tool");
    assert!(
        paths[1].ends_with("/file.txt") && paths[1].len() > 150,
        "{paths:?}"
    );
    assert_eq!(paths[2], "usr/empty");
    for f in &idx.files {
        assert!(f.is_file());
        assert_eq!(f.data_offset, f.header_offset + BLOCK);
    }
    let second = &idx.files[1];
    let contents = &tar[second.data_offset as usize..][..second.size as usize];
    assert_eq!(contents, b"long name contents");
    let kinds: Vec<u8> = idx.others.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [b'5', b'2']);
    assert!(idx.others.iter().all(|e| e.size == 0));
    // The decoder's view: the same files, without paths.
    let lean = index(&mut &tar[..], Detail::FilesOnly, "test").unwrap();
    assert_eq!(lean.files.len(), 3);
    assert!(lean.others.is_empty());
    for (a, b) in lean.files.iter().zip(&idx.files) {
        assert_eq!((a.data_offset, a.size), (b.data_offset, b.size));
        assert!(a.path.is_empty());
    }
}

#[test]
fn a_ustar_prefix_is_joined_to_the_name() {
    let mut tar = block(b"file.so.1", b'0', octal(3), USTAR);
    tar[345..345 + 12].copy_from_slice(b"usr/lib/deep");
    // Fix the checksum after editing the prefix.
    tar[148..156].copy_from_slice(b"        ");
    let sum: u32 = tar.iter().map(|b| u32::from(*b)).sum();
    tar[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    tar.extend(padded(b"abc"));
    tar.extend([0u8; 1024]);
    assert_eq!(full(&tar).files[0].path, b"usr/lib/deep/file.so.1");
}

#[test]
fn pax_path_and_size_override_the_header_and_global_records_apply_later() {
    let long = format!("opt/{}/x.bin", "p".repeat(200));
    let record = |key: &str, value: &str| {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        format!("{len}{body}")
    };
    let pax = format!("{}{}", record("path", &long), record("size", "5"));
    let mut tar = block(b"PaxHeaders/x", b'x', octal(pax.len()), USTAR);
    tar.extend(padded(pax.as_bytes()));
    // The header itself says 0 bytes; pax says 5.
    tar.extend(block(b"short", b'0', octal(0), USTAR));
    tar.extend(padded(b"12345"));
    let global = record("path", "g/everything");
    tar.extend(block(b"pax_global", b'g', octal(global.len()), USTAR));
    tar.extend(padded(global.as_bytes()));
    tar.extend(block(b"plain", b'0', octal(2), USTAR));
    tar.extend(padded(b"hi"));
    tar.extend([0u8; 1024]);
    let idx = full(&tar);
    assert_eq!(idx.files[0].path, long.as_bytes());
    assert_eq!(idx.files[0].size, 5);
    assert_eq!(idx.files[1].path, b"g/everything");
    assert_eq!(idx.files[1].size, 2);
}

#[test]
fn base_256_sizes_are_read_and_negative_ones_refused() {
    let mut size = [0u8; 12];
    size[0] = 0x80;
    size[11] = 7;
    let mut tar = block(b"big", b'0', size, b"ustar  \0");
    tar.extend(padded(b"1234567"));
    assert_eq!(full(&tar).files[0].size, 7);
    size[0] = 0xff;
    let tar = block(b"neg", b'0', size, b"ustar  \0");
    assert!(matches!(
        index(&mut &tar[..], Detail::Full, "test"),
        Err(DeltaError::NotATar { .. })
    ));
}

#[test]
fn bad_checksums_short_headers_and_data_past_the_end_are_not_a_tar() {
    let mut bad_sum = block(b"x", b'0', octal(0), USTAR);
    bad_sum[0] = b'y';
    let mut past_end = block(b"x", b'0', octal(5000), USTAR);
    past_end.extend([0u8; 512]);
    let short = block(b"x", b'0', octal(0), USTAR)[..300].to_vec();
    for tar in [bad_sum, past_end, short, layer(3, 5000)] {
        let err = index(&mut &tar[..], Detail::Full, "test").unwrap_err();
        assert!(matches!(err, DeltaError::NotATar { .. }), "{err}");
    }
    // An empty file, and an archive without end blocks, are fine.
    assert_eq!(full(b"").files.len(), 0);
    let mut no_end = block(b"x", b'0', octal(3), USTAR);
    no_end.extend(b"abc");
    assert_eq!(full(&no_end).files[0].size, 3);
}

#[test]
fn damaged_archives_give_an_index_or_an_error_never_a_panic() {
    let tar = gnu_archive();
    for len in 0..tar.len() {
        let _ = index(&mut &tar[..len], Detail::Full, "test");
    }
    // Header blocks of the original, re-checksummed after each mutation
    // so that the damage reaches past the checksum test.
    let headers: Vec<usize> = (0..tar.len() / 512)
        .map(|i| i * 512)
        .filter(|at| Header::parse(tar[*at..*at + 512].try_into().unwrap()).is_ok())
        .collect();
    let mut rng = Rng::new(9);
    for round in 0..3000 {
        let mut bad = tar.clone();
        for _ in 0..1 + rng.below(4) {
            let at = if round % 2 == 0 {
                headers[rng.below(headers.len())] + rng.below(512)
            } else {
                rng.below(bad.len())
            };
            bad[at] = rng.next() as u8;
        }
        if round % 2 == 0 {
            for at in &headers {
                let h = &mut bad[*at..*at + 512];
                h[148..156].copy_from_slice(b"        ");
                let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
                h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            }
        }
        if let Ok(idx) = index(&mut &bad[..], Detail::Full, "test") {
            for f in &idx.files {
                assert!(f.data_offset + f.size <= bad.len() as u64);
            }
        }
    }
}
