//! The simulator replays traces through the real load balancer, invokers and container pools
//! in virtual time: exact latencies for small hand-made traces, queueing for memory, the
//! keep-alive policies, idle memory-time, and a trace that does not fit.

use std::sync::Arc;
use std::time::Duration;
use whisk_core::invoker::pool::{FixedKeepAlive, HybridHistogram, KeepAlive};
use whisk_core::scheduler::{ShardingBalancer, WarmAware};
use whisk_core::sim::simulate::{SimConfig, SimError, SimReport};
use whisk_core::sim::trace::{Function, Invocation, Trace};
use whisk_examples::sim::run;

/// A trace of `functions` (256 MB each) and `(at_ms, function, duration_ms)` calls, each
/// container taking 200 ms to initialise.
fn trace(functions: usize, calls: &[(u64, usize, u64)]) -> Trace {
    Trace {
        functions: (0..functions)
            .map(|i| Function::new(format!("f{i}"), 256))
            .collect(),
        invocations: calls
            .iter()
            .map(|&(at_ms, function, duration_ms)| Invocation {
                at_ms,
                function,
                duration_ms,
                init_ms: 200,
            })
            .collect(),
    }
}

fn config(invokers: u32, memory: u64) -> SimConfig {
    SimConfig {
        invokers,
        invoker_memory_mb: memory,
        container_create: Duration::from_millis(300),
        ..SimConfig::default()
    }
}

fn sim(t: &Trace, c: &SimConfig) -> SimReport {
    run(t, Arc::new(WarmAware::default()), c, "test").expect("simulates")
}

/// `got` within 2% (or 5 ms) of `want`: the platform's own work takes no virtual time, but
/// timer granularity does.
fn near(got: f64, want: f64) -> bool {
    (got - want).abs() <= (want * 0.02).max(5.0)
}

#[test]
fn one_cold_start_then_warm_runs_with_exact_virtual_latencies() {
    let t = trace(1, &[(0, 0, 100), (1_000, 0, 100), (2_000, 0, 100)]);
    let r = sim(&t, &config(1, 1024));
    assert_eq!((r.invocations, r.failed), (3, 0));
    assert_eq!((r.cold_starts, r.warm_starts), (1, 2), "{r:?}");
    // Cold: create 300 + init 200 + run 100; warm: the run alone.
    assert!(near(r.latency_ms[3], 600.0), "max {:?}", r.latency_ms);
    assert!(near(r.latency_ms[0], 100.0), "p50 {:?}", r.latency_ms);
    assert!(
        near(r.virtual_time.as_secs_f64() * 1000.0, 2_100.0),
        "{r:?}"
    );
    // Slowdowns 6, 1 and 1: mean 8/3.
    assert!((r.slowdown[3] - 8.0 / 3.0).abs() < 0.1, "{r:?}");
}

#[test]
fn a_run_waits_for_memory_and_evicts_the_idle_container() {
    // Room for one 256 MB container: the second function waits for the first to finish,
    // then its idle container is evicted for a cold start.
    let t = trace(2, &[(0, 0, 1_000), (0, 1, 1_000)]);
    let r = sim(&t, &config(1, 256));
    assert_eq!(r.cold_starts, 2, "{r:?}");
    assert!(
        near(r.latency_ms[3], 1_500.0 + 1_500.0),
        "{:?}",
        r.latency_ms
    );
}

#[test]
fn the_hybrid_histogram_prewarms_a_periodic_action_the_fixed_policy_cannot_keep() {
    // Every 15 minutes for 4 hours: beyond the fixed 10-minute keep-alive.
    let calls: Vec<(u64, usize, u64)> = (0..16).map(|i| (i * 15 * 60_000, 0, 50)).collect();
    let t = trace(1, &calls);
    let fixed = FixedKeepAlive(Duration::from_secs(600));
    let mut c = config(1, 1024);
    c.keep_alive = Some(Arc::new(move || Arc::new(fixed) as Arc<dyn KeepAlive>));
    let with_fixed = sim(&t, &c);
    assert_eq!(with_fixed.cold_starts, 16, "{with_fixed:?}");
    c.keep_alive = Some(Arc::new(move || {
        Arc::new(HybridHistogram::new(fixed)) as Arc<dyn KeepAlive>
    }));
    let with_hybrid = sim(&t, &c);
    // 10 idle times to learn the period, then each call finds a pre-warmed container.
    assert!(with_hybrid.action_prewarms >= 4, "{with_hybrid:?}");
    assert!(with_hybrid.cold_starts <= 12, "{with_hybrid:?}");
    assert_eq!(
        with_hybrid.cold_starts + with_hybrid.warm_starts,
        16,
        "{with_hybrid:?}"
    );
    // ...and holds memory only around the expected call, not for 10 minutes after each.
    assert!(
        with_hybrid.idle_memory_gb_s < with_fixed.idle_memory_gb_s,
        "{with_hybrid:?} vs {with_fixed:?}"
    );
}

#[test]
fn idle_memory_time_counts_containers_waiting_for_work() {
    let t = trace(1, &[(0, 0, 100)]);
    let fixed = FixedKeepAlive(Duration::from_secs(60));
    let mut c = config(1, 1024);
    c.keep_alive = Some(Arc::new(move || Arc::new(fixed) as Arc<dyn KeepAlive>));
    let r = sim(&t, &c);
    // Sampling stops at the last completion: the idle container has barely been idle yet.
    assert!(r.idle_memory_gb_s < 1.0, "{r:?}");
    let t = trace(1, &[(0, 0, 100), (50_000, 0, 100)]);
    let r = sim(&t, &c);
    // 256 MB idle for ~50 s between the calls: 12.5 GB·s, sampled each virtual second.
    assert!((r.idle_memory_gb_s - 12.5).abs() < 0.5, "{r:?}");
}

#[test]
fn sharding_keeps_an_action_on_its_home_invoker() {
    let calls: Vec<(u64, usize, u64)> = (0..20).map(|i| (i * 1_000, 0, 100)).collect();
    let t = trace(1, &calls);
    let r = run(
        &t,
        Arc::new(ShardingBalancer::default()),
        &config(4, 1024),
        "s",
    )
    .unwrap();
    assert_eq!(r.cold_starts, 1, "{r:?}");
}

#[test]
fn a_trace_that_needs_more_memory_than_an_invoker_is_refused() {
    let mut t = trace(1, &[(0, 0, 100)]);
    t.functions[0].memory_mb = 512;
    let err = run(&t, Arc::new(WarmAware::default()), &config(2, 256), "x").unwrap_err();
    assert!(matches!(err, SimError::Trace(_)), "{err:?}");
    assert!(
        err.to_string().contains("more than an invoker's 256 MB"),
        "{err}"
    );
}
