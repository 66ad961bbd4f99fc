//! `/namespaces/{ns}/packages[/{name}]` and `/namespaces/{ns}/actions/{pkg}/`: packages and
//! bindings.

use super::entities::{entity_name, own_id, read, read_optional, remove, write};
use super::params::{flag, typed_body, QueryMap};
use super::{list_entities, resolve_error, ApiError, ApiState, Auth};
use crate::entity::action::ENTITY_TYPE as ACTION;
use crate::entity::name::DEFAULT_NAMESPACE;
use crate::entity::package::ENTITY_TYPE;
use crate::entity::{Binding, Identity, WhiskAction, WhiskPackage, WhiskPackagePut};
use crate::message::now_ms;
use crate::store::{Collection, Query as StoreQuery};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

/// The caller's namespace, or another namespace whose published packages are readable.
fn read_namespace(user: &Identity, ns: &str) -> Result<(String, bool), ApiError> {
    if ns == DEFAULT_NAMESPACE || ns == user.namespace.name {
        return Ok((user.namespace.name.clone(), true));
    }
    crate::entity::name::validate_namespace(ns)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((ns.to_string(), false))
}

/// `GET /packages`: own packages and bindings, or another namespace's published packages.
pub(crate) async fn list(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path(ns): Path<String>,
    Query(q): Query<QueryMap>,
) -> Result<Response, ApiError> {
    let (ns, own) = read_namespace(&user, &ns)?;
    list_entities(&s, ns, ENTITY_TYPE, "packages", &q, |v| {
        let p = serde_json::from_value::<WhiskPackage>(v).ok()?;
        (own || (p.publish && p.binding.is_none())).then(|| p.summary())
    })
    .await
}

/// The actions of package `ns/name` (stored docs), newest first.
async fn actions_of(s: &ApiState, package: &WhiskPackage) -> Result<Vec<WhiskAction>, ApiError> {
    let query = StoreQuery {
        collection: Some(Collection::Whisks),
        namespace: package.doc_id(),
        entity_type: Some(ACTION.into()),
        ..Default::default()
    };
    let docs = s.controller.store().query(&query).await?;
    Ok(docs
        .into_iter()
        .filter_map(|d| serde_json::from_value(d).ok())
        .collect())
}

/// `GET /packages/{name}`: the package (or binding) with its actions and feeds.
pub(crate) async fn get(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (ns, _) = read_namespace(&user, &ns)?;
    entity_name(&name)?;
    let resolved = s
        .controller
        .resolve_package(&user, &ns, &name)
        .await
        .map_err(resolve_error)?;
    let actions = actions_of(&s, &resolved.target).await?;
    let item = |a: &WhiskAction| json!({"name": a.name, "version": a.version, "annotations": a.annotations});
    let (feeds, plain): (Vec<&WhiskAction>, Vec<&WhiskAction>) = actions
        .iter()
        .partition(|a| a.annotations.get("feed").is_some());
    let mut body = resolved.entity.to_json();
    body["parameters"] = json!(resolved.parameters);
    body["actions"] = Value::Array(plain.into_iter().map(item).collect());
    body["feeds"] = Value::Array(feeds.into_iter().map(item).collect());
    Ok(Json(body).into_response())
}

/// `GET /actions/{pkg}/`: the actions of a package (or of a binding's package).
pub(crate) async fn list_actions(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, pkg)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (ns, _) = read_namespace(&user, &ns)?;
    entity_name(&pkg)?;
    let resolved = s
        .controller
        .resolve_package(&user, &ns, &pkg)
        .await
        .map_err(resolve_error)?;
    let items: Vec<Value> = actions_of(&s, &resolved.target)
        .await?
        .iter()
        .map(WhiskAction::summary)
        .collect();
    Ok(Json(Value::Array(items)).into_response())
}

/// Checks the package a binding points at. In another namespace it must be a published
/// package; anything else there (private, a binding, missing, not a package) is refused
/// alike, as OpenWhisk's entitlement check refuses it, so nothing about that namespace leaks.
async fn check_binding(s: &ApiState, user: &Identity, b: &Binding) -> Result<(), ApiError> {
    if b.namespace != user.namespace.name {
        return match s
            .controller
            .read_entity::<WhiskPackage>(&b.doc_id(), ENTITY_TYPE)
            .await
        {
            Ok((t, _)) if t.publish && t.binding.is_none() => Ok(()),
            Ok(_)
            | Err(
                crate::controller::ResolveError::NotFound
                | crate::controller::ResolveError::WrongCollection,
            ) => Err(ApiError::forbidden(&b.doc_id())),
            Err(e) => Err(resolve_error(e)),
        };
    }
    let target = match s
        .controller
        .read_entity::<WhiskPackage>(&b.doc_id(), ENTITY_TYPE)
        .await
    {
        Ok((t, _)) => t,
        Err(crate::controller::ResolveError::NotFound) => {
            return Err(ApiError::bad_request(
                "Binding references a package that does not exist.",
            ))
        }
        Err(crate::controller::ResolveError::WrongCollection) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Cannot bind to a resource that is not a package.",
            ))
        }
        Err(e) => return Err(resolve_error(e)),
    };
    if target.binding.is_some() {
        return Err(ApiError::bad_request(
            "Cannot bind to another package binding.",
        ));
    }
    Ok(())
}

/// `PUT /packages/{name}`: create or update a package or binding.
pub(crate) async fn put(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<QueryMap>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    if name == "default" {
        return Err(ApiError::bad_request("Package name 'default' is reserved."));
    }
    let overwrite = flag(&q, "overwrite", false)?;
    let mut put: WhiskPackagePut = typed_body(&body)?;
    if let Some(b) = put.binding.as_mut() {
        if b.namespace == DEFAULT_NAMESPACE || b.namespace.is_empty() {
            b.namespace = user.namespace.name.clone();
        }
        check_binding(&s, &user, b).await?;
    }
    let existing: Option<(WhiskPackage, String)> = read_optional(&s, &id, ENTITY_TYPE).await?;
    let mut annotations = put.annotations.clone().unwrap_or_default();
    annotations.remove("binding");
    let (mut package, rev) = match existing {
        Some(_) if !overwrite => return Err(ApiError::exists()),
        Some((old, _)) if old.binding.is_none() && put.binding.is_some() => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Resource is a package and cannot be converted into a binding.",
            ))
        }
        Some((old, rev)) => {
            let binding = put.binding.or(old.binding.clone());
            let package = WhiskPackage {
                binding,
                parameters: put.parameters.unwrap_or(old.parameters),
                version: put.version.unwrap_or_else(|| old.version.up_patch()),
                publish: put.publish.unwrap_or(old.publish),
                annotations: if put.annotations.is_some() {
                    annotations
                } else {
                    old.annotations
                },
                updated: now_ms(),
                ..old
            };
            (package, Some(rev))
        }
        None => (
            WhiskPackage {
                namespace: user.namespace.name.clone(),
                name,
                binding: put.binding,
                parameters: put.parameters.unwrap_or_default(),
                version: put.version.unwrap_or_default(),
                publish: put.publish.unwrap_or(false),
                annotations,
                updated: now_ms(),
            },
            None,
        ),
    };
    if let Some(b) = &package.binding {
        package
            .annotations
            .set("binding", json!({"namespace": b.namespace, "name": b.name}));
    }
    write(&s, &id, package.to_document(), rev.as_deref()).await?;
    Ok(Json(package.to_json()).into_response())
}

/// `DELETE /packages/{name}`: a binding always; a package only when empty, or with `force`.
pub(crate) async fn delete(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<QueryMap>,
) -> Result<Response, ApiError> {
    let id = own_id(&user, &ns, &name)?;
    let force = flag(&q, "force", false)?;
    let (package, rev): (WhiskPackage, String) = read(&s, &id, ENTITY_TYPE).await?;
    if package.binding.is_none() {
        let contents = actions_of(&s, &package).await?;
        if !contents.is_empty() && !force {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "Package not empty (contains {} entities). Set force param or delete package contents.",
                    contents.len()
                ),
            ));
        }
        for a in contents {
            let (_, arev): (WhiskAction, String) = read(&s, &a.doc_id(), ACTION).await?;
            remove(&s, &a.doc_id(), &arev).await?;
        }
    }
    remove(&s, &id, &rev).await?;
    Ok(Json(package.to_json()).into_response())
}
