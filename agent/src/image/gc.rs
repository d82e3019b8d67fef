//! Image garbage collection by disk use, the kubelet's way: when the image
//! filesystem is fuller than the high threshold (85 % by default), images no
//! live container uses are removed, the least recently stored first, until
//! use is down to the low threshold (80 %). An image stored less than
//! `min_age_secs` ago (2 minutes, the kubelet's `--minimum-image-ttl-duration`)
//! is kept: it may be about to start. [`choose`] decides (pure); [`collect`]
//! removes what it chose from the store.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::error::ImageError;
use super::store::{ImageRecord, ImageStore};

/// Disk-use thresholds, in percent of the filesystem's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    pub high_percent: u8,
    pub low_percent: u8,
    /// Images stored more recently than this are never removed.
    pub min_age_secs: i64,
}

/// The kubelet's default minimum image age.
pub const MIN_AGE_SECS: i64 = 120;

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            high_percent: 85,
            low_percent: 80,
            min_age_secs: MIN_AGE_SECS,
        }
    }
}

/// The filesystem holding the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUse {
    pub capacity: u64,
    pub available: u64,
}

/// The references to remove so that use falls to the low threshold: whole
/// images (every reference to one id), oldest first, skipping images that
/// `in_use` names (by reference or id) and images stored less than
/// `policy.min_age_secs` before `now` (unix seconds). Only layers no kept image
/// shares count as freed. Empty when use is below the high threshold.
pub fn choose(
    records: &BTreeMap<String, ImageRecord>,
    layer_size: &dyn Fn(&str) -> u64,
    in_use: &HashSet<String>,
    disk: DiskUse,
    policy: GcPolicy,
    now: i64,
) -> Vec<String> {
    let used = disk.capacity.saturating_sub(disk.available);
    let pct = |p: u8| (disk.capacity as u128 * p as u128 / 100) as u64;
    if disk.capacity == 0 || used < pct(policy.high_percent) {
        return Vec::new();
    }
    let need = used.saturating_sub(pct(policy.low_percent));
    // Images by id: their references, newest stored_at, layers.
    struct Image<'a> {
        refs: Vec<&'a str>,
        newest: i64,
        layers: &'a [String],
    }
    let mut images: BTreeMap<&str, Image<'_>> = BTreeMap::new();
    for (name, rec) in records {
        let img = images.entry(rec.config.as_str()).or_insert(Image {
            refs: Vec::new(),
            newest: i64::MIN,
            layers: &rec.layers,
        });
        img.refs.push(name);
        img.newest = img.newest.max(rec.stored_at.unwrap_or(0));
    }
    let busy = |id: &str, img: &Image<'_>| {
        in_use.contains(id) || img.refs.iter().any(|r| in_use.contains(*r))
    };
    let mut candidates: Vec<(&str, &Image<'_>)> = images
        .iter()
        .filter(|(id, img)| !busy(id, img) && img.newest <= now - policy.min_age_secs)
        .map(|(id, img)| (*id, img))
        .collect();
    candidates.sort_by_key(|(id, img)| (img.newest, *id));
    let mut removed: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for (id, img) in candidates {
        removed.insert(id);
        out.extend(img.refs.iter().map(|r| r.to_string()));
        let kept_layers: BTreeSet<&str> = images
            .iter()
            .filter(|(i, _)| !removed.contains(*i))
            .flat_map(|(_, im)| im.layers.iter().map(String::as_str))
            .collect();
        let gone: BTreeSet<&str> = images
            .iter()
            .filter(|(i, _)| removed.contains(*i))
            .flat_map(|(_, im)| im.layers.iter().map(String::as_str))
            .filter(|l| !kept_layers.contains(l))
            .collect();
        let freed: u64 = gone.iter().map(|l| layer_size(l)).sum();
        if freed >= need {
            break;
        }
    }
    out
}

/// Removes what [`choose`] picks from `store`; returns the removed references.
pub fn collect(
    store: &ImageStore,
    in_use: &HashSet<String>,
    disk: DiskUse,
    policy: GcPolicy,
) -> Result<Vec<String>, ImageError> {
    let records = store.records()?;
    let size = |d: &str| store.layer(d).map_or(0, |l| l.size);
    let now = jiff::Timestamp::now().as_second();
    let doomed = choose(&records, &size, in_use, disk, policy, now);
    let mut removed = Vec::new();
    for r in doomed {
        match store.remove(&r) {
            Ok(names) => removed.extend(names),
            Err(ImageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, layers: &[&str], at: i64) -> ImageRecord {
        ImageRecord {
            manifest: format!("m{id}"),
            config: id.to_string(),
            repo_digest: None,
            layers: layers.iter().map(|s| s.to_string()).collect(),
            size: 0,
            created: None,
            stored_at: Some(at),
        }
    }

    fn records() -> BTreeMap<String, ImageRecord> {
        BTreeMap::from([
            ("old:1".to_string(), rec("a", &["base", "la"], 10)),
            ("old:alias".to_string(), rec("a", &["base", "la"], 5)),
            ("mid:1".to_string(), rec("b", &["base", "lb"], 20)),
            ("new:1".to_string(), rec("c", &["lc"], 30)),
        ])
    }

    /// Long after every image in [`records`] was stored.
    const NOW: i64 = 1_000;

    /// Every layer is 10 bytes.
    fn ten(_: &str) -> u64 {
        10
    }

    /// What [`choose`] picks with 10-byte layers, the default policy, a disk
    /// of 100 bytes with `used` in use, at `now`.
    fn pick(
        r: &BTreeMap<String, ImageRecord>,
        in_use: &HashSet<String>,
        used: u64,
        now: i64,
    ) -> Vec<String> {
        let disk = DiskUse {
            capacity: 100,
            available: 100 - used,
        };
        choose(r, &ten, in_use, disk, GcPolicy::default(), now)
    }

    #[test]
    fn below_the_high_threshold_nothing_goes() {
        let r = records();
        assert!(pick(&r, &HashSet::new(), 84, NOW).is_empty());
    }

    #[test]
    fn the_oldest_unused_images_go_until_the_low_threshold() {
        let r = records();
        // 86 used, low 80: 6 bytes to free; image a frees only "la" (base is shared).
        let out = pick(&r, &HashSet::new(), 86, NOW);
        assert_eq!(out, vec!["old:1", "old:alias"]);
        // 95 used: 15 to free; a (10) then b (lb + base = 20 in all).
        let out = pick(&r, &HashSet::new(), 95, NOW);
        assert_eq!(out, vec!["old:1", "old:alias", "mid:1"]);
    }

    #[test]
    fn images_stored_moments_ago_are_kept() {
        let r = records();
        // At 150 s, with a 2-minute minimum age, only images stored by 30 s may go.
        let out = pick(&r, &HashSet::new(), 99, 149);
        assert_eq!(out, vec!["old:1", "old:alias", "mid:1"]);
        let out = pick(&r, &HashSet::new(), 99, 100);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn images_in_use_are_never_chosen() {
        let r = records();
        let busy = HashSet::from(["old:alias".to_string(), "b".to_string()]);
        let out = pick(&r, &busy, 99, NOW);
        assert_eq!(out, vec!["new:1"]);
        let all = HashSet::from(["a".into(), "b".into(), "c".into()]);
        assert!(pick(&r, &all, 99, NOW).is_empty());
    }
}
