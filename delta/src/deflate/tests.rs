use super::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Changelog-like text: repeated words and lines, the kind of data the
/// `*.gz` files in Debian layers hold.
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "the",
        "package",
        "fix",
        "security",
        "upstream",
        "release",
        "debian",
        "CVE-2024-",
        "  * ",
        "-- Maintainer <m@example.org>",
        "build",
        "tzdata",
        "openssl",
        "\n",
        "update",
        ".",
    ];
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        match rng.below(8) {
            0 => out.extend_from_slice(format!("{}", rng.below(100_000)).as_bytes()),
            1 => out.push(b'\n'),
            _ => out.push(b' '),
        }
    }
    out.truncate(len);
    out
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Runs the `gzip` command on `data`.
fn gzip_cli(args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the gzip command is needed by these tests");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to gzip");
    assert!(out.status.success(), "gzip {args:?} failed");
    out.stdout
}

/// Analyzes, checks the plain bytes and the rebuild, returns the recipe.
fn assert_round_trip(compressed: &[u8], plain: &[u8]) -> Vec<u8> {
    let a = analyze(compressed, 1 << 26).expect("this file should be reproducible");
    assert_eq!(a.plain, plain);
    assert_eq!(inflate(compressed, 1 << 26).expect("inflate"), plain);
    let rebuilt = rebuild(&a.plain, &a.recipe, compressed.len()).expect("rebuild");
    assert!(rebuilt == compressed, "rebuilt bytes differ");
    a.recipe
}

#[test]
fn gzip_files_made_by_gzip_9n_are_rebuilt_byte_for_byte() {
    // 300 KB: several window slides and many 4096-token block checks.
    let plain = text(300_000, 1);
    let gz = gzip_cli(&["-9n"], &plain);
    let recipe = assert_round_trip(&gz, &plain);
    assert!(recipe.len() <= 16, "recipe is {} bytes", recipe.len());
}

#[test]
fn every_gzip_cli_level_is_rebuilt_byte_for_byte() {
    let mut plain = text(90_000, 2);
    plain.extend(noise(5_000, 3));
    plain.extend(text(40_000, 4));
    for level in 1..=9 {
        let gz = gzip_cli(&[&format!("-{level}"), "-n"], &plain);
        assert_round_trip(&gz, &plain);
    }
}

#[test]
fn sizes_at_the_window_edges_are_rebuilt_byte_for_byte() {
    let long = text(140_000, 5);
    for len in [
        0, 1, 2, 3, 261, 262, 32_768, 65_273, 65_274, 65_275, 65_536, 65_537, 131_072,
    ] {
        for level in ["-9", "-1", "-4"] {
            let gz = gzip_cli(&[level, "-n"], &long[..len]);
            assert_round_trip(&gz, &long[..len]);
        }
    }
}

#[test]
fn incompressible_and_highly_repetitive_inputs_are_rebuilt_byte_for_byte() {
    // Stored blocks, fixed-code blocks, and 258-byte matches all the way.
    let cases = [
        noise(70_000, 6),
        vec![0u8; 200_000],
        b"ab".repeat(50_000),
        noise(100, 7),
    ];
    for plain in &cases {
        for level in ["-9", "-6", "-1"] {
            let gz = gzip_cli(&[level, "-n"], plain);
            assert_round_trip(&gz, plain);
        }
    }
}

#[test]
fn a_gzip_header_with_name_and_mtime_and_trailing_padding_is_kept_verbatim() {
    let plain = text(20_000, 8);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("changelog");
    std::fs::write(&path, &plain).expect("write");
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(&path)
        .output()
        .expect("gzip");
    let mut gz = out.stdout;
    assert_ne!(gz[3] & 8, 0, "gzip should have stored the name");
    assert_round_trip(&gz, &plain);
    gz.extend_from_slice(&[0; 7]);
    assert_round_trip(&gz, &plain);
}

#[test]
fn gzip_made_by_flate2_is_rebuilt_exactly_or_refused() {
    // flate2's default encoder (miniz_oxide) is not GNU gzip: whatever
    // analyze answers must still be exact, and inflate must still work.
    for (len, seed) in [(150, 9), (5_000, 10), (200_000, 11)] {
        let plain = text(len, seed);
        for level in [1, 6, 9] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(&plain).expect("write");
            let gz = e.finish().expect("finish");
            assert_eq!(inflate(&gz, 1 << 26).expect("inflate"), plain);
            if let Some(a) = analyze(&gz, 1 << 26) {
                assert_eq!(rebuild(&a.plain, &a.recipe, gz.len()).expect("rebuild"), gz);
            }
        }
    }
}

#[test]
fn zlib_and_bare_deflate_streams_are_inflated_like_analyze_sees_them() {
    let plain = text(50_000, 12);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
    z.write_all(&plain).expect("write");
    let z = z.finish().expect("finish");
    let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(9));
    d.write_all(&plain).expect("write");
    let d = d.finish().expect("finish");
    for c in [&z, &d] {
        assert_eq!(inflate(c, 1 << 26).expect("inflate"), plain);
        if let Some(a) = analyze(c, 1 << 26) {
            assert_eq!(a.plain, plain);
            assert_eq!(&rebuild(&a.plain, &a.recipe, c.len()).expect("rebuild"), c);
        }
    }
    // The gzip emulation inside a zlib wrapper: rebuilt with its Adler-32.
    let gz = gzip_cli(&["-9n"], &plain);
    let mut zlib = vec![0x78, 0xda];
    zlib.extend_from_slice(&gz[10..gz.len() - 8]);
    zlib.extend_from_slice(&container::Container::Zlib.standard_trailer(&plain));
    assert_round_trip(&zlib, &plain);
    assert_round_trip(&gz[10..gz.len() - 8], &plain);
}

#[test]
fn files_that_are_not_compressed_give_none() {
    for data in [
        text(10_000, 13),
        noise(10_000, 14),
        Vec::new(),
        vec![0x1f, 0x8b],
        b"\x1f\x8b\x08\0\0".to_vec(),
    ] {
        assert!(analyze(&data, 1 << 26).is_none());
        assert!(inflate(&data, 1 << 26).is_err());
    }
    // A gzip member cut short is not reproducible either.
    let gz = gzip_cli(&["-9n"], &text(30_000, 15));
    assert!(analyze(&gz[..gz.len() / 2], 1 << 26).is_none());
    assert!(inflate(&gz[..gz.len() / 2], 1 << 26).is_err());
}

#[test]
fn plain_bytes_over_max_plain_are_refused() {
    let plain = vec![b'x'; 1 << 20];
    let gz = gzip_cli(&["-9n"], &plain);
    assert!(analyze(&gz, (1 << 20) - 1).is_none());
    assert!(matches!(
        inflate(&gz, (1 << 20) - 1),
        Err(DeltaError::TooLarge { .. })
    ));
    assert!(analyze(&gz, 1 << 20).is_some());
}

#[test]
fn rebuild_respects_max_out() {
    let plain = text(100_000, 16);
    let gz = gzip_cli(&["-9n"], &plain);
    let a = analyze(&gz, 1 << 26).expect("analyze");
    for max_out in [0, 5, 10, 18, gz.len() / 2, gz.len() - 1] {
        assert!(matches!(
            rebuild(&a.plain, &a.recipe, max_out),
            Err(DeltaError::TooLarge { .. })
        ));
    }
    assert_eq!(rebuild(&a.plain, &a.recipe, gz.len()).expect("rebuild"), gz);
}

#[test]
fn hostile_recipes_are_errors_never_panics() {
    let plain = text(3_000, 17);
    let gz = gzip_cli(&["-9n"], &plain);
    let good = analyze(&gz, 1 << 26).expect("analyze").recipe;
    for cut in 0..good.len() {
        assert!(
            rebuild(&plain, &good[..cut], 1 << 20).is_err(),
            "cut at {cut}"
        );
    }
    for bit in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        // A flip may still describe a valid recipe (another level, another
        // header byte); then the output is just different, still bounded.
        if let Ok(out) = rebuild(&plain, &bad, gz.len() + 64) {
            assert!(out.len() <= gz.len() + 64);
        }
    }
    let mut long = good.clone();
    long.push(0);
    assert!(rebuild(&plain, &long, 1 << 20).is_err());
    let absurd: [&[u8]; 6] = [
        &[
            1, 1, 1, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0,
        ],
        &[
            1, 1, 1, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        &[1, 1, 1, 9, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f],
        &[1, 1, 1, 0, 0, 0],
        &[1, 1, 1, 10, 0, 0],
        &[2, 1, 1, 9, 0, 0],
    ];
    for r in absurd {
        assert!(
            matches!(rebuild(&plain, r, 1 << 20), Err(DeltaError::Corrupt(_))),
            "{r:?}"
        );
    }
    assert!(matches!(
        rebuild(&plain, &[1, 3, 1, 9, 0, 0], 1 << 20),
        Err(DeltaError::Corrupt(_))
    ));
    assert!(matches!(
        rebuild(&plain, &[1, 1, 2, 9, 0, 0], 1 << 20),
        Err(DeltaError::Corrupt(_))
    ));
}

#[test]
fn any_plain_bytes_at_any_level_give_a_valid_deflate_stream_or_hit_the_work_budget() {
    // The device runs the encoder on whatever plain bytes a patch yields.
    let mut rng = Rng(18);
    for round in 0..40 {
        let len = rng.below(80_000);
        let plain = match round % 3 {
            0 => noise(len, round),
            1 => text(len, round),
            _ => {
                let alphabet = 1 + rng.below(4) as u8;
                noise(len, round).iter().map(|b| b % alphabet).collect()
            }
        };
        let level = 1 + (round % 9) as u8;
        let recipe = Recipe {
            container: Container::Raw,
            engine: ENGINE_GZIP,
            level,
            header: Vec::new(),
            trailer: Trailer::Standard,
        }
        .encode();
        let out = match rebuild(&plain, &recipe, 1 << 22) {
            Ok(out) => out,
            // Tiny alphabets keep gzip's hash chains full: the work budget
            // may stop them (text and noise always fit).
            Err(e) if round % 3 == 2 && e.to_string().contains("work budget") => continue,
            Err(e) => panic!("round {round}: {e}"),
        };
        assert_eq!(inflate(&out, 1 << 22).expect("inflate"), plain);
        if round % 8 == 0 {
            let gz = gzip_cli(&[&format!("-{level}"), "-n"], &plain);
            assert!(
                out == gz[10..gz.len() - 8],
                "level {level} differs from gzip"
            );
        }
    }
}

/// Bytes drawn from {a, b}: every 3-byte hash chain stays full and no
/// match reaches gzip's "good enough" length, so `gzip -9` follows up to
/// 4096 links per byte.
fn chain_filler(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..len).map(|_| b"ab"[rng.below(2)]).collect()
}

#[test]
fn plain_data_that_fills_every_hash_chain_stops_at_the_work_budget() {
    let plain = chain_filler(512 * 1024, 21);
    let gz = gzip_cli(&["-9n"], &plain);
    // The encoder gives up on it (the file then travels as plain bytes)...
    assert!(analyze(&gz, 1 << 24).is_none());
    // ...and a hostile patch pairing a -9 recipe with it is refused
    // instead of costing the device minutes.
    let honest = gzip_cli(&["-9n"], &text(20_000, 22));
    let recipe = analyze(&honest, 1 << 24).expect("honest file").recipe;
    let err = rebuild(&plain, &recipe, gz.len() + 1024).unwrap_err();
    assert!(err.to_string().contains("work budget"), "{err}");
}
