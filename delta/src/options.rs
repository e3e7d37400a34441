//! What the encoder may do ([`EncodeOptions`]), in a module of its own so
//! that `encode` and the methods' encoders, which both read it, do not
//! import each other.

use crate::input::Limits;
use crate::method::Method;

/// What [`crate::diff`] may try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Methods to try; the smallest patch wins.
    pub methods: Vec<Method>,
    /// zstd level for every method's compression step.
    pub zstd_level: i32,
    /// Largest old layer for which `zstd-ref` is tried: its decoder holds
    /// the whole old layer in memory, so this is the device's decode budget.
    pub max_ref_prefix: u64,
    /// The devices' decoder limits: every candidate patch is applied with
    /// them before it may be chosen, so no patch a device would refuse is
    /// ever shipped.
    pub limits: Limits,
    /// Memory the methods may take at once beyond the two layers
    /// [`crate::diff`] holds (`None`: no limit). Methods run side by side
    /// while their estimated needs ([`crate::memory_needed`]) fit, one
    /// after another otherwise. [`crate::peak_memory`] estimates the whole.
    pub max_memory: Option<u64>,
}

impl Default for EncodeOptions {
    /// All methods, level 19 (measured on the corpus: 3–9% smaller than
    /// level 9, and level 22 gained under 0.5% at 2–10× the time), 32 MiB.
    fn default() -> Self {
        EncodeOptions {
            methods: Method::ALL.to_vec(),
            zstd_level: 19,
            max_ref_prefix: 32 << 20,
            limits: Limits::default(),
            max_memory: None,
        }
    }
}
