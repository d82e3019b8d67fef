//! `$(VAR)` references, expanded the way Kubernetes does in a container's
//! `command`, `args` and `env` values: `$(NAME)` becomes the variable's value,
//! `$$` a literal `$`; a reference to an unknown variable, an unterminated
//! `$(`, or a `$` before anything else stays as written.

/// Expands `input`, looking names up with `lookup`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let reference = after
            .strip_prefix('(')
            .and_then(|body| body.find(')').map(|end| (&body[..end], &body[end + 1..])));
        match reference {
            Some((name, tail)) => {
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_and_dollars_escape() {
        let vars = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &vars), "x-$(B)-$(A)-$");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("echo $$$$", &vars), "echo $$");
        assert_eq!(expand("a$b", &vars), "a$b");
    }
}
