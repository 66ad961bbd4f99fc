//! The feed provider: answers the feed actions' lifecycle events, keeps registrations in the
//! store and runs one task per active registration.

use super::registration::{Registration, RegistrationStatus, REGISTRATION_TYPE};
use super::{Clock, EventSource, FeedHandle, SourceError, SYSTEM_NAMESPACE};
use crate::controller::{Controller, FireError};
use crate::entity::trigger::TRIGGER_TYPE;
use crate::entity::{
    ActivationId, ActivationResponse, FullyQualifiedEntityName, Identity, Parameters,
    WhiskActivation, WhiskTrigger,
};
use crate::message::TransactionId;
use crate::store::{Collection, Query, Store, StoreError, StoreExt};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The lifecycle events a feed action receives (`lifecycleEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Connect the trigger to the source.
    Create,
    /// Describe the registration.
    Read,
    /// Change some parameters.
    Update,
    /// Disconnect.
    Delete,
    /// Stop firing, keep the registration.
    Pause,
    /// Fire again.
    Unpause,
}

impl Lifecycle {
    /// Parses OpenWhisk's spelling (upper case).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREATE" => Self::Create,
            "READ" => Self::Read,
            "UPDATE" => Self::Update,
            "DELETE" => Self::Delete,
            "PAUSE" => Self::Pause,
            "UNPAUSE" => Self::Unpause,
            _ => return None,
        })
    }
}

/// Why a lifecycle event was refused; each maps to an HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// Bad parameters (400).
    #[error("{0}")]
    BadRequest(String),
    /// The trigger belongs to another namespace (403).
    #[error("The trigger '{0}' is not in the caller's namespace.")]
    Forbidden(String),
    /// No such feed, trigger or registration (404).
    #[error("{0}")]
    NotFound(String),
    /// The trigger already has a registration (409).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the running tasks share.
pub(crate) struct Shared {
    pub(crate) controller: Arc<Controller>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Shared {
    fn store(&self) -> &Arc<dyn Store> {
        self.controller.store()
    }

    /// Reads, changes and writes registration `id` until the write is not a conflict.
    /// `Ok(None)` when it does not exist.
    async fn update(
        &self,
        id: &str,
        change: impl Fn(&mut Registration),
    ) -> Result<Option<Registration>, StoreError> {
        loop {
            let Some((mut reg, rev)) = self
                .store()
                .get_entity::<Registration>(id, REGISTRATION_TYPE)
                .await
                .or_else(not_found_is_none)?
            else {
                return Ok(None);
            };
            change(&mut reg);
            reg.updated = self.clock.now_ms().max(reg.updated);
            match self
                .store()
                .put(Collection::Whisks, id, reg.to_document(), Some(&rev))
                .await
            {
                Ok(_) => return Ok(Some(reg)),
                Err(StoreError::Conflict) => continue,
                Err(StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `op` until it is not `Unavailable`, backing off up to 5 s between tries.
    async fn retrying<T, F, Fut>(&self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut wait = Duration::from_millis(100);
        loop {
            match op().await {
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "{what}: store unavailable, retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn save_cursor(
        &self,
        reg: &Registration,
        cursor: Value,
    ) -> Result<(), SourceError> {
        let id = reg.doc_id();
        let saved = self
            .retrying("saving a feed cursor", || {
                self.update(&id, |r| r.cursor = Some(cursor.clone()))
            })
            .await
            .map_err(|e| SourceError::Failed(format!("saving the feed's position failed: {e}")))?;
        match saved {
            Some(r) if r.status.active => Ok(()),
            _ => Err(SourceError::Stopped),
        }
    }

    pub(crate) async fn fire(
        &self,
        reg: &Registration,
        payload: Map<String, Value>,
    ) -> Result<(), SourceError> {
        let trigger_id = format!("{}/{}", reg.owner, reg.trigger);
        let mut wait = Duration::from_millis(100);
        loop {
            let user = self
                .retrying("firing a feed", || async {
                    self.store().namespace_identity(&reg.owner).await
                })
                .await;
            let trigger = self
                .retrying("firing a feed", || async {
                    self.store()
                        .get_entity::<WhiskTrigger>(&trigger_id, TRIGGER_TYPE)
                        .await
                        .or_else(not_found_is_none)
                })
                .await;
            let (user, trigger) = match (user, trigger) {
                (Ok(Some(u)), Ok(Some((t, _)))) => (u, t),
                (Ok(None), _) => {
                    return Err(self
                        .end(reg, "the trigger's namespace no longer exists")
                        .await)
                }
                (_, Ok(None)) => return Err(self.end(reg, "the trigger no longer exists").await),
                (Err(e), _) | (_, Err(e)) => {
                    return Err(SourceError::Failed(format!(
                        "firing the trigger failed: {e}"
                    )))
                }
            };
            match self
                .controller
                .fire(
                    &user,
                    trigger,
                    payload.clone(),
                    Map::new(),
                    TransactionId::generate(),
                )
                .await
            {
                Ok(outcome) => {
                    tracing::debug!(trigger = %reg.trigger_name(), feed = %reg.feed, ?outcome, "feed fired");
                    return Ok(());
                }
                Err(FireError::Throttled(e)) => {
                    tracing::warn!(trigger = %reg.trigger_name(), error = %e, "feed fire throttled, retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Removes a registration whose trigger or namespace is gone.
    async fn end(&self, reg: &Registration, why: &str) -> SourceError {
        tracing::info!(trigger = %reg.trigger_name(), feed = %reg.feed, "{why}: removing its feed registration");
        if let Ok(Some((_, rev))) = self
            .store()
            .get_entity::<Registration>(&reg.doc_id(), REGISTRATION_TYPE)
            .await
        {
            let _ = self
                .store()
                .delete(Collection::Whisks, &reg.doc_id(), &rev)
                .await;
        }
        SourceError::Stopped
    }

    /// Records a failed source as an activation of its trigger (an application error
    /// carrying `message`), so `wsk activation list <trigger>` shows it.
    async fn record_failure(&self, reg: &Registration, message: &str) {
        let Ok(Some(user)) = self.store().namespace_identity(&reg.owner).await else {
            return;
        };
        let now = self.clock.now_ms();
        let activation = WhiskActivation {
            namespace: reg.owner.clone(),
            name: reg.trigger.clone(),
            subject: user.subject.clone(),
            activation_id: ActivationId::generate(),
            start: now,
            end: now,
            cause: None,
            response: ActivationResponse::application_error_result(json!({
                "error": format!("The feed /{SYSTEM_NAMESPACE}/{} stopped: {message}", reg.feed)
            })),
            logs: Vec::new(),
            version: Default::default(),
            publish: false,
            annotations: Parameters::new(),
            duration: Some(0),
        };
        self.controller.recorder().record(&activation).await;
    }
}

fn not_found_is_none<T>(e: StoreError) -> Result<Option<T>, StoreError> {
    match e {
        StoreError::NotFound => Ok(None),
        e => Err(e),
    }
}

/// Keys of a feed action's parameters that belong to the lifecycle, not to the source.
const LIFECYCLE_KEYS: [&str; 3] = ["lifecycleEvent", "triggerName", "authKey"];

/// The engine behind `POST /api/v1/feeds/{package}/{feed}`: one per platform (in a cluster,
/// run it on one controller only, or each registration fires once per provider).
pub struct FeedProvider {
    shared: Arc<Shared>,
    sources: HashMap<String, Arc<dyn EventSource>>,
    running: Mutex<HashMap<String, JoinHandle<()>>>,
    lifecycle: tokio::sync::Mutex<()>,
}

impl FeedProvider {
    /// A provider without sources, firing through `controller`, scheduling by `clock`.
    pub fn new(controller: Arc<Controller>, clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared { controller, clock }),
            sources: HashMap::new(),
            running: Mutex::new(HashMap::new()),
            lifecycle: tokio::sync::Mutex::new(()),
        }
    }

    /// Adds a source (replacing one with the same package and name).
    pub fn with_source(mut self, source: Arc<dyn EventSource>) -> Self {
        self.sources
            .insert(format!("{}/{}", source.package(), source.name()), source);
        self
    }

    /// The sources, keyed `package/feed`.
    pub fn sources(&self) -> impl Iterator<Item = (&String, &Arc<dyn EventSource>)> {
        self.sources.iter()
    }

    /// The controller the feeds fire through.
    pub fn controller(&self) -> &Arc<Controller> {
        &self.shared.controller
    }

    /// Installs the system packages and feed actions, then resumes every active
    /// registration. Returns how many resumed. A failed installation (e.g. a manifest
    /// without Node.js for the feed actions) is logged and does not stop the sources.
    pub async fn start(&self) -> Result<usize, StoreError> {
        if let Err(e) = self.install().await {
            tracing::warn!(error = %e, "installing the feed actions failed");
        }
        self.resume().await
    }

    /// Starts a task for each active stored registration of a known source.
    pub async fn resume(&self) -> Result<usize, StoreError> {
        let docs = self
            .shared
            .store()
            .query(&Query {
                collection: Some(Collection::Whisks),
                namespace: SYSTEM_NAMESPACE.into(),
                entity_type: Some(REGISTRATION_TYPE.into()),
                ..Query::default()
            })
            .await?;
        let mut resumed = 0;
        for doc in docs {
            match serde_json::from_value::<Registration>(doc) {
                Ok(reg) if reg.status.active && self.sources.contains_key(&reg.feed) => {
                    self.spawn(reg);
                    resumed += 1;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable feed registration"),
            }
        }
        tracing::info!(resumed, "feed registrations resumed");
        Ok(resumed)
    }

    /// The registration of trigger `owner/trigger`, if any.
    pub async fn registration(
        &self,
        owner: &str,
        trigger: &str,
    ) -> Result<Option<Registration>, StoreError> {
        Ok(self
            .shared
            .store()
            .get_entity::<Registration>(&Registration::doc_id_of(owner, trigger), REGISTRATION_TYPE)
            .await
            .or_else(not_found_is_none)?
            .map(|(r, _)| r))
    }

    /// Whether a task runs for trigger `owner/trigger`.
    pub fn is_running(&self, owner: &str, trigger: &str) -> bool {
        let running = self.running.lock().expect("running lock");
        running
            .get(&Registration::doc_id_of(owner, trigger))
            .is_some_and(|h| !h.is_finished())
    }

    /// Stops every task and waits until they are gone (registrations stay stored and
    /// resume on the next start). Afterwards no task holds the store.
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut running = self.running.lock().expect("running lock");
            running.drain().map(|(_, t)| t).collect()
        };
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Handles one lifecycle event of feed `package/feed` for `user`. `params` is the feed
    /// action's argument: `lifecycleEvent`, `triggerName`, `authKey` and the source's
    /// parameters. Returns the feed action's result.
    pub async fn handle(
        &self,
        user: &Identity,
        package: &str,
        feed: &str,
        mut params: Map<String, Value>,
    ) -> Result<Value, FeedError> {
        let key = format!("{package}/{feed}");
        let source = self.sources.get(&key).cloned().ok_or_else(|| {
            FeedError::NotFound(format!("There is no feed /{SYSTEM_NAMESPACE}/{key}."))
        })?;
        let event = params
            .get("lifecycleEvent")
            .and_then(Value::as_str)
            .and_then(Lifecycle::parse)
            .ok_or_else(|| {
                FeedError::BadRequest(
                    "The parameter 'lifecycleEvent' must be one of CREATE, READ, UPDATE, DELETE, PAUSE or UNPAUSE.".into(),
                )
            })?;
        let trigger = trigger_of(user, params.get("triggerName"))?;
        for k in LIFECYCLE_KEYS {
            params.remove(k);
        }
        let _serial = self.lifecycle.lock().await;
        let id = Registration::doc_id_of(&user.namespace.name, &trigger);
        let existing = self.registration(&user.namespace.name, &trigger).await?;
        let missing = || {
            FeedError::NotFound(format!(
                "The trigger /{}/{trigger} has no /{SYSTEM_NAMESPACE}/{key} feed.",
                user.namespace.name
            ))
        };
        match event {
            Lifecycle::Create => {
                self.trigger_exists(&user.namespace.name, &trigger).await?;
                if existing.is_some() {
                    return Err(FeedError::Conflict(format!(
                        "The trigger /{}/{trigger} already has a feed.",
                        user.namespace.name
                    )));
                }
                let config = source
                    .validate(&params)
                    .await
                    .map_err(FeedError::BadRequest)?;
                let reg = Registration::new(
                    &user.namespace.name,
                    &trigger,
                    &key,
                    params,
                    config,
                    self.shared.clock.now_ms(),
                );
                match self
                    .shared
                    .store()
                    .put(Collection::Whisks, &id, reg.to_document(), None)
                    .await
                {
                    Err(StoreError::AlreadyExists) => {
                        return Err(FeedError::Conflict(format!(
                            "The trigger /{}/{trigger} already has a feed.",
                            user.namespace.name
                        )))
                    }
                    other => other?,
                };
                tracing::info!(trigger = %reg.trigger_name(), feed = %key, "feed created");
                self.spawn(reg);
                Ok(json!({}))
            }
            Lifecycle::Read => {
                let reg = existing.filter(|r| r.feed == key).ok_or_else(missing)?;
                Ok(reg.to_read_json())
            }
            Lifecycle::Update => {
                let old = existing.filter(|r| r.feed == key).ok_or_else(missing)?;
                let mut merged = old.params.clone();
                merged.extend(params);
                let config = source
                    .validate(&merged)
                    .await
                    .map_err(FeedError::BadRequest)?;
                self.stop(&id);
                let reg = self
                    .shared
                    .update(&id, |r| {
                        r.params = merged.clone();
                        r.config = config.clone();
                        r.cursor = None;
                    })
                    .await?
                    .ok_or_else(missing)?;
                if reg.status.active {
                    self.spawn(reg);
                }
                Ok(json!({}))
            }
            Lifecycle::Delete => {
                existing.filter(|r| r.feed == key).ok_or_else(missing)?;
                self.stop(&id);
                let doc = self.shared.store().get(Collection::Whisks, &id).await?;
                self.shared
                    .store()
                    .delete(Collection::Whisks, &id, &doc.rev)
                    .await?;
                tracing::info!(trigger = %format!("/{}/{trigger}", user.namespace.name), feed = %key, "feed deleted");
                Ok(json!({}))
            }
            Lifecycle::Pause | Lifecycle::Unpause => {
                existing.filter(|r| r.feed == key).ok_or_else(missing)?;
                let active = event == Lifecycle::Unpause;
                self.stop(&id);
                let now = self.shared.clock.now_ms();
                let reg = self
                    .shared
                    .update(&id, |r| {
                        r.status = RegistrationStatus {
                            active,
                            reason: (!active).then(|| "paused by the user".to_string()),
                            date_changed: now,
                        }
                    })
                    .await?
                    .ok_or_else(missing)?;
                if active {
                    self.spawn(reg);
                }
                Ok(json!({}))
            }
        }
    }

    async fn trigger_exists(&self, ns: &str, trigger: &str) -> Result<(), FeedError> {
        let found = self
            .shared
            .store()
            .get_entity::<WhiskTrigger>(&format!("{ns}/{trigger}"), TRIGGER_TYPE)
            .await
            .or_else(not_found_is_none)?;
        match found {
            Some(_) => Ok(()),
            None => Err(FeedError::NotFound(format!(
                "The trigger /{ns}/{trigger} does not exist."
            ))),
        }
    }

    fn stop(&self, id: &str) {
        if let Some(task) = self.running.lock().expect("running lock").remove(id) {
            task.abort();
        }
    }

    /// Starts the task of `reg` (replacing one already running).
    fn spawn(&self, reg: Registration) {
        let Some(source) = self.sources.get(&reg.feed).cloned() else {
            return;
        };
        let id = reg.doc_id();
        let shared = self.shared.clone();
        let handle = FeedHandle {
            registration: Arc::new(reg),
            provider: shared.clone(),
        };
        let task = tokio::spawn(async move {
            let reg = handle.registration.clone();
            let outcome = source.run(handle).await;
            let reason = match &outcome {
                Ok(()) => "the source has no more events".to_string(),
                Err(SourceError::Stopped) => return,
                Err(SourceError::Failed(msg)) => {
                    tracing::warn!(trigger = %reg.trigger_name(), feed = %reg.feed, error = %msg, "feed source failed");
                    shared.record_failure(&reg, msg).await;
                    msg.clone()
                }
            };
            let now = shared.clock.now_ms();
            let _ = shared
                .update(&reg.doc_id(), |r| {
                    r.status = RegistrationStatus {
                        active: false,
                        reason: Some(reason.clone()),
                        date_changed: now,
                    }
                })
                .await;
        });
        if let Some(old) = self.running.lock().expect("running lock").insert(id, task) {
            old.abort();
        }
    }
}

impl Drop for FeedProvider {
    fn drop(&mut self) {
        for (_, task) in self.running.lock().expect("running lock").drain() {
            task.abort();
        }
    }
}

/// The trigger's simple name from `triggerName` (`/ns/name`, `ns/name`; `_` is the caller's
/// namespace), refusing another namespace's trigger.
fn trigger_of(user: &Identity, name: Option<&Value>) -> Result<String, FeedError> {
    let given = name
        .and_then(Value::as_str)
        .ok_or_else(|| FeedError::BadRequest("The parameter 'triggerName' is required.".into()))?;
    let fqn = FullyQualifiedEntityName::parse(given, &user.namespace.name)
        .ok()
        .filter(|f| !f.path.contains('/'))
        .ok_or_else(|| {
            FeedError::BadRequest(format!(
                "The trigger name '{given}' is not valid: expected /namespace/trigger."
            ))
        })?;
    if fqn.path != user.namespace.name && fqn.path != crate::entity::name::DEFAULT_NAMESPACE {
        return Err(FeedError::Forbidden(given.to_string()));
    }
    Ok(fqn.name)
}
