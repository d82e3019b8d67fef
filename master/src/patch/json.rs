//! JSON patch (`application/json-patch+json`), RFC 6902: the operations `add`,
//! `remove`, `replace`, `move`, `copy` and `test` over RFC 6901 JSON pointers (`~0`,
//! `~1` escapes, `-` appends to an array). The patch applies as a whole or not at all.
//! A malformed document is `PatchError::Invalid`; an operation that cannot apply
//! (missing path, index out of range, failed `test`) is `PatchError::Failed`. Both name
//! the operation's index and path.

use serde_json::Value;

use super::PatchError;

/// Applies the operations in `ops` (a JSON array) to a copy of `target` and returns it.
pub fn apply(target: &Value, ops: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = ops else {
        return Err(PatchError::Invalid(
            "a json patch must be an array of operations".into(),
        ));
    };
    let mut doc = target.clone();
    for (i, op) in ops.iter().enumerate() {
        let op = Op::parse(i, op)?;
        op.run(&mut doc)
            .map_err(|why| PatchError::Failed(format!("{}: {why}", op.describe(i))))?;
    }
    Ok(doc)
}

enum Kind {
    Add(Value),
    Remove,
    Replace(Value),
    Move(Vec<String>),
    Copy(Vec<String>),
    Test(Value),
}

struct Op {
    name: &'static str,
    path_text: String,
    path: Vec<String>,
    kind: Kind,
}

impl Op {
    fn parse(i: usize, raw: &Value) -> Result<Op, PatchError> {
        let invalid = |what: String| PatchError::Invalid(format!("operation {i}: {what}"));
        let Value::Object(obj) = raw else {
            return Err(invalid("is not an object".into()));
        };
        let name = obj
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("missing string member \"op\"".into()))?;
        let path_text = obj
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("({name}) missing string member \"path\"")))?;
        let path = parse_pointer(path_text)
            .map_err(|why| invalid(format!("({name} {path_text}) {why}")))?;
        let value = || {
            obj.get("value")
                .cloned()
                .ok_or_else(|| invalid(format!("({name} {path_text}) missing member \"value\"")))
        };
        let from = || -> Result<Vec<String>, PatchError> {
            let text = obj.get("from").and_then(Value::as_str).ok_or_else(|| {
                invalid(format!(
                    "({name} {path_text}) missing string member \"from\""
                ))
            })?;
            parse_pointer(text).map_err(|why| invalid(format!("({name} from {text}) {why}")))
        };
        let (name, kind) = match name {
            "add" => ("add", Kind::Add(value()?)),
            "remove" => ("remove", Kind::Remove),
            "replace" => ("replace", Kind::Replace(value()?)),
            "move" => {
                let from = from()?;
                if path.len() > from.len() && path.starts_with(&from) {
                    return Err(invalid(format!(
                        "(move {path_text}) cannot move a value into one of its children"
                    )));
                }
                ("move", Kind::Move(from))
            }
            "copy" => ("copy", Kind::Copy(from()?)),
            "test" => ("test", Kind::Test(value()?)),
            other => return Err(invalid(format!("unknown op {other:?}"))),
        };
        Ok(Op {
            name,
            path_text: path_text.to_string(),
            path,
            kind,
        })
    }

    fn describe(&self, i: usize) -> String {
        format!("operation {i} ({} {})", self.name, self.path_text)
    }

    fn run(&self, doc: &mut Value) -> Result<(), String> {
        match &self.kind {
            Kind::Add(v) => add(doc, &self.path, v.clone()),
            Kind::Remove => remove(doc, &self.path).map(drop),
            Kind::Replace(v) => {
                let slot = get_mut(doc, &self.path).ok_or("path does not exist")?;
                *slot = v.clone();
                Ok(())
            }
            Kind::Move(from) => {
                let v = remove(doc, from).map_err(|why| format!("from: {why}"))?;
                add(doc, &self.path, v)
            }
            Kind::Copy(from) => {
                let v = get(doc, from).ok_or("from: path does not exist")?.clone();
                add(doc, &self.path, v)
            }
            Kind::Test(want) => {
                let got = get(doc, &self.path).ok_or("path does not exist")?;
                if json_equal(got, want) {
                    Ok(())
                } else {
                    Err(format!("test failed: value is {got}, not {want}"))
                }
            }
        }
    }
}

/// Splits an RFC 6901 pointer into unescaped reference tokens.
pub(crate) fn parse_pointer(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Err("a json pointer must be empty or start with \"/\"".into());
    };
    rest.split('/')
        .map(|tok| {
            let mut out = String::with_capacity(tok.len());
            let mut chars = tok.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("bad escape in pointer token {tok:?}")),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: digits without leading zeros, below `len` (or equal to it,
/// and `-`, when `for_insert`).
fn array_index(tok: &str, len: usize, for_insert: bool) -> Result<usize, String> {
    if for_insert && tok == "-" {
        return Ok(len);
    }
    let well_formed = !tok.is_empty()
        && tok.bytes().all(|b| b.is_ascii_digit())
        && (tok == "0" || !tok.starts_with('0'));
    let i: usize = if well_formed { tok.parse().ok() } else { None }
        .ok_or_else(|| format!("{tok:?} is not an array index"))?;
    if i < len || (for_insert && i == len) {
        Ok(i)
    } else {
        Err(format!("array index {i} is out of range (length {len})"))
    }
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |cur, tok| match cur {
        Value::Object(m) => m.get(tok),
        Value::Array(a) => array_index(tok, a.len(), false).ok().map(|i| &a[i]),
        _ => None,
    })
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |cur, tok| match cur {
        Value::Object(m) => m.get_mut(tok),
        Value::Array(a) => {
            let i = array_index(tok, a.len(), false).ok()?;
            a.get_mut(i)
        }
        _ => None,
    })
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent).ok_or("parent path does not exist")? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err("parent is neither an object nor an array".into()),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let Some((last, parent)) = path.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match get_mut(doc, parent).ok_or("path does not exist")? {
        Value::Object(m) => m.remove(last).ok_or_else(|| "path does not exist".into()),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err("path does not exist".into()),
    }
}

/// JSON equality as RFC 6902 `test` defines it: numbers compare by value (`1` equals
/// `1.0`), objects ignore member order.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(doc: Value, ops: Value) -> Value {
        match apply(&doc, &ops) {
            Ok(v) => v,
            Err(e) => panic!("{ops} on {doc}: {e}"),
        }
    }

    #[test]
    fn rfc6902_appendix_a_success_cases() {
        // A.1 .. A.10, A.14, A.16
        let cases = [
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz","value":"qux"}]),
                json!({"baz":"qux","foo":"bar"}),
            ),
            (
                json!({"foo":["bar","baz"]}),
                json!([{"op":"add","path":"/foo/1","value":"qux"}]),
                json!({"foo":["bar","qux","baz"]}),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"remove","path":"/baz"}]),
                json!({"foo":"bar"}),
            ),
            (
                json!({"foo":["bar","qux","baz"]}),
                json!([{"op":"remove","path":"/foo/1"}]),
                json!({"foo":["bar","baz"]}),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"replace","path":"/baz","value":"boo"}]),
                json!({"baz":"boo","foo":"bar"}),
            ),
            (
                json!({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}),
                json!([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]),
                json!({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}),
            ),
            (
                json!({"foo":["all","grass","cows","eat"]}),
                json!([{"op":"move","from":"/foo/1","path":"/foo/3"}]),
                json!({"foo":["all","cows","eat","grass"]}),
            ),
            (
                json!({"baz":"qux","foo":["a",2,"c"]}),
                json!([{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]),
                json!({"baz":"qux","foo":["a",2,"c"]}),
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/child","value":{"grandchild":{}}}]),
                json!({"foo":"bar","child":{"grandchild":{}}}),
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz","value":"qux","xyz":123}]),
                json!({"foo":"bar","baz":"qux"}),
            ),
            (
                json!({"/":9,"~1":10}),
                json!([{"op":"test","path":"/~01","value":10}]),
                json!({"/":9,"~1":10}),
            ),
            (
                json!({"foo":["bar"]}),
                json!([{"op":"add","path":"/foo/-","value":["abc","def"]}]),
                json!({"foo":["bar",["abc","def"]]}),
            ),
        ];
        for (doc, ops, want) in cases {
            assert_eq!(ok(doc, ops.clone()), want, "{ops}");
        }
    }

    #[test]
    fn rfc6902_appendix_a_failures() {
        // A.9: test fails
        let e = apply(
            &json!({"baz":"qux"}),
            &json!([{"op":"test","path":"/baz","value":"bar"}]),
        );
        assert!(
            matches!(e, Err(PatchError::Failed(ref m)) if m.contains("operation 0 (test /baz)"))
        );
        // A.12: adding to a nonexistent target
        let e = apply(
            &json!({"foo":"bar"}),
            &json!([{"op":"add","path":"/baz/bat","value":"qux"}]),
        );
        assert!(matches!(e, Err(PatchError::Failed(ref m)) if m.contains("/baz/bat")));
        // A.15: comparing strings and numbers
        let e = apply(
            &json!({"/":9,"~1":10}),
            &json!([{"op":"test","path":"/~01","value":"10"}]),
        );
        assert!(matches!(e, Err(PatchError::Failed(_))));
    }

    #[test]
    fn malformed_documents_are_invalid_and_name_the_op() {
        let doc = json!({"a":1});
        for ops in [
            json!({"op":"add"}),
            json!([{"op":"frobnicate","path":"/a"}]),
            json!([{"op":"add","path":"/a"}]),
            json!([{"op":"add","path":"a","value":1}]),
            json!([{"op":"copy","path":"/b"}]),
            json!([{"op":"move","from":"/a","path":"/a/b"}]),
            json!([{"op":"test","path":"/a~2","value":1}]),
        ] {
            let e = apply(&doc, &ops).expect_err("must be refused");
            assert_eq!(e.http_status(), 400, "{ops}: {e}");
        }
        let e = apply(
            &doc,
            &json!([{"op":"test","path":"/a","value":1},{"op":"remove","path":"/zz"}]),
        )
        .expect_err("remove of missing path");
        assert_eq!(e.http_status(), 422);
        assert!(e.to_string().contains("operation 1 (remove /zz)"), "{e}");
    }

    #[test]
    fn patch_applies_whole_or_not_at_all_and_numbers_compare_by_value() {
        let doc = json!({"spec":{"replicas":1,"list":[1,2]}});
        let got = ok(
            doc.clone(),
            json!([
                {"op":"test","path":"/spec/replicas","value":1.0},
                {"op":"replace","path":"/spec/replicas","value":3},
                {"op":"copy","from":"/spec/list","path":"/spec/copy"},
                {"op":"add","path":"/spec/list/0","value":0},
                {"op":"add","path":"","value":{"whole":true}},
                {"op":"add","path":"/a~1b","value":"slash"}
            ]),
        );
        assert_eq!(got, json!({"whole":true,"a/b":"slash"}));
        assert!(apply(&doc, &json!([{"op":"add","path":"/spec/list/3","value":9}])).is_err());
        assert!(apply(
            &doc,
            &json!([{"op":"add","path":"/spec/list/01","value":9}])
        )
        .is_err());
        assert!(apply(&doc, &json!([{"op":"remove","path":"/spec/list/-"}])).is_err());
    }
}
