//! The delta methods: one enum with a stable wire id per method, so the
//! header can name how its payload is encoded and new methods can be added
//! without breaking old patches.

use crate::DeltaError;
use std::fmt;
use std::str::FromStr;

/// How a patch payload is encoded. The discriminant is the id on the wire:
/// never reuse or renumber one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Method {
    /// A bsdiff patch as three separately zstd-compressed streams (control
    /// triples, diff bytes, extra bytes). Decodes streaming in bounded memory.
    BsdiffZstd = 1,
    /// zstd with the whole old layer as reference prefix, as
    /// `zstd --patch-from`. Decoding holds the old layer in memory.
    ZstdRef = 2,
    /// Per-file diffs inside the tar: each new file against its matched
    /// old file, the tar skeleton on its own, gzip members by their
    /// inflated contents. Decodes streaming in bounded memory.
    TarAware = 3,
}

impl Method {
    /// Every method this build can encode and decode, in wire-id order.
    pub const ALL: [Method; 3] = [Method::BsdiffZstd, Method::ZstdRef, Method::TarAware];

    /// The id written in the header.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The method with this header id.
    pub fn from_id(id: u8) -> Result<Method, DeltaError> {
        Method::ALL
            .into_iter()
            .find(|m| m.id() == id)
            .ok_or(DeltaError::UnknownMethod(id))
    }

    /// The name used by the CLI, logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::BsdiffZstd => "bsdiff+zstd",
            Method::ZstdRef => "zstd-ref",
            Method::TarAware => "tar-aware",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = DeltaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| DeltaError::UnknownMethodName(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_and_ids_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.to_string().parse::<Method>().unwrap(), m);
            assert_eq!(Method::from_id(m.id()).unwrap(), m);
        }
        assert_eq!(Method::BsdiffZstd.id(), 1);
        assert_eq!(Method::ZstdRef.id(), 2);
        assert_eq!(Method::TarAware.id(), 3);
    }

    #[test]
    fn unknown_method_ids_and_names_are_errors() {
        assert!(matches!(
            Method::from_id(0),
            Err(DeltaError::UnknownMethod(0))
        ));
        assert!(matches!(
            Method::from_id(4),
            Err(DeltaError::UnknownMethod(4))
        ));
        assert!(matches!(
            "bsdiff".parse::<Method>(),
            Err(DeltaError::UnknownMethodName(_))
        ));
    }
}
