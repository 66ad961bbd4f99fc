//! Unauthenticated invoker health routes, as OpenWhisk's controller serves them:
//! `GET /invokers`, `GET /invokers/healthy/count` and `GET /invokers/ready`; and the
//! Prometheus metrics, `GET /metrics`.

use super::ApiState;
use crate::loadbalancer::{ready_state, InvokerState};
use crate::metrics::{Metrics, CONTENT_TYPE};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// `GET /invokers`: `{"invoker0":"up","invoker1":"down",...}`.
pub(crate) async fn invokers(State(s): State<ApiState>) -> Json<Value> {
    let health = s.controller.load_balancer().invoker_health();
    let map: Map<String, Value> = health
        .into_iter()
        .map(|i| (i.instance.display(), json!(i.state.as_str())))
        .collect();
    Json(Value::Object(map))
}

/// `GET /invokers/healthy/count`: the number of healthy invokers.
pub(crate) async fn healthy_count(State(s): State<ApiState>) -> Json<Value> {
    Json(json!(s.controller.load_balancer().healthy_count()))
}

/// `GET /invokers/ready`: 200 `{"healthy":"n/m"}` when enough invokers are healthy
/// (OpenWhisk's readiness fraction, 100% by default), else 500 `{"unhealthy":"k/m"}`.
pub(crate) async fn ready(State(s): State<ApiState>) -> Response {
    let lb = s.controller.load_balancer();
    let health = lb.invoker_health();
    let all = health.len();
    let healthy = health
        .iter()
        .filter(|i| i.state == InvokerState::Healthy)
        .count();
    if ready_state(all, healthy, lb.config().readiness_fraction) {
        Json(json!({"healthy": format!("{healthy}/{all}")})).into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"unhealthy": format!("{}/{all}", all - healthy)})),
        )
            .into_response()
    }
}

/// `GET /metrics`: the controller's metrics registry in the Prometheus text format.
pub(crate) async fn metrics(State(s): State<ApiState>) -> Response {
    exposition(&s.controller.config().metrics)
}

/// `metrics` as a Prometheus text exposition response.
pub(crate) fn exposition(metrics: &Metrics) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()).into_response()
}
