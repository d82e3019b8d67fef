//! Unpacks one layer blob (plain, gzip or zstd tar) into a directory the way
//! overlayfs wants it as a lower layer, hashing as it reads: the compressed bytes
//! give the blob digest, the tar bytes give the diffID, both checked by the caller
//! before the directory is moved into the store.

use super::digest::HashingReader;
use super::error::{io_err, ImageError};
use super::whiteout::{self, EntryAction, OPAQUE_VALUE, OPAQUE_XATTR};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::lchown;
use std::path::{Component, Path, PathBuf};

/// How a layer blob is compressed, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Tells the compression of a blob from its magic number.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// What unpacking a layer measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar: the layer's diffID.
    pub diff_id: String,
    /// Length of the uncompressed tar.
    pub size: u64,
    /// sha256 of the blob as read (compressed or not).
    pub blob_digest: String,
    pub blob_size: u64,
    pub compression: Compression,
}

/// Unpacks the layer blob `blob` into the existing empty directory `dest`.
/// `preserve_owner` sets file owners from the tar (needs root); whiteouts need root.
pub fn unpack_layer(
    blob: impl Read,
    dest: &Path,
    preserve_owner: bool,
) -> Result<Unpacked, ImageError> {
    unpack_layer_expecting(blob, dest, preserve_owner, None)
}

/// [`unpack_layer`] of a blob that should hash to `expected`: when unpacking
/// fails (a truncated or corrupted blob usually breaks the decompressor or the
/// tar first), the rest of the blob is read and, if its digest is not
/// `expected`, the error says so — the cause, not the symptom.
pub fn unpack_layer_expecting(
    blob: impl Read,
    dest: &Path,
    preserve_owner: bool,
    expected: Option<&str>,
) -> Result<Unpacked, ImageError> {
    let what = || format!("unpacking a layer into {}", dest.display());
    let mut raw = HashingReader::new(blob);
    let unpacked = (|| {
        let mut buffered = BufReader::with_capacity(256 * 1024, &mut raw);
        let compression = sniff(buffered.fill_buf().map_err(io_err(what()))?);
        let decoded: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(buffered),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered).map_err(io_err(what()))?,
            ),
        };
        let mut tar_bytes = HashingReader::new(decoded);
        unpack_tar(&mut tar_bytes, dest, preserve_owner)?;
        tar_bytes.drain().map_err(io_err(what()))?;
        let (diff_id, size) = tar_bytes.finish();
        Ok((diff_id, size, compression))
    })();
    let (diff_id, size, compression) = match unpacked {
        Ok(u) => u,
        Err(e) => {
            if let Some(expected) = expected {
                if raw.drain().is_ok() {
                    let (actual, _) = raw.finish();
                    if actual != expected {
                        return Err(ImageError::DigestMismatch {
                            what: format!("layer blob {expected}"),
                            expected: expected.to_string(),
                            actual,
                        });
                    }
                }
            }
            return Err(e);
        }
    };
    raw.drain().map_err(io_err(what()))?;
    let (blob_digest, blob_size) = raw.finish();
    Ok(Unpacked {
        diff_id,
        size,
        blob_digest,
        blob_size,
        compression,
    })
}

fn unpack_tar(tar_bytes: impl Read, dest: &Path, preserve_owner: bool) -> Result<(), ImageError> {
    let what = || format!("unpacking a layer into {}", dest.display());
    let mut archive = tar::Archive::new(tar_bytes);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(preserve_owner);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(io_err(what()))? {
        let mut entry = entry.map_err(io_err(what()))?;
        let raw_path = entry.path().map_err(io_err(what()))?.into_owned();
        let action = whiteout::classify(&raw_path).map_err(|source| ImageError::Path {
            what: what(),
            source,
        })?;
        match action {
            EntryAction::Skip => {}
            EntryAction::Whiteout(rel) => {
                let target = prepare_target(dest, &rel)?;
                make_node(&target, SFlag::S_IFCHR, Mode::empty(), 0, 0)?;
            }
            EntryAction::Opaque(rel) => {
                let dir = if rel.as_os_str().is_empty() {
                    dest.to_path_buf()
                } else {
                    let dir = inside(dest, &rel, true)?;
                    if fs::symlink_metadata(&dir).is_err() {
                        fs::create_dir(&dir)
                            .map_err(io_err(format!("creating {}", dir.display())))?;
                    }
                    dir
                };
                xattr::set(&dir, OPAQUE_XATTR, OPAQUE_VALUE)
                    .map_err(io_err(format!("marking {} opaque", dir.display())))?;
            }
            EntryAction::Unpack(rel) => {
                let kind = entry.header().entry_type();
                let node = match kind {
                    tar::EntryType::Char => Some(SFlag::S_IFCHR),
                    tar::EntryType::Block => Some(SFlag::S_IFBLK),
                    tar::EntryType::Fifo => Some(SFlag::S_IFIFO),
                    _ => None,
                };
                if let Some(kind) = node {
                    let h = entry.header();
                    let bad = |e: io::Error| {
                        ImageError::invalid(format!("layer entry {}", rel.display()), e.to_string())
                    };
                    let mode = h.mode().map_err(bad)?;
                    let major = h.device_major().map_err(bad)?.unwrap_or(0);
                    let minor = h.device_minor().map_err(bad)?.unwrap_or(0);
                    let (uid, gid) = (h.uid().map_err(bad)?, h.gid().map_err(bad)?);
                    let target = prepare_target(dest, &rel)?;
                    make_node(
                        &target,
                        kind,
                        Mode::from_bits_truncate(mode & 0o7777),
                        major,
                        minor,
                    )?;
                    if preserve_owner {
                        let (uid, gid) = (u32::try_from(uid).ok(), u32::try_from(gid).ok());
                        lchown(&target, uid, gid)
                            .map_err(io_err(format!("chown {}", target.display())))?;
                    }
                } else {
                    entry.unpack_in(dest).map_err(io_err(format!(
                        "unpacking {} into {}",
                        rel.display(),
                        dest.display()
                    )))?;
                }
            }
        }
    }
    Ok(())
}

/// `root/rel`, creating missing parent directories, refusing a path that goes
/// through a symlink or a non-directory (it could lead outside the layer).
fn inside(root: &Path, rel: &Path, create_parents: bool) -> Result<PathBuf, ImageError> {
    let mut path = root.to_path_buf();
    let mut parts = rel.components().peekable();
    while let Some(c) = parts.next() {
        let Component::Normal(part) = c else {
            return Err(ImageError::invalid(
                format!("layer entry {}", rel.display()),
                "not a plain relative path",
            ));
        };
        path.push(part);
        if parts.peek().is_none() {
            break;
        }
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ImageError::invalid(
                    format!("layer entry {}", rel.display()),
                    "a parent is a symlink or not a directory",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create_parents => {
                fs::create_dir(&path).map_err(io_err(format!("creating {}", path.display())))?;
            }
            Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
        }
    }
    Ok(path)
}

/// The path for a node at `rel`, with whatever was there removed.
fn prepare_target(root: &Path, rel: &Path) -> Result<PathBuf, ImageError> {
    let target = inside(root, rel, true)?;
    match fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&target),
        Ok(_) => fs::remove_file(&target),
        Err(_) => Ok(()),
    }
    .map_err(io_err(format!("replacing {}", target.display())))?;
    Ok(target)
}

fn make_node(
    path: &Path,
    kind: SFlag,
    mode: Mode,
    major: u32,
    minor: u32,
) -> Result<(), ImageError> {
    mknod(
        path,
        kind,
        mode,
        makedev(u64::from(major), u64::from(minor)),
    )
    .map_err(|e| ImageError::Io {
        what: format!("creating device node {} (root needed)", path.display()),
        source: io::Error::from(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    pub(crate) fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(0);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Directory);
        b.append_data(&mut h, path, &[][..]).unwrap();
    }

    fn tar_of(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap()
    }

    #[test]
    fn sniff_tells_compression_by_magic() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(sniff(b"etc/\0\0"), Compression::None);
        assert_eq!(sniff(&[]), Compression::None);
    }

    #[test]
    fn plain_and_compressed_layers_give_the_same_diff_id() {
        let t = tar_of(|b| {
            dir(b, "etc/");
            file(b, "etc/hello", b"hi\n");
        });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&t[..], 1).unwrap();
        let want = super::super::digest::sha256_of(&t);
        for (blob, kind) in [
            (&t, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            let d = tempfile::tempdir().unwrap();
            let u = unpack_layer(&blob[..], d.path(), false).unwrap();
            assert_eq!(u.compression, kind);
            assert_eq!(u.diff_id, want);
            assert_eq!(u.size, t.len() as u64);
            assert_eq!(u.blob_digest, super::super::digest::sha256_of(blob));
            assert_eq!(fs::read(d.path().join("etc/hello")).unwrap(), b"hi\n");
        }
    }

    #[test]
    fn a_corrupted_blob_is_reported_as_a_digest_mismatch() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let t = tar_of(|b| file(b, "data", &big));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let good = gz.finish().unwrap();
        let want = super::super::digest::sha256_of(&good);
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 16] {
            *b ^= 0x5a;
        }
        let d = tempfile::tempdir().unwrap();
        let e = unpack_layer_expecting(&bad[..], d.path(), false, Some(&want)).unwrap_err();
        assert!(
            matches!(&e, ImageError::DigestMismatch { expected, .. } if *expected == want),
            "{e:?}"
        );
        // Without an expected digest the decompressor's complaint is all there is.
        let d = tempfile::tempdir().unwrap();
        let e = unpack_layer(&bad[..], d.path(), false).unwrap_err();
        assert!(!matches!(e, ImageError::DigestMismatch { .. }), "{e:?}");
        let d = tempfile::tempdir().unwrap();
        assert!(unpack_layer_expecting(&good[..], d.path(), false, Some(&want)).is_ok());
    }

    #[test]
    fn escaping_entries_are_refused() {
        // tar::Builder refuses '..' itself, so write the name into the header by hand.
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(1);
        h.set_mode(0o644);
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        let mut t = Vec::new();
        t.extend_from_slice(h.as_bytes());
        t.extend_from_slice(b"x");
        t.resize(512 * 2, 0);
        t.resize(512 * 4, 0);
        let d = tempfile::tempdir().unwrap();
        let inner = d.path().join("layer");
        fs::create_dir(&inner).unwrap();
        let err = unpack_layer(&t[..], &inner, false).unwrap_err();
        assert!(err.to_string().contains("unpacking a layer"), "{err}");
        assert!(!d.path().join("escape").exists());
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts_and_opaque_dirs_get_the_xattr() {
        if !is_root() {
            eprintln!("SKIP: whiteout char devices and trusted xattrs need root");
            return;
        }
        let t = tar_of(|b| {
            dir(b, "etc/");
            file(b, "etc/.wh.passwd", b"");
            file(b, "var/cache/.wh..wh..opq", b"");
            file(b, "var/cache/kept", b"k");
            file(b, ".wh..wh.plnk", b"");
        });
        let d = tempfile::tempdir().unwrap();
        unpack_layer(&t[..], d.path(), true).unwrap();
        let wh = fs::symlink_metadata(d.path().join("etc/passwd")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!d.path().join("etc/.wh.passwd").exists());
        let opq = xattr::get(d.path().join("var/cache"), OPAQUE_XATTR).unwrap();
        assert_eq!(opq.as_deref(), Some(OPAQUE_VALUE));
        assert!(d.path().join("var/cache/kept").exists());
        assert!(!d.path().join("var/cache/.wh..wh..opq").exists());
        assert!(!d.path().join(".wh..wh.plnk").exists());
    }

    #[test]
    fn device_entries_become_device_nodes() {
        if !is_root() {
            eprintln!("SKIP: device nodes need root");
            return;
        }
        let t = tar_of(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1);
            h.set_size(0);
            h.set_mode(0o666);
            h.set_entry_type(tar::EntryType::Char);
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            b.append_data(&mut h, "dev/null", &[][..]).unwrap();
        });
        let d = tempfile::tempdir().unwrap();
        unpack_layer(&t[..], d.path(), true).unwrap();
        let m = fs::symlink_metadata(d.path().join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), makedev(1, 3));
    }

    #[test]
    fn whiteouts_through_symlinks_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("link")).unwrap();
        let err = prepare_target(d.path(), Path::new("link/victim")).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }
}
