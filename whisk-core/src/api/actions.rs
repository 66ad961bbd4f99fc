//! `/namespaces/{ns}/actions[/{pkg}]/{name}`: list, get, create/update, delete, invoke.

use super::entities::{read, read_optional, remove, write};
use super::params::{flag, json_body, typed_body, QueryMap};
use super::{
    resolve_error, resolve_namespace, ApiError, ApiState, Auth, Tid, ACTIVATION_ID_HEADER,
};
use crate::controller::{Invocation, InvokeError, Invoked, ResolvedAction};
use crate::entity::action::{ActionPutError, ENTITY_TYPE};
use crate::entity::name::DEFAULT_NAMESPACE;
use crate::entity::package::ENTITY_TYPE as PACKAGE;
use crate::entity::{
    EntityName, Exec, Identity, StatusCode as Status, WhiskAction, WhiskActionPut, WhiskPackage,
};
use crate::loadbalancer::LoadBalancerError;
use crate::message::now_ms;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use std::time::Duration;

/// The action a request addresses.
struct Target {
    /// The namespace (resolved from `_`).
    ns: String,
    /// The package, if any.
    pkg: Option<String>,
    name: String,
    /// Whether `ns` is the caller's own.
    own: bool,
}

impl Target {
    /// Validates the path. Other namespaces are reachable only through a package (published
    /// packages; checked on resolution).
    fn resolve(user: &Identity, ns: &str, pkg: Option<&str>, name: &str) -> Result<Self, ApiError> {
        let resource = match pkg {
            Some(p) => format!("{p}/{name}"),
            None => name.to_string(),
        };
        let own_ns = &user.namespace.name;
        let (ns, own) = if ns == DEFAULT_NAMESPACE || ns == own_ns {
            (own_ns.clone(), true)
        } else if pkg.is_some() {
            crate::entity::name::validate_namespace(ns)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            (ns.to_string(), false)
        } else {
            (resolve_namespace(user, ns, &resource)?, true)
        };
        let check = |s: &str| {
            EntityName::new(s)
                .map(|_| ())
                .map_err(|e| ApiError::bad_request(e.to_string()))
        };
        check(name)?;
        if let Some(p) = pkg {
            check(p)?;
        }
        Ok(Self {
            ns,
            pkg: pkg.map(str::to_string),
            name: name.to_string(),
            own,
        })
    }

    /// `ns` or `ns/pkg`.
    fn path(&self) -> String {
        match &self.pkg {
            Some(p) => format!("{}/{p}", self.ns),
            None => self.ns.clone(),
        }
    }

    fn doc_id(&self) -> String {
        format!("{}/{}", self.path(), self.name)
    }

    /// Refuses writes outside the caller's namespace.
    fn writable(&self) -> Result<(), ApiError> {
        if self.own {
            Ok(())
        } else {
            Err(ApiError::forbidden(&self.doc_id()))
        }
    }
}

/// A sequence's refusal: 403 for a component the caller may not use, else 400.
fn sequence_error(e: crate::controller::SequenceError) -> ApiError {
    match e {
        crate::controller::SequenceError::Forbidden(resource) => ApiError::forbidden(&resource),
        e => ApiError::bad_request(e.to_string()),
    }
}

/// Resolves the action at `target` for `user` (through packages and bindings).
async fn resolve(
    s: &ApiState,
    user: &Identity,
    target: &Target,
) -> Result<ResolvedAction, ApiError> {
    s.controller
        .resolve_action(user, &target.path(), &target.name)
        .await
        .map_err(resolve_error)
}

async fn get_impl(
    s: ApiState,
    user: Identity,
    target: Result<Target, ApiError>,
    q: QueryMap,
) -> Result<Response, ApiError> {
    let target = target?;
    let with_code = flag(&q, "code", true)?;
    let resolved = resolve(&s, &user, &target).await?;
    Ok(Json(resolved.action.to_json(with_code)).into_response())
}

/// `GET /actions/{name}`.
pub(crate) async fn get(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<QueryMap>,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, None, &name);
    get_impl(s, user, t, q).await
}

/// `GET /actions/{pkg}/{name}`.
pub(crate) async fn get_in_package(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, pkg, name)): Path<(String, String, String)>,
    Query(q): Query<QueryMap>,
) -> Result<Response, ApiError> {
    let t = Target::resolve(&user, &ns, Some(&pkg), &name);
    get_impl(s, user, t, q).await
}

/// Checks that the package of `target` exists and is not a binding.
async fn check_package(s: &ApiState, target: &Target) -> Result<(), ApiError> {
    let Some(pkg) = &target.pkg else {
        return Ok(());
    };
    let (package, _): (WhiskPackage, _) = read(s, &format!("{}/{pkg}", target.ns), PACKAGE).await?;
    if package.binding.is_some() {
        return Err(ApiError::bad_request(
            "Operation not permitted on package binding.",
        ));
    }
    Ok(())
}

fn put_error(e: ActionPutError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

async fn put_impl(
    s: ApiState,
    user: Identity,
    target: Result<Target, ApiError>,
    q: QueryMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = target?;
    target.writable()?;
    let overwrite = flag(&q, "overwrite", false)?;
    let mut put: WhiskActionPut = typed_body(&body)?;
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
    check_package(&s, &target).await?;
    let id = target.doc_id();
    if let Some(exec) = put.exec.as_mut() {
        if exec.kind.trim().eq_ignore_ascii_case("sequence") {
            let components = exec.components.clone().unwrap_or_default();
            let resolved = s
                .controller
                .validate_sequence(&user, &id, &components)
                .await
                .map_err(sequence_error)?;
            exec.components = Some(resolved.clone());
            put.parameters =
                Some(crate::entity::Parameters::new().with("_actions", json!(resolved)));
        }
    }
    let existing: Option<(WhiskAction, String)> = read_optional(&s, &id, ENTITY_TYPE).await?;
    let (action, rev) = match existing {
        Some(_) if !overwrite => return Err(ApiError::exists()),
        Some((old, rev)) => (
            old.update(put, &c.manifest, limits, now_ms())
                .map_err(put_error)?,
            Some(rev),
        ),
        None => (
            WhiskAction::create(
                &target.path(),
                &target.name,
                put,
                &c.manifest,
                limits,
                now_ms(),
            )
            .map_err(put_error)?,
            None,
        ),
    };
    write(&s, &id, action.to_document(), rev.as_deref()).await?;
    Ok(Json(action.to_json(true)).into_response())
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
    put_impl(s, user, t, q, body).await
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
    put_impl(s, user, t, q, body).await
}

async fn delete_impl(s: ApiState, target: Result<Target, ApiError>) -> Result<Response, ApiError> {
    let target = target?;
    target.writable()?;
    check_package(&s, &target).await?;
    let (action, rev): (WhiskAction, _) = read(&s, &target.doc_id(), ENTITY_TYPE).await?;
    remove(&s, &target.doc_id(), &rev).await?;
    Ok(Json(action.to_json(true)).into_response())
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
pub(crate) fn arguments(action: &WhiskAction, payload: Value) -> Result<Value, ApiError> {
    if let Value::Object(p) = &payload {
        let defined = |k: &String| action.parameters.get(k).is_some_and(|v| !v.is_null());
        if action.annotations.is_truthy("final", false) && p.keys().any(defined) {
            return Err(ApiError::bad_request(
                "Request defines parameters that are not allowed (e.g., reserved properties).",
            ));
        }
    }
    Ok(action.parameters.merged_with(payload))
}

/// Maps an invocation failure to OpenWhisk's status.
pub(crate) fn invoke_error(e: InvokeError) -> ApiError {
    match e {
        InvokeError::LoadBalancer(LoadBalancerError::NoInvokers) => {
            ApiError::unavailable("No invokers available")
        }
        InvokeError::LoadBalancer(LoadBalancerError::Bus(crate::bus::BusError::Unavailable(m))) => {
            ApiError::unavailable(format!("The message bus is unavailable: {m}"))
        }
        InvokeError::LoadBalancer(other) => ApiError::internal(other),
        InvokeError::Throttled(t) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, t.to_string()),
    }
}

/// The HTTP status of a finished activation: 200, 502 for application and developer errors,
/// 500 for whisk errors.
pub(crate) fn activation_status(status: Status) -> StatusCode {
    match status {
        Status::Success => StatusCode::OK,
        Status::ApplicationError | Status::DeveloperError => StatusCode::BAD_GATEWAY,
        Status::WhiskError => StatusCode::INTERNAL_SERVER_ERROR,
    }
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
    let resolved = resolve(&s, &user, &target).await?;
    if let Some(components) = resolved.action.exec.components() {
        s.controller
            .entitle_components(&user, components)
            .await
            .map_err(sequence_error)?;
    }
    if let Exec::Code { kind, .. } = &resolved.action.exec {
        if s.controller
            .config()
            .manifest
            .resolve(kind)
            .is_ok_and(|k| k.deprecated)
        {
            return Err(ApiError::bad_request(
                crate::entity::exec::ExecError::Deprecated(kind.clone()).to_string(),
            ));
        }
    }
    let args = arguments(&resolved.action, payload)?;
    let inv = Invocation {
        user,
        action: resolved,
        args,
        blocking,
        wait,
        transid: tid.0,
        cause: None,
    };
    let invoked = s.controller.invoke(inv).await.map_err(invoke_error)?;
    let (status, id, body) = match invoked {
        Invoked::Accepted(id) => (
            StatusCode::ACCEPTED,
            id.clone(),
            json!({ "activationId": id }),
        ),
        Invoked::Completed(a) => {
            let result = a.response.result.clone().unwrap_or_else(|| json!({}));
            let body = if result.is_array() || result_only {
                result
            } else {
                a.to_extended_json()
            };
            (
                activation_status(a.response.status),
                a.activation_id.clone(),
                body,
            )
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
