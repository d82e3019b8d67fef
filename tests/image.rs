//! End-to-end: `bosun image import|ls|rm` as a user runs them, on a busybox root
//! filesystem, an OCI archive made by umoci and skopeo, and a `docker save` style
//! tar built here. Unpacking keeps owners and makes whiteout devices, so the tests
//! that need it skip (with a reason) unless root.

mod common;

use common::host::is_root;
use common::{bosun_bin, require_tool};
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn skip_unless_root(why: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIP: needs root: {why}");
    false
}

fn bosun(args: &[&str]) -> Output {
    Command::new(bosun_bin())
        .args(args)
        .output()
        .expect("run bosun")
}

fn ok(args: &[&str]) -> String {
    let o = bosun(args);
    assert!(
        o.status.success(),
        "bosun {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `rows of bosun image ls` as [image, tag, id, size].
fn ls(data: &str) -> Vec<Vec<String>> {
    ok(&["image", "ls", "--data-dir", data])
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

const BUSYBOX: &str = "/bin/busybox";

/// A busybox root filesystem (see `common::host::busybox_rootfs`).
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    common::host::busybox_rootfs(&root, "bosun-image-test");
    root
}

fn entries(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn rootfs_import_ls_rm() {
    if !require_tool(
        Path::new(BUSYBOX),
        "the test image is built from busybox-static",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let root = busybox_rootfs(tmp.path());

    let out = ok(&[
        "image",
        "import",
        "--data-dir",
        data,
        "--rootfs",
        root.to_str().unwrap(),
        "--tag",
        "busybox:test",
    ]);
    assert!(out.contains("layer 1/1 sha256:"), "{out}");
    assert!(
        out.contains("imported docker.io/library/busybox:test"),
        "{out}"
    );
    let rows = ls(data);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "docker.io/library/busybox");
    assert_eq!(rows[0][1], "test");
    assert_eq!(rows[0][2].len(), 12);
    assert!(rows[0][3].ends_with("MB"), "{rows:?}");

    // The unpacked layer is the tree we gave, symlinks and all.
    let layers = Path::new(data).join("content/layers");
    assert_eq!(entries(&layers), 1);
    let layer = fs::read_dir(&layers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("rootfs");
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::metadata(layer.join("bin/busybox")).unwrap().len(),
        fs::metadata(BUSYBOX).unwrap().len()
    );

    // A second name for the same tree shares the layer.
    ok(&[
        "image",
        "import",
        "--data-dir",
        data,
        "--rootfs",
        root.to_str().unwrap(),
        "--tag",
        "localhost:5000/bb:2",
    ]);
    assert_eq!(ls(data).len(), 2);
    assert_eq!(entries(&layers), 1);

    let out = ok(&["image", "rm", "--data-dir", data, "busybox:test"]);
    assert!(
        out.contains("removed docker.io/library/busybox:test"),
        "{out}"
    );
    let rows = ls(data);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "localhost:5000/bb");
    assert_eq!(entries(&layers), 1, "still used by localhost:5000/bb:2");
    ok(&["image", "rm", "--data-dir", data, "localhost:5000/bb:2"]);
    assert!(ls(data).is_empty());
    assert_eq!(entries(&layers), 0);
    assert_eq!(entries(&Path::new(data).join("content/blobs/sha256")), 0);
}

#[test]
fn concurrent_imports_of_one_tree_store_one_layer() {
    if !require_tool(
        Path::new(BUSYBOX),
        "the test image is built from busybox-static",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let root = busybox_rootfs(tmp.path());
    let handles: Vec<_> = (10..14)
        .map(|i| {
            let (data, root) = (data.clone(), root.clone());
            std::thread::spawn(move || {
                Command::new(bosun_bin())
                    .args(["image", "import", "--data-dir"])
                    .arg(&data)
                    .arg("--rootfs")
                    .arg(&root)
                    .args(["--tag", &format!("bb:{i}")])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        let o = h.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(ls(data.to_str().unwrap()).len(), 4);
    assert_eq!(entries(&data.join("content/layers")), 1);
    assert_eq!(entries(&data.join("content/tmp")), 0);
}

#[test]
fn oci_archive_from_umoci_and_skopeo_with_a_whiteout() {
    let umoci = Path::new("/usr/bin/umoci");
    let skopeo = Path::new("/usr/bin/skopeo");
    if !require_tool(
        Path::new(BUSYBOX),
        "the test image is built from busybox-static",
    ) || !require_tool(umoci, "umoci builds the OCI image")
        || !require_tool(skopeo, "skopeo writes the oci-archive")
        || !skip_unless_root("umoci unpack and whiteout devices")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let layout = t.join("layout");
    let image = format!("{}:t", layout.display());
    run(Command::new(umoci).args(["init", "--layout"]).arg(&layout));
    run(Command::new(umoci).args(["new", "--image", &image]));
    // Layer 1: busybox and a file; layer 2: the file deleted (a whiteout), a new one.
    let b1 = t.join("b1");
    run(Command::new(umoci)
        .args(["unpack", "--image", &image])
        .arg(&b1));
    let rootfs = busybox_rootfs(t);
    run(Command::new("cp")
        .arg("-a")
        .arg(rootfs.join("bin"))
        .arg(b1.join("rootfs")));
    fs::create_dir_all(b1.join("rootfs/etc")).unwrap();
    fs::write(b1.join("rootfs/etc/gone"), "x").unwrap();
    run(Command::new(umoci)
        .args(["repack", "--image", &image])
        .arg(&b1));
    let b2 = t.join("b2");
    run(Command::new(umoci)
        .args(["unpack", "--image", &image])
        .arg(&b2));
    fs::remove_file(b2.join("rootfs/etc/gone")).unwrap();
    fs::write(b2.join("rootfs/etc/motd"), "hello").unwrap();
    run(Command::new(umoci)
        .args(["repack", "--image", &image])
        .arg(&b2));
    run(Command::new(umoci).args(["config", "--image", &image, "--config.cmd", "sh"]));
    let archive = t.join("bb.tar");
    run(Command::new(skopeo)
        .arg("copy")
        .arg(format!("oci:{image}"))
        .arg(format!("oci-archive:{}:bb:v1", archive.display())));

    let data = t.join("data");
    let data = data.to_str().unwrap();
    let out = ok(&[
        "image",
        "import",
        "--data-dir",
        data,
        archive.to_str().unwrap(),
    ]);
    assert!(
        out.contains("layer 1/2") && out.contains("layer 2/2"),
        "{out}"
    );
    assert!(out.contains("imported docker.io/library/bb:v1"), "{out}");
    let rows = ls(data);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0][0].as_str(), rows[0][1].as_str()),
        ("docker.io/library/bb", "v1")
    );

    // The deleted file is an overlay whiteout in the top layer.
    let layers = Path::new(data).join("content/layers");
    let whiteouts: Vec<PathBuf> = fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().path().join("rootfs/etc/gone"))
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device()))
        .collect();
    assert_eq!(whiteouts.len(), 1, "one whiteout for etc/gone");

    // Reimporting is a no-op for the layers.
    let out = ok(&[
        "image",
        "import",
        "--data-dir",
        data,
        archive.to_str().unwrap(),
        "--tag",
        "bb:again",
    ]);
    assert_eq!(out.matches("already present").count(), 2, "{out}");
    ok(&["image", "rm", "--data-dir", data, "bb:v1", "bb:again"]);
    assert!(ls(data).is_empty());
    assert_eq!(entries(&layers), 0);
}

fn sha256_file(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn docker_save_tar_imports_under_its_repo_tags() {
    if !require_tool(
        Path::new(BUSYBOX),
        "the test image is built from busybox-static",
    ) || !require_tool(
        Path::new("/usr/bin/sha256sum"),
        "digests for the hand-made archive",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let rootfs = busybox_rootfs(t);
    let save = t.join("save");
    fs::create_dir_all(save.join("abc")).unwrap();
    let layer = save.join("abc/layer.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg("."));
    let diff_id = format!("sha256:{}", sha256_file(&layer));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-05-06T07:08:09Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "Volumes": null},
        "container_config": {"Cmd": null},
        "docker_version": "24.0.7",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config_path = save.join("config.tmp");
    fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let config_hex = sha256_file(&config_path);
    fs::rename(&config_path, save.join(format!("{config_hex}.json"))).unwrap();
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": ["saved/app:1.0", "registry.example:5000/app:latest"],
        "Layers": ["abc/layer.tar"],
    }]);
    fs::write(
        save.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let archive = t.join("saved.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&save)
        .arg("-cf")
        .arg(&archive)
        .arg("."));

    let data = t.join("data");
    let data = data.to_str().unwrap();
    let out = ok(&[
        "image",
        "import",
        "--data-dir",
        data,
        archive.to_str().unwrap(),
    ]);
    assert!(out.contains("imported docker.io/saved/app:1.0"), "{out}");
    assert!(
        out.contains("imported registry.example:5000/app:latest"),
        "{out}"
    );
    let rows = ls(data);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r[2] == config_hex[..12]), "{rows:?}");
    // Removing by image id removes both names.
    let out = ok(&["image", "rm", "--data-dir", data, &config_hex[..12]]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(ls(data).is_empty());
}

#[test]
fn bad_input_is_one_line_and_exit_64() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let not_tar = tmp.path().join("x.tar");
    fs::write(&not_tar, b"not a tar at all").unwrap();
    let missing = tmp.path().join("missing.tar");
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (
            vec![
                "image",
                "import",
                "--data-dir",
                data,
                missing.to_str().unwrap(),
            ],
            64,
        ),
        (
            vec![
                "image",
                "import",
                "--data-dir",
                data,
                "--rootfs",
                "/nonexistent-dir-bt",
            ],
            64,
        ),
        (
            vec![
                "image",
                "import",
                "--data-dir",
                data,
                "--rootfs",
                "/nonexistent-dir-bt",
                "--tag",
                "x",
            ],
            64,
        ),
        (
            vec![
                "image",
                "import",
                "--data-dir",
                data,
                "--rootfs",
                "/",
                "--tag",
                "Bad Name",
            ],
            64,
        ),
        (vec!["image", "rm", "--data-dir", data, "UPPER"], 64),
        (vec!["image", "rm", "--data-dir", data, "absent:1"], 1),
        (
            vec![
                "image",
                "import",
                "--data-dir",
                data,
                not_tar.to_str().unwrap(),
            ],
            1,
        ),
    ];
    for (args, code) in cases {
        let o = bosun(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got {err}"
        );
    }
    for cmd in ["import", "ls", "rm"] {
        let o = bosun(&["image", cmd, "--help"]);
        assert!(o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Example"),
            "{cmd} --help has an example"
        );
    }
}
