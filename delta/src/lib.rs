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
//! - `encode`: [`diff`] tries the allowed methods, keeps the smallest and
//!   writes it atomically.
//! - `decode`: [`apply`] verifies the old layer and drives the decoder.
//! - `sink`: the size-capped, hashing output writer every decoder uses.
//! - `error`: [`DeltaError`], the one error type.

mod decode;
pub(crate) mod deflate;
mod encode;
pub mod error;
pub mod header;
pub mod method;
mod methods;
mod sink;
#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

pub use decode::{apply, apply_with_limits, ApplyReport, Limits};
pub use encode::{diff, DiffReport, EncodeOptions};
pub use error::DeltaError;
pub use header::{read_header, Header, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use method::Method;
