//! The `Gz` op. A changelog or man page gains a few lines and its gzip
//! member changes from the first changed byte on, so a byte diff of the
//! compressed files is as large as the file. Instead the encoder diffs the
//! inflated contents and sends the deflate recipe that recompresses the
//! new contents bit-exactly ([`crate::deflate`]); the device inflates the
//! old member, patches it, and rebuilds the new member from the recipe.
//!
//! Bounds: members (compressed or inflated) over [`GZ_MAX`] are diffed as
//! plain bytes instead, and the decoder refuses any `Gz` op beyond that;
//! all `Gz` ops of a patch together may read, inflate and rebuild at most
//! [`budget`] bytes, so a small hostile patch cannot make the device
//! inflate the same large member over and over. The encoder charges each
//! op the same way and stays within the same budget, so no honest patch
//! is refused.

use super::decoder::{Caps, Streams};
use super::encoder::{bsdiff, folded, FileOp};
use super::ops::Op;
use super::steps::{self, Buffers, CappedVec, SliceOld};
use super::GZ_MAX;
use crate::{deflate, DeltaError};
use std::io::{self, Read};

/// Longest recipe the decoder reads (a gzip header with a long file name
/// and a short verbatim trailer take a few hundred bytes).
const MAX_RECIPE: u64 = 64 << 10;

/// Bytes the `Gz` ops of a patch writing `to_size` bytes may inflate and
/// rebuild altogether (old and new inflated members): far above what any
/// real layer needs, and linear in the output.
pub(crate) fn budget(to_size: u64) -> u64 {
    to_size.saturating_mul(16).saturating_add(2 * GZ_MAX)
}

fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// The `Gz` op for new member `new` against old member `old` (old file
/// `base`), or `None` when the plain byte diff should be used instead:
/// not both gzip, too large, or not reproducible. Its `gz_cost` is what
/// the decoder will charge to the budget.
pub(crate) fn encode(base: u64, old: &[u8], new: &[u8]) -> io::Result<Option<FileOp>> {
    let cap = GZ_MAX as usize;
    if !is_gzip(old) || !is_gzip(new) || old.len() > cap || new.len() > cap {
        return Ok(None);
    }
    let Ok(old_plain) = deflate::inflate(old, cap) else {
        return Ok(None);
    };
    let Some(analyzed) = deflate::analyze(new, cap) else {
        return Ok(None);
    };
    if analyzed.recipe.len() as u64 > MAX_RECIPE {
        return Ok(None);
    }
    let parts = bsdiff(&old_plain, &analyzed.plain)?;
    Ok(Some(FileOp {
        op: Op::Gz {
            old: base,
            new_len: new.len() as u64,
            plain_len: analyzed.plain.len() as u64,
            recipe_len: analyzed.recipe.len() as u64,
        },
        gz_cost: cost(old.len(), old_plain.len(), analyzed.plain.len()),
        controls: folded(&parts)?,
        diff: parts.diff,
        extra: parts.extra,
        recipe: analyzed.recipe,
    }))
}

/// A `Gz` op's charge: the old member as read or inflated, whichever is
/// larger, plus the new member inflated.
fn cost(old_len: usize, old_plain: usize, new_plain: usize) -> u64 {
    old_len.max(old_plain) as u64 + new_plain as u64
}

/// Runs a `Gz` op against `base`, the old member's compressed bytes, and
/// returns the new member's, exactly `new_len` of them.
pub(crate) fn decode(
    op: &Op,
    base: Vec<u8>,
    streams: &mut Streams,
    caps: &mut Caps,
    bufs: &mut Buffers,
) -> Result<Vec<u8>, DeltaError> {
    let Op::Gz {
        new_len,
        plain_len,
        recipe_len,
        ..
    } = *op
    else {
        return Err(DeltaError::Corrupt("not a Gz op".into()));
    };
    for (what, size, limit) in [
        ("new gzip member of a Gz op", new_len, GZ_MAX),
        ("inflated new member of a Gz op", plain_len, GZ_MAX),
        ("deflate recipe of a Gz op", recipe_len, MAX_RECIPE),
    ] {
        if size > limit {
            return Err(DeltaError::TooLarge { what, size, limit });
        }
    }
    // Charged as the encoder charges it (see `cost`): reading the old
    // member first, then inflating it as far as the budget goes.
    spend(caps, base.len() as u64)?;
    let plain_cap = GZ_MAX.min(caps.gz_left.saturating_add(base.len() as u64));
    let old_plain = deflate::inflate(&base, plain_cap as usize)?;
    spend(
        caps,
        (old_plain.len() as u64).saturating_sub(base.len() as u64),
    )?;
    drop(base);
    spend(caps, plain_len)?;
    caps.steps.grant(plain_len.saturating_mul(2));
    // plain_len is at most GZ_MAX (checked above): a bounded allocation.
    let mut new_plain = CappedVec {
        data: Vec::with_capacity(plain_len as usize),
        cap: plain_len as usize,
    };
    let mut old = SliceOld {
        data: &old_plain,
        pos: 0,
    };
    steps::run(
        plain_len,
        &mut streams.inputs(),
        &mut old,
        &mut new_plain,
        &mut caps.steps,
        bufs,
    )?;
    drop(old_plain);
    let mut recipe = Vec::new();
    (&mut streams.recipe)
        .take(recipe_len)
        .read_to_end(&mut recipe)
        .map_err(DeltaError::from_patch_read)?;
    if recipe.len() as u64 != recipe_len {
        return Err(DeltaError::Truncated);
    }
    let member = deflate::rebuild(&new_plain.data, &recipe, new_len as usize)?;
    if member.len() as u64 != new_len {
        return Err(DeltaError::Corrupt(format!(
            "a Gz op promised {new_len} bytes but its recipe rebuilt {}",
            member.len()
        )));
    }
    Ok(member)
}

/// Takes `n` bytes from the patch's gzip budget.
fn spend(caps: &mut Caps, n: u64) -> Result<(), DeltaError> {
    caps.gz_left = caps.gz_left.checked_sub(n).ok_or(DeltaError::TooLarge {
        what: "bytes inflated and rebuilt by the patch's Gz ops",
        size: n,
        limit: caps.gz_left,
    })?;
    Ok(())
}
