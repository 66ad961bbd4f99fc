//! Event sources and OpenWhisk's feed mechanism.
//!
//! A trigger created with the annotation `feed: "/whisk.system/<package>/<feed>"` is connected
//! to an event source by its *feed action*: OpenWhisk's clients (`wsk trigger create --feed`,
//! the `openwhisk` npm package's `feeds.create`) invoke that action blocking with
//! `{lifecycleEvent: "CREATE", triggerName: "/ns/trigger", authKey: "uuid:key", ...params}`
//! and later with `READ`, `UPDATE`, `DELETE`, `PAUSE` and `UNPAUSE`.
//!
//! whisk's feed actions are ordinary actions (installed by [`FeedProvider::install`] into
//! public packages of `whisk.system`, like OpenWhisk's catalog). Each forwards its lifecycle
//! event to the platform's feed provider at `POST /api/v1/feeds/<package>/<feed>`, authenticated
//! with the `authKey` it was given, the way OpenWhisk's alarm feed action calls its alarms
//! service. The [`FeedProvider`] keeps one [`Registration`] per trigger in the store and runs
//! each active one as a task of its [`EventSource`]; registrations survive a restart and resume
//! from their saved cursor ([`FeedHandle::save_cursor`]), so an event fired before a restart is
//! not fired again after it.
//!
//! Platform builders add sources by implementing [`EventSource`] and registering them with
//! [`FeedProvider::with_source`]. whisk ships alarms ([`alarms`]: cron, interval, once), and
//! the Kafka topic and CouchDB `_changes` sources live beside their clients in `whisk-bus` and
//! `whisk-store`.
//!
//! ```
//! use async_trait::async_trait;
//! use serde_json::{json, Map, Value};
//! use whisk_core::feeds::{EventSource, FeedHandle, FeedParameter, SourceError};
//!
//! /// Fires `count` times, once a second.
//! struct Countdown;
//!
//! #[async_trait]
//! impl EventSource for Countdown {
//!     fn package(&self) -> &str { "examples" }
//!     fn name(&self) -> &str { "countdown" }
//!     fn description(&self) -> &str { "Fire a trigger `count` times" }
//!     fn parameters(&self) -> &[FeedParameter] {
//!         &[FeedParameter { name: "count", description: "How many fires", required: true }]
//!     }
//!     async fn validate(&self, params: &Map<String, Value>) -> Result<Value, String> {
//!         let n = params.get("count").and_then(Value::as_u64).ok_or("count must be a number")?;
//!         Ok(json!({ "count": n }))
//!     }
//!     async fn run(&self, feed: FeedHandle) -> Result<(), SourceError> {
//!         let done = feed.cursor().and_then(Value::as_u64).unwrap_or(0);
//!         let count = feed.config()["count"].as_u64().unwrap_or(0);
//!         for i in done..count {
//!             tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//!             feed.save_cursor(json!(i + 1)).await?;
//!             feed.fire(Map::from_iter([("left".into(), json!(count - i - 1))])).await?;
//!         }
//!         Ok(())
//!     }
//! }
//! ```

pub mod alarms;
mod catalog;
mod clock;
mod provider;
mod registration;

pub use catalog::{feed_action_code, FEED_ACTION_KIND};
pub use clock::{Clock, ManualClock, SystemClock};
pub use provider::{FeedError, FeedProvider, Lifecycle};
pub use registration::{Registration, RegistrationStatus, REGISTRATION_TYPE};

use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The namespace holding the system packages of the built-in sources.
pub const SYSTEM_NAMESPACE: &str = "whisk.system";

/// A documented parameter of a feed action (shown in the package's `parameters` annotation,
/// as OpenWhisk's catalog documents its feeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedParameter {
    /// The parameter name.
    pub name: &'static str,
    /// What it means.
    pub description: &'static str,
    /// Whether a `CREATE` must give it.
    pub required: bool,
}

/// Why a running source stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The registration ended (its trigger or namespace is gone, or it was deleted or paused):
    /// the source should return without recording anything.
    #[error("the feed registration ended")]
    Stopped,
    /// The source cannot go on (a database that disappeared, a topic that was deleted...).
    /// The provider records an activation of the trigger with this message as its error and
    /// marks the registration inactive; other registrations keep running.
    #[error("{0}")]
    Failed(String),
}

/// A kind of event that fires triggers: one feed action of a system package.
///
/// The provider calls [`validate`](EventSource::validate) on `CREATE` and `UPDATE` and keeps
/// what it returns as the registration's configuration; it then calls
/// [`run`](EventSource::run) in a task of its own for each active registration, and aborts
/// that task on `DELETE`, `PAUSE`, `UPDATE` and shutdown. `run` must therefore be safe to
/// drop at any `.await`.
#[async_trait]
pub trait EventSource: Send + Sync + 'static {
    /// The package under [`SYSTEM_NAMESPACE`] (`alarms`, `messaging`, ...).
    fn package(&self) -> &str;

    /// The feed action's name within the package (`alarm`, `kafkaFeed`, ...).
    fn name(&self) -> &str;

    /// A one-line description (the action's `description` annotation).
    fn description(&self) -> &str;

    /// The parameters a `CREATE` takes.
    fn parameters(&self) -> &[FeedParameter];

    /// Checks the parameters of a `CREATE` or `UPDATE` (the lifecycle keys `lifecycleEvent`,
    /// `triggerName` and `authKey` removed) and returns the configuration to keep.
    /// `Err(message)` answers the feed action with 400 and that message.
    async fn validate(&self, params: &Map<String, Value>) -> Result<Value, String>;

    /// Produces the events of one registration: [`FeedHandle::fire`] for each, until the
    /// source is exhausted (`Ok`, e.g. a one-time alarm that fired) or fails.
    async fn run(&self, feed: FeedHandle) -> Result<(), SourceError>;
}

/// What a running source sees of its registration, and how it fires its trigger.
#[derive(Clone)]
pub struct FeedHandle {
    pub(crate) registration: Arc<Registration>,
    pub(crate) provider: Arc<provider::Shared>,
}

impl FeedHandle {
    /// The trigger, as `/namespace/name`.
    pub fn trigger(&self) -> String {
        self.registration.trigger_name()
    }

    /// The configuration [`EventSource::validate`] returned.
    pub fn config(&self) -> &Value {
        &self.registration.config
    }

    /// The cursor last saved with [`save_cursor`](Self::save_cursor), `None` before the first.
    pub fn cursor(&self) -> Option<&Value> {
        self.registration.cursor.as_ref()
    }

    /// When the registration was created (ms since the epoch, by the provider's clock).
    pub fn created(&self) -> u64 {
        self.registration.created
    }

    /// The provider's clock (a [`ManualClock`] in tests).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.provider.clock
    }

    /// Saves the source's position so a restart resumes after it. Retries while the store is
    /// unavailable; `Err(Stopped)` when the registration no longer exists.
    pub async fn save_cursor(&self, cursor: Value) -> Result<(), SourceError> {
        self.provider.save_cursor(&self.registration, cursor).await
    }

    /// Fires the trigger with `payload`, as `POST /triggers/{name}` does. Returns when the
    /// fire is accepted (including "no active rule"), retrying while the namespace is
    /// throttled or the store is unavailable; `Err(Stopped)` when the trigger, its namespace or
    /// the registration are gone (the registration is then removed).
    pub async fn fire(&self, payload: Map<String, Value>) -> Result<(), SourceError> {
        self.provider.fire(&self.registration, payload).await
    }
}
