//! Web action results as HTTP responses, by the extension of the request path.
//!
//! `.http` (the default) reads the result as a response description
//! `{statusCode?, headers?, body?}`; `.json` sends the result itself; `.html`, `.svg` and
//! `.text` send one field of it (`body`, else `html`, `svg` or `text`).

use super::super::ApiError;
use crate::entity::exec::is_binary_code;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::Value;

/// The 404 message when the result lacks the field the extension asks for.
pub(super) const PROPERTY_NOT_FOUND: &str = "Response does not include requested property.";

/// The 400 message for a body whose type contradicts the response's `Content-Type`.
const CONTENT_TYPE_MISMATCH: &str = "Response type in header did not match generated content type.";

/// The 400 message for an unparsable `Content-Type` in a `.http` result.
const UNKNOWN_CONTENT_TYPE: &str = "Response did not specify a known content-type.";

/// Base64 as Java's basic decoder reads it: standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The response media a web request asks for with its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Media {
    /// `.http`, the default: the result describes the response.
    Http,
    /// `.json`: the result as JSON.
    Json,
    /// `.html`: the `body` or `html` field as `text/html`.
    Html,
    /// `.svg`: the `body` or `svg` field as `image/svg+xml`.
    Svg,
    /// `.text`: the `body` or `text` field as `text/plain`.
    Text,
}

impl Media {
    /// The recognised extensions.
    const EXTENSIONS: [(&'static str, Media); 5] = [
        (".http", Media::Http),
        (".json", Media::Json),
        (".html", Media::Html),
        (".svg", Media::Svg),
        (".text", Media::Text),
    ];

    /// Splits a recognised extension off an action segment; without one the whole segment is
    /// the name and the media is `.http`.
    pub(super) fn split(segment: &str) -> (&str, Media) {
        Self::EXTENSIONS
            .iter()
            .find_map(|(ext, media)| segment.strip_suffix(ext).map(|name| (name, *media)))
            .unwrap_or((segment, Media::Http))
    }

    /// Renders `result` (a success's result or an application error's `error`).
    pub(super) fn render(self, result: &Value) -> Result<Response, ApiError> {
        match self {
            Media::Http => http(result),
            Media::Json => match result {
                Value::Object(_) | Value::Array(_) => Ok(json_response(StatusCode::OK, result)),
                _ => Err(invalid_media("application/json")),
            },
            Media::Html => match field(result, "html") {
                Some(Value::String(s)) => Ok(text_response("text/html; charset=UTF-8", s)),
                _ => Err(invalid_media("text/html")),
            },
            Media::Svg => match field(result, "svg") {
                Some(Value::String(s)) => Ok(text_response("image/svg+xml", s)),
                _ => Err(invalid_media("image/svg+xml")),
            },
            Media::Text => {
                let text = match field(result, "text") {
                    None => return Err(ApiError::new(StatusCode::NOT_FOUND, PROPERTY_NOT_FOUND)),
                    Some(Value::String(s)) => s.clone(),
                    Some(v @ (Value::Object(_) | Value::Array(_))) => pretty(v),
                    Some(other) => other.to_string(),
                };
                Ok(text_response("text/plain; charset=UTF-8", &text))
            }
        }
    }
}

/// The field a `.html`/`.svg`/`.text` response sends: `body`, else `name`, of an object result;
/// any other result is itself.
fn field<'a>(result: &'a Value, name: &str) -> Option<&'a Value> {
    match result {
        Value::Object(o) => o.get("body").or_else(|| o.get(name)),
        other => Some(other),
    }
}

/// 400 "Response is not valid '<media>'."
fn invalid_media(media: &str) -> ApiError {
    ApiError::bad_request(format!("Response is not valid '{media}'."))
}

/// JSON as OpenWhisk prints it for web actions (two-space indentation).
fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Marks a response rendered from an action result, which the API's error rendering leaves
/// as it is even with a 4xx or 5xx status.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActionResponse;

/// A response rendered from an action result, with `content_type` and `body`.
fn response(status: StatusCode, content_type: Option<&str>, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.extensions_mut().insert(ActionResponse);
    if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(ct).ok()) {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r
}

/// 200 with a text body.
fn text_response(content_type: &str, text: &str) -> Response {
    response(
        StatusCode::OK,
        Some(content_type),
        Body::from(text.to_string()),
    )
}

/// `value` as pretty `application/json`.
fn json_response(status: StatusCode, value: &Value) -> Response {
    response(status, Some("application/json"), Body::from(pretty(value)))
}

/// Whether a media type is JSON: `application/json` or any `+json` type.
pub(super) fn is_json_family(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// Whether a `Content-Type` describes binary data (sent as base64 in JSON). Text types, JSON,
/// XML, JavaScript, forms and any type with a `charset` are text; the rest (images, audio,
/// video, `application/octet-stream`, unknown types) are binary.
pub(super) fn is_binary(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let has_charset = parts.any(|p| p.trim().to_ascii_lowercase().starts_with("charset="));
    let text = media.starts_with("text/")
        || is_json_family(&media)
        || media.ends_with("+xml") && !media.starts_with("image/")
        || matches!(
            media.as_str(),
            "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-www-form-urlencoded"
        );
    !text && !has_charset
}

/// Whether `content_type` is a well-formed `type/subtype[; parameters]`.
fn valid_content_type(content_type: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let media = content_type.split(';').next().unwrap_or_default().trim();
    media
        .split_once('/')
        .is_some_and(|(t, s)| token(t) && token(s))
}

/// The `.http` rendering of a result `{statusCode?, headers?, body?}`.
fn http(result: &Value) -> Result<Response, ApiError> {
    let invalid = || invalid_media("message/http");
    let Value::Object(fields) = result else {
        return Err(invalid());
    };
    let headers = match fields.get("headers") {
        None => HeaderMap::new(),
        Some(Value::Object(h)) => response_headers(h).ok_or_else(invalid)?,
        Some(_) => return Err(invalid()),
    };
    let status = match fields.get("statusCode") {
        None => None,
        Some(code) => Some(status_code(code).ok_or_else(invalid)?),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut resp = match fields.get("body") {
        None | Some(Value::Null) => empty(status),
        Some(Value::String(s)) if s.is_empty() => empty(status),
        Some(Value::String(s)) => {
            let status = status.unwrap_or(StatusCode::OK);
            string_body(status, content_type.as_deref(), s)?
        }
        Some(v) => {
            let ct = content_type.unwrap_or_else(|| "application/json".into());
            let media = ct
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !valid_content_type(&ct) || !is_json_family(&media) {
                return Err(ApiError::bad_request(CONTENT_TYPE_MISMATCH));
            }
            let mut r = json_response(status.unwrap_or(StatusCode::OK), v);
            if let Ok(ct) = HeaderValue::from_str(&ct) {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            r
        }
    };
    for (name, value) in headers.iter() {
        if name != header::CONTENT_TYPE {
            resp.headers_mut().append(name, value.clone());
        }
    }
    Ok(resp)
}

/// An empty response: the given status, else 204.
fn empty(status: Option<StatusCode>) -> Response {
    response(
        status.unwrap_or(StatusCode::NO_CONTENT),
        None,
        Body::empty(),
    )
}

/// A non-empty string body under its `Content-Type` (default `text/html`): binary types are
/// base64-decoded, JSON types too when the string looks like base64, text is sent as it is.
fn string_body(
    status: StatusCode,
    content_type: Option<&str>,
    body: &str,
) -> Result<Response, ApiError> {
    let ct = content_type.unwrap_or("text/html");
    if !valid_content_type(ct) {
        return Err(ApiError::bad_request(UNKNOWN_CONTENT_TYPE));
    }
    let media = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let decode = || {
        BASE64
            .decode(body)
            .map_err(|_| ApiError::bad_request(CONTENT_TYPE_MISMATCH))
    };
    if is_binary(ct) {
        return Ok(response(status, Some(ct), Body::from(decode()?)));
    }
    if is_json_family(&media) {
        let bytes = if is_binary_code(body) {
            decode()?
        } else {
            body.as_bytes().to_vec()
        };
        return Ok(response(status, Some(ct), Body::from(bytes)));
    }
    let ct = if ct.to_ascii_lowercase().contains("charset=") {
        ct.to_string()
    } else {
        format!("{ct}; charset=UTF-8")
    };
    Ok(response(status, Some(&ct), Body::from(body.to_string())))
}

/// The `headers` of a `.http` result: strings, numbers and booleans as values, arrays as
/// repeated headers. `None` when a value has another type or a name or value is not valid in
/// HTTP. `Content-Length` and `Transfer-Encoding` are the server's and are dropped.
fn response_headers(h: &serde_json::Map<String, Value>) -> Option<HeaderMap> {
    fn values(v: &Value, out: &mut Vec<String>) -> Option<()> {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Bool(b) => out.push(b.to_string()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(items) => {
                for item in items {
                    values(item, out)?;
                }
            }
            _ => return None,
        }
        Some(())
    }
    let mut map = HeaderMap::new();
    for (k, v) in h {
        let name = HeaderName::from_bytes(k.as_bytes()).ok()?;
        let mut vs = Vec::new();
        values(v, &mut vs)?;
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        for v in vs {
            map.append(name.clone(), HeaderValue::from_str(&v).ok()?);
        }
    }
    Some(map)
}

/// A `statusCode`: a whole number or a numeric string, 100 to 999.
fn status_code(v: &Value) -> Option<StatusCode> {
    let code = match v {
        Value::Number(n) => match n.as_u64() {
            Some(c) => c,
            None => {
                let f = n.as_f64()?;
                if f.fract() != 0.0 || f < 0.0 {
                    return None;
                }
                f as u64
            }
        },
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    StatusCode::from_u16(u16::try_from(code).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Status, headers and body of a rendering.
    async fn parts(r: Result<Response, ApiError>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let r = r.expect("rendered");
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, bytes.to_vec())
    }

    /// Header `name` as text.
    fn ct<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
        h[name].to_str().unwrap()
    }

    fn message(r: Result<Response, ApiError>) -> (StatusCode, String) {
        let e = r.expect_err("an error");
        (e.status, e.message)
    }

    #[test]
    fn extensions_split() {
        assert_eq!(Media::split("a.json"), ("a", Media::Json));
        assert_eq!(Media::split("a.b.text"), ("a.b", Media::Text));
        assert_eq!(Media::split("a.svg"), ("a", Media::Svg));
        assert_eq!(Media::split("a.html"), ("a", Media::Html));
        assert_eq!(Media::split("a.http"), ("a", Media::Http));
        assert_eq!(Media::split("a.xml"), ("a.xml", Media::Http));
        assert_eq!(Media::split("a"), ("a", Media::Http));
    }

    #[test]
    fn binary_and_json_media_types() {
        for t in [
            "image/png",
            "application/octet-stream",
            "image/svg+xml",
            "application/x-foo",
        ] {
            assert!(is_binary(t), "{t}");
        }
        for t in [
            "text/plain",
            "application/json",
            "application/hal+json",
            "application/xml",
            "application/atom+xml",
            "application/x-foo; charset=utf-8",
        ] {
            assert!(!is_binary(t), "{t}");
        }
        assert!(is_json_family("application/problem+json"));
        assert!(!is_json_family("text/json5"));
        assert!(valid_content_type("text/html; charset=utf-8"));
        assert!(!valid_content_type("xyzbar"));
    }

    #[tokio::test]
    async fn http_results() {
        let r = Media::Http.render(&json!({
            "statusCode": "201",
            "headers": {"Set-Cookie": ["a=1", "b=2"], "X-N": 3, "X-B": true},
            "body": "<p>hi</p>"
        }));
        let (status, h, body) = parts(r).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=UTF-8");
        assert_eq!(h.get_all(header::SET_COOKIE).iter().count(), 2);
        assert_eq!((ct(&h, "x-n"), ct(&h, "x-b")), ("3", "true"));
        assert_eq!(body, b"<p>hi</p>");

        let png = [0x89u8, b'P', b'N', b'G', 0, 1, 2, 255];
        let encoded = base64::engine::general_purpose::STANDARD.encode(png);
        let r =
            Media::Http.render(&json!({"headers": {"Content-Type": "image/png"}, "body": encoded}));
        let (status, h, body) = parts(r).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, png.as_slice()));
        assert_eq!(h[header::CONTENT_TYPE], "image/png");

        let (status, h, body) = parts(Media::Http.render(&json!({"body": {"a": 1}}))).await;
        assert_eq!(
            (status, ct(&h, "content-type")),
            (StatusCode::OK, "application/json")
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"a": 1})
        );

        let r = Media::Http.render(&json!({
            "headers": {"content-type": "application/json"},
            "body": base64::engine::general_purpose::STANDARD.encode(br#"{"b":2}"#)
        }));
        let (_, _, body) = parts(r).await;
        assert_eq!(body, br#"{"b":2}"#);

        let r = Media::Http.render(&json!({
            "headers": {"content-type": "application/json"},
            "body": "hello world"
        }));
        let (_, h, body) = parts(r).await;
        assert_eq!(
            (ct(&h, "content-type"), body.as_slice()),
            ("application/json", b"hello world".as_slice())
        );

        for empty in [json!({}), json!({"body": ""}), json!({"body": null})] {
            let (status, h, body) = parts(Media::Http.render(&empty)).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            assert!(body.is_empty() && h.get(header::CONTENT_TYPE).is_none());
        }
        let r = Media::Http
            .render(&json!({"statusCode": 200, "headers": {"content-type": "text/plain"}}));
        let (status, h, _) = parts(r).await;
        assert_eq!(status, StatusCode::OK);
        assert!(h.get(header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn invalid_http_results() {
        let invalid = (
            StatusCode::BAD_REQUEST,
            "Response is not valid 'message/http'.".to_string(),
        );
        for r in [
            json!("text"),
            json!([1]),
            json!({"headers": "x"}),
            json!({"headers": {"a": null}}),
            json!({"headers": {"a": {"b": 1}}}),
            json!({"statusCode": "abc"}),
            json!({"statusCode": 2.5}),
            json!({"statusCode": 42}),
            json!({"statusCode": true}),
        ] {
            assert_eq!(message(Media::Http.render(&r)), invalid, "{r}");
        }
        let r = json!({"headers": {"content-type": "text/html"}, "body": {"a": 1}});
        assert_eq!(message(Media::Http.render(&r)).1, CONTENT_TYPE_MISMATCH);
        let r = json!({"headers": {"content-type": "xyzbar"}, "body": "hi"});
        assert_eq!(message(Media::Http.render(&r)).1, UNKNOWN_CONTENT_TYPE);
        let r = json!({"headers": {"content-type": "image/png"}, "body": "not base64!"});
        assert_eq!(message(Media::Http.render(&r)).1, CONTENT_TYPE_MISMATCH);
    }

    #[tokio::test]
    async fn field_extensions() {
        let (_, h, body) = parts(Media::Json.render(&json!({"a": [1]}))).await;
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert_eq!(
            message(Media::Json.render(&json!("s"))).1,
            "Response is not valid 'application/json'."
        );
        let (_, h, body) = parts(Media::Html.render(&json!({"html": "<b/>"}))).await;
        assert_eq!(
            (ct(&h, "content-type"), body.as_slice()),
            ("text/html; charset=UTF-8", b"<b/>".as_slice())
        );
        let (_, h, body) = parts(Media::Svg.render(&json!({"body": "<svg/>", "svg": "x"}))).await;
        assert_eq!(
            (ct(&h, "content-type"), body.as_slice()),
            ("image/svg+xml", b"<svg/>".as_slice())
        );
        assert_eq!(
            message(Media::Html.render(&json!({"text": "x"}))).1,
            "Response is not valid 'text/html'."
        );
        for (result, text) in [
            (json!({"text": "t"}), "t"),
            (json!({"body": 1.5}), "1.5"),
            (json!({"body": null}), "null"),
            (json!({"body": true}), "true"),
            (json!("plain"), "plain"),
        ] {
            let (_, h, body) = parts(Media::Text.render(&result)).await;
            assert_eq!(h[header::CONTENT_TYPE], "text/plain; charset=UTF-8");
            assert_eq!(String::from_utf8(body).unwrap(), text);
        }
        assert_eq!(
            message(Media::Text.render(&json!({"html": "x"}))),
            (StatusCode::NOT_FOUND, PROPERTY_NOT_FOUND.to_string())
        );
    }
}
