//! Resolving a docker-style `user[:group]` against a rootfs' /etc/passwd and
//! /etc/group text (pure).

/// A resolved user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    /// Groups the user is a member of in /etc/group (besides the primary one).
    pub groups: Vec<u32>,
}

/// Resolves `spec` ("name", "uid", "name:group", "uid:gid", …). A numeric user
/// not in passwd gets gid 0; a name not in passwd is an error.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Resolved, String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let matches = if u.bytes().all(|b| b.is_ascii_digit()) {
            f[2] == u
        } else {
            f[0] == u
        };
        matches.then(|| {
            (
                f[0].to_string(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
            )
        })
    });
    let (name, uid, mut gid) = match (entry, u.parse::<u32>()) {
        (Some((name, Some(uid), gid)), _) => (Some(name), uid, gid.unwrap_or(0)),
        (_, Ok(uid)) => (None, uid, 0),
        _ => {
            return Err(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        }
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f[0] == g)
                        .then(|| f[2].parse::<u32>().ok())
                        .flatten()
                })
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        };
    }
    let mut groups = Vec::new();
    if let Some(name) = name {
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid && !groups.contains(&n) {
                        groups.push(n);
                    }
                }
            }
        }
    }
    Ok(Resolved { uid, gid, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nweb:x:1000:1001::/home/web:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nweb:x:1001:\nwheel:x:10:web,root\n";

    #[test]
    fn names_and_numbers() {
        assert_eq!(resolve("", PASSWD, GROUP).unwrap().uid, 0);
        let r = resolve("web", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid, r.groups.clone()), (1000, 1001, vec![10]));
        let r = resolve("nobody:nogroup", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (65534, 65534));
        let r = resolve("1000", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 1001));
        let r = resolve("4242:7", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (4242, 7));
        let r = resolve("4242", "", "").unwrap();
        assert_eq!((r.uid, r.gid), (4242, 0));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(resolve("nope", PASSWD, GROUP)
            .unwrap_err()
            .contains("unable to find user nope"));
        assert!(resolve("web:nope", PASSWD, GROUP).is_err());
    }
}
