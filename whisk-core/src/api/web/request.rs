//! The action argument of a web request: the `__ow_*` context, the query and the body.
//!
//! Precedence, lowest first: the action's parameters, the `__ow_*` context, the query, the
//! body. A body that is a JSON object (or a form) is merged field by field; any other body is
//! `__ow_body`. With `raw-http`, nothing is parsed: the query is `__ow_query` and the body is
//! `__ow_body`.

use super::super::ApiError;
use crate::entity::WhiskAction;
use axum::http::{header, HeaderMap, Method};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value};

/// `__ow_method`: the request method, lowercase.
const OW_METHOD: &str = "__ow_method";
/// `__ow_headers`: the request headers, names lowercase.
const OW_HEADERS: &str = "__ow_headers";
/// `__ow_path`: the path after the action segment.
const OW_PATH: &str = "__ow_path";
/// `__ow_user`: the authenticated caller's namespace.
const OW_USER: &str = "__ow_user";
/// `__ow_query`: the raw query string (`raw-http`).
const OW_QUERY: &str = "__ow_query";
/// `__ow_body`: a body that is not merged into the argument.
const OW_BODY: &str = "__ow_body";

/// Argument keys a request may not set through its query or body.
const RESERVED: [&str; 6] = [OW_METHOD, OW_HEADERS, OW_PATH, OW_USER, OW_QUERY, OW_BODY];

/// The 400 message for a query or body that sets a reserved or `final` parameter.
const PARAMETERS_NOT_ALLOWED: &str =
    "Request defines parameters that are not allowed (e.g., reserved properties).";

/// Request headers that describe the transfer, not the request, and are not passed on (Pekko
/// keeps them out of its header list as well).
const TRANSFER_HEADERS: [header::HeaderName; 2] =
    [header::CONTENT_LENGTH, header::TRANSFER_ENCODING];

/// What the action sees of an HTTP request.
pub(super) struct WebRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// `__ow_path`.
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The body.
    pub body: Bytes,
}

/// The body of a request as the action receives it.
#[derive(Debug, Clone, PartialEq)]
enum Body {
    /// No body.
    Empty,
    /// Fields merged into the argument (a JSON object or a form).
    Fields(Map<String, Value>),
    /// `__ow_body`: a JSON value, a text string or a base64 string.
    Opaque(Value),
}

/// The action argument for `req`: the action's parameters overridden by the request context,
/// the query and the body. `caller` is the authenticated caller, if any; `raw` is the
/// `raw-http` annotation.
pub(super) fn arguments(
    req: &WebRequest<'_>,
    caller: Option<&crate::entity::Identity>,
    action: &WhiskAction,
    raw: bool,
) -> Result<Value, ApiError> {
    let mut args = Map::new();
    args.insert(OW_METHOD.into(), req.method.as_str().to_lowercase().into());
    args.insert(OW_HEADERS.into(), Value::Object(header_map(req.headers)));
    args.insert(OW_PATH.into(), req.path.into());
    if let Some(user) = caller {
        args.insert(OW_USER.into(), user.namespace.name.clone().into());
    }
    let query_string = req.query.unwrap_or_default();
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if raw {
        args.insert(OW_QUERY.into(), query_string.into());
        let body = match raw_body(content_type, &req.body) {
            Body::Opaque(v) => v,
            _ => Value::String(String::new()),
        };
        args.insert(OW_BODY.into(), body);
    } else {
        let query: Map<String, Value> = form_pairs(query_string)
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let body = parsed_body(content_type, &req.body)?;
        refuse_overrides(action, query.keys(), &body)?;
        args.extend(query);
        match body {
            Body::Empty => {}
            Body::Fields(fields) => args.extend(fields),
            Body::Opaque(v) => {
                args.insert(OW_BODY.into(), v);
            }
        }
    }
    Ok(action.parameters.merged_with(Value::Object(args)))
}

/// `__ow_headers`: every header (but the transfer ones) with its lowercase name and its value
/// as a string; of repeated headers the last value counts.
fn header_map(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter(|(name, _)| !TRANSFER_HEADERS.contains(name))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), Value::String(value))
        })
        .collect()
}

/// Refuses query or body fields that set a reserved `__ow_*` key, or a defined parameter of an
/// action annotated `final`.
fn refuse_overrides<'k>(
    action: &WhiskAction,
    query_keys: impl Iterator<Item = &'k String>,
    body: &'k Body,
) -> Result<(), ApiError> {
    let is_final = action.annotations.is_truthy("final", false);
    let immutable = |k: &str| is_final && action.parameters.get(k).is_some_and(|v| !v.is_null());
    let body_keys = match body {
        Body::Fields(fields) => Some(fields.keys()),
        _ => None,
    };
    let mut keys = query_keys.chain(body_keys.into_iter().flatten());
    if keys.any(|k| RESERVED.contains(&k.as_str()) || immutable(k)) {
        return Err(ApiError::bad_request(PARAMETERS_NOT_ALLOWED));
    }
    Ok(())
}

/// The media type of a `Content-Type` value: lowercase, without parameters. A request without
/// one is `application/octet-stream`.
fn media_type(content_type: Option<&str>) -> String {
    content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "application/octet-stream".into())
}

/// The body of a non-raw request: JSON objects and forms are fields, other JSON values, text
/// and (base64) binary data are opaque.
fn parsed_body(content_type: Option<&str>, body: &Bytes) -> Result<Body, ApiError> {
    if body.is_empty() {
        return Ok(Body::Empty);
    }
    let media = media_type(content_type);
    if super::transcode::is_json_family(&media) {
        return Ok(
            match serde_json::from_slice(body).map_err(ApiError::malformed)? {
                Value::Object(fields) => Body::Fields(fields),
                other => Body::Opaque(other),
            },
        );
    }
    if media == "application/x-www-form-urlencoded" {
        let text = String::from_utf8_lossy(body);
        return Ok(Body::Fields(
            form_pairs(&text)
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ));
    }
    Ok(raw_body(content_type, body))
}

/// The body of a raw request, or of a non-raw one that is neither JSON nor a form: binary data
/// and `application/json` as base64, text as a string.
fn raw_body(content_type: Option<&str>, body: &Bytes) -> Body {
    if body.is_empty() {
        return Body::Empty;
    }
    let media = media_type(content_type);
    if media == "application/json" || super::transcode::is_binary(content_type.unwrap_or(&media)) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(body);
        Body::Opaque(Value::String(encoded))
    } else {
        Body::Opaque(Value::String(String::from_utf8_lossy(body).into_owned()))
    }
}

/// The `key=value` pairs of a query string or form body, decoded (`+` is a space).
pub(super) fn form_pairs(s: &str) -> impl Iterator<Item = (String, String)> + '_ {
    s.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true), percent_decode(v, true))
    })
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`); malformed escapes stay as
/// they are and invalid UTF-8 is replaced.
pub(super) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_strings_and_forms_decode() {
        let pairs: Vec<_> = form_pairs("a=1&b=x+y%21&&c&d=%zz&e=%C3%A9").collect();
        let expected = [
            ("a", "1"),
            ("b", "x y!"),
            ("c", ""),
            ("d", "%zz"),
            ("e", "\u{e9}"),
        ];
        assert_eq!(pairs.len(), expected.len());
        for ((k, v), (ek, ev)) in pairs.iter().zip(expected) {
            assert_eq!((k.as_str(), v.as_str()), (ek, ev));
        }
        assert_eq!(percent_decode("a+b%2", false), "a+b%2");
    }

    #[test]
    fn bodies_by_content_type() {
        let b = |s: &str| Bytes::from(s.to_string());
        let parsed = |ct: Option<&str>, body: &str| parsed_body(ct, &b(body)).unwrap();
        assert_eq!(parsed(Some("application/json"), ""), Body::Empty);
        assert_eq!(
            parsed(Some("application/json; charset=utf-8"), r#"{"a":1}"#),
            Body::Fields(json!({"a": 1}).as_object().unwrap().clone())
        );
        assert_eq!(
            parsed(Some("application/vnd.api+json"), "[1]"),
            Body::Opaque(json!([1]))
        );
        assert!(parsed_body(Some("application/json"), &b("{")).is_err());
        assert_eq!(
            parsed(Some("application/x-www-form-urlencoded"), "a=1&b=two"),
            Body::Fields(json!({"a": "1", "b": "two"}).as_object().unwrap().clone())
        );
        assert_eq!(parsed(Some("text/plain"), "hi"), Body::Opaque(json!("hi")));
        assert_eq!(
            parsed(Some("application/xml"), "<a/>"),
            Body::Opaque(json!("<a/>"))
        );
        assert_eq!(parsed(Some("image/png"), "hi"), Body::Opaque(json!("aGk=")));
        assert_eq!(parsed(None, "hi"), Body::Opaque(json!("aGk=")));
        // Raw: JSON is base64 too; forms are text.
        assert_eq!(
            raw_body(Some("application/json"), &b("{}")),
            Body::Opaque(json!("e30="))
        );
        assert_eq!(
            raw_body(Some("application/x-www-form-urlencoded"), &b("a=1")),
            Body::Opaque(json!("a=1"))
        );
    }
}
