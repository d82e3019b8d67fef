//! The container's filesystem, made inside its new mount namespace: the overlay
//! rootfs, the spec's mounts (/proc, /dev, /sys, binds), a minimal /dev, the
//! pivot_root, masked and read-only paths. Runs in the container's process
//! before exec; errors are strings for the user.

use super::record::ContainerMeta;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{Mount, Spec};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

type R<T> = Result<T, String>;

fn m(
    src: Option<&Path>,
    dst: &Path,
    typ: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> R<()> {
    mount(src, dst, typ, flags, data).map_err(|e| {
        format!(
            "mount {} on {}{}: {e}",
            src.map(|s| s.display().to_string())
                .unwrap_or_else(|| "-".into()),
            dst.display(),
            typ.map(|t| format!(" ({t})")).unwrap_or_default()
        )
    })
}

/// Makes the whole rootfs under `dir/rootfs` and returns its path.
pub fn setup_rootfs(spec: &Spec, meta: &ContainerMeta, dir: &Path) -> R<PathBuf> {
    m(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    let rootfs = dir.join("rootfs");
    if meta.layers.is_empty() {
        return Err("image has no layers".into());
    }
    let lower: Vec<String> = meta
        .layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    // volatile: the upper dir is thrown away with the container, so skip the
    // syncs that otherwise make every overlay unmount flush the host fs.
    let overlay = |data: &str| {
        m(
            Some(Path::new("overlay")),
            &rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(data),
        )
    };
    if overlay(&format!("{data},volatile")).is_err() {
        overlay(&data)?;
    }
    let mut dev_tmpfs = false;
    for mnt in spec.mounts().iter().flatten() {
        mount_one(&rootfs, mnt)?;
        if mnt.destination() == Path::new("/dev") && mnt.typ().as_deref() == Some("tmpfs") {
            dev_tmpfs = true;
        }
    }
    if dev_tmpfs {
        make_dev(&rootfs)?;
    }
    Ok(rootfs)
}

/// Flags and data from OCI mount options.
pub fn parse_options(opts: &[String]) -> (MsFlags, Vec<String>, bool, bool, bool) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    let (mut bind, mut rec, mut private) = (false, false, false);
    for o in opts {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "bind" => bind = true,
            "rbind" => {
                bind = true;
                rec = true
            }
            "private" | "rprivate" => private = true,
            other => data.push(other.to_string()),
        }
    }
    (flags, data, bind, rec, private)
}

fn mount_one(rootfs: &Path, mnt: &Mount) -> R<()> {
    let dest = safe_join(rootfs, mnt.destination())?;
    let typ = mnt.typ().clone().unwrap_or_default();
    let (flags, data, bind, rec, private) = parse_options(mnt.options().as_deref().unwrap_or(&[]));
    if bind || typ == "bind" {
        let src = mnt
            .source()
            .clone()
            .ok_or_else(|| format!("bind mount {} has no source", mnt.destination().display()))?;
        let is_dir = fs::metadata(&src)
            .map_err(|e| format!("bind source {}: {e}", src.display()))?
            .is_dir();
        make_target(&dest, is_dir)?;
        let rflag = if rec {
            MsFlags::MS_REC
        } else {
            MsFlags::empty()
        };
        m(Some(&src), &dest, None, MsFlags::MS_BIND | rflag, None)?;
        if private {
            m(None, &dest, None, MsFlags::MS_PRIVATE | rflag, None)?;
        }
        if !flags.is_empty() {
            m(
                None,
                &dest,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                None,
            )?;
        }
        return Ok(());
    }
    make_target(&dest, true)?;
    let src = mnt.source().clone().unwrap_or_else(|| PathBuf::from(&typ));
    let data = data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    match m(Some(&src), &dest, Some(&typ), flags, data) {
        Ok(()) => Ok(()),
        // sysfs cannot be mounted fresh when the net namespace is the host's
        // in some setups; a read-only bind of the host's is what runc does then.
        Err(_) if typ == "sysfs" => {
            m(
                Some(Path::new("/sys")),
                &dest,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            m(
                None,
                &dest,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                None,
            )
        }
        Err(e) => Err(e),
    }
}

fn make_target(dest: &Path, dir: bool) -> R<()> {
    if dir {
        fs::create_dir_all(dest).map_err(|e| format!("mkdir {}: {e}", dest.display()))
    } else {
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
        }
        if !dest.exists() {
            fs::File::create(dest).map_err(|e| format!("create {}: {e}", dest.display()))?;
        }
        Ok(())
    }
}

/// `root` joined with `dest`, refusing `..` and symlinks in the image on the
/// way (a final symlink is replaced, as it lives in the container's upper dir).
pub fn safe_join(root: &Path, dest: &Path) -> R<PathBuf> {
    let comps: Vec<Component> = dest.components().collect();
    let mut p = root.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        match c {
            Component::RootDir | Component::CurDir => continue,
            Component::Normal(n) => p.push(n),
            _ => {
                return Err(format!(
                    "mount destination {} is not a clean absolute path",
                    dest.display()
                ))
            }
        }
        if let Ok(md) = fs::symlink_metadata(&p) {
            if md.file_type().is_symlink() {
                if i + 1 == comps.len() {
                    fs::remove_file(&p)
                        .map_err(|e| format!("remove symlink {}: {e}", p.display()))?;
                } else {
                    return Err(format!(
                        "mount destination {} goes through a symlink",
                        dest.display()
                    ));
                }
            }
        }
    }
    Ok(p)
}

/// Device nodes (bind mounts of the host's) and the usual /dev symlinks.
fn make_dev(rootfs: &Path) -> R<()> {
    let dev = rootfs.join("dev");
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(name);
        fs::File::create(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
        let host = Path::new("/dev").join(name);
        m(Some(&host), &target, None, MsFlags::MS_BIND, None)?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let l = dev.join(link);
        if fs::symlink_metadata(&l).is_err() {
            symlink(to, &l).map_err(|e| format!("symlink {}: {e}", l.display()))?;
        }
    }
    Ok(())
}

/// pivot_root into `rootfs` and drop the old root.
pub fn pivot(rootfs: &Path) -> R<()> {
    nix::unistd::chdir(rootfs).map_err(|e| format!("chdir {}: {e}", rootfs.display()))?;
    nix::unistd::pivot_root(".", ".")
        .map_err(|e| format!("pivot_root {}: {e}", rootfs.display()))?;
    // The old root is stacked under the new one at "."; make it private so the
    // detach does not propagate, then drop it.
    m(
        None,
        Path::new("."),
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None,
    )?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("unmount old root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))
}

/// Hides masked paths and makes read-only paths read-only (after pivot).
pub fn mask_and_protect(spec: &Spec) -> R<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for p in linux.masked_paths().iter().flatten() {
        let path = Path::new(p);
        match fs::metadata(path) {
            Ok(md) if md.is_dir() => m(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )?,
            Ok(_) => m(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            )?,
            Err(_) => {}
        }
    }
    for p in linux.readonly_paths().iter().flatten() {
        let path = Path::new(p);
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        m(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        m(
            None,
            path,
            None,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None,
        )?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        m(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let o: Vec<String> = [
            "nosuid",
            "ro",
            "mode=755",
            "size=65536k",
            "rbind",
            "rprivate",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (f, data, bind, rec, private) = parse_options(&o);
        assert!(f.contains(MsFlags::MS_NOSUID | MsFlags::MS_RDONLY));
        assert_eq!(data, vec!["mode=755", "size=65536k"]);
        assert!(bind && rec && private);
    }

    #[test]
    fn safe_join_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("etc")).unwrap();
        symlink("/", d.path().join("evil")).unwrap();
        assert_eq!(
            safe_join(d.path(), Path::new("/etc/hosts")).unwrap(),
            d.path().join("etc/hosts")
        );
        assert!(safe_join(d.path(), Path::new("/evil/x")).is_err());
        assert!(safe_join(d.path(), Path::new("/../x")).is_err());
        // A final symlink is replaced.
        assert_eq!(
            safe_join(d.path(), Path::new("/evil")).unwrap(),
            d.path().join("evil")
        );
        assert!(!d.path().join("evil").exists());
    }
}
