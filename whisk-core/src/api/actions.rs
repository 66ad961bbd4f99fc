//! `/namespaces/{ns}/actions[/{pkg}]/{name}`: list, get, create/update, delete, invoke.

use super::params::{flag, json_body, limit, skip, typed_body, QueryMap};
use super::{resolve_namespace, ApiError, ApiState, Auth, Tid, ACTIVATION_ID_HEADER};
use crate::controller::{InvokeError, Invoked};
use crate::entity::action::{ActionPutError, ENTITY_TYPE};
use crate::entity::{EntityName, Identity, StatusCode as Status, WhiskAction, WhiskActionPut};
use crate::loadbalancer::LoadBalancerError;
use crate::message::now_ms;
use crate::store::{Collection, Query as StoreQuery, StoreError};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use std::time::Duration;

/// The action a request addresses.
struct Target {
    /// `ns` or `ns/pkg`.
    path: String,
    name: String,
}

impl Target {
    fn resolve(user: &Identity, ns: &str, pkg: Option<&str>, name: &str) -> Result<Self, ApiError> {
        let resource = match pkg {
            Some(p) => format!("{p}/{name}"),
            None => name.to_string(),
        };
        let ns = resolve_namespace(user, ns, &resource)?;
        let check = |s: &str| EntityName::new(s).map_err(|e| ApiError::bad_request(e.to_string()));
        check(name)?;
        let path = match pkg {
            Some(p) => {
                check(p)?;
                format!("{ns}/{p}")
            }
            None => ns,
        };
        Ok(Self {
            path,
            name: name.to_string(),
        })
    }

    fn doc_id(&self) -> String {
        format!("{}/{}", self.path, self.name)
    }

    fn in_package(&self) -> bool {
        self.path.contains('/')
    }
}

/// Reads the action at `target`, with 404 for missing and 409 for another entity type.
async fn fetch(s: &ApiState, target: &Target) -> Result<(WhiskAction, String), ApiError> {
    let doc = s
        .controller
        .store()
        .get(Collection::Whisks, &target.doc_id())
        .await?;
    if doc.body.get("entityType").and_then(Value::as_str) != Some(ENTITY_TYPE) {
        return Err(ApiError::wrong_collection());
    }
    let action = serde_json::from_value(doc.body).map_err(ApiError::internal)?;
    Ok((action, doc.rev))
}

/// `GET /actions`.
pub(crate) async fn list(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path(ns): Path<String>,
    Query(q): Query<QueryMap>,
) -> Result<Response, ApiError> {
    let ns = resolve_namespace(&user, &ns, "")?;
    let query = StoreQuery {
        collection: Some(Collection::Whisks),
        namespace: ns,
        entity_type: Some(ENTITY_TYPE.into()),
        limit: limit(&q, "actions")?,
        skip: skip(&q)?,
        ..Default::default()
    };
    if flag(&q, "count", false)? {
        let n = s.controller.store().count(&query).await?;
        return Ok(Json(json!({ "actions": n })).into_response());
    }
    let docs = s.controller.store().query(&query).await?;
    let items: Vec<Value> = docs
        .into_iter()
        .filter_map(|d| serde_json::from_value::<WhiskAction>(d).ok())
        .map(|a| a.summary())
        .collect();
    Ok(Json(Value::Array(items)).into_response())
}

async fn get_impl(
    s: ApiState,
    target: Result<Target, ApiError>,
    q: QueryMap,
) -> Result<Response, ApiError> {
    let target = target?;
    let with_code = flag(&q, "code", true)?;
    let (action, _) = fetch(&s, &target).await?;
    Ok(Json(action.to_json(with_code)).into_response())
}

/// `GET /actions/{name}`.
pub(crate) async fn get(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<QueryMap>,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, None, &name);
    get_impl(s, t, q).await
}

/// `GET /actions/{pkg}/{name}`.
pub(crate) async fn get_in_package(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, pkg, name)): Path<(String, String, String)>,
    Query(q): Query<QueryMap>,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, Some(&pkg), &name);
    get_impl(s, t, q).await
}

fn put_error(e: ActionPutError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

async fn put_impl(
    s: ApiState,
    target: Result<Target, ApiError>,
    q: QueryMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = target?;
    let overwrite = flag(&q, "overwrite", false)?;
    let put: WhiskActionPut = typed_body(&body)?;
    let c = s.controller.config();
    let limits = &c.limits;
    if let Some(exec) = &put.exec {
        let size = exec.code.as_ref().map(String::len).unwrap_or(0);
        if size as u64 > limits.max_exec_bytes {
            return Err(ApiError::too_large("exec", size, limits.max_exec_bytes));
        }
    }
    for (field, p) in [
        ("parameters", &put.parameters),
        ("annotations", &put.annotations),
    ] {
        if let Some(p) = p {
            let size = p.size();
            if size as u64 > limits.max_parameter_bytes {
                return Err(ApiError::too_large(field, size, limits.max_parameter_bytes));
            }
        }
    }
    if target.in_package() {
        // Packages arrive with the programming-model slice; nothing can live in one yet.
        return Err(ApiError::not_found());
    }
    let store = s.controller.store();
    let id = target.doc_id();
    let (action, rev) = match fetch(&s, &target).await {
        Ok((_, _)) if !overwrite => return Err(ApiError::exists()),
        Ok((old, rev)) => (
            old.update(put, &c.manifest, limits, now_ms())
                .map_err(put_error)?,
            Some(rev),
        ),
        Err(e) if e.status == StatusCode::NOT_FOUND => (
            WhiskAction::create(
                &target.path,
                &target.name,
                put,
                &c.manifest,
                limits,
                now_ms(),
            )
            .map_err(put_error)?,
            None,
        ),
        Err(e) => return Err(e),
    };
    match store
        .put(
            Collection::Whisks,
            &id,
            action.to_document(),
            rev.as_deref(),
        )
        .await
    {
        Ok(_) => Ok(Json(action.to_json(true)).into_response()),
        Err(StoreError::AlreadyExists) if !overwrite => Err(ApiError::exists()),
        Err(StoreError::AlreadyExists | StoreError::Conflict | StoreError::NotFound) => {
            Err(ApiError::conflict())
        }
        Err(e) => Err(e.into()),
    }
}

/// `PUT /actions/{name}`.
pub(crate) async fn put(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<QueryMap>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, None, &name);
    put_impl(s, t, q, body).await
}

/// `PUT /actions/{pkg}/{name}`.
pub(crate) async fn put_in_package(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, pkg, name)): Path<(String, String, String)>,
    Query(q): Query<QueryMap>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, Some(&pkg), &name);
    put_impl(s, t, q, body).await
}

async fn delete_impl(s: ApiState, target: Result<Target, ApiError>) -> Result<Response, ApiError> {
    let target = target?;
    let (action, rev) = fetch(&s, &target).await?;
    match s
        .controller
        .store()
        .delete(Collection::Whisks, &target.doc_id(), &rev)
        .await
    {
        Ok(()) => Ok(Json(action.to_json(true)).into_response()),
        Err(StoreError::Conflict) => Err(ApiError::conflict()),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /actions/{name}`.
pub(crate) async fn delete(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, None, &name);
    delete_impl(s, t).await
}

/// `DELETE /actions/{pkg}/{name}`.
pub(crate) async fn delete_in_package(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, pkg, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, Some(&pkg), &name);
    delete_impl(s, t).await
}

/// The invoke `timeout` query parameter: `0 < t <= max` milliseconds.
fn wait_param(q: &QueryMap, max_ms: u64) -> Result<Duration, ApiError> {
    let Some(v) = q.get("timeout") else {
        return Ok(Duration::from_millis(max_ms));
    };
    match v.parse::<u64>() {
        Ok(t) if t > 0 && t <= max_ms => Ok(Duration::from_millis(t)),
        _ => Err(ApiError::bad_query(
            "timeout",
            format!("Timeout must be number of milliseconds up to {max_ms}."),
        )),
    }
}

/// The action argument: defined parameters overridden by the payload (an array payload is
/// passed as it is). Overriding a `final` action's defined parameters is refused.
fn arguments(action: &WhiskAction, payload: Value) -> Result<Value, ApiError> {
    let Value::Object(payload) = payload else {
        return Ok(payload);
    };
    let defaults = action.parameters.to_object();
    if action.annotations.is_truthy("final", false)
        && payload
            .keys()
            .any(|k| defaults.get(k).is_some_and(|v| !v.is_null()))
    {
        return Err(ApiError::bad_request(
            "Request defines parameters that are not allowed (e.g., reserved properties).",
        ));
    }
    let mut args = defaults;
    args.extend(payload);
    Ok(Value::Object(args))
}

async fn invoke_impl(
    s: ApiState,
    user: Identity,
    target: Result<Target, ApiError>,
    q: QueryMap,
    tid: Tid,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = target?;
    let limits = &s.controller.config().limits;
    let blocking = flag(&q, "blocking", false)?;
    let result_only = flag(&q, "result", false)?;
    let wait = wait_param(&q, limits.max_blocking_wait_ms)?;
    if body.len() as u64 > limits.max_payload_bytes {
        return Err(ApiError::too_large(
            "Request",
            body.len(),
            limits.max_payload_bytes,
        ));
    }
    let payload = json_body(&body)?;
    if !payload.is_object() && !payload.is_array() {
        return Err(ApiError::malformed(
            "The request body must be a JSON object or array.",
        ));
    }
    let (action, rev) = fetch(&s, &target).await?;
    let args = arguments(&action, payload)?;
    let invoked = s
        .controller
        .invoke(&user, &action, &rev, args, blocking, wait, tid.0)
        .await
        .map_err(|e| match e {
            InvokeError::LoadBalancer(LoadBalancerError::NoInvokers) => {
                ApiError::unavailable("No invokers available")
            }
            InvokeError::LoadBalancer(other) => ApiError::internal(other),
        })?;
    let (status, id, body) = match invoked {
        Invoked::Accepted(id) => (
            StatusCode::ACCEPTED,
            id.clone(),
            json!({ "activationId": id }),
        ),
        Invoked::Completed(a) => {
            let status = match a.response.status {
                Status::Success => StatusCode::OK,
                Status::ApplicationError | Status::DeveloperError => StatusCode::BAD_GATEWAY,
                Status::WhiskError => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let result = a.response.result.clone().unwrap_or_else(|| json!({}));
            let body = if result.is_array() || result_only {
                result
            } else {
                a.to_extended_json()
            };
            (status, a.activation_id.clone(), body)
        }
    };
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert(ACTIVATION_ID_HEADER, v);
    }
    Ok(resp)
}

/// `POST /actions/{name}`.
pub(crate) async fn invoke(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<QueryMap>,
    tid: Tid,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, None, &name);
    invoke_impl(s, user, t, q, tid, body).await
}

/// `POST /actions/{pkg}/{name}`.
pub(crate) async fn invoke_in_package(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, pkg, name)): Path<(String, String, String)>,
    Query(q): Query<QueryMap>,
    tid: Tid,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, Some(&pkg), &name);
    invoke_impl(s, user, t, q, tid, body).await
}
