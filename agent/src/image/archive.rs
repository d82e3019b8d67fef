//! Random access to the members of an image archive (an uncompressed tar, as
//! `docker save` and `skopeo copy … oci-archive:` write): one pass records where
//! each member's bytes are, then members are read in whatever order the manifest
//! wants without unpacking the archive to disk.

use super::error::{io_err, ImageError};
use super::whiteout::normalize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Manifests and configs above this size are refused (they are a few KiB).
const MAX_SMALL: u64 = 16 << 20;

#[derive(Debug, Clone)]
enum Member {
    File {
        offset: u64,
        size: u64,
    },
    /// A symlink (relative to its directory) or hard link (relative to the root).
    Link(String),
}

/// An opened archive with the position of every member.
pub struct Archive {
    path: PathBuf,
    file: File,
    members: HashMap<String, Member>,
}

impl Archive {
    pub fn open(path: &Path) -> Result<Archive, ImageError> {
        let what = || format!("reading archive {}", path.display());
        let file = File::open(path).map_err(io_err(what()))?;
        let mut members = HashMap::new();
        {
            let mut tar = tar::Archive::new(&file);
            for entry in tar.entries_with_seek().map_err(io_err(what()))? {
                let entry = entry.map_err(io_err(what()))?;
                let raw = entry.path().map_err(io_err(what()))?.into_owned();
                let Ok(name) = normalize(&raw) else { continue };
                let Some(name) = name.to_str().map(str::to_string) else {
                    continue;
                };
                let kind = entry.header().entry_type();
                let member = if kind.is_symlink() || kind.is_hard_link() {
                    let Some(target) = entry.link_name().map_err(io_err(what()))? else {
                        continue;
                    };
                    let base = if kind.is_symlink() {
                        Path::new(&name)
                            .parent()
                            .map(Path::to_path_buf)
                            .unwrap_or_default()
                    } else {
                        PathBuf::new()
                    };
                    let joined = lexical_join(&base, &target);
                    Member::Link(joined)
                } else if kind.is_file()
                    || kind == tar::EntryType::Continuous
                    || kind == tar::EntryType::GNUSparse
                {
                    Member::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    }
                } else {
                    continue;
                };
                members.insert(name, member);
            }
        }
        Ok(Archive {
            path: path.to_path_buf(),
            file,
            members,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }

    fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = normalize(Path::new(name)).ok()?.to_str()?.to_string();
        for _ in 0..16 {
            match self.members.get(&name)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link(target) => name = target.clone(),
            }
        }
        None
    }

    /// A reader over member `name`.
    pub fn open_member(&self, name: &str) -> Result<impl Read + '_, ImageError> {
        let (offset, size) = self.locate(name).ok_or_else(|| {
            ImageError::invalid(
                format!("archive {}", self.path.display()),
                format!("it has no {name}"),
            )
        })?;
        let mut f = &self.file;
        f.seek(SeekFrom::Start(offset))
            .map_err(io_err(format!("reading {name} in {}", self.path.display())))?;
        Ok(f.take(size))
    }

    /// The whole of a small member (a manifest, config or index).
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let (_, size) = self.locate(name).ok_or_else(|| {
            ImageError::invalid(
                format!("archive {}", self.path.display()),
                format!("it has no {name}"),
            )
        })?;
        if size > MAX_SMALL {
            return Err(ImageError::invalid(
                format!("{name} in {}", self.path.display()),
                "too large",
            ));
        }
        let mut out = Vec::with_capacity(size as usize);
        self.open_member(name)?
            .read_to_end(&mut out)
            .map_err(io_err(format!("reading {name} in {}", self.path.display())))?;
        Ok(out)
    }
}

/// `base/target` with `.` and `..` resolved lexically (never above the root).
fn lexical_join(base: &Path, target: &Path) -> String {
    let mut parts: Vec<String> = if target.is_absolute() {
        Vec::new()
    } else {
        base.iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect()
    };
    for c in target.components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_through_links_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        b.append_data(&mut h, "./one/layer.tar", &b"hello"[..])
            .unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, "two/layer.tar", "../one/layer.tar")
            .unwrap();
        b.into_inner().unwrap();
        let a = Archive::open(&path).unwrap();
        assert_eq!(a.read_small("one/layer.tar").unwrap(), b"hello");
        assert_eq!(a.read_small("./two/layer.tar").unwrap(), b"hello");
        assert!(!a.contains("three"));
        assert!(a
            .read_small("three")
            .unwrap_err()
            .to_string()
            .contains("has no three"));
    }

    #[test]
    fn lexical_join_stays_inside() {
        assert_eq!(lexical_join(Path::new("a/b"), Path::new("../c")), "a/c");
        assert_eq!(lexical_join(Path::new("a"), Path::new("../../../c")), "c");
        assert_eq!(lexical_join(Path::new("a"), Path::new("/x/y")), "x/y");
    }
}
