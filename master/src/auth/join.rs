//! Join tokens, kubeadm-style `<id>.<secret>` (6 and 16 characters of `a-z0-9`)
//! drawn from a CSPRNG. Each one is a row of `tokens.csv` for user
//! `system:bootstrap:<id>` in group `system:bootstrappers`; the first one is also
//! kept in `<data-dir>/join-token` for cloud-init and operators to read.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use rand::Rng;

use super::files::{self, PRIVATE};
use super::tokens::{TokenTable, TOKENS_FILE};
use super::AuthError;

/// File name of the join token under the data dir.
pub const JOIN_TOKEN_FILE: &str = "join-token";
/// Group of every join token's user.
pub const BOOTSTRAP_GROUP: &str = "system:bootstrappers";
/// Prefix of a join token's user name, followed by the token id.
pub const BOOTSTRAP_USER_PREFIX: &str = "system:bootstrap:";

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

/// A new random join token.
pub fn generate_join_token() -> String {
    // ThreadRng is a CSPRNG seeded from the operating system.
    let mut rng = rand::rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    };
    let id = pick(ID_LEN);
    let secret = pick(SECRET_LEN);
    format!("{id}.{secret}")
}

/// The id part of a well-formed join token, `None` if it is not one.
pub fn join_token_id(token: &str) -> Option<&str> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, ID_LEN) && ok(secret, SECRET_LEN)).then_some(id)
}

/// The `tokens.csv` row for a join token.
fn token_row(token: &str, id: &str) -> String {
    format!(
        "{token},{BOOTSTRAP_USER_PREFIX}{id},{},\"{BOOTSTRAP_GROUP}\"\n",
        uuid::Uuid::new_v4()
    )
}

/// Creates a new join token, appends it to `<data-dir>/tokens.csv` (one append
/// write, so a running master sees the whole row or none) and returns it. This
/// is `bosun token create`.
pub fn create_join_token(data_dir: &Path) -> Result<String, AuthError> {
    files::ensure_private_dir(data_dir)?;
    let token = generate_join_token();
    let id = join_token_id(&token).unwrap_or_default();
    append_row(&data_dir.join(TOKENS_FILE), &token_row(&token, id))?;
    Ok(token)
}

/// Returns the cluster's join token from `<data-dir>/join-token`, creating it on
/// first start. An existing token is kept, and put back into `tokens.csv` if it
/// went missing from there.
pub fn ensure_join_token(data_dir: &Path) -> Result<String, AuthError> {
    files::ensure_private_dir(data_dir)?;
    let path = data_dir.join(JOIN_TOKEN_FILE);
    let tokens_path = data_dir.join(TOKENS_FILE);
    if let Some(text) = files::read_optional_text(&path)? {
        let token = text.trim().to_string();
        let id =
            join_token_id(&token).ok_or_else(|| AuthError::BadJoinToken { path: path.clone() })?;
        files::tighten_mode(&path)?;
        let existing = files::read_optional_text(&tokens_path)?.unwrap_or_default();
        if !TokenTable::parse(&tokens_path, &existing)?.contains(&token) {
            append_row(&tokens_path, &token_row(&token, id))?;
        }
        return Ok(token);
    }
    let token = create_join_token(data_dir)?;
    files::write_atomic(&path, format!("{token}\n").as_bytes(), PRIVATE)?;
    Ok(token)
}

/// Appends `row` (ending in a newline) with a single write, first adding a
/// newline if the file does not end with one. Creates the file with mode 0600.
fn append_row(path: &Path, row: &str) -> Result<(), AuthError> {
    let write_err = |source| AuthError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(PRIVATE)
        .open(path)
        .map_err(write_err)?;
    let len = file.metadata().map_err(write_err)?.len();
    let mut buf = String::with_capacity(row.len() + 1);
    if len > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1).map_err(write_err)?;
        if last[0] != b'\n' {
            buf.push('\n');
        }
    }
    buf.push_str(row);
    file.write_all(buf.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_format() {
        for _ in 0..50 {
            let token = generate_join_token();
            assert_eq!(token.len(), 23);
            assert!(join_token_id(&token).is_some(), "{token}");
        }
        assert_ne!(generate_join_token(), generate_join_token());
        assert_eq!(join_token_id("abcdef.0123456789abcdef"), Some("abcdef"));
        assert_eq!(join_token_id("ABCDEF.0123456789abcdef"), None);
        assert_eq!(join_token_id("abcde.0123456789abcdef"), None);
        assert_eq!(join_token_id("abcdef0123456789abcdef"), None);
    }

    #[test]
    fn first_start_writes_token_and_row_second_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let token = ensure_join_token(&data).unwrap();
        let path = data.join(JOIN_TOKEN_FILE);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{token}\n")
        );
        for f in [JOIN_TOKEN_FILE, TOKENS_FILE] {
            let mode = std::fs::metadata(data.join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let text = std::fs::read_to_string(data.join(TOKENS_FILE)).unwrap();
        let table = TokenTable::parse(Path::new("t"), &text).unwrap();
        let user = table.lookup(&token).unwrap();
        let id = &token[..6];
        assert_eq!(user.name, format!("system:bootstrap:{id}"));
        assert_eq!(user.groups, ["system:bootstrappers"]);

        assert_eq!(ensure_join_token(&data).unwrap(), token);
        let again = std::fs::read_to_string(data.join(TOKENS_FILE)).unwrap();
        assert_eq!(again, text, "second start must not add a row");
    }

    #[test]
    fn lost_row_is_restored_and_bad_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let token = ensure_join_token(dir.path()).unwrap();
        std::fs::write(dir.path().join(TOKENS_FILE), "x,y,z").unwrap();
        assert_eq!(ensure_join_token(dir.path()).unwrap(), token);
        let text = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(text.starts_with("x,y,z\n"), "{text}");
        let table = TokenTable::parse(Path::new("t"), &text).unwrap();
        assert!(table.contains(&token) && table.contains("x"));

        std::fs::write(dir.path().join(JOIN_TOKEN_FILE), "nope\n").unwrap();
        let err = ensure_join_token(dir.path()).unwrap_err();
        assert!(err.to_string().contains("join-token"), "{err}");
    }

    #[test]
    fn create_appends_distinct_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_join_token(dir.path()).unwrap();
        let second = create_join_token(dir.path()).unwrap();
        assert_ne!(first, second);
        let text = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(JOIN_TOKEN_FILE)).unwrap(),
            format!("{first}\n"),
            "token create must not replace the join-token file"
        );
    }
}
