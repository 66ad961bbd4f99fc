//! Query-parameter and body parsing with OpenWhisk's error messages.

use super::ApiError;
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;

/// Query parameters of a request.
pub(crate) type QueryMap = HashMap<String, String>;

/// Pekko's Boolean unmarshaller: true/yes/on/1 and false/no/off/0, case-insensitive.
pub(crate) fn flag(q: &QueryMap, name: &str, default: bool) -> Result<bool, ApiError> {
    let Some(v) = q.get(name) else {
        return Ok(default);
    };
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" | "" => Ok(false),
        _ => Err(ApiError::bad_query(
            name,
            format!("'{v}' is not a valid Boolean value"),
        )),
    }
}

/// `limit` for `collection`: default 30, `0` means the maximum 200.
pub(crate) fn limit(q: &QueryMap, collection: &str) -> Result<usize, ApiError> {
    const MAX: i64 = 200;
    let Some(v) = q.get("limit") else {
        return Ok(30);
    };
    let n: i64 = v.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "The value '{v}' is not an integer for {collection}."
        ))
    })?;
    if !(0..=MAX).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "The value '{n}' is not in the range of 0 to {MAX} for {collection}."
        )));
    }
    Ok(if n == 0 { MAX as usize } else { n as usize })
}

/// `v` as a non-negative number in OpenWhisk's 64-bit signed range.
fn non_negative_long(v: &str) -> Option<u64> {
    v.parse::<i64>().ok().and_then(|n| u64::try_from(n).ok())
}

/// `skip`, a non-negative 64-bit integer (default 0).
pub(crate) fn skip(q: &QueryMap) -> Result<usize, ApiError> {
    let Some(v) = q.get("skip") else { return Ok(0) };
    let n = non_negative_long(v).and_then(|n| usize::try_from(n).ok());
    n.ok_or_else(|| {
        ApiError::bad_query(
            "skip",
            format!("'{v}' is not a valid non-negative integer value"),
        )
    })
}

/// An epoch-milliseconds bound (`since`/`upto`): a non-negative number in OpenWhisk's 64-bit
/// signed range.
pub(crate) fn epoch_ms(q: &QueryMap, name: &str) -> Result<Option<u64>, ApiError> {
    q.get(name)
        .map(|v| {
            non_negative_long(v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Parameter is not a valid value for epoch seconds: {v}"
                ))
            })
        })
        .transpose()
}

/// A JSON body; empty means `{}`.
pub(crate) fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(ApiError::malformed)
}

/// A typed JSON body; empty means `{}`.
pub(crate) fn typed_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_value(json_body(body)?).map_err(ApiError::malformed)
}
