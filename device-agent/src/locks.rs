//! Update locks: an application holds back the swap of its release (a
//! job that must not be cut short: a print, a firmware flash, a payment)
//! by creating `updates.lock` at the top of one of its named volumes, as
//! balena's lock file does. While such a file exists in a volume of a
//! service of the running release, an installed update waits in phase
//! `deferred`, reported with the holder; deleting the file lets the swap
//! proceed at the next tick, and the operator can override the lock
//! (`petrel deploy --force`, or a group's `--lock-override-after`).
//!
//! The file's first line, if any, says why it is held; it is reported
//! with the holder (at most [`NOTE_CHARS`] characters of it).

use crate::apply::volumes_dir;
use petrel_protocol::ReleaseManifest;
use std::io::Read;
use std::path::Path;

/// The lock file's name at the top of a named volume.
pub const LOCK_FILE: &str = "updates.lock";

/// Most characters of the holder's note that are reported.
pub const NOTE_CHARS: usize = 120;

/// Who holds an update lock among the services of `running`, if anyone:
/// `worker (volume jobs: printing order 42)`.
pub fn holder(rootfs_dir: &Path, running: Option<&ReleaseManifest>) -> Option<String> {
    let running = running?;
    let volumes = volumes_dir(rootfs_dir);
    for (service, spec) in &running.services {
        for v in spec.volume_mounts().unwrap_or_default() {
            let lock = volumes.join(&v.name).join(LOCK_FILE);
            // a lock that is a directory or a link still counts: the
            // application meant to hold it; only its note is not read
            if std::fs::symlink_metadata(&lock).is_err() {
                continue;
            }
            let note = note(&lock);
            let place = format!("volume {}", v.name);
            return Some(match note.is_empty() {
                true => format!("{service} ({place})"),
                false => format!("{service} ({place}: {note})"),
            });
        }
    }
    None
}

/// The first line of a regular lock file, printable characters only.
fn note(lock: &Path) -> String {
    let regular = std::fs::symlink_metadata(lock).is_ok_and(|m| m.is_file());
    if !regular {
        return String::new();
    }
    let mut head = Vec::new();
    let read = std::fs::File::open(lock).and_then(|f| f.take(1024).read_to_end(&mut head));
    if read.is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(NOTE_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release_with_volume(service: &str, volume: &str) -> ReleaseManifest {
        let mut release = crate::machine::tests::release("1");
        let mut spec = release.services.remove("web").unwrap();
        spec.volumes = vec![format!("{volume}:/data")];
        release.services.insert(service.to_string(), spec);
        release
    }

    #[test]
    fn a_lock_file_in_a_running_services_volume_names_its_holder_and_note() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let release = release_with_volume("printer", "jobs");
        assert_eq!(holder(&rootfs, Some(&release)), None);
        let vol = dir.path().join("volumes/jobs");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(vol.join(LOCK_FILE), "printing order 42\x1b[2J\nsecond line").unwrap();
        assert_eq!(
            holder(&rootfs, Some(&release)).as_deref(),
            Some("printer (volume jobs: printing order 42[2J)")
        );
        std::fs::write(vol.join(LOCK_FILE), "").unwrap();
        assert_eq!(
            holder(&rootfs, Some(&release)).as_deref(),
            Some("printer (volume jobs)")
        );
        std::fs::remove_file(vol.join(LOCK_FILE)).unwrap();
        assert_eq!(holder(&rootfs, Some(&release)), None);
        assert_eq!(holder(&rootfs, None), None);
    }
}
