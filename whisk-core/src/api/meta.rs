//! Unauthenticated platform information (`/`, `/api/v1`) and `GET /namespaces`.

use super::{ApiState, Auth};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// Bytes in a megabyte.
const MB: u64 = 1024 * 1024;

/// `GET /`: controller information with limits and runtimes.
pub(crate) async fn info(State(s): State<ApiState>) -> Json<Value> {
    let c = s.controller.config();
    let l = &c.limits;
    Json(json!({
        "description": "OpenWhisk",
        "support": {
            "github": "https://github.com/apache/openwhisk/issues",
            "slack": "http://slack.openwhisk.org"
        },
        "api_paths": ["/api/v1"],
        "limits": {
            "actions_per_minute": 60,
            "triggers_per_minute": 60,
            "concurrent_actions": 30,
            "sequence_length": 50,
            "min_action_duration": l.timeout_ms.min,
            "max_action_duration": l.timeout_ms.max,
            "min_action_memory": l.memory_mb.min * MB,
            "max_action_memory": l.memory_mb.max * MB,
            "min_action_logs": l.logs_mb.min * MB,
            "max_action_logs": l.logs_mb.max * MB,
        },
        "runtimes": c.manifest.info_json(),
    }))
}

/// `GET /api/v1`.
pub(crate) async fn api_info() -> Json<Value> {
    Json(json!({
        "description": "OpenWhisk API",
        "api_version": "1.0.0",
        "api_version_path": "v1",
        "build": env!("CARGO_PKG_VERSION"),
        "buildno": concat!("whisk-", env!("CARGO_PKG_VERSION")),
        "swagger_paths": {"ui": "/docs", "api-docs": "/api-docs"},
    }))
}

/// `GET /api/v1/namespaces`: the caller's namespace.
pub(crate) async fn namespaces(Auth(user): Auth) -> Json<Value> {
    Json(json!([user.namespace.name]))
}

/// The OpenAPI description of this API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/v1/api-docs`.
pub(crate) async fn api_docs() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// `GET /namespaces/{ns}/limits`: the namespace's effective limits.
pub(crate) async fn limits(
    State(s): State<ApiState>,
    Auth(user): Auth,
    axum::extract::Path(ns): axum::extract::Path<String>,
) -> Result<Json<Value>, super::ApiError> {
    super::resolve_namespace(&user, &ns, "")?;
    let c = s.controller.config();
    let l = &c.limits;
    let t = s.controller.limits_for(&user);
    let mut out = json!({
        "invocationsPerMinute": t.invocations_per_minute,
        "concurrentInvocations": t.concurrent_invocations,
        "firesPerMinute": t.fires_per_minute,
        "minActionMemory": l.memory_mb.min,
        "maxActionMemory": l.memory_mb.max,
        "minActionLogs": l.logs_mb.min,
        "maxActionLogs": l.logs_mb.max,
        "minActionTimeout": l.timeout_ms.min,
        "maxActionTimeout": l.timeout_ms.max,
        "minActionConcurrency": l.concurrency.min,
        "maxActionConcurrency": l.concurrency.max,
        "maxParameterSize": format!("{} B", l.max_parameter_bytes),
        "maxActionInstances": t.concurrent_invocations,
    });
    if let (Some(o), Some(own)) = (out.as_object_mut(), user.limits.as_object()) {
        for (k, v) in own {
            o.entry(k.clone()).or_insert(v.clone());
        }
    }
    Ok(Json(out))
}
