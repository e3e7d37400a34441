//! A named volume's directory on first use. A new volume takes the owner
//! and mode of the directory the image has at its target, as a Docker
//! named volume does when first mounted: an image whose `USER` owns its
//! data directory (`RUN chown app /data`) can write to its volume. An
//! existing volume is left as it is (its contents are the service's). The
//! image's directory is looked up with symlinks resolved inside the rootfs,
//! never on the host, and the volume appears whole or not at all (made
//! under a temporary name, then renamed), so a crash midway never leaves a
//! root-owned volume behind for good.

use crate::native::inroot;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Creates the volume directory `source` unless it exists, owned like the
/// image's `target` directory in `rootfs` when there is one.
pub(crate) fn create_source(rootfs: &Path, source: &Path, target: &str) -> io::Result<()> {
    if source.symlink_metadata().is_ok() {
        return Ok(());
    }
    let (Some(parent), Some(name)) = (source.parent(), source.file_name()) else {
        return fs::create_dir_all(source);
    };
    fs::create_dir_all(parent)?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(".creating");
    let temp = parent.join(temp);
    if temp.symlink_metadata().is_ok() {
        fs::remove_dir_all(&temp)?;
    }
    fs::create_dir(&temp)?;
    if let Some(meta) = image_dir(rootfs, target) {
        std::os::unix::fs::chown(&temp, Some(meta.uid()), Some(meta.gid()))?;
        fs::set_permissions(&temp, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    fs::rename(&temp, source)
}

/// Metadata of the directory at `target` inside the image, if it has one.
fn image_dir(rootfs: &Path, target: &str) -> Option<fs::Metadata> {
    let host = inroot::resolve(rootfs, target).ok()??;
    host.symlink_metadata().ok().filter(fs::Metadata::is_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_new_volume_takes_the_owner_and_mode_of_the_images_directory() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("data")).unwrap();
        fs::set_permissions(rootfs.join("data"), fs::Permissions::from_mode(0o750)).unwrap();
        let owner = nix::unistd::geteuid().is_root().then_some(1000);
        if let Some(uid) = owner {
            std::os::unix::fs::chown(rootfs.join("data"), Some(uid), Some(uid)).unwrap();
        }
        let volume = dir.path().join("volumes/appdata");
        create_source(&rootfs, &volume, "/data").unwrap();
        let meta = fs::metadata(&volume).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o750);
        if let Some(uid) = owner {
            assert_eq!((meta.uid(), meta.gid()), (uid, uid));
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("volumes")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary directory is left");
    }

    #[test]
    fn an_existing_volume_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("data")).unwrap();
        fs::set_permissions(rootfs.join("data"), fs::Permissions::from_mode(0o700)).unwrap();
        let volume = dir.path().join("volumes/appdata");
        fs::create_dir_all(&volume).unwrap();
        fs::set_permissions(&volume, fs::Permissions::from_mode(0o755)).unwrap();
        create_source(&rootfs, &volume, "/data").unwrap();
        assert_eq!(fs::metadata(&volume).unwrap().mode() & 0o7777, 0o755);
    }

    #[test]
    fn an_image_directory_reached_through_a_link_to_the_host_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        let host = dir.path().join("host-dir");
        fs::create_dir_all(&host).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(0o711)).unwrap();
        symlink(&host, rootfs.join("data")).unwrap();
        let volume = dir.path().join("volumes/appdata");
        create_source(&rootfs, &volume, "/data").unwrap();
        assert_ne!(fs::metadata(&volume).unwrap().mode() & 0o7777, 0o711);
    }
}
