//! What can go wrong talking to nf_tables, naming the object the kernel
//! refused (`add chain ip bosun postrouting`) and the errno it gave.

use std::time::Duration;

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The kernel rejected one message of a batch (and so the whole batch),
    /// or the commit of the batch.
    #[error("nf_tables refused to {what}: {errno}")]
    Kernel { what: String, errno: Errno },
    #[error("{what}: the message is too large for a netlink attribute")]
    TooLarge { what: String },
    #[error("invalid nftables name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("netfilter netlink socket: {op}")]
    Socket {
        op: &'static str,
        #[source]
        source: Errno,
    },
    #[error("malformed reply from nf_tables: {0}")]
    Protocol(String),
    #[error("no reply from nf_tables within {0:?}")]
    Timeout(Duration),
}

impl NftError {
    /// The kernel's errno, when the kernel refused something.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NftError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Longest name nf_tables accepts for a table, chain or set
/// (`NFT_NAME_MAXLEN` is 256 including the NUL).
pub const NAME_MAX: usize = 255;

/// Checks a table, chain or set name before it goes into a message: not
/// empty, not longer than [`NAME_MAX`] bytes, no NUL (which would cut it
/// short in the kernel's eyes).
pub fn check_name(name: &str) -> Result<(), NftError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > NAME_MAX {
        "longer than 255 bytes"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(NftError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("bosun").is_ok());
        assert!(check_name(&"a".repeat(255)).is_ok());
        for bad in ["", "a\0b", &"a".repeat(256)] {
            assert!(matches!(check_name(bad), Err(NftError::InvalidName { .. })));
        }
    }

    #[test]
    fn kernel_error_names_object_and_errno() {
        let e = NftError::Kernel {
            what: "add chain ip bosun postrouting".into(),
            errno: Errno::EBUSY,
        };
        assert_eq!(e.errno(), Some(Errno::EBUSY));
        let s = e.to_string();
        assert!(s.starts_with("nf_tables refused to add chain ip bosun postrouting: EBUSY"));
    }
}
