//! Layer deltas for Petrel: the controller encodes a patch from an old
//! layer tar to a new one ([`diff`]); the device applies the patch file,
//! streaming the new layer out, in memory bounded independently of the
//! layer size ([`apply`]).
//!
//! A patch is self-describing: a fixed header (magic, format version,
//! [`Method`], sha256 and size of both layers) followed by the payload.
//! The decoder refuses a patch made from another old layer before writing
//! anything, never writes more than the header's `to_size`, and checks the
//! digest of what it wrote.
//!
//! Layout:
//! - `header`: the header format and [`read_header`].
//! - `method`: the [`Method`] enum and its wire ids.
//! - `methods/`: one module per method with its encoder and decoder
//!   (`bsdiff_zstd`: bsdiff split into three zstd streams, applied by
//!   reading them side by side; `zstd_ref`: zstd with the old layer as
//!   reference prefix; `tar_aware`: per-file diffs inside the tar, gzip
//!   members diffed inflated and rebuilt with `deflate`).
//! - `options`: [`EncodeOptions`], what the encoder may do.
//! - `encode`: [`diff`] tries the allowed methods, keeps the smallest patch
//!   that applies within the devices' [`Limits`] and writes it atomically.
//! - `input`: what a decoder reads (old layer, patch file) and [`Limits`].
//! - `decode`: [`apply`] verifies the old layer and drives the decoder.
//! - `old_reader`: the old layer read by offset, under a work budget
//!   ([`OldReads`] says what a decode cost).
//! - `sink`: the size-capped, hashing output writer every decoder uses.
//! - `error`: [`DeltaError`], the one error type.

mod decode;
pub(crate) mod deflate;
mod encode;
pub mod error;
pub mod header;
mod input;
pub mod method;
mod methods;
mod old_reader;
mod options;
mod sink;
#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

pub use decode::{apply, apply_with_limits, ApplyReport};
pub use encode::{diff, peak_memory, DiffReport};
pub use error::DeltaError;
pub use header::{read_header, Header, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use input::Limits;
pub use method::Method;
pub use old_reader::OldReads;
pub use options::EncodeOptions;
