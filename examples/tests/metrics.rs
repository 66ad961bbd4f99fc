//! Prometheus metrics at `GET /metrics`: activations by kind and status, latency and wait-time
//! histograms, container starts, pool memory and throttled requests.

mod common;

use common::{Platform, StandaloneConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use whisk_core::controller::NamespaceLimits;

/// The samples of a text exposition: `name{labels}` to value (comments skipped).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line has a value");
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (series.to_string(), value)
        })
        .collect()
}

/// The value of `series`; fails when it is not exposed.
fn value(samples: &HashMap<String, f64>, series: &str, text: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("series {series} missing from\n{text}"))
}

#[tokio::test]
async fn metrics_count_activations_starts_memory_and_throttles() {
    let p = Platform::start_config(StandaloneConfig {
        user_memory_mb: 1024,
        prewarm: false,
        namespace_limits: NamespaceLimits {
            invocations_per_minute: 3,
            ..NamespaceLimits::default()
        },
        ..StandaloneConfig::default()
    })
    .await;

    // Served without authentication, in the Prometheus text format, before anything ran.
    let r = p.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let s = samples(&r.text);
    let pool = |name: &str| format!("{name}{{invoker=\"invoker0\"}}");
    assert_eq!(
        value(&s, &pool("whisk_pool_memory_total_megabytes"), &r.text),
        1024.0
    );
    assert_eq!(
        value(&s, &pool("whisk_pool_memory_used_megabytes"), &r.text),
        0.0
    );
    assert!(
        !r.text.contains("whisk_activations_total{"),
        "no activation yet:\n{}",
        r.text
    );

    p.action(
        "ok",
        "nodejs:20",
        "function main() { return {}; }",
        json!({}),
    )
    .await;
    p.action(
        "err",
        "nodejs:20",
        "function main() { return {error: 'nope'}; }",
        json!({}),
    )
    .await;
    assert_eq!(p.invoke("ok", json!({}), "").await.status, StatusCode::OK);
    assert_eq!(
        p.invoke("err", json!({}), "").await.status,
        StatusCode::BAD_GATEWAY
    );
    // 3 invocations a minute: some call within the next few is refused (the minute may roll
    // over once); every call that is not refused is a warm run of `ok`.
    let mut successes = 1;
    let mut throttled = false;
    for _ in 0..6 {
        let r = p.invoke("ok", json!({}), "").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        successes += 1;
    }
    assert!(throttled, "no invocation was throttled");

    let r = p.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let (text, s) = (&r.text, samples(&r.text));
    let v = |series: &str| value(&s, series, text);
    assert_eq!(
        v(r#"whisk_activations_total{kind="nodejs:20",status="success"}"#),
        successes as f64
    );
    assert_eq!(
        v(r#"whisk_activations_total{kind="nodejs:20",status="application_error"}"#),
        1.0
    );
    assert_eq!(
        v(r#"whisk_activation_duration_seconds_count{kind="nodejs:20"}"#),
        (successes + 1) as f64
    );
    assert!(v(r#"whisk_activation_duration_seconds_sum{kind="nodejs:20"}"#) > 0.0);
    assert_eq!(
        v(r#"whisk_activation_duration_seconds_bucket{kind="nodejs:20",le="+Inf"}"#),
        (successes + 1) as f64
    );
    assert_eq!(
        v(r#"whisk_activation_init_seconds_count{kind="nodejs:20"}"#),
        2.0,
        "two cold starts initialised a container"
    );
    assert_eq!(
        v("whisk_activation_wait_seconds_count"),
        (successes + 1) as f64
    );
    let starts = |kind: &str| {
        v(&format!(
            "whisk_container_starts_total{{invoker=\"invoker0\",start=\"{kind}\"}}"
        ))
    };
    assert_eq!(starts("cold"), 2.0, "one container per action");
    assert_eq!(starts("warm"), (successes - 1) as f64);
    assert_eq!(starts("prewarm"), 0.0);
    assert_eq!(v(&pool("whisk_container_failures_total")), 0.0);
    assert_eq!(
        v(r#"whisk_containers{invoker="invoker0",state="idle"}"#)
            + v(r#"whisk_containers{invoker="invoker0",state="busy"}"#),
        2.0
    );
    assert_eq!(
        v(&pool("whisk_pool_memory_used_megabytes")),
        512.0,
        "two warm 256 MB containers"
    );
    assert_eq!(
        v(r#"whisk_throttled_requests_total{reason="invocations_per_minute"}"#),
        1.0
    );
    // The bus lag of the invoker's and the controller's topics: everything was consumed
    // and committed, so both settle at 0 (sampled after each poll).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = p.send(Method::GET, "/metrics", None, None).await;
        let s = samples(&r.text);
        let lag = |t: &str| s.get(&format!("whisk_bus_lag{{topic=\"{t}\"}}")).copied();
        if lag("invoker0") == Some(0.0) && lag("completed0") == Some(0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bus lag series missing or not settling:\n{}",
            r.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    p.platform.shutdown().await;
}
