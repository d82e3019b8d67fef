//! HTTP plumbing of the API server: response bodies (whole or streamed), JSON and
//! Status responses, and reading request bodies with a size and time limit.

use super::status::ApiError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use std::convert::Infallible;
use std::time::Duration;

/// Every response body: whole or streamed.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The largest request body accepted (as kube-apiserver: 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn bytes_response(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

pub fn json_response(code: u16, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    bytes_response(code, "application/json", body)
}

pub fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.code, &err.to_status())
}

/// Reads a whole request body, at most `MAX_BODY` bytes, within a deadline.
pub async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    let limited = Limited::new(body, MAX_BODY);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => Err(ApiError::timeout("timed out reading the request body")),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::too_large(MAX_BODY))
            } else {
                Err(ApiError::bad_request(format!(
                    "reading the request body: {e}"
                )))
            }
        }
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The media type of a Content-Type header, lowercased, without parameters.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Parses a request body as JSON, YAML or Kubernetes protobuf, as the media type
/// says. A missing Content-Type is JSON (the Python client sends none).
pub fn parse_object(bytes: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    let media = media_type(content_type);
    let value: Value = match media.as_str() {
        "application/yaml" | "application/apply-patch+yaml" | "text/yaml" => {
            serde_yaml_ng::from_slice(bytes)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        ""
        | "application/json"
        | "*/*"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body could not be decoded as JSON: {e}"
            ))
        })?,
        super::protobuf::MEDIA_TYPE => super::protobuf::decode(bytes).map_err(|e| match e {
            super::protobuf::DecodeError::UnknownKind { .. } => {
                ApiError::new(415, "UnsupportedMediaType", e.to_string())
            }
            _ => ApiError::bad_request(format!(
                "the request body could not be decoded as protobuf: {e}"
            )),
        })?,
        other => {
            // Lenient: try JSON for unknown types a client may send with JSON inside.
            serde_json::from_slice(bytes).map_err(|_| {
                ApiError::unsupported_media(other, &["application/json", "application/yaml"])
            })?
        }
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_yaml_and_rejects_garbage() {
        assert!(parse_object(b"{\"a\":1}", None).is_ok());
        assert_eq!(
            parse_object(b"a: 1\n", Some("application/apply-patch+yaml")).unwrap()["a"],
            1
        );
        let e = parse_object(b"{nope", Some("application/json")).unwrap_err();
        assert_eq!(e.code, 400);
        let e = parse_object(b"\x00", Some("application/vnd.kubernetes.protobuf")).unwrap_err();
        assert_eq!(e.code, 400);
    }
}
