//! Whether a delta between two layers can pay off, judged from their file
//! lists before anything is encoded. A patch saves at most the bytes of
//! the new layer's files it can copy from the old one, and never more
//! than the old layer holds. A file of the new layer counts as copyable
//! from an old file at the same path, else one with the same name
//! (a moved directory), else one of the same type in the same directory
//! (a version in the name: `libfoo.so.1.2` → `libfoo.so.1.3`), else the
//! old layer's largest file if it is at least half as large (a big file
//! renamed), up to the smaller of the two sizes. The bound is generous:
//! a saving counted in uncompressed bytes is set against the compressed
//! blob. Pairs that cannot reach even that (a tenth of the blob, the bar
//! a delta must pass) are skipped: encoding one cost the controller
//! minutes of CPU and hundreds of MB for a patch no device used.

use crate::layer_paths::LayerFile;
use std::collections::HashMap;

/// What a pair of layers can share, in bytes of their regular files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub old_bytes: u64,
    pub new_bytes: u64,
    /// Bytes of the new layer's files with a counterpart in the old one.
    pub copyable: u64,
}

impl Estimate {
    pub fn of(old: &[LayerFile], new: &[LayerFile]) -> Estimate {
        let by_path: HashMap<&str, u64> = old.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        let mut by_name: HashMap<&str, u64> = HashMap::new();
        let mut by_kind: HashMap<(&str, &str), u64> = HashMap::new();
        let largest = old.iter().map(|(_, s)| *s).max().unwrap_or(0);
        for (path, size) in old {
            let name = by_name.entry(file_name(path)).or_default();
            *name = (*name).max(*size);
            let kind = by_kind.entry(kind(path)).or_default();
            *kind = (*kind).max(*size);
        }
        let copyable = new
            .iter()
            .map(|(path, size)| {
                let there = by_path
                    .get(path.as_str())
                    .or_else(|| by_name.get(file_name(path)))
                    .or_else(|| by_kind.get(&kind(path)))
                    .copied()
                    .or((largest.saturating_mul(2) >= *size).then_some(largest))
                    .unwrap_or(0);
                there.min(*size)
            })
            .sum();
        Estimate {
            old_bytes: old.iter().map(|(_, s)| s).sum(),
            new_bytes: new.iter().map(|(_, s)| s).sum(),
            copyable,
        }
    }

    /// The most a patch could save, in bytes.
    pub fn best_saving(&self) -> u64 {
        self.copyable.min(self.old_bytes)
    }

    /// Whether no patch can save a tenth of the new layer's blob of
    /// `blob` bytes (the bar a delta must pass to be sent). A new layer
    /// without file content (folders, links) is never hopeless: its patch
    /// is tiny to make.
    pub fn hopeless(&self, blob: u64) -> bool {
        self.new_bytes > 0 && self.best_saving().saturating_mul(10) < blob
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// (directory, extension of the name's first dot): files of a kind that a
/// version bump renames.
fn kind(path: &str) -> (&str, &str) {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let ext = name.split_once('.').map_or("", |(_, e)| e);
    let ext = ext.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    (dir, ext.split('.').next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob as large as the new layer's files (incompressible data).
    const BLOB: u64 = 100_000_000;

    fn files(list: &[(&str, u64)]) -> Vec<LayerFile> {
        list.iter().map(|(p, s)| (p.to_string(), *s)).collect()
    }

    #[test]
    fn an_unrelated_small_old_layer_is_hopeless_for_a_big_new_one() {
        let old = files(&[("etc/motd", 1_000), ("bin/tool", 2_000_000)]);
        let new = files(&[("opt/model/weights.bin", 100_000_000)]);
        let e = Estimate::of(&old, &new);
        assert_eq!(e.copyable, 0);
        assert!(e.hopeless(BLOB), "{e:?}");
    }

    #[test]
    fn the_same_paths_with_new_content_can_pay_off() {
        let old = files(&[("app/main", 40_000_000), ("app/data.db", 60_000_000)]);
        let new = files(&[("app/main", 41_000_000), ("app/data.db", 60_000_000)]);
        let e = Estimate::of(&old, &new);
        assert_eq!(e.copyable, 100_000_000);
        assert!(!e.hopeless(BLOB));
    }

    #[test]
    fn a_version_in_a_file_or_folder_name_still_finds_its_counterpart() {
        let old = files(&[
            ("usr/lib/libssl.so.3.0.11", 5_000_000),
            ("usr/lib/python3.11/site.py", 30_000),
        ]);
        let new = files(&[
            ("usr/lib/libssl.so.3.0.13", 5_100_000),
            ("usr/lib/python3.12/site.py", 31_000),
        ]);
        let e = Estimate::of(&old, &new);
        assert_eq!(e.copyable, 5_030_000);
        assert!(!e.hopeless(e.new_bytes));
    }

    #[test]
    fn a_small_old_layer_cannot_save_more_than_it_holds() {
        let old = files(&[("data/blob", 3_000_000)]);
        let new = files(&[("data/blob", 100_000_000)]);
        let e = Estimate::of(&old, &new);
        assert_eq!(e.best_saving(), 3_000_000);
        assert!(e.hopeless(BLOB));
    }

    #[test]
    fn a_big_file_renamed_in_a_renamed_folder_still_counts() {
        let old = files(&[("models/v1/w_a.bin", 90_000_000), ("etc/x", 10)]);
        let new = files(&[("models/v2/w_b.bin", 95_000_000)]);
        assert!(!Estimate::of(&old, &new).hopeless(BLOB));
    }

    #[test]
    fn a_saving_is_set_against_the_compressed_blob() {
        // 200 MB of new text (a 20 MB blob part) and 20 MB kept as is
        let old = files(&[("data/kept.bin", 20_000_000)]);
        let new = files(&[("data/kept.bin", 20_000_000), ("docs/new.txt", 200_000_000)]);
        let e = Estimate::of(&old, &new);
        assert!(!e.hopeless(40_000_000), "{e:?}");
        assert!(e.hopeless(400_000_000));
    }

    #[test]
    fn a_layer_of_folders_and_links_alone_is_never_hopeless() {
        assert!(!Estimate::of(&[], &[]).hopeless(BLOB));
    }
}
