//! What the garbage collector does with one dependent, given the state of each of
//! its owners — upstream's `attemptToDeleteItem` decision, as a pure function.

use super::graph::{OwnerRef, FOREGROUND, ORPHAN};

/// The state of one owner, as seen by a dependent's reference to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists with the referenced uid and is not being deleted in foreground.
    Solid,
    /// Gone, or replaced by an object of the same name with another uid.
    Dangling,
    /// Exists and is being deleted in foreground: it waits for its dependents.
    Waiting,
}

/// A deletion propagation policy, as `DeleteOptions.propagationPolicy` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Background,
    Foreground,
    Orphan,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Background => "Background",
            Policy::Foreground => "Foreground",
            Policy::Orphan => "Orphan",
        }
    }
}

/// What to do with a dependent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// It has a solid owner and no reference to remove.
    Keep,
    /// It has a solid owner: drop its references to these (dangling or waiting)
    /// owner uids and keep it.
    RemoveRefs(Vec<String>),
    /// No owner holds it: delete it with this policy.
    Delete(Policy),
}

/// Decides for a dependent with `owners` (each with its state), whether it has
/// dependents of its own, and its current finalizers.
pub fn decide(
    owners: &[(OwnerRef, OwnerState)],
    has_dependents: bool,
    finalizers: &[String],
) -> Action {
    if owners.is_empty() {
        return Action::Keep;
    }
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    let waiting = owners.iter().any(|(_, s)| *s == OwnerState::Waiting);
    if solid {
        let drop: Vec<String> = owners
            .iter()
            .filter(|(_, s)| *s != OwnerState::Solid)
            .map(|(r, _)| r.uid.clone())
            .collect();
        return if drop.is_empty() {
            Action::Keep
        } else {
            Action::RemoveRefs(drop)
        };
    }
    if waiting && has_dependents {
        // Foreground propagates: this one waits for its own dependents too.
        return Action::Delete(Policy::Foreground);
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    Action::Delete(if has(ORPHAN) {
        Policy::Orphan
    } else if has(FOREGROUND) {
        Policy::Foreground
    } else {
        Policy::Background
    })
}

/// Whether a foreground-deleted owner may go: none of `dependents` (their
/// references to it) blocks it.
pub fn foreground_done<'a>(refs: impl IntoIterator<Item = &'a OwnerRef>) -> bool {
    !refs.into_iter().any(OwnerRef::blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uid: &str) -> OwnerRef {
        OwnerRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn objects_without_owners_are_never_garbage() {
        assert_eq!(decide(&[], false, &[]), Action::Keep);
    }

    #[test]
    fn a_solid_owner_keeps_the_dependent() {
        assert_eq!(
            decide(&[(r("a"), OwnerState::Solid)], false, &[]),
            Action::Keep
        );
    }

    #[test]
    fn a_dangling_owner_makes_background_garbage() {
        assert_eq!(
            decide(&[(r("a"), OwnerState::Dangling)], true, &[]),
            Action::Delete(Policy::Background)
        );
    }

    #[test]
    fn a_solid_owner_beside_dangling_ones_drops_their_references() {
        assert_eq!(
            decide(
                &[
                    (r("a"), OwnerState::Dangling),
                    (r("b"), OwnerState::Solid),
                    (r("c"), OwnerState::Waiting)
                ],
                false,
                &[]
            ),
            Action::RemoveRefs(vec!["a".into(), "c".into()])
        );
    }

    #[test]
    fn a_foreground_owner_propagates_foreground_to_dependents_with_dependents() {
        assert_eq!(
            decide(&[(r("a"), OwnerState::Waiting)], true, &[]),
            Action::Delete(Policy::Foreground)
        );
        assert_eq!(
            decide(&[(r("a"), OwnerState::Waiting)], false, &[]),
            Action::Delete(Policy::Background)
        );
    }

    #[test]
    fn existing_finalizers_choose_the_policy() {
        let d = [(r("a"), OwnerState::Dangling)];
        assert_eq!(
            decide(&d, false, &["orphan".into()]),
            Action::Delete(Policy::Orphan)
        );
        assert_eq!(
            decide(&d, false, &["foregroundDeletion".into()]),
            Action::Delete(Policy::Foreground)
        );
    }

    #[test]
    fn only_blocking_references_hold_a_foreground_owner() {
        let mut free = r("o");
        free.block_owner_deletion = None;
        assert!(foreground_done([&free]));
        assert!(!foreground_done([&free, &r("o")]));
        assert!(foreground_done([]));
    }
}
