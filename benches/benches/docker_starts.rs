//! Run with `WHISK_TEST_DOCKER=unix:///path/to/docker.sock cargo bench -p whisk-benches --bench
//! docker_starts` (the daemon needs the images of `whisk-exec/images/build.sh`; `.ci/run`
//! shows how it starts one).
//!
//! The Docker executor beside its floors, in one run, on a Docker network of its own:
//! - cold start to first result through the REST API (new container of
//!   `openwhisk/action-nodejs-v20:nightly` with OpenWhisk's limits, `/init`, `/run`) vs a bare
//!   run of the same image until it answers (the Engine API's create, start and inspect, then
//!   `/init` + `/run`). Target: at most 1.2x the floor.
//! - pause + resume of a container, and warm invokes through the REST API, beside the process
//!   executor's.

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions, StartContainerOptions,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisk_benches::{
    bench_context, blocking_invokes, create_noop, report, report_start, stats, unthrottled, Stats,
    NOOP,
};
use whisk_core::entity::identity::GUEST_KEY;
use whisk_core::executor::{ContainerExecutor, ContainerSpec};
use whisk_core::runtime::{init_body, RuntimeClient};
use whisk_core::testkit::docker::TestNetwork;
use whisk_examples::cluster::ExecutorChoice;
use whisk_examples::standalone::{Standalone, StandaloneConfig};
use whisk_exec::docker::{DockerConfig, DockerExecutor};

const ROUNDS: usize = 15;
const IMAGE: &str = "openwhisk/action-nodejs-v20:nightly";

/// `/init` with the no-op action, then one `/run`, on the runtime at `endpoint`.
async fn first_result(client: &RuntimeClient, endpoint: &str) {
    let body = init_body("noop", None, Some(NOOP), false, Default::default());
    let init = client.init(endpoint, &body, Duration::from_secs(30)).await;
    assert!(init.response.is_success(), "{:?}", init.response);
    let run = client
        .run(
            endpoint,
            &bench_context().run_body(json!({})),
            Duration::from_secs(30),
        )
        .await;
    assert!(run.response.is_success(), "{:?}", run.response);
}

/// The floor: a bare container of the image on `network`, started through the Engine API
/// with nothing else set, until it answers `/init` and `/run`; returns the time and its id.
async fn bare_run(
    docker: &bollard::Docker,
    network: &str,
    client: &RuntimeClient,
) -> (Duration, String) {
    let body = ContainerCreateBody {
        image: Some(IMAGE.into()),
        host_config: Some(HostConfig {
            network_mode: Some(network.into()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let t = Instant::now();
    let id = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .expect("create")
        .id;
    docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
        .expect("start");
    let info = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .expect("inspect");
    let ip = info
        .network_settings
        .and_then(|s| s.networks)
        .and_then(|mut n| n.remove(network))
        .and_then(|n| n.ip_address)
        .expect("an address on the network");
    first_result(client, &format!("http://{ip}:8080")).await;
    (t.elapsed(), id)
}

/// Removes the containers `ids`.
async fn remove_all(docker: &bollard::Docker, ids: Vec<String>) {
    for id in ids {
        let remove = RemoveContainerOptions {
            force: true,
            ..RemoveContainerOptions::default()
        };
        docker
            .remove_container(&id, Some(remove))
            .await
            .expect("remove");
    }
}

/// Cold starts through the REST API at `base`: a new action each round, so a new container.
async fn cold_starts(base: &str) -> Stats {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let mut samples = Vec::new();
    for i in 0..ROUNDS {
        let action = format!("{base}/api/v1/namespaces/_/actions/cold{i}");
        let r = http
            .put(&action)
            .basic_auth(user, Some(pass))
            .json(&json!({"exec": {"kind": "nodejs:20", "code": NOOP}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let t = Instant::now();
        let r = http
            .post(format!("{action}?blocking=true&result=true"))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        samples.push(t.elapsed());
    }
    stats(samples)
}

/// Cold starts through the executor alone: `create` (image check, create with OpenWhisk's
/// settings, start, inspect, log follower), then `/init` + `/run`.
async fn executor_starts(executor: &DockerExecutor, client: &RuntimeClient) -> Stats {
    let mut samples = Vec::new();
    // Kept until the end, as the platform keeps its containers warm.
    let mut kept = Vec::new();
    for i in 0..ROUNDS {
        let spec = ContainerSpec {
            name: format!("wskbench0_{i}_guest_cold"),
            kind: "nodejs:20".into(),
            image: None,
            memory_mb: 256,
            env: vec![],
            host_network: false,
        };
        let t = Instant::now();
        let c = executor.create(&spec).await.expect("container starts");
        first_result(client, c.endpoint()).await;
        samples.push(t.elapsed());
        kept.push(c);
    }
    for c in kept {
        c.destroy().await.unwrap();
    }
    stats(samples)
}

/// Pause + resume of one initialized `nodejs:20` container of `executor`.
async fn pause_resume(executor: &dyn ContainerExecutor, client: &RuntimeClient) -> Stats {
    let spec = ContainerSpec {
        name: "wskbench0_1_guest_pause".into(),
        kind: "nodejs:20".into(),
        image: None,
        memory_mb: 256,
        env: vec![],
        host_network: false,
    };
    let c = executor.create(&spec).await.expect("container starts");
    first_result(client, c.endpoint()).await;
    let mut samples = Vec::new();
    for _ in 0..ROUNDS * 2 {
        let t = Instant::now();
        c.pause().await.unwrap();
        c.resume().await.unwrap();
        samples.push(t.elapsed());
    }
    c.destroy().await.unwrap();
    stats(samples)
}

async fn platform(executor: ExecutorChoice) -> Standalone {
    Standalone::start(StandaloneConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        user_memory_mb: 256 * (ROUNDS as u64 + 4),
        namespace_limits: unthrottled(),
        prewarm: false,
        executor,
        unique_name: "bench".into(),
        ..StandaloneConfig::default()
    })
    .await
    .expect("platform starts")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(host) = std::env::var("WHISK_TEST_DOCKER") else {
        println!(
            "whisk docker_starts: not measured (set WHISK_TEST_DOCKER to a Docker daemon socket)"
        );
        return;
    };
    let net = TestNetwork::create(&host);
    let socket = host.strip_prefix("unix://").unwrap_or(&host);
    let docker = bollard::Docker::connect_with_unix(socket, 60, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let client = RuntimeClient::default();
    let docker_choice = ExecutorChoice::Docker {
        host: Some(host.clone()),
        network: net.name.clone(),
    };
    println!(
        "whisk docker_starts: the Docker executor vs its floors ({ROUNDS} rounds; image {IMAGE})"
    );

    // Warm-up: the first container start of a run pays for page-cache misses. The floor's
    // containers are kept until its rounds end, as the platform keeps its own warm.
    let (_, warmup) = bare_run(&docker, &net.name, &client).await;
    let mut floor = Vec::new();
    let mut ids = vec![warmup];
    for _ in 0..ROUNDS {
        let (took, id) = bare_run(&docker, &net.name, &client).await;
        floor.push(took);
        ids.push(id);
    }
    remove_all(&docker, ids).await;
    let floor = stats(floor);
    let on_docker = platform(docker_choice.clone()).await;
    let base = format!("http://{}", on_docker.addr);
    let cold = cold_starts(&base).await;
    report_start(
        "cold start to first result (REST API)",
        cold,
        floor,
        &format!(
            "target <= 1.2x: {}",
            if cold.p50_us <= 1.2 * floor.p50_us {
                "MET"
            } else {
                "NOT MET"
            }
        ),
    );

    create_noop(&base).await;
    let warm_docker = blocking_invokes(&base, 1, 500, Duration::from_secs(30)).await;
    on_docker.shutdown().await;
    let on_process = platform(ExecutorChoice::default()).await;
    let process_base = format!("http://{}", on_process.addr);
    create_noop(&process_base).await;
    let warm_process = blocking_invokes(&process_base, 1, 500, Duration::from_secs(30)).await;
    on_process.shutdown().await;
    report(
        "warm invoke, docker vs process executor",
        1,
        warm_docker,
        warm_process,
    );

    let docker_exec = DockerExecutor::connect(DockerConfig {
        host: Some(host.clone()),
        network: net.name.clone(),
        name_prefix: "wskbench0_".into(),
        ..DockerConfig::default()
    })
    .await
    .expect("daemon reachable");
    let through_executor = executor_starts(&docker_exec, &client).await;
    report_start(
        "cold start to first result (executor alone)",
        through_executor,
        floor,
        "",
    );
    let process_exec = Arc::new(whisk_exec::ProcessExecutor::new().unwrap());
    let docker_pause = pause_resume(&docker_exec, &client).await;
    let process_pause = pause_resume(process_exec.as_ref(), &client).await;
    report_start(
        "pause + resume, docker vs process executor",
        docker_pause,
        process_pause,
        "printed",
    );
}
