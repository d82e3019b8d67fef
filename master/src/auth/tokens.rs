//! Static bearer tokens from `<data-dir>/tokens.csv`, in kube-apiserver's
//! `--token-auth-file` format: `token,user,uid[,"group1,group2"]`, with blank and
//! `#` lines ignored. [`TokenFile`] re-reads the file when its size, mtime or
//! inode change, checking at most once per recheck interval. Tokens are kept only
//! as SHA-256 digests, so a lookup never compares secrets byte by byte; join
//! tokens are also kept by their id, because the master proves the CA it hands
//! out with them (see `nodes`).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::join::{join_token_id, BOOTSTRAP_GROUP, BOOTSTRAP_USER_PREFIX};
use super::{files, AuthError, UserInfo};

/// File name of the token file under the data dir.
pub const TOKENS_FILE: &str = "tokens.csv";

/// How often [`TokenFile`] looks at the file's metadata by default.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(1);

type TokenDigest = [u8; 32];

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Parsed tokens: digest of the token → the user it authenticates.
#[derive(Debug, Default, Clone)]
pub struct TokenTable {
    users: HashMap<TokenDigest, UserInfo>,
    join_tokens: JoinTokens,
}

/// Join tokens by id (`abcdef` of `abcdef.0123456789abcdef`); never printed.
#[derive(Default, Clone)]
struct JoinTokens(HashMap<String, String>);

impl std::fmt::Debug for JoinTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinTokens({} elided)", self.0.len())
    }
}

/// Whether a row is a join token: `<id>.<secret>` for user
/// `system:bootstrap:<id>` in group `system:bootstrappers`.
fn is_join_row<'a>(token: &'a str, user: &UserInfo) -> Option<&'a str> {
    let id = join_token_id(token)?;
    let named = user.name.strip_prefix(BOOTSTRAP_USER_PREFIX) == Some(id);
    (named && user.groups.iter().any(|g| g == BOOTSTRAP_GROUP)).then_some(id)
}

impl TokenTable {
    /// Parses the text of a token file; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<TokenTable, AuthError> {
        let mut users = HashMap::new();
        let mut join_tokens = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| AuthError::TokenFile {
                path: path.to_path_buf(),
                line: index + 1,
                reason: reason.to_string(),
            };
            let fields = split_csv_line(line).map_err(bad)?;
            if fields.len() < 3 {
                return Err(bad("expected token,user,uid[,\"group1,group2\"]"));
            }
            let token = fields[0].trim();
            let name = fields[1].trim();
            if token.is_empty() {
                return Err(bad("empty token"));
            }
            if name.is_empty() {
                return Err(bad("empty user name"));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let user = UserInfo {
                name: name.to_string(),
                groups,
            };
            if let Some(id) = is_join_row(token, &user) {
                join_tokens.insert(id.to_string(), token.to_string());
            }
            if users.insert(digest(token), user).is_some() {
                tracing::warn!(path = %path.display(), line = index + 1, "duplicate token; the later line wins");
            }
        }
        Ok(TokenTable {
            users,
            join_tokens: JoinTokens(join_tokens),
        })
    }

    /// The join token whose id is `id`, if the table has one.
    pub fn join_token(&self, id: &str) -> Option<&str> {
        self.join_tokens.0.get(id).map(String::as_str)
    }

    /// The user `token` authenticates, if any.
    pub fn lookup(&self, token: &str) -> Option<&UserInfo> {
        self.users.get(&digest(token))
    }

    /// Whether `token` is in the table.
    pub fn contains(&self, token: &str) -> bool {
        self.lookup(token).is_some()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Splits one CSV record (RFC 4180 quoting: `"a,b"`, `""` for a quote).
fn split_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    let mut quoted_field = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted_field = false;
            }
            '"' if field.trim().is_empty() && !quoted_field => {
                field.clear();
                in_quotes = true;
                quoted_field = true;
            }
            '"' => return Err("unexpected '\"' inside an unquoted field"),
            _ if quoted_field && !c.is_whitespace() => {
                return Err("text after the closing '\"' of a quoted field");
            }
            _ if quoted_field => {}
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err("unterminated quoted field");
    }
    fields.push(field);
    Ok(fields)
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
}

#[derive(Debug)]
struct State {
    checked_at: Option<Instant>,
    stamp: Option<Stamp>,
    table: TokenTable,
}

/// The token file, re-read when it changes.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    recheck: Duration,
    state: Mutex<State>,
}

impl TokenFile {
    /// Loads `path` (a missing file means no tokens). A malformed file is an error
    /// here; later, a malformed version is logged and the previous tokens kept.
    pub fn load(path: PathBuf) -> Result<TokenFile, AuthError> {
        let (stamp, table) = read_versioned(&path)?;
        Ok(TokenFile {
            path,
            recheck: DEFAULT_RECHECK,
            state: Mutex::new(State {
                checked_at: Some(Instant::now()),
                stamp,
                table,
            }),
        })
    }

    /// Sets how often the file's metadata is looked at (default one second).
    pub fn with_recheck_interval(mut self, interval: Duration) -> TokenFile {
        self.recheck = interval;
        self
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user `token` authenticates, after re-reading the file if it changed.
    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        self.with_table(|table| table.lookup(token).cloned())
    }

    /// The join token whose id is `id`, after re-reading the file if it changed.
    pub fn join_token(&self, id: &str) -> Option<String> {
        self.with_table(|table| table.join_token(id).map(str::to_string))
    }

    /// Runs `f` on the current table, re-reading the file first if it is due.
    fn with_table<T>(&self, f: impl FnOnce(&TokenTable) -> T) -> T {
        // A poisoned lock only means another lookup panicked; the table is intact.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let due = state
            .checked_at
            .is_none_or(|at| now.duration_since(at) >= self.recheck);
        if due {
            state.checked_at = Some(now);
            self.refresh(&mut state);
        }
        f(&state.table)
    }

    fn refresh(&self, state: &mut State) {
        let current = stamp_of(&self.path);
        if current == state.stamp {
            return;
        }
        match read_versioned(&self.path) {
            Ok((stamp, table)) => {
                tracing::info!(path = %self.path.display(), tokens = table.len(), "token file reloaded");
                state.stamp = stamp;
                state.table = table;
            }
            Err(e) => {
                // Remember the bad version so it is not re-parsed every second.
                state.stamp = current;
                tracing::warn!(error = %e, "token file not reloaded; keeping the previous tokens");
            }
        }
    }
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        ino: meta.ino(),
    })
}

/// Stats, then reads: a change after the stat shows up as a new stamp next time.
fn read_versioned(path: &Path) -> Result<(Option<Stamp>, TokenTable), AuthError> {
    let stamp = stamp_of(path);
    let text = files::read_optional_text(path)?.unwrap_or_default();
    Ok((stamp, TokenTable::parse(path, &text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<TokenTable, AuthError> {
        TokenTable::parse(Path::new("/d/tokens.csv"), text)
    }

    #[test]
    fn parses_kube_token_auth_format() {
        let t = table(
            "# comment\n\nabc123,alice,uid-1,\"dev,ops\"\n  def456 , bob , 2\nghi,carol,3,solo\n",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        let alice = t.lookup("abc123").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "ops"]);
        let bob = t.lookup("def456").unwrap();
        assert_eq!(bob.name, "bob");
        assert!(bob.groups.is_empty());
        assert_eq!(t.lookup("ghi").unwrap().groups, ["solo"]);
        assert!(t.lookup("abc12").is_none());
        assert!(t.lookup("").is_none());
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let err = table("ok,user,1\nonly,two\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/d/tokens.csv line 2: expected token,user,uid[,\"group1,group2\"]"
        );
        let err = table("tok,user,1,\"unterminated\n").unwrap_err();
        assert!(err.to_string().contains("line 1: unterminated"), "{err}");
        assert!(table(",user,1\n").is_err());
    }

    #[test]
    fn join_tokens_are_found_by_id() {
        let t = table(
            "abcdef.0123456789abcdef,system:bootstrap:abcdef,1,\"system:bootstrappers\"\n\
             ghijkl.0123456789abcdef,system:bootstrap:zzzzzz,2,\"system:bootstrappers\"\n\
             mnopqr.0123456789abcdef,system:bootstrap:mnopqr,3\n\
             plain,alice,4,\"system:bootstrappers\"\n",
        )
        .unwrap();
        assert_eq!(t.join_token("abcdef"), Some("abcdef.0123456789abcdef"));
        assert_eq!(t.join_token("ghijkl"), None, "user name must carry the id");
        assert_eq!(t.join_token("mnopqr"), None, "must be a bootstrapper");
        assert_eq!(t.join_token("plain"), None);
        assert!(
            !format!("{t:?}").contains("0123456789abcdef"),
            "secrets in Debug"
        );
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(split_csv_line(r#"a,"b,c",d"#).unwrap(), ["a", "b,c", "d"]);
        assert_eq!(
            split_csv_line(r#"a,"say ""hi""""#).unwrap(),
            ["a", r#"say "hi""#]
        );
        assert!(split_csv_line(r#"a,b"c"#).is_err());
        assert!(split_csv_line(r#"a,"b"c"#).is_err());
    }

    #[test]
    fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKENS_FILE);
        let file = TokenFile::load(path.clone())
            .unwrap()
            .with_recheck_interval(Duration::ZERO);
        assert!(file.lookup("t1").is_none(), "missing file means no tokens");
        std::fs::write(&path, "t1,alice,1\n").unwrap();
        assert_eq!(file.lookup("t1").unwrap().name, "alice");
        std::fs::write(&path, "t1,alice,1\nbroken\n").unwrap();
        assert_eq!(
            file.lookup("t1").unwrap().name,
            "alice",
            "a bad version keeps the previous tokens"
        );
        std::fs::write(&path, "t2,bob,2\n").unwrap();
        assert!(file.lookup("t1").is_none());
        assert_eq!(file.lookup("t2").unwrap().name, "bob");
    }

    #[test]
    fn does_not_stat_within_the_recheck_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKENS_FILE);
        std::fs::write(&path, "t1,alice,1\n").unwrap();
        let file = TokenFile::load(path.clone())
            .unwrap()
            .with_recheck_interval(Duration::from_secs(3600));
        std::fs::write(&path, "t2,bob,2\n").unwrap();
        assert!(
            file.lookup("t2").is_none(),
            "re-read before the interval passed"
        );
        assert!(file.lookup("t1").is_some());
    }
}
