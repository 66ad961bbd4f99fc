//! Run with `cargo bench -p whisk-benches --bench pool_starts`.
//!
//! Container starts through the REST API of an in-process standalone platform, for
//! `nodejs:20` and `python:3.11`, each printed beside its floor in one run:
//! - cold start (a new container: process start, launcher load, `/init`, `/run`) vs the bare
//!   interpreter starting the same launcher and answering its first `/init` + `/run` directly.
//!   Target: at most 1.3x the floor.
//! - prewarmed start (a stem cell of the kind: `/init`, `/run`) vs a warm `/run` called directly
//!   on a runtime process. Target: under 10 ms beyond it.
//! - warm reuse vs a warm `/run` called directly. Target: overhead p50 under 1 ms.

use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use whisk_benches::{bench_context, report_start, stats, Stats};
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::runtime::{init_body, RuntimeClient};
use whisk_examples::standalone::{Standalone, StandaloneConfig};

const ROUNDS: usize = 15;

struct Kind {
    kind: &'static str,
    code: &'static str,
    program: &'static str,
    args: fn(&str) -> Vec<String>,
    launcher: &'static str,
}

const KINDS: [Kind; 2] = [
    Kind {
        kind: "nodejs:20",
        code: "function main() { return {}; }",
        program: "node",
        args: |l| vec![l.to_string()],
        launcher: include_str!("../../whisk-exec/runtimes/nodejs/launcher.js"),
    },
    Kind {
        kind: "python:3.11",
        code: "def main(a):\n    return {}\n",
        program: "python3",
        args: |l| vec!["-u".into(), l.to_string()],
        launcher: include_str!("../../whisk-exec/runtimes/python/launcher.py"),
    },
];

/// Starts `k`'s launcher directly, with a container's environment (nothing of the platform's
/// but `PATH`), and reads the port it announces.
async fn spawn_bare(
    k: &Kind,
    launcher: &str,
) -> (
    tokio::process::Child,
    BufReader<tokio::process::ChildStdout>,
    String,
) {
    let mut child = tokio::process::Command::new(k.program)
        .args((k.args)(launcher))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .env("WHISK_RUNTIME_PORT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).await.unwrap();
    let port = line.trim().rsplit(' ').next().unwrap().to_string();
    (child, out, format!("http://127.0.0.1:{port}"))
}

/// The bare interpreter: start the launcher, read its port, `/init` and `/run` once.
async fn bare_start(k: &Kind, launcher: &str, client: &RuntimeClient) -> Duration {
    let t = Instant::now();
    let (mut child, out, endpoint) = spawn_bare(k, launcher).await;
    let init = client
        .init(
            &endpoint,
            &init_body("noop", None, Some(k.code), false, Default::default()),
            Duration::from_secs(10),
        )
        .await;
    assert!(init.response.is_success());
    let run = client
        .run(
            &endpoint,
            &bench_context().run_body(json!({})),
            Duration::from_secs(10),
        )
        .await;
    assert!(run.response.is_success());
    let elapsed = t.elapsed();
    drop(out);
    let _ = child.kill().await;
    elapsed
}

/// A warm `/run` on a runtime started directly (the floor of warm and prewarmed starts).
async fn direct_warm(k: &Kind, launcher: &str, client: &RuntimeClient) -> Stats {
    let (mut child, mut out, endpoint) = spawn_bare(k, launcher).await;
    tokio::spawn(async move { tokio::io::copy(&mut out, &mut tokio::io::sink()).await });
    client
        .init(
            &endpoint,
            &init_body("noop", None, Some(k.code), false, Default::default()),
            Duration::from_secs(10),
        )
        .await;
    let body = bench_context().run_body(json!({}));
    let mut samples = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        let r = client.run(&endpoint, &body, Duration::from_secs(10)).await;
        assert!(r.response.is_success());
        if i >= 50 {
            samples.push(t.elapsed());
        }
    }
    let _ = child.kill().await;
    stats(samples)
}

fn main() {
    let platform_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("whisk-bench-launchers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unlimited = whisk_benches::unthrottled();
    let start = |prewarm: bool| {
        platform_rt
            .block_on(Standalone::start(StandaloneConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                user_memory_mb: 256 * (2 * ROUNDS as u64 + 8),
                namespace_limits: unlimited,
                prewarm,
                ..Default::default()
            }))
            .expect("platform starts")
    };
    let cold_platform = start(false);
    let prewarm_platform = start(true);
    println!("whisk pool_starts: container starts through the REST API vs their floors ({ROUNDS} rounds each)");
    client_rt.block_on(async {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .unwrap();
        let (user, pass) = GUEST_KEY.split_once(':').unwrap();
        let client = RuntimeClient::default();
        for k in &KINDS {
            let launcher = dir.join(format!("launcher-{}", k.program));
            std::fs::write(&launcher, k.launcher).unwrap();
            // The Python launcher imports its HTTP side from beside it.
            std::fs::write(dir.join("runtime_http.py"), whisk_exec::PYTHON_RUNTIME_HTTP).unwrap();
            let launcher = launcher.to_string_lossy().to_string();
            let invoke = |base: String, name: String| {
                let http = http.clone();
                async move {
                    let t = Instant::now();
                    let r = http
                        .post(format!(
                            "{base}/api/v1/namespaces/_/actions/{name}?blocking=true&result=true"
                        ))
                        .basic_auth(user, Some(pass))
                        .json(&json!({}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    let _ = r.bytes().await;
                    t.elapsed()
                }
            };
            let create = |base: String, name: String| {
                let http = http.clone();
                async move {
                    let r = http
                        .put(format!(
                            "{base}/api/v1/namespaces/_/actions/{name}?overwrite=true"
                        ))
                        .basic_auth(user, Some(pass))
                        .json(&json!({"exec": {"kind": k.kind, "code": k.code}}))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                }
            };
            let short = k.kind.split(':').next().unwrap();
            // Cold starts: a new action each round, no stem cells.
            let base = format!("http://{}", cold_platform.addr);
            let mut cold = Vec::new();
            let mut bare = Vec::new();
            for i in 0..ROUNDS {
                let name = format!("cold-{short}-{i}");
                create(base.clone(), name.clone()).await;
                bare.push(bare_start(k, &launcher, &client).await);
                cold.push(invoke(base.clone(), name).await);
            }
            report_start(
                &format!("cold start ({})", k.kind),
                stats(cold),
                stats(bare),
                "target <= 1.3x",
            );
            // Prewarmed starts: a new action each round, a stem cell of its kind waiting.
            let base = format!("http://{}", prewarm_platform.addr);
            let pool = prewarm_platform.pool().clone();
            let mut prewarmed = Vec::new();
            for i in 0..ROUNDS {
                let name = format!("pre-{short}-{i}");
                create(base.clone(), name.clone()).await;
                let before = pool.metrics().prewarm_starts;
                for _ in 0..400 {
                    if pool.metrics().prewarmed >= 3 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                prewarmed.push(invoke(base.clone(), name).await);
                assert_eq!(
                    pool.metrics().prewarm_starts,
                    before + 1,
                    "the run used a stem cell"
                );
            }
            let floor = direct_warm(k, &launcher, &client).await;
            report_start(
                &format!("prewarmed start ({})", k.kind),
                stats(prewarmed),
                floor,
                "target < +10 ms",
            );
            // Warm reuse of the last action.
            let name = format!("pre-{short}-{}", ROUNDS - 1);
            let mut warm = Vec::new();
            for i in 0..300 {
                let d = invoke(base.clone(), name.clone()).await;
                if i >= 50 {
                    warm.push(d);
                }
            }
            report_start(
                &format!("warm reuse ({})", k.kind),
                stats(warm),
                floor,
                "target overhead < 1 ms",
            );
        }
    });
    platform_rt.block_on(cold_platform.shutdown());
    platform_rt.block_on(prewarm_platform.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}
