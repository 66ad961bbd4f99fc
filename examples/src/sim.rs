//! The simulator on whisk's memory backends: every scheduler and keep-alive policy whisk
//! ships, replayed on the same trace (`whisk-sim`).

use std::sync::Arc;
use std::time::Duration;
use whisk_bus::MemoryBus;
use whisk_core::invoker::pool::{FixedKeepAlive, HybridHistogram, KeepAlive};
use whisk_core::scheduler::{LeastLoaded, Scheduler, ShardingBalancer, WarmAware};
use whisk_core::sim::simulate::{simulate, SimConfig, SimError, SimReport};
use whisk_core::sim::trace::Trace;
use whisk_store::MemoryStore;

/// The schedulers compared: `(name, make)`.
pub fn schedulers(keep_alive: Duration) -> Vec<(&'static str, Arc<dyn Scheduler>)> {
    vec![
        (
            "sharding",
            Arc::new(ShardingBalancer::default()) as Arc<dyn Scheduler>,
        ),
        ("least-loaded", Arc::new(LeastLoaded)),
        ("warm-aware", Arc::new(WarmAware::new(keep_alive))),
    ]
}

/// A keep-alive policy maker for [`SimConfig::keep_alive`].
pub type KeepAliveMaker = Arc<dyn Fn() -> Arc<dyn KeepAlive> + Send + Sync>;

/// The keep-alive policies compared: `(name, make)`.
pub fn keep_alives(idle_timeout: Duration) -> Vec<(String, KeepAliveMaker)> {
    let fixed = FixedKeepAlive(idle_timeout);
    vec![
        (
            fixed.name(),
            Arc::new(move || Arc::new(fixed) as Arc<dyn KeepAlive>) as KeepAliveMaker,
        ),
        (
            HybridHistogram::new(fixed).name(),
            Arc::new(move || Arc::new(HybridHistogram::new(fixed)) as Arc<dyn KeepAlive>),
        ),
    ]
}

/// Replays `trace` with `scheduler` and `config` on fresh memory backends.
pub fn run(
    trace: &Trace,
    scheduler: Arc<dyn Scheduler>,
    config: &SimConfig,
    label: &str,
) -> Result<SimReport, SimError> {
    simulate(
        trace,
        scheduler,
        config,
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryBus::new()),
        label,
    )
}

/// Every scheduler with every keep-alive policy on `trace` (same invokers and memory).
pub fn compare(trace: &Trace, config: &SimConfig) -> Result<Vec<SimReport>, SimError> {
    let mut out = Vec::new();
    for (ka_name, make) in keep_alives(config.idle_timeout) {
        for (name, scheduler) in schedulers(config.idle_timeout) {
            let cfg = SimConfig {
                keep_alive: Some(make.clone()),
                ..config.clone()
            };
            out.push(run(trace, scheduler, &cfg, &format!("{name} / {ka_name}"))?);
        }
    }
    Ok(out)
}
