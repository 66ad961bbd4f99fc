//! Reading and writing entities for the CRUD handlers, with OpenWhisk's statuses.

use super::{resolve_error, ApiError, ApiState};
use crate::store::{Collection, StoreError};
use serde_json::Value;

/// Reads entity `id` of `entity_type`: 404 when missing, 409 when another type has the id.
pub(crate) async fn read<T: serde::de::DeserializeOwned>(
    s: &ApiState,
    id: &str,
    entity_type: &str,
) -> Result<(T, String), ApiError> {
    s.controller
        .read_entity(id, entity_type)
        .await
        .map_err(resolve_error)
}

/// Reads entity `id` if it exists (another type at the id is a 409).
pub(crate) async fn read_optional<T: serde::de::DeserializeOwned>(
    s: &ApiState,
    id: &str,
    entity_type: &str,
) -> Result<Option<(T, String)>, ApiError> {
    match s.controller.read_entity(id, entity_type).await {
        Ok(found) => Ok(Some(found)),
        Err(crate::controller::ResolveError::NotFound) => Ok(None),
        Err(e) => Err(resolve_error(e)),
    }
}

/// Writes `doc` at `id`: a create when `rev` is `None`, else an update at `rev`.
pub(crate) async fn write(
    s: &ApiState,
    id: &str,
    doc: Value,
    rev: Option<&str>,
) -> Result<(), ApiError> {
    match s
        .controller
        .store()
        .put(Collection::Whisks, id, doc, rev)
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::AlreadyExists) if rev.is_none() => Err(ApiError::exists()),
        Err(StoreError::AlreadyExists | StoreError::Conflict | StoreError::NotFound) => {
            Err(ApiError::conflict())
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes `id` at `rev`.
pub(crate) async fn remove(s: &ApiState, id: &str, rev: &str) -> Result<(), ApiError> {
    match s
        .controller
        .store()
        .delete(Collection::Whisks, id, rev)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(ApiError::conflict()),
        Err(e) => Err(e.into()),
    }
}

/// Validates an entity name from a path.
pub(crate) fn entity_name(name: &str) -> Result<(), ApiError> {
    crate::entity::EntityName::new(name)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The document id `ns/name` of entity `name` in the caller's namespace (`ns` is the path
/// segment; another namespace is refused with 403), with the name validated.
pub(crate) fn own_id(
    user: &crate::entity::Identity,
    ns: &str,
    name: &str,
) -> Result<String, ApiError> {
    let ns = super::resolve_namespace(user, ns, name)?;
    entity_name(name)?;
    Ok(format!("{ns}/{name}"))
}
