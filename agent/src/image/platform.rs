//! Choosing the manifest for this machine from an image index (manifest list).
//! Pure; registry pulls use it too.

use oci_spec::image::{Arch, Descriptor, ImageIndex, MediaType, Os};

/// Media types of image indexes: OCI and Docker manifest lists.
pub fn is_index(mt: &MediaType) -> bool {
    match mt {
        MediaType::ImageIndex => true,
        MediaType::Other(s) => s == "application/vnd.docker.distribution.manifest.list.v2+json",
        _ => false,
    }
}

/// The manifest of `index` for `os`/`arch` (Go names: linux, amd64, arm64, …):
/// the first entry that matches; entries without a platform match anything only
/// when nothing else does.
pub fn select<'a>(index: &'a ImageIndex, os: &Os, arch: &Arch) -> Option<&'a Descriptor> {
    let manifests = index.manifests();
    manifests
        .iter()
        .find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.os() == os && p.architecture() == arch)
        })
        .or_else(|| manifests.iter().find(|d| d.platform().is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(json: &str) -> ImageIndex {
        serde_json::from_str(json).unwrap()
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn picks_this_platform() {
        let i = index(&format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}},
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D2}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        ));
        assert_eq!(
            select(&i, &Os::Linux, &Arch::Amd64)
                .unwrap()
                .digest()
                .to_string(),
            D2
        );
        assert_eq!(
            select(&i, &Os::Linux, &Arch::ARM64)
                .unwrap()
                .digest()
                .to_string(),
            D1
        );
        assert!(select(&i, &Os::Linux, &Arch::s390x).is_none());
    }

    #[test]
    fn unplatformed_entries_are_the_fallback() {
        let i = index(&format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D1}","size":1}}]}}"#
        ));
        assert_eq!(
            select(&i, &Os::Linux, &Arch::Amd64)
                .unwrap()
                .digest()
                .to_string(),
            D1
        );
    }

    #[test]
    fn index_media_types() {
        assert!(is_index(&MediaType::ImageIndex));
        assert!(is_index(&MediaType::Other(
            "application/vnd.docker.distribution.manifest.list.v2+json".into()
        )));
        assert!(!is_index(&MediaType::ImageManifest));
    }
}
