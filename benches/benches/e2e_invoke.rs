//! Run with `cargo bench -p whisk-benches --bench e2e_invoke`.
//!
//! Warm blocking invokes of a no-op `nodejs:20` action through the REST API of an in-process
//! standalone platform, with 1 and 16 concurrent clients, printed beside the floor: the same
//! client calling a warm runtime process's `/run` directly. The platform gets memory for one
//! container, so both sides drive exactly one runtime process. Target: platform overhead
//! (end to end minus direct) p50 under 1 ms.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use whisk_benches::{bench_context, closed_loop, report};
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::executor::{ContainerExecutor, ContainerSpec};
use whisk_core::runtime::{init_body, RuntimeClient};
use whisk_examples::standalone::{Standalone, StandaloneConfig};
use whisk_exec::ProcessExecutor;

const NOOP: &str = "function main() { return {}; }";
const MAX_TIME: Duration = Duration::from_secs(10);

fn main() {
    // The platform gets its own runtime (threads) so the load client does not share them.
    let platform_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let platform = platform_rt
        .block_on(Standalone::start(StandaloneConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            user_memory_mb: 256,
            prewarm: false,
            namespace_limits: whisk_benches::unthrottled(),
            ..Default::default()
        }))
        .expect("platform starts");
    let base = format!("http://{}", platform.addr);
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client_rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build().unwrap();
        let (user, pass) = GUEST_KEY.split_once(':').unwrap();
        let r = http
            .put(format!("{base}/api/v1/namespaces/_/actions/noop?overwrite=true"))
            .basic_auth(user, Some(pass))
            .json(&json!({"exec": {"kind": "nodejs:20", "code": NOOP}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let invoke_url = Arc::new(format!("{base}/api/v1/namespaces/_/actions/noop?blocking=true&result=true"));
        let invoke = {
            let http = http.clone();
            move || {
                let (http, url) = (http.clone(), invoke_url.clone());
                async move {
                    let r = http.post(url.as_str()).basic_auth(user, Some(pass)).json(&json!({})).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    let _ = r.bytes().await.unwrap();
                }
            }
        };

        // The floor: a warm runtime process of the same kind, /run called directly.
        let exec = ProcessExecutor::new().unwrap();
        let spec = ContainerSpec { name: "floor".into(), kind: "nodejs:20".into(), image: None, memory_mb: 256, env: vec![], host_network: false };
        let container = exec.create(&spec).await.unwrap();
        let init = RuntimeClient::default()
            .init(container.endpoint(), &init_body("noop", None, Some(NOOP), false, Default::default()), Duration::from_secs(10))
            .await;
        assert!(init.response.is_success());
        let ctx = bench_context();
        let run_body = Arc::new(ctx.run_body(json!({})));
        // The runtime listens on a unix socket: the platform's own runtime client calls it.
        let runtime = RuntimeClient::default();
        let endpoint = Arc::new(container.endpoint().to_string());
        let direct = {
            move || {
                let (runtime, endpoint, body) = (runtime.clone(), endpoint.clone(), run_body.clone());
                async move {
                    let out = runtime.run(&endpoint, &body, Duration::from_secs(10)).await;
                    assert!(out.response.is_success(), "{:?}", out.response);
                    // The runtime writes sentinels after every run; drain them as the platform does.
                }
            }
        };

        // Warm up both paths.
        closed_loop(1, 300, MAX_TIME, invoke.clone()).await;
        closed_loop(1, 300, MAX_TIME, direct.clone()).await;
        println!("whisk e2e_invoke: warm no-op nodejs:20, blocking invoke through the REST API vs direct /run (floor)");
        for (clients, total) in [(1usize, 3000u64), (16, 6000)] {
            let floor = closed_loop(clients, total, MAX_TIME, direct.clone()).await;
            let e2e = closed_loop(clients, total, MAX_TIME, invoke.clone()).await;
            report("warm blocking invoke (nodejs:20)", clients, e2e, floor);
            let overhead_ms = (e2e.p50_us - floor.p50_us) / 1000.0;
            println!(
                "  platform overhead p50 {overhead_ms:.3} ms: target < 1 ms {}",
                if overhead_ms < 1.0 { "MET" } else { "NOT MET" }
            );
            // Keep the floor container's log buffer from growing without bound.
            let _ = container.logs(false, Duration::ZERO).await;
        }
        container.destroy().await.unwrap();
    });
    platform_rt.block_on(platform.shutdown());
}
