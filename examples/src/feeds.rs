//! The feed provider of the example platforms, with whisk's built-in event sources: alarms
//! (`/whisk.system/alarms`), Kafka topics (`/whisk.system/messaging`) and CouchDB `_changes`
//! (`/whisk.system/cloudant`).

use std::fmt;
use std::sync::Arc;
use whisk_core::controller::Controller;
use whisk_core::feeds::alarms::Alarms;
use whisk_core::feeds::{Clock, FeedProvider, SystemClock};

/// Whether and how a platform runs its feed provider.
#[derive(Clone)]
pub struct FeedSettings {
    /// Run the provider (install the system packages, resume registrations).
    pub enabled: bool,
    /// The clock the sources schedule by (a `ManualClock` fast-forwards alarms in tests).
    pub clock: Arc<dyn Clock>,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for FeedSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedSettings")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A provider firing through `controller` with every built-in source.
pub fn provider(controller: Arc<Controller>, settings: &FeedSettings) -> FeedProvider {
    let mut provider = FeedProvider::new(controller, settings.clock.clone());
    for source in Alarms::all(settings.clock.clone()) {
        provider = provider.with_source(source);
    }
    provider = provider.with_source(Arc::new(whisk_bus::kafka::KafkaFeed::new()));
    provider = provider.with_source(Arc::new(whisk_store::couch::CouchChanges::new()));
    provider
}

/// Starts the provider when `settings` enable it: installs the feed actions and resumes the
/// stored registrations.
pub async fn start(
    controller: Arc<Controller>,
    settings: &FeedSettings,
) -> std::io::Result<Option<Arc<FeedProvider>>> {
    if !settings.enabled {
        return Ok(None);
    }
    let provider = Arc::new(provider(controller, settings));
    provider.start().await.map_err(std::io::Error::other)?;
    Ok(Some(provider))
}

/// The API router of `controller` with the request limits of `serve`, and the feed
/// provider's endpoint when there is one.
pub fn router(
    controller: Arc<Controller>,
    feeds: Option<&Arc<FeedProvider>>,
    serve: &crate::server::ServeSettings,
) -> axum::Router {
    whisk_core::api::router_with_limits(controller, feeds.cloned(), serve.limits.clone())
}
