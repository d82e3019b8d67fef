//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! turned into the JSON the same object would have been sent as. kubectl 1.32's
//! imperative generators (`create configmap|secret|namespace|deployment|service|
//! serviceaccount`) send their objects this way.
//!
//! Decoding only: bosun answers in JSON, which clients accept. The envelope is the
//! magic `k8s\0` and a `runtime.Unknown {typeMeta=1 {apiVersion=1, kind=2}, raw=2,
//! contentEncoding=3, contentType=4}`; `raw` is the message of that kind, read with
//! the field table in `schema.rs` by the reader in `wire.rs`. Fields the table does
//! not know are skipped, as protobuf readers do; kinds it does not know are refused.

mod schema;
mod wire;

use base64::Engine as _;
use schema::{Card, Field, MapValue, Message, Ty};
use serde_json::{Map, Value};
use wire::Wire;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes that start every Kubernetes protobuf body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// How deeply messages may nest (the deepest in the table is about 12).
const MAX_DEPTH: usize = 48;

/// Why a protobuf body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the body does not start with the Kubernetes protobuf prefix \"k8s\\x00\"")]
    Magic,
    #[error("the message ends in the middle of a field")]
    Truncated,
    #[error("a varint is longer than ten bytes")]
    VarintOverflow,
    #[error("invalid field number {0}")]
    FieldNumber(u64),
    #[error("unsupported wire type {0}")]
    WireType(u8),
    #[error("messages are nested too deeply")]
    TooDeep,
    #[error("{message}.{field}: wire type {wire} does not fit the field's type")]
    FieldType {
        message: &'static str,
        field: &'static str,
        wire: u8,
    },
    #[error("{message}.{field}: not valid UTF-8")]
    Utf8 {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}.{field}: time {seconds}s is out of range")]
    Time {
        message: &'static str,
        field: &'static str,
        seconds: i64,
    },
    #[error("no schema for message {0}")]
    NoMessage(&'static str),
    #[error("content encoding {0:?} is not supported")]
    ContentEncoding(String),
    #[error("the envelope names no kind")]
    NoKind,
    /// The body is fine but bosun has no schema for its kind.
    #[error(
        "bosun cannot read kind {kind} ({api_version}) from protobuf: send it as application/json"
    )]
    UnknownKind { api_version: String, kind: String },
}

/// Decodes a Kubernetes protobuf body into the JSON object it stands for, with
/// `apiVersion` and `kind` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let rest = body.strip_prefix(MAGIC).ok_or(DecodeError::Magic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for field in wire::fields(rest) {
        match field? {
            (1, Wire::Bytes(type_meta)) => {
                for f in wire::fields(type_meta) {
                    match f? {
                        (1, Wire::Bytes(b)) => api_version = envelope_string(b, "apiVersion")?,
                        (2, Wire::Bytes(b)) => kind = envelope_string(b, "kind")?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            (3, Wire::Bytes(b)) if !b.is_empty() => {
                return Err(DecodeError::ContentEncoding(
                    String::from_utf8_lossy(b).into_owned(),
                ))
            }
            _ => {}
        }
    }
    if kind.is_empty() {
        return Err(DecodeError::NoKind);
    }
    let message =
        schema::kind_message(&api_version, &kind).ok_or_else(|| DecodeError::UnknownKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(api_version));
    object.insert("kind".into(), Value::String(kind));
    decode_into(message, raw, &mut object, 0)?;
    Ok(Value::Object(object))
}

fn envelope_string(b: &[u8], field: &'static str) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Utf8 {
        message: "runtime.TypeMeta",
        field,
    })
}

/// Decodes the fields of `message` from `buf` into `out`.
fn decode_into(
    message: &'static Message,
    buf: &[u8],
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    for item in wire::fields(buf) {
        let (number, value) = item?;
        let Some(field) = message.field(number) else {
            continue;
        };
        let at = Ctx { message, field };
        match (field.card, field.ty) {
            (Card::Inline, Ty::Msg(name)) => {
                let inner = nested(name)?;
                decode_into(inner, at.bytes(value)?, out, depth + 1)?;
            }
            (Card::Rep, Ty::Map(vt)) => {
                let (k, v) = at.map_entry(value, vt)?;
                if let Value::Object(map) = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    map.insert(k, v);
                }
            }
            (Card::Rep, ty) => {
                let values = at.repeated(ty, value, depth)?;
                if let Value::Array(list) = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    list.extend(values);
                }
            }
            (card, ty) => {
                let Some(v) = at.single(ty, value, depth)? else {
                    continue;
                };
                if card == Card::Omit && is_zero(&v) {
                    // A later occurrence wins in protobuf; a zero one clears.
                    out.remove(field.name);
                    continue;
                }
                out.insert(field.name.into(), v);
            }
        }
    }
    Ok(())
}

fn nested(name: &'static str) -> Result<&'static Message, DecodeError> {
    // The schema tests check that every reference resolves.
    schema::message(name).ok_or(DecodeError::NoMessage(name))
}

/// What Go's `omitempty` leaves out.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// The field being decoded, for reading values and naming it in errors.
struct Ctx {
    message: &'static Message,
    field: &'static Field,
}

impl Ctx {
    fn wrong(&self, w: &Wire<'_>) -> DecodeError {
        DecodeError::FieldType {
            message: self.message.name,
            field: self.field.name,
            wire: w.wire_type(),
        }
    }

    fn bytes<'a>(&self, w: Wire<'a>) -> Result<&'a [u8], DecodeError> {
        match w {
            Wire::Bytes(b) => Ok(b),
            other => Err(self.wrong(&other)),
        }
    }

    fn varint(&self, w: Wire<'_>) -> Result<u64, DecodeError> {
        match w {
            Wire::Varint(v) => Ok(v),
            other => Err(self.wrong(&other)),
        }
    }

    fn string(&self, b: &[u8]) -> Result<String, DecodeError> {
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Utf8 {
            message: self.message.name,
            field: self.field.name,
        })
    }

    /// One value of a non-repeated field; None when JSON would show nothing (an
    /// empty Time).
    fn single(&self, ty: Ty, w: Wire<'_>, depth: usize) -> Result<Option<Value>, DecodeError> {
        Ok(Some(match ty {
            Ty::Str => Value::String(self.string(self.bytes(w)?)?),
            Ty::Bool => Value::Bool(self.varint(w)? != 0),
            // Two's complement: a negative int32 arrives sign-extended to 64 bits.
            Ty::Int32 => Value::from(self.varint(w)? as i64 as i32),
            Ty::Int64 => Value::from(self.varint(w)? as i64),
            Ty::Msg(name) => {
                let mut obj = Map::new();
                decode_into(nested(name)?, self.bytes(w)?, &mut obj, depth + 1)?;
                Value::Object(obj)
            }
            Ty::IntOrString => self.int_or_string(self.bytes(w)?)?,
            Ty::Quantity => Value::String(self.quantity(self.bytes(w)?)?),
            Ty::Time | Ty::MicroTime => {
                let b = self.bytes(w)?;
                if b.is_empty() {
                    // Go's zero time, which JSON shows as null: leave it out.
                    return Ok(None);
                }
                Value::String(self.time(b, ty == Ty::MicroTime)?)
            }
            Ty::Map(_) => return Err(self.wrong(&w)),
        }))
    }

    /// The elements one occurrence of a repeated field adds (several when packed).
    fn repeated(&self, ty: Ty, w: Wire<'_>, depth: usize) -> Result<Vec<Value>, DecodeError> {
        match (ty, w) {
            (Ty::Int32 | Ty::Int64 | Ty::Bool, Wire::Bytes(b)) => wire::packed_varints(b)?
                .into_iter()
                .map(|v| self.single(ty, Wire::Varint(v), depth))
                .filter_map(Result::transpose)
                .collect(),
            _ => Ok(self.single(ty, w, depth)?.into_iter().collect()),
        }
    }

    /// A map entry `{key=1, value=2}`; absent parts are empty, as in Go.
    fn map_entry(&self, w: Wire<'_>, vt: MapValue) -> Result<(String, Value), DecodeError> {
        let mut key = String::new();
        let mut value = match vt {
            MapValue::Quantity => Value::String("0".into()),
            MapValue::Str | MapValue::Bytes => Value::String(String::new()),
        };
        for item in wire::fields(self.bytes(w)?) {
            match item? {
                (1, w) => key = self.string(self.bytes(w)?)?,
                (2, w) => {
                    let b = self.bytes(w)?;
                    value = Value::String(match vt {
                        MapValue::Str => self.string(b)?,
                        MapValue::Bytes => base64::engine::general_purpose::STANDARD.encode(b),
                        MapValue::Quantity => self.quantity(b)?,
                    });
                }
                _ => {}
            }
        }
        Ok((key, value))
    }

    /// `IntOrString {type=1, intVal=2, strVal=3}`: type 1 is the string.
    fn int_or_string(&self, b: &[u8]) -> Result<Value, DecodeError> {
        let (mut is_string, mut int, mut string) = (false, 0i32, String::new());
        for item in wire::fields(b) {
            match item? {
                (1, w) => is_string = self.varint(w)? == 1,
                (2, w) => int = self.varint(w)? as i64 as i32,
                (3, w) => string = self.string(self.bytes(w)?)?,
                _ => {}
            }
        }
        Ok(if is_string {
            Value::String(string)
        } else {
            Value::from(int)
        })
    }

    /// `Quantity {string=1}`; Go shows the zero quantity as "0".
    fn quantity(&self, b: &[u8]) -> Result<String, DecodeError> {
        let mut s = String::new();
        for item in wire::fields(b) {
            if let (1, w) = item? {
                s = self.string(self.bytes(w)?)?;
            }
        }
        Ok(if s.is_empty() { "0".into() } else { s })
    }

    /// `Time {seconds=1, nanos=2}` in RFC 3339, UTC; with microseconds for MicroTime.
    fn time(&self, b: &[u8], micro: bool) -> Result<String, DecodeError> {
        let (mut seconds, mut nanos) = (0i64, 0i64);
        for item in wire::fields(b) {
            match item? {
                (1, w) => seconds = self.varint(w)? as i64,
                (2, w) => nanos = i64::from(self.varint(w)? as i64 as i32),
                _ => {}
            }
        }
        let ts = jiff::Timestamp::from_second(seconds).map_err(|_| DecodeError::Time {
            message: self.message.name,
            field: self.field.name,
            seconds,
        })?;
        let base = ts.strftime("%Y-%m-%dT%H:%M:%S");
        Ok(if micro {
            format!("{base}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000)
        } else {
            format!("{base}Z")
        })
    }
}

#[cfg(test)]
mod tests;
