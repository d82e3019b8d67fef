//! What each path in a layer tar means for the unpacked layer: OCI whiteouts
//! (`.wh.name` deletes `name` from lower layers, `.wh..wh..opq` hides a whole lower
//! directory) become overlayfs whiteouts (a 0:0 character device) and opaque
//! directories (xattr `trusted.overlay.opaque=y`). Pure path logic; the unpacker
//! does the I/O.

use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const META_PREFIX: &str = ".wh..wh.";

/// The overlayfs xattr that marks an opaque directory, and its value.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
pub const OPAQUE_VALUE: &[u8] = b"y";

/// What to do with one tar entry, paths relative to the layer root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryAction {
    /// An ordinary entry at this path.
    Unpack(PathBuf),
    /// Make an overlay whiteout (char device 0:0) at this path.
    Whiteout(PathBuf),
    /// Mark this directory opaque (the layer root itself when empty).
    Opaque(PathBuf),
    /// Nothing to do: the root entry `./` or aufs metadata (`.wh..wh.plnk`, …).
    Skip,
}

/// Why a path cannot be unpacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("entry path {0:?} leaves the layer (it has a '..' component)")]
    Escapes(String),
    #[error("entry path {0:?} is not valid UTF-8 or names nothing")]
    Unusable(String),
}

/// Classifies the tar entry path `raw`: leading `/` and `.` components are dropped,
/// `..` is refused.
pub fn classify(raw: &Path) -> Result<EntryAction, PathError> {
    let rel = normalize(raw)?;
    let Some(name) = rel.file_name() else {
        return Ok(EntryAction::Skip);
    };
    let Some(name) = name.to_str() else {
        return Ok(EntryAction::Unpack(rel));
    };
    let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    if name == OPAQUE_MARKER {
        return Ok(EntryAction::Opaque(parent));
    }
    if name.starts_with(META_PREFIX) {
        return Ok(EntryAction::Skip);
    }
    if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
        if target.is_empty() || target == "." || target == ".." {
            return Err(PathError::Unusable(raw.display().to_string()));
        }
        return Ok(EntryAction::Whiteout(parent.join(target)));
    }
    Ok(EntryAction::Unpack(rel))
}

/// `raw` relative to the layer root, without `/`, `.` or `..` components.
pub fn normalize(raw: &Path) -> Result<PathBuf, PathError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(PathError::Escapes(raw.display().to_string())),
            Component::Normal(p) => out.push(p),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str) -> EntryAction {
        classify(Path::new(p)).unwrap()
    }

    #[test]
    fn whiteouts_name_the_deleted_sibling() {
        assert_eq!(
            c("etc/.wh.passwd"),
            EntryAction::Whiteout("etc/passwd".into())
        );
        assert_eq!(c("./.wh.tmp"), EntryAction::Whiteout("tmp".into()));
        assert_eq!(
            c("/a/b/.wh..hidden"),
            EntryAction::Whiteout("a/b/.hidden".into())
        );
    }

    #[test]
    fn opaque_marker_names_its_directory() {
        assert_eq!(
            c("var/cache/.wh..wh..opq"),
            EntryAction::Opaque("var/cache".into())
        );
        assert_eq!(c(".wh..wh..opq"), EntryAction::Opaque(PathBuf::new()));
    }

    #[test]
    fn aufs_metadata_and_root_are_skipped() {
        assert_eq!(
            c(".wh..wh.plnk/123.456"),
            EntryAction::Unpack(".wh..wh.plnk/123.456".into())
        );
        assert_eq!(c(".wh..wh.plnk"), EntryAction::Skip);
        assert_eq!(c("./"), EntryAction::Skip);
        assert_eq!(c("/"), EntryAction::Skip);
    }

    #[test]
    fn ordinary_paths_are_normalised() {
        assert_eq!(
            c("./bin/busybox"),
            EntryAction::Unpack("bin/busybox".into())
        );
        assert_eq!(c("/usr//lib/./x"), EntryAction::Unpack("usr/lib/x".into()));
        assert_eq!(c("a/.whx"), EntryAction::Unpack("a/.whx".into()));
    }

    #[test]
    fn escaping_and_empty_whiteouts_are_refused() {
        assert!(matches!(
            classify(Path::new("../etc/passwd")),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            classify(Path::new("a/../../b")),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            classify(Path::new("a/.wh.")),
            Err(PathError::Unusable(_))
        ));
        assert!(matches!(
            classify(Path::new("a/.wh...")),
            Err(PathError::Unusable(_))
        ));
    }
}
