//! `/namespaces/{ns}/triggers[/{name}]`: trigger CRUD and fire.

use super::entities::{own_id, read, read_optional, remove, write};
use super::params::{flag, json_body, typed_body, QueryMap};
use super::{ApiError, ApiState, Auth, Tid, ACTIVATION_ID_HEADER};
use crate::controller::{FireError, FireOutcome};
use crate::entity::trigger::TRIGGER_TYPE;
use crate::entity::{FullyQualifiedEntityName, WhiskTrigger, WhiskTriggerPut};
use crate::message::now_ms;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Map, Value};

/// `GET /triggers/{name}`.
pub(crate) async fn get(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    let (t, _): (WhiskTrigger, _) = read(&s, &id, TRIGGER_TYPE).await?;
    Ok(Json(t.to_json()).into_response())
}

/// `PUT /triggers/{name}`.
pub(crate) async fn put(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<QueryMap>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    let overwrite = flag(&q, "overwrite", false)?;
    let put: WhiskTriggerPut = typed_body(&body)?;
    if let Some(feed) = put.annotations.as_ref().and_then(|a| a.get("feed")) {
        let valid = feed
            .as_str()
            .is_some_and(|f| FullyQualifiedEntityName::parse(f, &user.namespace.name).is_ok());
        if !valid {
            return Err(ApiError::bad_request("Feed name is not valid"));
        }
    }
    let existing: Option<(WhiskTrigger, String)> = read_optional(&s, &id, TRIGGER_TYPE).await?;
    let (trigger, rev) = match existing {
        Some(_) if !overwrite => return Err(ApiError::exists()),
        Some((old, rev)) => (
            WhiskTrigger {
                parameters: put.parameters.unwrap_or(old.parameters),
                version: put.version.unwrap_or_else(|| old.version.up_patch()),
                publish: put.publish.unwrap_or(old.publish),
                annotations: put.annotations.unwrap_or(old.annotations),
                updated: now_ms(),
                ..old
            },
            Some(rev),
        ),
        None => (
            WhiskTrigger {
                namespace: user.namespace.name.clone(),
                name,
                parameters: put.parameters.unwrap_or_default(),
                limits: json!({}),
                version: put.version.unwrap_or_default(),
                publish: put.publish.unwrap_or(false),
                annotations: put.annotations.unwrap_or_default(),
                updated: now_ms(),
                rules: None,
            },
            None,
        ),
    };
    write(&s, &id, trigger.to_document(), rev.as_deref()).await?;
    Ok(Json(trigger.to_json()).into_response())
}

/// `DELETE /triggers/{name}`.
pub(crate) async fn delete(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    let (t, rev): (WhiskTrigger, _) = read(&s, &id, TRIGGER_TYPE).await?;
    remove(&s, &id, &rev).await?;
    Ok(Json(t.to_json()).into_response())
}

/// The request headers as `__ow_headers`: lowercased names, string values.
pub(crate) fn headers_object(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect()
}

/// `POST /triggers/{name}`: fire with a JSON object payload.
pub(crate) async fn fire(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    tid: Tid,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    let limits = &s.controller.config().limits;
    if body.len() as u64 > limits.max_payload_bytes {
        return Err(ApiError::too_large(
            "Request",
            body.len(),
            limits.max_payload_bytes,
        ));
    }
    let Value::Object(payload) = json_body(&body)? else {
        return Err(ApiError::malformed(
            "The request body must be a JSON object.",
        ));
    };
    let (trigger, _): (WhiskTrigger, _) = read(&s, &id, TRIGGER_TYPE).await?;
    match s
        .controller
        .fire(&user, trigger, payload, headers_object(&headers), tid.0)
        .await
    {
        Ok(FireOutcome::NoActiveRules) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(FireOutcome::Fired(aid)) => {
            let mut resp =
                (StatusCode::ACCEPTED, Json(json!({ "activationId": aid }))).into_response();
            if let Ok(v) = HeaderValue::from_str(aid.as_str()) {
                resp.headers_mut().insert(ACTIVATION_ID_HEADER, v);
            }
            Ok(resp)
        }
        Err(FireError::Throttled(t)) => {
            Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, t.to_string()))
        }
    }
}
