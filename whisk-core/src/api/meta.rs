//! Unauthenticated platform information (`/`, `/api/v1`) and `GET /namespaces`.

use super::{ApiState, Auth};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// `GET /`: controller information with limits and runtimes.
pub(crate) async fn info(State(s): State<ApiState>) -> Json<Value> {
    let c = s.controller.config();
    let l = &c.limits;
    const MB: u64 = 1024 * 1024;
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
