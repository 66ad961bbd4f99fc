//! `/namespaces/{ns}/activations[/{id}[/logs|/result]]`: read-only activation records.

use super::params::{epoch_ms, flag, limit, skip, QueryMap};
use super::{resolve_namespace, ApiError, ApiState, Auth};
use crate::entity::{ActivationId, EntityName, WhiskActivation};
use crate::store::{Collection, Query as StoreQuery, StoreExt};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

/// The `name` filter: `action` or `pkg/action`.
fn name_filter(q: &QueryMap) -> Result<Option<String>, ApiError> {
    let Some(v) = q.get("name") else {
        return Ok(None);
    };
    let parts: Vec<&str> = v.split('/').filter(|p| !p.is_empty()).collect();
    let bad = || {
        ApiError::bad_request(format!(
            "Parameter may be a 'simple' name or 'package-name/simple' name: {v}"
        ))
    };
    if parts.is_empty() || parts.len() > 2 {
        return Err(bad());
    }
    for p in &parts {
        EntityName::new(p).map_err(|_| bad())?;
    }
    Ok(Some(parts.join("/")))
}

/// `GET /activations`.
pub(crate) async fn list(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path(ns): Path<String>,
    Query(q): Query<QueryMap>,
) -> Result<Json<Value>, ApiError> {
    let ns = resolve_namespace(&user, &ns, "")?;
    let count = flag(&q, "count", false)?;
    let docs = flag(&q, "docs", false)?;
    if count && docs {
        return Err(ApiError::bad_request(
            "The parameter 'docs' is not permitted with 'count'.",
        ));
    }
    let query = StoreQuery {
        collection: Some(Collection::Activations),
        namespace: ns,
        name: name_filter(&q)?,
        since: epoch_ms(&q, "since")?,
        upto: epoch_ms(&q, "upto")?,
        limit: limit(&q, "activations")?,
        skip: skip(&q)?,
        ..Default::default()
    };
    let store = s.controller.store();
    if count {
        return Ok(Json(json!({ "activations": store.count(&query).await? })));
    }
    let items: Vec<Value> = store
        .query(&query)
        .await?
        .into_iter()
        .filter_map(|d| serde_json::from_value::<WhiskActivation>(d).ok())
        .map(|a| {
            if docs {
                a.to_extended_json()
            } else {
                a.summary()
            }
        })
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn fetch(
    s: &ApiState,
    user: &crate::entity::Identity,
    ns: &str,
    id: &str,
) -> Result<WhiskActivation, ApiError> {
    let ns = resolve_namespace(user, ns, id)?;
    let id = ActivationId::parse(id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(s.controller.store().get_activation(&ns, &id).await?)
}

/// `GET /activations/{id}`.
pub(crate) async fn get(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(fetch(&s, &user, &ns, &id).await?.to_extended_json()))
}

/// `GET /activations/{id}/logs`.
pub(crate) async fn logs(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "logs": fetch(&s, &user, &ns, &id).await?.logs }),
    ))
}

/// `GET /activations/{id}/result`.
pub(crate) async fn result(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        fetch(&s, &user, &ns, &id)
            .await?
            .response
            .to_extended_json(),
    ))
}
