//! Trigger fires: each active rule's action is invoked with the trigger's parameters, the
//! fire request's headers as `__ow_headers` and the payload; the trigger activation records
//! one log line per rule.

use super::{Controller, Invocation, InvokeError, ThrottleError};
use crate::entity::{
    ActivationId, ActivationResponse, Identity, Parameters, WhiskActivation, WhiskTrigger,
};
use crate::message::{now_ms, TransactionId};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// What a fire did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// No active rule: nothing ran, nothing recorded (HTTP 204).
    NoActiveRules,
    /// The rules are being fired; the trigger activation will have this id (HTTP 202).
    Fired(ActivationId),
}

/// Why a fire was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FireError {
    /// Too many fires this minute (429).
    #[error(transparent)]
    Throttled(#[from] ThrottleError),
}

impl Controller {
    /// Fires `trigger` for `user` with `payload` (an object) and the request's `headers`.
    pub async fn fire(
        self: &Arc<Self>,
        user: &Identity,
        trigger: WhiskTrigger,
        payload: Map<String, Value>,
        headers: Map<String, Value>,
        transid: TransactionId,
    ) -> Result<FireOutcome, FireError> {
        let limits = self.limits_for(user);
        self.throttles
            .check_fire(&user.namespace.uuid, &limits)
            .inspect_err(|e| self.throttled(user, e))?;
        if trigger.active_rules().next().is_none() {
            return Ok(FireOutcome::NoActiveRules);
        }
        let id = ActivationId::generate();
        let me = self.clone();
        let user = user.clone();
        let fired = id.clone();
        tokio::spawn(async move {
            me.fire_rules(user, trigger, payload, headers, transid, fired)
                .await
        });
        Ok(FireOutcome::Fired(id))
    }

    async fn fire_rules(
        self: Arc<Self>,
        user: Identity,
        trigger: WhiskTrigger,
        payload: Map<String, Value>,
        headers: Map<String, Value>,
        transid: TransactionId,
        id: ActivationId,
    ) {
        let start = now_ms();
        let mut args = trigger.parameters.to_object();
        args.insert("__ow_headers".into(), Value::Object(headers));
        args.extend(payload.clone());
        let mut logs = Vec::new();
        for (rule, link) in trigger.active_rules() {
            let action = format!("{}/{}", link.action.path, link.action.name);
            let outcome = match self
                .resolve_action(&user, &link.action.path, &link.action.name)
                .await
            {
                Ok(resolved) => {
                    let inv = Invocation {
                        user: user.clone(),
                        args: resolved
                            .action
                            .parameters
                            .merged_with(Value::Object(args.clone())),
                        action: resolved,
                        blocking: false,
                        wait: Duration::ZERO,
                        transid: transid.clone(),
                        // OpenWhisk fires rules through its own API: no cause.
                        cause: None,
                    };
                    match self.invoke(inv).await {
                        Ok(invoked) => Ok(invoked.activation_id().clone()),
                        // OpenWhisk: 5xx from the invoke is a whisk error, anything else an application error.
                        Err(e @ InvokeError::LoadBalancer(_)) => Err((3, e.to_string())),
                        Err(e @ InvokeError::Throttled(_)) => Err((1, e.to_string())),
                    }
                }
                Err(e) => Err((1, e.to_string())),
            };
            let line = match outcome {
                Ok(aid) => {
                    json!({"statusCode": 0, "success": true, "activationId": aid, "rule": rule, "action": action})
                }
                Err((code, error)) => {
                    json!({"statusCode": code, "success": false, "error": error, "rule": rule, "action": action})
                }
            };
            logs.push(line.to_string());
        }
        let activation = WhiskActivation {
            namespace: user.namespace.name.clone(),
            name: trigger.name.clone(),
            subject: user.subject.clone(),
            activation_id: id,
            start,
            end: 0,
            cause: None,
            response: ActivationResponse::success(Value::Object(payload)),
            logs,
            version: trigger.version,
            publish: false,
            annotations: Parameters::new(),
            duration: None,
        };
        self.recorder.record(&activation).await;
    }
}
