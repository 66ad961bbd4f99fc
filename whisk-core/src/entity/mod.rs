//! The OpenWhisk entity model, serialised exactly as OpenWhisk serialises it.

pub mod action;
pub mod activation;
pub mod exec;
pub mod identity;
pub mod limits;
pub mod name;
pub mod package;
pub mod parameters;
pub mod secret;
pub mod semver;
pub mod trigger;

pub use action::{WhiskAction, WhiskActionPut};
pub use activation::{ActivationId, ActivationResponse, StatusCode, WhiskActivation};
pub use exec::{Exec, RuntimeManifest};
pub use identity::{AuthKey, Identity, SubjectDoc};
pub use limits::{ActionLimits, SystemLimits};
pub use name::{EntityName, FullyQualifiedEntityName, NameError};
pub use package::{Binding, WhiskPackage, WhiskPackagePut};
pub use parameters::{Parameter, Parameters};
pub use semver::SemVer;
pub use trigger::{
    ReducedRule, RuleStatus, WhiskRule, WhiskRulePut, WhiskTrigger, WhiskTriggerPut,
};
