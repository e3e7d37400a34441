//! The `delta_apply` harness. The fuzzer's bytes are a patch file, applied
//! by `petrel_delta::apply` (the agent's call, with its default decoder
//! limits) to a fixed old layer ([`fixture`]): a small tar holding text,
//! binary and a gzip member, so that every method's decoder, tar-aware's
//! gzip rebuild included, has something to work on.
//!
//! Before applying, the harness writes the old layer's sha256 and size
//! into the header (no mutated patch would otherwise get past the decoder's
//! old-layer check) and caps the header's `to_size` at [`MAX_TO_SIZE`]:
//! every decoder budget scales with it, so a larger claim only slows the
//! fuzzer down. Magic, version and method reach the header parser as they
//! came, except that a patch of version [`packing::STREAMS_VERSION`] has
//! its streams compressed by the harness first (see [`packing`]).

mod fixture;
pub mod packing;

use crate::{scratch, Seed};
use petrel_delta::{EncodeOptions, Header, Method, FORMAT_VERSION, HEADER_LEN};
use petrel_protocol::Digest;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Largest new layer a fuzzed header may claim (1 MiB).
pub const MAX_TO_SIZE: u64 = 1 << 20;

/// The old layer on disk, and its digest and size as header bytes.
struct Fixture {
    dir: PathBuf,
    old: PathBuf,
    /// Header bytes 11..43 (from sha256) and 75..83 (from_size).
    from: [u8; 32],
    from_size: [u8; 8],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = scratch::process_dir("delta");
        let old = dir.join("old.tar");
        let bytes = fixture::old_layer();
        std::fs::write(&old, &bytes).expect("write the old layer");
        let header = header_for(&bytes, &bytes).to_bytes();
        let mut from = [0; 32];
        from.copy_from_slice(&header[11..43]);
        let mut from_size = [0; 8];
        from_size.copy_from_slice(&header[75..83]);
        Fixture {
            dir,
            old,
            from,
            from_size,
        }
    })
}

pub fn run(data: &[u8]) -> Result<(), String> {
    let fixture = fixture();
    let mut patch = packing::pack(data).unwrap_or_else(|| data.to_vec());
    if patch.len() >= HEADER_LEN {
        patch[11..43].copy_from_slice(&fixture.from);
        patch[75..83].copy_from_slice(&fixture.from_size);
        let to_size = u64::from_le_bytes(patch[83..91].try_into().expect("8 bytes"));
        patch[83..91].copy_from_slice(&to_size.min(MAX_TO_SIZE).to_le_bytes());
    }
    let path = fixture.dir.join("patch");
    std::fs::write(&path, &patch).expect("write the patch");
    petrel_delta::apply(&fixture.old, &path, io::sink())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// One patch per method from the old layer to the edited one, and one per
/// method from the old layer to itself; each also in streams mode.
pub fn seeds() -> Vec<Seed> {
    let dir = scratch::tempdir();
    let old = fixture::old_layer();
    let pairs = [("edited", fixture::new_layer()), ("same", old.clone())];
    let mut seeds = Vec::new();
    for (name, new) in pairs {
        for method in Method::ALL {
            let patch = diff(dir.path(), &old, &new, method);
            let streams = packing::unpack(&patch, &new)
                .unwrap_or_else(|e| panic!("streams of the {method} seed: {e}"));
            seeds.push((format!("{name}-{method}"), patch));
            seeds.push((format!("{name}-{method}-streams"), streams));
        }
    }
    seeds
}

fn diff(dir: &Path, old: &[u8], new: &[u8], method: Method) -> Vec<u8> {
    let (old_path, new_path, patch) = (dir.join("old"), dir.join("new"), dir.join("patch"));
    std::fs::write(&old_path, old).expect("write the old layer");
    std::fs::write(&new_path, new).expect("write the new layer");
    let opts = EncodeOptions {
        methods: vec![method],
        ..EncodeOptions::default()
    };
    petrel_delta::diff(&old_path, &new_path, &patch, &opts)
        .unwrap_or_else(|e| panic!("seed patch by {method}: {e}"));
    std::fs::read(&patch).expect("read the seed patch")
}

fn header_for(old: &[u8], new: &[u8]) -> Header {
    Header {
        version: FORMAT_VERSION,
        method: Method::BsdiffZstd,
        from: Digest::of(old),
        to: Digest::of(new),
        from_size: old.len() as u64,
        to_size: new.len() as u64,
    }
}
