//! Container ids and checks on the names that become paths.

use super::RuntimeError;
use rand::Rng;

/// A new random container id: 64 lowercase hex chars.
pub fn new_container_id() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

pub fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A pod uid becomes a dir and cgroup name: no slashes, no dots-only names.
pub fn check_uid(uid: &str) -> Result<(), RuntimeError> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && uid != "."
        && uid != "..";
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Spec(format!("bad pod uid {uid:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_differ() {
        let a = new_container_id();
        assert!(is_container_id(&a));
        assert_ne!(a, new_container_id());
        assert!(!is_container_id("abc"));
    }

    #[test]
    fn uid_check_rejects_paths() {
        assert!(check_uid("0b8a-11ee_x").is_ok());
        assert!(check_uid("../etc").is_err());
        assert!(check_uid("a/b").is_err());
        assert!(check_uid("").is_err());
    }
}
