//! Writing keys (0600, created that way, never world-readable for an
//! instant) and certificates, and reading PEM files with errors naming
//! the file.

use crate::TlsError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a secret (a private key) readable by its owner only. The file
/// is written beside and renamed, so a crash leaves the old one or none.
pub fn write_secret(path: &Path, text: &str) -> Result<(), TlsError> {
    write_mode(path, text, 0o600)
}

/// Writes a public file (certificate, CRL, config).
pub fn write_public(path: &Path, text: &str) -> Result<(), TlsError> {
    write_mode(path, text, 0o644)
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Reads a PEM file.
pub fn read_pem(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_are_written_owner_only_and_replace_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/device.key");
        write_secret(&path, "one").unwrap();
        write_secret(&path, "two").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(read_pem(&path).unwrap(), "two");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = read_pem(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
