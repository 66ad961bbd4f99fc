//! Resolving names to entities: packages, bindings, actions in packages, and who may see them.

use super::Controller;
use crate::entity::package::ENTITY_TYPE as PACKAGE;
use crate::entity::{Identity, Parameters, WhiskAction, WhiskPackage};
use crate::store::{parse_entity, StoreError, StoreExt};
use std::sync::Arc;

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Nothing there (or nothing the caller may know of).
    #[error("The requested resource does not exist.")]
    NotFound,
    /// A document of another entity type has that name.
    #[error("Resource by this name exists but is not in this collection.")]
    WrongCollection,
    /// The caller may not use the entity (`resource` is `ns/...`).
    #[error("The supplied authentication is not authorized to access '{0}'.")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An action ready to run.
#[derive(Debug, Clone)]
pub struct ResolvedAction {
    /// The action where it lives (`namespace` is its real package path), with parameters
    /// merged: package < binding < action.
    pub action: Arc<WhiskAction>,
    /// Its document revision.
    pub revision: String,
    /// `ns/binding` when reached through a binding.
    pub binding: Option<String>,
}

/// A package as its caller sees it.
#[derive(Debug, Clone)]
pub struct ResolvedPackage {
    /// The package the name refers to (a binding itself when the name is a binding).
    pub entity: WhiskPackage,
    /// The package whose actions it offers (the bound package for a binding).
    pub target: WhiskPackage,
    /// Parameters: package < binding.
    pub parameters: Parameters,
}

/// A store lookup of an entity as a resolution: `None` (another entity type) is
/// `WrongCollection`, a missing document `NotFound`.
fn found<T>(read: Result<Option<T>, StoreError>) -> Result<T, ResolveError> {
    match read {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(ResolveError::WrongCollection),
        Err(StoreError::NotFound) => Err(ResolveError::NotFound),
        Err(e) => Err(e.into()),
    }
}

impl Controller {
    /// Reads entity `id` of `entity_type`, telling a missing document from another type.
    pub(crate) async fn read_entity<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        entity_type: &str,
    ) -> Result<(T, String), ResolveError> {
        found(self.store.get_entity(id, entity_type).await)
    }

    /// Reads action `id`, parsing its document only when its revision is not the one parsed
    /// last (the store's cache shares the document; parsing copies the code).
    async fn read_action(&self, id: &str) -> Result<(Arc<WhiskAction>, String), ResolveError> {
        let entity_type = crate::entity::action::ENTITY_TYPE;
        let doc = found(self.store.get_entity_document(id, entity_type).await)?;
        if let Some((rev, action)) = self.actions.get(id) {
            if rev == doc.rev {
                return Ok((action, rev));
            }
        }
        let action = Arc::new(parse_entity::<WhiskAction>(&doc, id, entity_type)?);
        self.actions
            .insert(id.to_string(), (doc.rev.clone(), action.clone()));
        Ok((action, doc.rev.clone()))
    }

    /// Resolves package `ns/name` for `user`: own packages and bindings, or another
    /// namespace's published package. A binding resolves to its bound package, which must be
    /// the caller's own or published.
    pub async fn resolve_package(
        &self,
        user: &Identity,
        ns: &str,
        name: &str,
    ) -> Result<ResolvedPackage, ResolveError> {
        let own = ns == user.namespace.name;
        let id = format!("{ns}/{name}");
        let (entity, _): (WhiskPackage, _) = match self.read_entity(&id, PACKAGE).await {
            Ok(found) => found,
            // Another namespace's missing package (or other entity) is refused like a private
            // one, so nothing about that namespace's contents leaks.
            Err(ResolveError::NotFound | ResolveError::WrongCollection) if !own => {
                return Err(ResolveError::Forbidden(id))
            }
            Err(e) => return Err(e),
        };
        if !own && (!entity.publish || entity.binding.is_some()) {
            return Err(ResolveError::Forbidden(id));
        }
        let Some(b) = entity.binding.clone() else {
            return Ok(ResolvedPackage {
                parameters: entity.parameters.clone(),
                target: entity.clone(),
                entity,
            });
        };
        let (target, _): (WhiskPackage, _) = match self.read_entity(&b.doc_id(), PACKAGE).await {
            Ok(t) => t,
            Err(ResolveError::NotFound | ResolveError::WrongCollection) => {
                return Err(ResolveError::NotFound)
            }
            Err(e) => return Err(e),
        };
        if b.namespace != user.namespace.name && !target.publish {
            return Err(ResolveError::Forbidden(b.doc_id()));
        }
        let parameters = target.parameters.merge(&entity.parameters);
        Ok(ResolvedPackage {
            entity,
            target,
            parameters,
        })
    }

    /// Resolves action `name` under `path` (`ns` or `ns/pkg`) for `user`.
    pub async fn resolve_action(
        &self,
        user: &Identity,
        path: &str,
        name: &str,
    ) -> Result<ResolvedAction, ResolveError> {
        let (ns, pkg) = match path.split_once('/') {
            Some((ns, pkg)) => (ns, Some(pkg)),
            None => (path, None),
        };
        let Some(pkg) = pkg else {
            if ns != user.namespace.name {
                return Err(ResolveError::Forbidden(format!("{ns}/{name}")));
            }
            let (action, revision) = self.read_action(&format!("{ns}/{name}")).await?;
            return Ok(ResolvedAction {
                action,
                revision,
                binding: None,
            });
        };
        let package = self.resolve_package(user, ns, pkg).await?;
        let target = &package.target;
        let id = format!("{}/{}/{name}", target.namespace, target.name);
        let (mut action, revision): (WhiskAction, _) = self
            .read_entity(&id, crate::entity::action::ENTITY_TYPE)
            .await?;
        action.parameters = package.parameters.merge(&action.parameters);
        let binding = package
            .entity
            .binding
            .is_some()
            .then(|| package.entity.doc_id());
        Ok(ResolvedAction {
            action: Arc::new(action),
            revision,
            binding,
        })
    }
}
