//! Bit-exact rebuilding of gzip / zlib / deflate files from their plain
//! bytes, so that a delta can be taken between the *decompressed*
//! contents of compressed files (Debian layers are full of `*.gz`
//! changelogs and man pages, whose compressed bytes change completely
//! for a one-line edit) while the device still writes the exact original
//! compressed bytes.
//!
//! [`analyze`] (controller) splits a compressed file into its plain bytes
//! and a few-byte recipe, and only returns a recipe that it has itself
//! rebuilt and compared byte for byte; [`inflate`] (device, old file)
//! gives the same plain bytes; [`rebuild`] (device, new file) turns plain
//! bytes and recipe back into the compressed file, treating the recipe as
//! hostile input.
//!
//! Reproduction works by re-running the compressor that made the file:
//! an emulation of GNU gzip's encoder (`gzip_emu`, `trees`, `huffman`),
//! which remakes what `gzip -1..-9` writes (Debian's `gzip -9n` included,
//! and busybox gzip, which shares the encoder) with a 16-byte recipe and
//! no correction data. Other encoders (zlib, miniz/flate2, pigz, 7-zip)
//! are reproduced only where their output happens to coincide with gzip's
//! (zlib's often does below ~16K tokens); otherwise `analyze` says `None`
//! and the file stays an opaque compressed blob.
//!
//! Layout: `container` (gzip/zlib/raw detection and inflating),
//! `recipe` (the recipe wire format), `gzip_emu` (match finding),
//! `trees` and `huffman` (blocks and Huffman codes), `tables` (fixed
//! deflate tables), `bits` (the bounded, optionally comparing output).

mod bits;
mod container;
mod gzip_emu;
mod huffman;
mod recipe;
mod tables;
#[cfg(test)]
mod tests;
mod trees;

use crate::DeltaError;
use container::Container;
use recipe::{Recipe, Trailer, ENGINE_GZIP};

/// A compressed file's exact bytes, rebuilt from its decompressed content plus a small recipe.
pub(crate) struct Analyzed {
    pub plain: Vec<u8>,
    pub recipe: Vec<u8>,
}

/// Why the emulated encoder stopped before the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The output would pass its byte limit.
    TooLong,
    /// The output differs from the stream it is compared with.
    Differs,
    /// The parameters are not a valid encoder setting.
    BadParams,
    /// The encoder's own state went out of range (a bug, reported, not a panic).
    Internal,
    /// The match search passed its work budget ([`gzip_emu::work_budget`]):
    /// plain data crafted to fill every hash chain.
    TooSlow,
}

/// Longest verbatim trailer kept (padding after a gzip member and the like).
const MAX_VERBATIM_TRAILER: usize = 1024;

/// gzip levels in the order they are tried: Debian's `-9` first, then the
/// default `-6` and `-1`, then the rest. The gzip header's XFL byte
/// (2 = slowest, 4 = fastest) moves the likely ones to the front.
fn levels_to_try(container: Container, header: &[u8]) -> Vec<u8> {
    let mut levels = vec![9, 6, 1, 8, 7, 5, 4, 3, 2];
    if container == Container::Gzip && header.get(8) == Some(&4) {
        levels.retain(|&l| l != 1);
        levels.insert(0, 1);
    }
    levels
}

/// If `compressed` is a single gzip member (or a zlib stream, or bare
/// deflate), decompresses it (refusing if plain would exceed `max_plain`)
/// and finds a recipe with which `rebuild(&plain, &recipe,
/// compressed.len())` returns exactly `compressed`. The recipe is rebuilt
/// and compared before it is returned. `None` when not compressed, not
/// reproducible or too large.
pub(crate) fn analyze(compressed: &[u8], max_plain: usize) -> Option<Analyzed> {
    let parsed = container::parse(compressed, max_plain).ok()?;
    let header = &compressed[..parsed.header_len];
    let body = &compressed[parsed.header_len..parsed.body_end];
    let after = &compressed[parsed.body_end..];
    let trailer = if after == parsed.container.standard_trailer(&parsed.plain).as_slice() {
        Trailer::Standard
    } else if after.len() <= MAX_VERBATIM_TRAILER {
        Trailer::Verbatim(after.to_vec())
    } else {
        return None;
    };
    let level = levels_to_try(parsed.container, header)
        .into_iter()
        .find(|&level| {
            gzip_emu::compress(&parsed.plain, level, Vec::new(), body.len(), Some(body)).is_ok()
        })?;
    let recipe = Recipe {
        container: parsed.container,
        engine: ENGINE_GZIP,
        level,
        header: header.to_vec(),
        trailer,
    }
    .encode();
    // Never hand out a recipe that was not proven on this very file.
    let rebuilt = rebuild(&parsed.plain, &recipe, compressed.len()).ok()?;
    (rebuilt == compressed).then_some(Analyzed {
        plain: parsed.plain,
        recipe,
    })
}

/// Decompresses a gzip/zlib/raw-deflate file the same way [`analyze`]
/// does (same container detection), refusing above `max_plain`.
pub(crate) fn inflate(compressed: &[u8], max_plain: usize) -> Result<Vec<u8>, DeltaError> {
    Ok(container::parse(compressed, max_plain)?.plain)
}

/// Rebuilds the compressed bytes from `plain` and a recipe made by
/// [`analyze`]. A malformed recipe, or an output longer than `max_out`,
/// is an error. Memory: the output (never more than `max_out`) plus a fixed
/// ~0.4 MiB; time: about what `gzip -<level>` takes for `plain`, and never
/// more match-search work than [`gzip_emu::work_budget`] allows.
pub(crate) fn rebuild(plain: &[u8], recipe: &[u8], max_out: usize) -> Result<Vec<u8>, DeltaError> {
    let r = Recipe::decode(recipe)?;
    let trailer = match r.trailer {
        Trailer::Standard => r.container.standard_trailer(plain),
        Trailer::Verbatim(t) => t,
    };
    let too_large = |size: usize| DeltaError::TooLarge {
        what: "rebuilt compressed file",
        size: size as u64,
        limit: max_out as u64,
    };
    let fixed = r.header.len() + trailer.len();
    if fixed > max_out {
        return Err(too_large(fixed));
    }
    // One buffer for header, stream and trailer, reserved for the largest
    // stream gzip can make of `plain` (stored blocks: +5 bytes per block of
    // at least 4096 bytes), so it never reallocates; pages not written are
    // not touched, so a generous reservation costs no memory.
    let worst = fixed + plain.len() + plain.len() / 4096 * 5 + 64;
    let mut out = Vec::with_capacity(worst.min(max_out));
    out.extend_from_slice(&r.header);
    let limit = max_out - trailer.len();
    let mut out =
        gzip_emu::compress(plain, r.level, out, limit, None).map_err(|stop| match stop {
            Stop::TooLong => too_large(max_out + 1),
            Stop::TooSlow => DeltaError::Corrupt(
                "deflate recipe: rebuilding would pass the encoder's work budget".into(),
            ),
            Stop::Differs | Stop::BadParams | Stop::Internal => {
                DeltaError::Corrupt(format!("deflate recipe: the encoder stopped ({stop:?})"))
            }
        })?;
    out.extend_from_slice(&trailer);
    Ok(out)
}
