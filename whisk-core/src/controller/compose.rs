//! Compositions run by the controller: sequences (`exec.kind: "sequence"`) and conductor
//! actions (annotation `conductor`), each recorded as an activation of its own whose logs are
//! the ids of its steps.

use super::{Controller, Invocation, InvokeError, Invoked, ResolvedAction};
use crate::entity::{
    ActivationId, ActivationResponse, FullyQualifiedEntityName, Parameters, StatusCode,
    WhiskActivation,
};
use crate::message::now_ms;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Most actions in a sequence or components in a composition.
pub const MAX_COMPONENTS: usize = 50;

/// Extra time a composition waits for a step beyond the step's own timeout.
const STEP_GRACE: Duration = Duration::from_secs(60);

/// What the steps of a composition add up to.
struct Steps {
    logs: Vec<String>,
    duration: u64,
    max_memory: u64,
    response: ActivationResponse,
}

impl Steps {
    fn new(args: &Value) -> Self {
        Self {
            logs: Vec::new(),
            duration: 0,
            max_memory: 0,
            response: ActivationResponse::success(args.clone()),
        }
    }

    /// Records a finished step; returns its activation when it completed.
    fn record(
        &mut self,
        step: Result<Invoked, InvokeError>,
        memory: u64,
    ) -> Option<WhiskActivation> {
        self.max_memory = self.max_memory.max(memory);
        match step {
            Ok(Invoked::Completed(a)) => {
                self.logs.push(a.activation_id.to_string());
                self.duration += a.effective_duration().unwrap_or(0);
                self.response = a.response.clone();
                Some(*a)
            }
            Ok(Invoked::Accepted(id)) => {
                self.logs.push(id.to_string());
                self.response = ActivationResponse::whisk_error(format!(
                    "Timeout reached when retrieving activation {id} for sequence component."
                ));
                None
            }
            Err(e) => {
                self.response = ActivationResponse::whisk_error(e.to_string());
                None
            }
        }
    }

    fn fail(&mut self, message: &str) {
        self.response = ActivationResponse::error(StatusCode::ApplicationError, message);
    }
}

impl Controller {
    /// Invokes through a boxed future (compositions nest).
    fn invoke_boxed(
        self: &Arc<Self>,
        inv: Invocation,
    ) -> Pin<Box<dyn Future<Output = Result<Invoked, InvokeError>> + Send + '_>> {
        Box::pin(self.invoke_unthrottled(inv))
    }

    /// Runs a sequence or conductor action in the background; a blocking caller waits up to
    /// its wait for the composition's activation.
    pub(super) async fn invoke_composition(
        self: &Arc<Self>,
        inv: Invocation,
    ) -> Result<Invoked, InvokeError> {
        let id = ActivationId::generate();
        let (blocking, wait) = (inv.blocking, inv.wait);
        let me = self.clone();
        let run_id = id.clone();
        let task = tokio::spawn(async move { me.run_composition(inv, run_id).await });
        if !blocking {
            return Ok(Invoked::Accepted(id));
        }
        match tokio::time::timeout(wait, task).await {
            Ok(Ok(a)) => Ok(Invoked::Completed(Box::new(a))),
            _ => Ok(Invoked::Accepted(id)),
        }
    }

    /// The step invocation of `action` with `args` inside composition `parent`.
    fn step(
        parent: &Invocation,
        id: &ActivationId,
        action: ResolvedAction,
        args: Value,
    ) -> Invocation {
        let wait = Duration::from_millis(action.action.limits.timeout) + STEP_GRACE;
        Invocation {
            user: parent.user.clone(),
            args: action.action.parameters.merged_with(args),
            action,
            blocking: true,
            wait,
            transid: parent.transid.clone(),
            cause: Some(id.clone()),
        }
    }

    async fn run_composition(
        self: Arc<Self>,
        inv: Invocation,
        id: ActivationId,
    ) -> WhiskActivation {
        let start = now_ms();
        let conductor = inv.action.action.exec.components().is_none();
        let mut steps = Steps::new(&inv.args);
        if conductor {
            self.run_conductor(&inv, &id, &mut steps).await;
        } else {
            self.run_sequence(&inv, &id, &mut steps).await;
        }
        let action = &inv.action.action;
        let mut annotations = Parameters::new()
            .with("topmost", json!(inv.cause.is_none()))
            .with("path", json!(action.doc_id()))
            .with("kind", json!("sequence"))
            .with("limits", json!({"timeout": action.limits.timeout, "memory": steps.max_memory.max(action.limits.memory), "logs": action.limits.logs, "concurrency": action.limits.concurrency}))
            .with("waitTime", json!(start.saturating_sub(inv.transid.start_ms())));
        if conductor {
            annotations.set("conductor", json!(true));
        }
        if inv.cause.is_some() {
            annotations.set("causedBy", json!("sequence"));
        }
        if let Some(b) = &inv.action.binding {
            annotations.set("binding", json!(b));
        }
        let activation = WhiskActivation {
            namespace: inv.user.namespace.name.clone(),
            name: action.name.clone(),
            subject: inv.user.subject.clone(),
            activation_id: id,
            start,
            end: now_ms(),
            cause: inv.cause.clone(),
            response: steps.response,
            logs: steps.logs,
            version: action.version,
            publish: false,
            annotations,
            duration: Some(steps.duration),
        };
        if let Some(event) = self
            .events
            .as_ref()
            .and_then(|e| e.activation(&activation, &inv.user))
        {
            event.publish();
        }
        self.recorder.record(&activation).await;
        activation
    }

    /// Feeds each component's result into the next; stops at the first failure.
    async fn run_sequence(
        self: &Arc<Self>,
        inv: &Invocation,
        id: &ActivationId,
        steps: &mut Steps,
    ) {
        let components = inv
            .action
            .action
            .exec
            .components()
            .unwrap_or_default()
            .to_vec();
        let mut args = match &inv.args {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| *k != "_actions")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        };
        if components.len() > MAX_COMPONENTS {
            return steps.fail("Too many actions in the sequence.");
        }
        for component in components {
            let Ok(action) = self.resolve_component(&inv.user, &component, true).await else {
                return steps.fail("Sequence component does not exist.");
            };
            let memory = action.action.limits.memory;
            let step = self.invoke_boxed(Self::step(inv, id, action, args)).await;
            match steps.record(step, memory) {
                Some(a) if a.response.is_success() => {
                    args = a.response.result.unwrap_or_else(|| json!({}))
                }
                _ => return,
            }
        }
    }

    /// The conductor loop: `{action, params, state}` names the next component; a result
    /// without `action` ends the composition with its `params`.
    async fn run_conductor(
        self: &Arc<Self>,
        inv: &Invocation,
        id: &ActivationId,
        steps: &mut Steps,
    ) {
        let mut params = inv.args.clone();
        let mut components = 0;
        for _ in 0..2 * MAX_COMPONENTS {
            let conductor = inv.action.clone();
            let memory = conductor.action.limits.memory;
            let step = self
                .invoke_primitive(Self::step(inv, id, conductor, params.clone()))
                .await;
            let Some(a) = steps.record(step, memory) else {
                return;
            };
            if !a.response.is_success() {
                return;
            }
            let mut result = match a.response.result {
                Some(Value::Object(m)) => m,
                _ => return steps.fail("The conductor action did not return a dictionary."),
            };
            let state = result.remove("state");
            let next_params = result.remove("params");
            let Some(next) = result.remove("action") else {
                let last = next_params.unwrap_or(Value::Object(result));
                steps.response = match last.get("error") {
                    Some(e) => ActivationResponse::error(StatusCode::ApplicationError, e.clone()),
                    None => ActivationResponse::success(last),
                };
                return;
            };
            components += 1;
            if components > MAX_COMPONENTS {
                return steps.fail("Too many actions in the composition.");
            }
            let component_result = match next.as_str() {
                Some(name) => match self.resolve_component(&inv.user, name, false).await {
                    Ok(action) => {
                        let memory = action.action.limits.memory;
                        let args = match next_params {
                            Some(v @ Value::Object(_)) => v,
                            Some(other) => json!({ "value": other }),
                            None => json!({}),
                        };
                        let step = self.invoke_boxed(Self::step(inv, id, action, args)).await;
                        match steps.record(step, memory) {
                            Some(c) => c.response.result.unwrap_or_else(|| json!({})),
                            None => steps.response.result.clone().unwrap_or_else(|| json!({})),
                        }
                    }
                    Err(Component::Forbidden(fqn)) => {
                        json!({"error": format!("Failed entitlement check for action with name '{fqn}' during composition.")})
                    }
                    Err(Component::Missing) => {
                        json!({"error": format!("Failed to resolve action with name '{name}' during composition.")})
                    }
                },
                None => {
                    json!({"error": format!("Failed to resolve action with name '{next}' during composition.")})
                }
            };
            params = merge_state(component_result, state);
        }
        steps.fail("Too many actions in the composition.");
    }

    /// Resolves a component name. Sequence components are absolute (`/ns/[pkg/]name`);
    /// composition names may also be `name` or `pkg/name` in the caller's namespace.
    async fn resolve_component(
        &self,
        user: &crate::entity::Identity,
        name: &str,
        absolute: bool,
    ) -> Result<ResolvedAction, Component> {
        let own = &user.namespace.name;
        let segments = name.split('/').filter(|s| !s.is_empty()).count();
        let full = if absolute || name.starts_with('/') || segments == 3 {
            name.to_string()
        } else {
            format!("/{own}/{name}")
        };
        let fqn = FullyQualifiedEntityName::parse(&full, own).map_err(|_| Component::Missing)?;
        match self.resolve_action(user, &fqn.path, &fqn.name).await {
            Ok(action) => Ok(action),
            // OpenWhisk names the component as `ns/[pkg/]name` (its `FullyQualifiedEntityName`).
            Err(super::ResolveError::Forbidden(_)) => Err(Component::Forbidden(fqn.doc_id())),
            Err(_) => Err(Component::Missing),
        }
    }

    /// Checks that `user` may use each of `components` (absolute names of a sequence's
    /// actions), as OpenWhisk's entitlement check of a sequence's referenced actions does
    /// when a sequence is created and when it is invoked: the first one in another namespace
    /// that `user` may not use is `Forbidden`, naming the resource refused. Components that
    /// do not resolve otherwise are left to the caller.
    pub async fn entitle_components(
        &self,
        user: &crate::entity::Identity,
        components: &[String],
    ) -> Result<(), SequenceError> {
        for c in components {
            let Ok(fqn) = FullyQualifiedEntityName::parse(c, &user.namespace.name) else {
                continue;
            };
            if let Err(super::ResolveError::Forbidden(resource)) =
                self.resolve_action(user, &fqn.path, &fqn.name).await
            {
                return Err(SequenceError::Forbidden(resource));
            }
        }
        Ok(())
    }
}

/// Why a composition's component did not resolve.
enum Component {
    /// It does not exist (or its name is malformed).
    Missing,
    /// The caller may not use it (`ns/[pkg/]name`).
    Forbidden(String),
}

/// The next conductor input: the component's result with the conductor's `state` (fields of an
/// object state, otherwise `{"state": state}`).
fn merge_state(result: Value, state: Option<Value>) -> Value {
    let mut out: Map<String, Value> = match result {
        Value::Object(m) => m,
        other => [("value".to_string(), other)].into_iter().collect(),
    };
    match state {
        Some(Value::Object(s)) => out.extend(s),
        Some(other) => {
            out.insert("state".into(), other);
        }
        None => {}
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_merging() {
        assert_eq!(
            merge_state(json!({"a":1}), Some(json!({"$step":2}))),
            json!({"a":1,"$step":2})
        );
        assert_eq!(
            merge_state(json!({"a":1}), Some(json!(5))),
            json!({"a":1,"state":5})
        );
        assert_eq!(merge_state(json!([1]), None), json!({"value":[1]}));
    }
}

/// Why a sequence definition was refused (all 400); `Display` is OpenWhisk's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// No components.
    #[error("No component specified for the sequence.")]
    Empty,
    /// More than [`MAX_COMPONENTS`] primitive actions after inlining nested sequences.
    #[error("Too many actions in the sequence.")]
    TooMany,
    /// The sequence reaches itself.
    #[error("Sequence may not refer to itself.")]
    Cycle,
    /// A component is missing, unreadable or not visible.
    #[error("Sequence component does not exist.")]
    Missing,
    /// The caller may not use a component in another namespace (`resource` is `ns/...`).
    #[error("The supplied authentication is not authorized to access '{0}'.")]
    Forbidden(String),
}

impl Controller {
    /// Checks the components of sequence `own` (`ns/[pkg/]name`) for `user` and returns them
    /// in absolute form (`/ns/[pkg/]name`, `_` resolved).
    pub async fn validate_sequence(
        &self,
        user: &crate::entity::Identity,
        own: &str,
        components: &[String],
    ) -> Result<Vec<String>, SequenceError> {
        if components.is_empty() {
            return Err(SequenceError::Empty);
        }
        let mut resolved = Vec::with_capacity(components.len());
        for c in components {
            let fqn = FullyQualifiedEntityName::parse(c, &user.namespace.name)
                .map_err(|_| SequenceError::Missing)?;
            resolved.push(fqn.absolute());
        }
        self.entitle_components(user, &resolved).await?;
        let mut atomic = 0;
        let mut stack: Vec<String> = resolved.clone();
        while let Some(name) = stack.pop() {
            let fqn = FullyQualifiedEntityName::parse(&name, &user.namespace.name)
                .map_err(|_| SequenceError::Missing)?;
            if fqn.doc_id() == own {
                return Err(SequenceError::Cycle);
            }
            let action = self
                .resolve_action(user, &fqn.path, &fqn.name)
                .await
                .map_err(|_| SequenceError::Missing)?;
            match action.action.exec.components() {
                Some(inner) => stack.extend(inner.iter().cloned()),
                None => atomic += 1,
            }
            if atomic > MAX_COMPONENTS || stack.len() > MAX_COMPONENTS * MAX_COMPONENTS {
                return Err(SequenceError::TooMany);
            }
        }
        Ok(resolved)
    }
}
