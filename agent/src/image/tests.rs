//! Store-level tests: archives built here in memory, imported, listed, resolved,
//! removed. No root needed (no whiteouts in these layers).

use super::digest::sha256_of;
use super::*;
use std::fs;
use std::io::Write;
use std::path::Path;

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn config_json(diff_ids: &[String], cmd: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

fn append(b: &mut tar::Builder<fs::File>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, path, data).unwrap();
}

/// A `docker save` tar with one image of `layers` (uncompressed tars), named `tags`.
fn docker_save(path: &Path, layers: &[Vec<u8>], tags: &[&str], cmd: &str) -> String {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_of(l)).collect();
    let config = config_json(&diff_ids, cmd);
    let config_digest = sha256_of(&config);
    let hex = config_digest.strip_prefix("sha256:").unwrap();
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let n = format!("l{i}/layer.tar");
        append(&mut b, &n, l);
        names.push(n);
    }
    append(&mut b, &format!("{hex}.json"), &config);
    let manifest =
        serde_json::json!([{"Config": format!("{hex}.json"), "RepoTags": tags, "Layers": names}]);
    append(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.into_inner().unwrap();
    config_digest
}

/// An OCI layout tar with one image of gzip `layers`, index entry named `ref_name`.
fn oci_layout(path: &Path, layers: &[Vec<u8>], ref_name: Option<&str>) -> (String, String) {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_of(l)).collect();
    let config = config_json(&diff_ids, "sh");
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    append(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut descs = Vec::new();
    for l in layers {
        let gz = gzip(l);
        let d = sha256_of(&gz);
        append(&mut b, &format!("blobs/sha256/{}", &d[7..]), &gz);
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len()}));
    }
    let cd = sha256_of(&config);
    append(&mut b, &format!("blobs/sha256/{}", &cd[7..]), &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let md = sha256_of(&manifest);
    append(&mut b, &format!("blobs/sha256/{}", &md[7..]), &manifest);
    let mut entry = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len()});
    if let Some(n) = ref_name {
        entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": n});
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
    append(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    b.into_inner().unwrap();
    (cd, md)
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn two_images_sharing_a_layer_store_it_once_and_removing_one_keeps_the_other() {
    let d = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&d.path().join("content")).unwrap();
    let base = layer_tar(&[("bin/tool", b"base")]);
    let a_top = layer_tar(&[("etc/a", b"a")]);
    let b_top = layer_tar(&[("etc/b", b"b")]);
    let a_id = docker_save(
        &d.path().join("a.tar"),
        &[base.clone(), a_top],
        &["app-a:1"],
        "a",
    );
    let b_id = docker_save(
        &d.path().join("b.tar"),
        &[base.clone(), b_top],
        &["app-b:1"],
        "b",
    );

    let mut events = Vec::new();
    let got = store
        .import_archive_with(&d.path().join("a.tar"), None, &mut |e| {
            events.push(e.clone())
        })
        .unwrap();
    assert_eq!(
        got,
        vec![ImportedImage {
            reference: "docker.io/library/app-a:1".into(),
            id: a_id.clone()
        }]
    );
    assert!(matches!(
        &events[0],
        ImportEvent::Layer {
            index: 1,
            count: 2,
            reused: false,
            ..
        }
    ));
    events.clear();
    store
        .import_archive_with(&d.path().join("b.tar"), None, &mut |e| {
            events.push(e.clone())
        })
        .unwrap();
    assert!(
        matches!(
            &events[0],
            ImportEvent::Layer {
                index: 1,
                reused: true,
                ..
            }
        ),
        "{events:?}"
    );
    assert!(matches!(
        &events[1],
        ImportEvent::Layer {
            index: 2,
            reused: false,
            ..
        }
    ));
    assert_eq!(
        count(&d.path().join("content/layers")),
        3,
        "the base layer is stored once"
    );

    let list = store.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0].references,
        vec!["docker.io/library/app-a:1".to_string()]
    );
    assert_eq!(list[0].id, a_id);
    assert_eq!(list[0].size, (base.len() * 2) as u64);

    let ra = store.resolve("app-a:1").unwrap();
    let rb = store.resolve("app-b:1").unwrap();
    assert_eq!(ra.layers[0], rb.layers[0]);
    assert_eq!(ra.id, a_id);
    assert_eq!(ra.repo_digest, None);
    assert_eq!(
        ra.config.config().as_ref().unwrap().cmd().as_ref().unwrap(),
        &vec!["a".to_string()]
    );
    assert_eq!(fs::read(ra.layers[1].join("etc/a")).unwrap(), b"a");

    assert_eq!(
        store.remove("app-a:1").unwrap(),
        vec!["docker.io/library/app-a:1".to_string()]
    );
    assert!(matches!(
        store.resolve("app-a:1"),
        Err(ImageError::NotFound(_))
    ));
    let rb = store.resolve("docker.io/library/app-b:1").unwrap();
    assert_eq!(rb.id, b_id);
    for l in &rb.layers {
        assert!(l.is_dir(), "{} survives", l.display());
    }
    assert_eq!(fs::read(rb.layers[0].join("bin/tool")).unwrap(), b"base");
    assert_eq!(count(&d.path().join("content/layers")), 2);
    assert_eq!(
        count(&d.path().join("content/blobs/sha256")),
        2,
        "b's manifest and config"
    );

    store.remove(&b_id[7..19]).unwrap();
    assert_eq!(count(&d.path().join("content/layers")), 0);
    assert_eq!(count(&d.path().join("content/blobs/sha256")), 0);
    assert_eq!(count(&d.path().join("content/tmp")), 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn a_corrupted_layer_is_refused_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&d.path().join("content")).unwrap();
    let good = layer_tar(&[("bin/tool", b"good")]);
    let path = d.path().join("bad.tar");
    docker_save(&path, &[good], &["bad:1"], "x");
    // Same length, different byte: the tar still unpacks but no longer hashes to its diffID.
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.windows(4).position(|w| w == b"good").unwrap();
    bytes[at] = b'G';
    fs::write(&path, bytes).unwrap();
    let err = store.import_archive(&path, None).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("expected sha256:"), "{err}");
    assert_eq!(count(&d.path().join("content/layers")), 0);
    assert_eq!(count(&d.path().join("content/tmp")), 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn a_corrupted_oci_blob_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&d.path().join("content")).unwrap();
    let path = d.path().join("oci.tar");
    let layer = layer_tar(&[("bin/tool", b"x")]);
    oci_layout(&path, &[layer], Some("corrupt:1"));
    let mut bytes = fs::read(&path).unwrap();
    // Change the gzip header's mtime: it still decompresses to the right diffID, but
    // the blob no longer has its digest.
    let at = bytes.windows(3).position(|w| w == [0x1f, 0x8b, 8]).unwrap() + 4;
    bytes[at] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let err = store.import_archive(&path, None).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().starts_with("layer blob sha256:"), "{err}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn oci_layouts_import_with_their_name_or_a_tag() {
    let d = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&d.path().join("content")).unwrap();
    let path = d.path().join("oci.tar");
    let layers = vec![
        layer_tar(&[("bin/sh", b"sh")]),
        layer_tar(&[("etc/motd", b"hi")]),
    ];
    let (config, manifest) = oci_layout(&path, &layers, Some("localhost:5000/tools/sh:v1"));
    let got = store.import_archive(&path, None).unwrap();
    assert_eq!(got[0].reference, "localhost:5000/tools/sh:v1");
    let r = store.resolve("localhost:5000/tools/sh:v1").unwrap();
    assert_eq!(r.id, config);
    assert_eq!(
        r.repo_digest,
        Some(format!("localhost:5000/tools/sh@{manifest}"))
    );
    assert_eq!(r.layers.len(), 2);
    assert_eq!(fs::read(r.layers[1].join("etc/motd")).unwrap(), b"hi");
    assert_eq!(
        store.resolve(&config).unwrap().reference,
        "localhost:5000/tools/sh:v1"
    );

    // Only a tag in the annotation: no name without --tag.
    let path2 = d.path().join("oci2.tar");
    oci_layout(&path2, &layers, Some("latest"));
    let err = store.import_archive(&path2, None).unwrap_err();
    assert!(err.is_usage(), "{err}");
    assert!(err.to_string().contains("--tag"), "{err}");
    let got = store.import_archive(&path2, Some("sh")).unwrap();
    assert_eq!(got[0].reference, "docker.io/library/sh:latest");
    assert_eq!(
        store.list().unwrap().len(),
        1,
        "same config, two references"
    );
    assert_eq!(store.list().unwrap()[0].references.len(), 2);
}

#[test]
fn rootfs_import_makes_a_one_layer_image() {
    let d = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&d.path().join("content")).unwrap();
    let root = d.path().join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(root.join("bin/busybox"), b"#!fake").unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let mut events = Vec::new();
    let img = store
        .import_rootfs_with(&root, "bb:1", &mut |e| events.push(e.clone()))
        .unwrap();
    assert_eq!(img.reference, "docker.io/library/bb:1");
    assert_eq!(events.len(), 2);
    let r = store.resolve("bb:1").unwrap();
    assert_eq!(r.layers.len(), 1);
    assert_eq!(
        fs::read_link(r.layers[0].join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(r.config.os(), &oci_spec::image::Os::Linux);
    assert_eq!(r.config.architecture(), &oci_spec::image::Arch::default());
    assert_eq!(r.config.rootfs().diff_ids().len(), 1);
    // Importing the same tree again reuses the layer.
    events.clear();
    store
        .import_rootfs_with(&root, "bb:2", &mut |e| events.push(e.clone()))
        .unwrap();
    assert!(matches!(
        &events[0],
        ImportEvent::Layer { reused: true, .. }
    ));
    assert_eq!(count(&d.path().join("content/layers")), 1);
    // Bad input is a usage error.
    assert!(store
        .import_rootfs(&d.path().join("missing"), "x")
        .unwrap_err()
        .is_usage());
    assert!(store
        .import_rootfs(&root, "Bad Name")
        .unwrap_err()
        .is_usage());
}

#[test]
fn unknown_archives_and_names_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&d.path().join("content")).unwrap();
    let path = d.path().join("junk.tar");
    let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
    append(&mut b, "hello", b"x");
    b.into_inner().unwrap();
    assert!(store.import_archive(&path, None).unwrap_err().is_usage());
    assert!(matches!(
        store.remove("nothing:1"),
        Err(ImageError::NotFound(_))
    ));
    assert!(matches!(
        store.resolve("nothing"),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn gzipped_docker_save_is_accepted() {
    let d = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&d.path().join("content")).unwrap();
    let plain = d.path().join("a.tar");
    docker_save(&plain, &[layer_tar(&[("x", b"y")])], &["gz:1"], "x");
    let gz = d.path().join("a.tar.gz");
    fs::write(&gz, gzip(&fs::read(&plain).unwrap())).unwrap();
    store.import_archive(&gz, None).unwrap();
    assert!(store.resolve("gz:1").is_ok());
    assert_eq!(count(&d.path().join("content/tmp")), 0);
}
