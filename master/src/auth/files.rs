//! Small file helpers for the data directory: create private directories, write a
//! file atomically with a given mode, read a file with an error naming its path.
//! Only the `auth` module's own files go through here.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::AuthError;

/// Mode of private keys, tokens and kubeconfigs.
pub(crate) const PRIVATE: u32 = 0o600;
/// Mode of certificates (public material).
pub(crate) const PUBLIC: u32 = 0o644;

/// Creates `dir` (and its parents) with mode 0700 if it does not exist yet.
/// An existing directory keeps its mode: the operator may have chosen it.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), AuthError> {
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(source) => Err(AuthError::CreateDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Writes `contents` to `path` atomically (temporary file in the same directory,
/// fsync, rename) with permission bits `mode`.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), AuthError> {
    let tmp = temp_path(path);
    let write_err = |source| AuthError::Write {
        path: path.to_path_buf(),
        source,
    };
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // A stale temporary file from a crash keeps its old mode: set it explicitly.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(write_err)
}

/// Reads `path`; `Ok(None)` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, AuthError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuthError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads `path` as UTF-8 text; `Ok(None)` when it does not exist.
pub(crate) fn read_optional_text(path: &Path) -> Result<Option<String>, AuthError> {
    match read_optional(path)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| AuthError::Read {
                path: path.to_path_buf(),
                source: std::io::Error::new(ErrorKind::InvalidData, e),
            }),
    }
}

/// Tightens the mode of an existing private file to 0600 if it is looser.
pub(crate) fn tighten_mode(path: &Path) -> Result<(), AuthError> {
    let meta = fs::metadata(path).map_err(|source| AuthError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, Permissions::from_mode(PRIVATE)).map_err(|source| {
            AuthError::Write {
                path: path.to_path_buf(),
                source,
            }
        })?;
    }
    Ok(())
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write_atomic(&path, b"one", 0o600).expect("first write");
        write_atomic(&path, b"two", 0o600).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!temp_path(&path).exists(), "temporary file left behind");
    }

    #[test]
    fn tighten_mode_fixes_world_readable_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        write_atomic(&path, b"k", 0o644).expect("write");
        tighten_mode(&path).expect("tighten");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn private_dir_is_created_0700() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("a/b");
        ensure_private_dir(&data).expect("create");
        let mode = fs::metadata(&data).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
