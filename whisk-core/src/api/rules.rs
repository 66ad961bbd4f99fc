//! `/namespaces/{ns}/rules[/{name}]`: rules CRUD and enable/disable. A rule's status lives in
//! its trigger's `rules` map, as in OpenWhisk.

use super::entities::{own_id, read, read_optional, remove, write};
use super::params::{flag, typed_body, QueryMap};
use super::{ApiError, ApiState, Auth};
use crate::entity::trigger::{RULE_TYPE, TRIGGER_TYPE};
use crate::entity::{
    FullyQualifiedEntityName, ReducedRule, RuleStatus, WhiskRule, WhiskRulePut, WhiskTrigger,
};
use crate::message::now_ms;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;

/// How often a trigger update is retried after a concurrent modification.
const LINK_RETRIES: usize = 5;

/// Applies `change` to the `rules` map of trigger `trigger`, retrying on conflicts.
/// Returns false when the trigger does not exist.
async fn relink(
    s: &ApiState,
    trigger: &FullyQualifiedEntityName,
    change: impl Fn(&mut BTreeMap<String, ReducedRule>),
) -> Result<bool, ApiError> {
    for _ in 0..LINK_RETRIES {
        let Some((mut t, rev)) =
            read_optional::<WhiskTrigger>(s, &trigger.doc_id(), TRIGGER_TYPE).await?
        else {
            return Ok(false);
        };
        let mut rules = t.rules.take().unwrap_or_default();
        change(&mut rules);
        t.rules = Some(rules);
        match write(s, &trigger.doc_id(), t.to_document(), Some(&rev)).await {
            Ok(()) => return Ok(true),
            Err(e) if e.status == StatusCode::CONFLICT => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict())
}

/// The status of `rule` as its trigger records it (`inactive` when the trigger is gone).
async fn status_of(s: &ApiState, rule: &WhiskRule) -> Result<RuleStatus, ApiError> {
    let t: Option<(WhiskTrigger, String)> =
        read_optional(s, &rule.trigger.doc_id(), TRIGGER_TYPE).await?;
    Ok(t.and_then(|(t, _)| {
        t.rules
            .and_then(|r| r.get(&rule.doc_id()).map(|l| l.status))
    })
    .unwrap_or(RuleStatus::Inactive))
}

/// `GET /rules/{name}`: the rule with its status.
pub(crate) async fn get(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    let (rule, _): (WhiskRule, _) = read(&s, &id, RULE_TYPE).await?;
    let status = status_of(&s, &rule).await?;
    Ok(Json(rule.with_status(status)).into_response())
}

/// Parses a rule's `trigger` or `action` reference: `"/ns/[pkg/]name"` or `{path, name}`.
fn reference(v: &Value, own: &str) -> Option<FullyQualifiedEntityName> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => format!("/{}/{}", o.get("path")?.as_str()?, o.get("name")?.as_str()?),
        _ => return None,
    };
    FullyQualifiedEntityName::parse(&text, own).ok()
}

/// `PUT /rules/{name}`: create (linked and active) or update (re-linked, status kept).
pub(crate) async fn put(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<QueryMap>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    let overwrite = flag(&q, "overwrite", false)?;
    let put: WhiskRulePut = typed_body(&body)?;
    let own = user.namespace.name.clone();
    let existing: Option<(WhiskRule, String)> = read_optional(&s, &id, RULE_TYPE).await?;
    if existing.is_some() && !overwrite {
        return Err(ApiError::exists());
    }
    let parse = |v: &Option<Value>| v.as_ref().map(|v| reference(v, &own));
    let (trigger, action) = match (parse(&put.trigger), parse(&put.action), &existing) {
        (Some(Some(t)), Some(Some(a)), _) => (t, a),
        (None, None, Some((old, _))) => (old.trigger.clone(), old.action.clone()),
        (t, a, Some((old, _)))
            if t.as_ref().is_none_or(Option::is_some) && a.as_ref().is_none_or(Option::is_some) =>
        {
            (
                t.flatten().unwrap_or_else(|| old.trigger.clone()),
                a.flatten().unwrap_or_else(|| old.action.clone()),
            )
        }
        _ => {
            return Err(ApiError::bad_request(
                "rule requires a valid trigger and a valid action",
            ))
        }
    };
    // OpenWhisk's entitlement check of the rule's references: triggers are never shared, an
    // action of another namespace only through a published package.
    let mut refused = Vec::new();
    if trigger.path.split('/').next() != Some(own.as_str()) {
        refused.push(trigger.doc_id());
    }
    if let Err(crate::controller::ResolveError::Forbidden(resource)) = s
        .controller
        .resolve_action(&user, &action.path, &action.name)
        .await
    {
        refused.push(resource);
    }
    if !refused.is_empty() {
        refused.sort();
        return Err(ApiError::forbidden(&refused.join(", ")));
    }
    if read_optional::<WhiskTrigger>(&s, &trigger.doc_id(), TRIGGER_TYPE)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "trigger {} does not exist",
            trigger.absolute()
        )));
    }
    if s.controller
        .resolve_action(&user, &action.path, &action.name)
        .await
        .is_err()
    {
        return Err(ApiError::bad_request(format!(
            "action {} does not exist",
            action.absolute()
        )));
    }
    let (rule, rev, status) = match existing {
        Some((old, rev)) => {
            let status = status_of(&s, &old).await?;
            let rule = WhiskRule {
                trigger: trigger.clone(),
                action: action.clone(),
                version: put.version.unwrap_or_else(|| old.version.up_patch()),
                publish: put.publish.unwrap_or(old.publish),
                annotations: put.annotations.unwrap_or(old.annotations.clone()),
                updated: now_ms(),
                ..old.clone()
            };
            if old.trigger != trigger {
                relink(&s, &old.trigger, |r| {
                    r.remove(&id);
                })
                .await?;
            }
            (rule, Some(rev), status)
        }
        None => (
            WhiskRule {
                namespace: own.clone(),
                name,
                trigger: trigger.clone(),
                action: action.clone(),
                version: put.version.unwrap_or_default(),
                publish: put.publish.unwrap_or(false),
                annotations: put.annotations.unwrap_or_default(),
                updated: now_ms(),
            },
            None,
            RuleStatus::Active,
        ),
    };
    write(&s, &id, rule.to_document(), rev.as_deref()).await?;
    let link = ReducedRule {
        action: plain(&action),
        status,
    };
    relink(&s, &trigger, |r| {
        r.insert(id.clone(), link.clone());
    })
    .await?;
    Ok(Json(rule.with_status(status)).into_response())
}

/// A reference without version or binding.
fn plain(f: &FullyQualifiedEntityName) -> FullyQualifiedEntityName {
    FullyQualifiedEntityName::new(f.path.clone(), f.name.clone())
}

/// `POST /rules/{name}`: `{"status": "active" | "inactive"}`; 200 also when nothing changes.
pub(crate) async fn set_status(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    let body: Value = super::params::json_body(&body)?;
    let wanted = body.get("status").cloned().unwrap_or(Value::Null);
    let status = match wanted.as_str() {
        Some("active") => RuleStatus::Active,
        Some("inactive") => RuleStatus::Inactive,
        _ => {
            let shown = wanted
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| wanted.to_string());
            return Err(ApiError::bad_request(format!(
                "'{shown}' is not a recognized rule state, must be one of ['active', 'inactive']"
            )));
        }
    };
    let (rule, _): (WhiskRule, _) = read(&s, &id, RULE_TYPE).await?;
    let link = ReducedRule {
        action: plain(&rule.action),
        status,
    };
    let linked = relink(&s, &rule.trigger, |r| {
        r.insert(id.clone(), link.clone());
    })
    .await?;
    if !linked {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Only rules with existing triggers can be activated",
        ));
    }
    Ok(Json(rule.with_status(status)).into_response())
}

/// `DELETE /rules/{name}`: unlinks and deletes; answers the rule as `inactive`.
pub(crate) async fn delete(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    let (rule, rev): (WhiskRule, _) = read(&s, &id, RULE_TYPE).await?;
    relink(&s, &rule.trigger, |r| {
        r.remove(&id);
    })
    .await?;
    remove(&s, &id, &rev).await?;
    Ok(Json(rule.with_status(RuleStatus::Inactive)).into_response())
}
