//! The Docker executor against a real daemon: `WHISK_TEST_DOCKER` is its socket URL
//! (`.ci/run` starts one). Unset outside CI, the tests skip.
//!
//! Every test works on a Docker network of its own (a random `10.x.y.0/24`, reachable from the
//! host) and a container name prefix of its own; a guard removes both, and every container
//! named with the test's id, when the test ends. The containers run a test image made from the
//! machine's static busybox: `sh -c "$WHISK_TEST_SCRIPT"`. The runtime images built by
//! `whisk-exec/images/build.sh` run the conformance suite.

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, Ipam, IpamConfig, NetworkCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, RemoveContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use serde_json::{json, Map};
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisk_core::entity::RuntimeManifest;
use whisk_core::executor::{Container, ContainerExecutor, ContainerSpec, ExecutorError};
use whisk_core::logs::{Stream, SENTINEL};
use whisk_core::runtime::{init_body, RuntimeClient};
use whisk_core::testkit::executor::Fixture;
use whisk_core::testkit::{service_from_env, unique};
use whisk_exec::docker::{DockerConfig, DockerExecutor, KIND_LABEL, NAME_PREFIX_LABEL};

/// The busybox test image (bump the tag when its making changes).
const TEST_IMAGE: &str = "whisk-test/busybox:2";
/// The test image's kind in the test manifest.
const TEST_KIND: &str = "busybox:1";
/// A kind whose manifest image is nowhere (its registry is a closed loopback port).
const MISSING_KIND: &str = "missing:1";
/// The `nodejs:20` runtime image built by `whisk-exec/images/build.sh`.
const NODEJS_IMAGE: &str = "openwhisk/action-nodejs-v20:nightly";
/// A blackbox image built by `whisk-exec/images/build.sh` that serves the runtime protocol.
const BLACKBOX_ECHO: &str = "whisk/blackbox-echo:1";

/// The daemon's socket URL, or `None` (skip).
fn daemon() -> Option<String> {
    service_from_env("WHISK_TEST_DOCKER", "Docker daemon")
}

async fn client(host: &str) -> Docker {
    let path = host.strip_prefix("unix://").unwrap_or(host);
    Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
        .expect("docker socket")
        .negotiate_version()
        .await
        .expect("docker version")
}

/// The manifest of the tests: the bundled one, plus the busybox test image as kind
/// `busybox:1` and a kind whose image cannot be pulled.
fn manifest() -> RuntimeManifest {
    let mut m = RuntimeManifest::default();
    let extra = RuntimeManifest::from_json(
        r#"{"runtimes": {
            "busybox": [{"kind": "busybox:1", "default": true,
                         "image": {"prefix": "whisk-test", "name": "busybox", "tag": "2"}}],
            "missing": [{"kind": "missing:1", "default": true,
                         "image": {"prefix": "127.0.0.1:9", "name": "whisk-absent", "tag": "1"}}]
        }}"#,
    )
    .unwrap();
    m.runtimes.extend(extra.runtimes);
    m
}

/// Makes [`TEST_IMAGE`] on the daemon unless it is there: the machine's static busybox with
/// a few applets, running `$WHISK_TEST_SCRIPT` with `sh`.
async fn test_image(docker: &Docker) {
    static MADE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    MADE.get_or_init(|| async {
        if docker.inspect_image(TEST_IMAGE).await.is_ok() {
            return;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("a static busybox (Debian: busybox-static)");
        let root = std::env::temp_dir().join(unique("whisk-test-rootfs-"));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "head", "tr", "cat", "true"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = std::process::Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-c", "."])
            .output()
            .expect("tar");
        std::fs::remove_dir_all(&root).unwrap();
        assert!(tar.status.success(), "tar failed");
        let (repo, tag) = TEST_IMAGE.split_once(':').unwrap();
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            changes: vec![
                "ENV PATH=/bin".into(),
                r#"CMD ["/bin/sh", "-c", "eval \"$WHISK_TEST_SCRIPT\""]"#.into(),
            ],
            ..CreateImageOptions::default()
        };
        let body = bollard::body_full(bytes::Bytes::from(tar.stdout));
        let mut progress = docker.create_image(Some(options), Some(body), None);
        while let Some(step) = progress.next().await {
            step.expect("importing the test image");
        }
    })
    .await;
}

/// Whether the daemon has `image`; when not, outside CI the test skips (in CI the images are
/// built by `.ci/run`, so a missing one fails).
async fn has_image(docker: &Docker, image: &str) -> bool {
    if docker.inspect_image(image).await.is_ok() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{image} is missing: whisk-exec/images/build.sh builds it");
    }
    eprintln!("SKIPPED: {image} is missing (whisk-exec/images/build.sh builds it)");
    false
}

/// A test's own network and container name prefix. Dropping it removes every container whose
/// name holds the test's id, then the network.
struct TestNet {
    host: String,
    docker: Docker,
    /// Unique to the test; in every container name it makes.
    id: String,
    /// The network's name.
    name: String,
    /// `10.x.y.`: the first three octets of the network's addresses.
    subnet: String,
}

impl TestNet {
    async fn new(host: &str) -> Self {
        let docker = client(host).await;
        test_image(&docker).await;
        let id = unique("")[..10].to_string();
        let name = format!("whisk-test-{id}");
        for _ in 0..50 {
            let r = *uuid::Uuid::new_v4().as_bytes();
            let subnet = format!("10.{}.{}.", 100 + r[0] % 150, r[1]);
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(format!("{subnet}0/24")),
                        ..IpamConfig::default()
                    }]),
                    ..Ipam::default()
                }),
                ..NetworkCreateRequest::default()
            };
            match docker.create_network(request).await {
                Ok(_) => {
                    return Self {
                        host: host.to_string(),
                        docker,
                        id,
                        name,
                        subnet,
                    }
                }
                // The subnet overlaps another network's: try another.
                Err(e) if e.to_string().contains("overlap") => continue,
                Err(e) => panic!("cannot create network {name}: {e}"),
            }
        }
        panic!("no free 10.x.y.0/24 subnet for network {name}");
    }

    /// The container name prefix of the test's executor.
    fn prefix(&self) -> String {
        format!("wt{}_", self.id)
    }

    fn config(&self) -> DockerConfig {
        DockerConfig {
            host: Some(self.host.clone()),
            network: self.name.clone(),
            name_prefix: self.prefix(),
            manifest: manifest(),
            ..DockerConfig::default()
        }
    }

    async fn executor(&self) -> DockerExecutor {
        DockerExecutor::connect(self.config())
            .await
            .expect("connects")
    }

    async fn inspect(&self, container: &str) -> ContainerInspectResponse {
        self.docker
            .inspect_container(container, None)
            .await
            .expect("container exists")
    }

    /// The names (without `/`) of all containers that start with `prefix`.
    async fn names(&self, prefix: &str) -> Vec<String> {
        list_names(&self.docker)
            .await
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect()
    }

    /// Waits until container `id` no longer runs.
    async fn wait_stopped(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.inspect(id).await.state.unwrap().running == Some(true) {
            assert!(Instant::now() < deadline, "container {id} still runs");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn list_names(docker: &Docker) -> Vec<String> {
    let options = ListContainersOptions {
        all: true,
        ..ListContainersOptions::default()
    };
    docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect()
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let (host, id, name) = (self.host.clone(), self.id.clone(), self.name.clone());
        // Blocking cleanup on a thread of its own: Drop cannot await.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let docker = client(&host).await;
                for n in list_names(&docker).await {
                    if n.contains(&id) {
                        let force = RemoveContainerOptions {
                            force: true,
                            ..RemoveContainerOptions::default()
                        };
                        let _ = docker.remove_container(&n, Some(force)).await;
                    }
                }
                if let Err(e) = docker.remove_network(&name).await {
                    eprintln!("network {name} not removed: {e}");
                }
            })
        });
        let _ = cleanup.join();
    }
}

/// A busybox container running `script`.
fn spec(name: &str, memory_mb: u64, script: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        kind: TEST_KIND.into(),
        image: None,
        memory_mb,
        env: vec![("WHISK_TEST_SCRIPT".into(), script.into())],
        host_network: false,
    }
}

const SLEEPER: &str = "exec sleep 100000";

#[tokio::test]
async fn create_sets_openwhisk_names_and_limits() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = DockerExecutor::connect(DockerConfig {
        user_memory_mb: 2048,
        extra_env: vec![("EXTRA".into(), "yes".into())],
        ..net.config()
    })
    .await
    .unwrap();
    let mut spec256 = spec("wsk0_1_guest_limits", 256, SLEEPER);
    spec256
        .env
        .push(("__OW_API_HOST".into(), "http://api.invalid".into()));
    for (spec, shares) in [(spec256, 128), (spec("c_small", 32, SLEEPER), 16)] {
        let c = exec.create(&spec).await.expect("container starts");
        let info = net.inspect(c.id()).await;
        assert_eq!(
            info.name.as_deref(),
            Some(format!("/{}{}", net.prefix(), spec.name).as_str()),
            "named by the spec, with the executor's prefix"
        );
        let host = info.host_config.unwrap();
        let bytes = spec.memory_mb as i64 * 1024 * 1024;
        assert_eq!(host.memory, Some(bytes), "--memory");
        assert_eq!(host.memory_swap, Some(bytes), "--memory-swap (no swap)");
        assert_eq!(host.cpu_shares, Some(shares), "1024 / (2048 / memory)");
        assert_eq!(host.pids_limit, Some(1024));
        let ulimits = host.ulimits.unwrap();
        assert_eq!(ulimits.len(), 1);
        assert_eq!(ulimits[0].name.as_deref(), Some("nofile"));
        assert_eq!((ulimits[0].soft, ulimits[0].hard), (Some(1024), Some(1024)));
        let mut dropped = host.cap_drop.unwrap();
        dropped.sort();
        assert_eq!(dropped, ["NET_ADMIN", "NET_RAW"]);
        assert_eq!(host.network_mode.as_deref(), Some(net.name.as_str()));
        let config = info.config.unwrap();
        let env = config.env.unwrap();
        for var in spec
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(["EXTRA=yes".to_string()])
        {
            assert!(env.contains(&var), "{var} in {env:?}");
        }
        let labels = config.labels.unwrap();
        assert_eq!(labels.get(NAME_PREFIX_LABEL), Some(&net.prefix()));
        assert_eq!(labels.get(KIND_LABEL).map(String::as_str), Some(TEST_KIND));
        assert_eq!(config.image.as_deref(), Some(TEST_IMAGE));
        assert_eq!(info.state.unwrap().running, Some(true));
        let ip = info.network_settings.unwrap().networks.unwrap()[&net.name]
            .ip_address
            .clone()
            .unwrap();
        assert!(ip.starts_with(&net.subnet), "{ip} on {}", net.subnet);
        assert_eq!(c.endpoint(), format!("http://{ip}:8080"));
        c.destroy().await.unwrap();
    }
}

#[tokio::test]
async fn pause_and_resume_freeze_and_thaw() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = net.executor().await;
    let c = exec.create(&spec("pause", 64, SLEEPER)).await.unwrap();
    c.pause().await.unwrap();
    let state = net.inspect(c.id()).await.state.unwrap();
    assert_eq!(state.paused, Some(true), "paused");
    c.resume().await.unwrap();
    let state = net.inspect(c.id()).await.state.unwrap();
    assert_eq!(
        (state.paused, state.running),
        (Some(false), Some(true)),
        "running again"
    );
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn destroy_removes_and_is_idempotent() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = net.executor().await;
    let running = exec.create(&spec("running", 64, SLEEPER)).await.unwrap();
    let paused = exec.create(&spec("paused", 64, SLEEPER)).await.unwrap();
    paused.pause().await.unwrap();
    for c in [running, paused] {
        c.destroy().await.unwrap();
        let gone = net.docker.inspect_container(c.id(), None).await;
        assert!(gone.is_err(), "container {} removed", c.id());
        c.destroy().await.expect("a second destroy is fine");
        assert!(matches!(c.pause().await, Err(ExecutorError::Gone(_))));
    }
    assert_eq!(net.names(&net.prefix()).await, Vec::<String>::new());
}

#[tokio::test]
async fn dropping_a_container_removes_it() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = net.executor().await;
    let c = exec.create(&spec("dropped", 64, SLEEPER)).await.unwrap();
    let id = c.id().to_string();
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(30);
    while net.docker.inspect_container(&id, None).await.is_ok() {
        assert!(Instant::now() < deadline, "dropped container still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn cleanup_removes_the_prefixed_leftovers_only() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let prefix = net.prefix();
    let exec = net.executor().await;
    // Leftovers of a "previous run": running, exited, and created but never started.
    let running = exec.create(&spec("a", 64, SLEEPER)).await.unwrap();
    let exited = exec
        .create(&spec("b", 64, "sleep 1; exit 3"))
        .await
        .unwrap();
    net.wait_stopped(exited.id()).await;
    let raw = |name: String| {
        let docker = net.docker.clone();
        async move {
            let options = CreateContainerOptions {
                name: Some(name),
                ..CreateContainerOptions::default()
            };
            let body = ContainerCreateBody {
                image: Some(TEST_IMAGE.into()),
                ..ContainerCreateBody::default()
            };
            docker.create_container(Some(options), body).await.unwrap();
        }
    };
    raw(format!("{prefix}never_started")).await;
    // Not ours: another invoker's prefix, and our prefix inside a name.
    let other_prefix = format!("wo{}_", net.id);
    let other = DockerExecutor::connect(DockerConfig {
        name_prefix: other_prefix.clone(),
        ..net.config()
    })
    .await
    .unwrap();
    let theirs = other.create(&spec("c", 64, SLEEPER)).await.unwrap();
    raw(format!("x{prefix}inside")).await;

    // Connecting removes nothing.
    let restarted = net.executor().await;
    assert_eq!(net.names(&prefix).await.len(), 3, "connect left them alone");
    assert_eq!(restarted.cleanup().await.unwrap(), 3);
    assert_eq!(net.names(&prefix).await, Vec::<String>::new());
    assert_eq!(net.names(&other_prefix).await.len(), 1);
    assert_eq!(net.names(&format!("x{prefix}")).await.len(), 1);
    assert_eq!(restarted.cleanup().await.unwrap(), 0);
    running
        .destroy()
        .await
        .expect("destroying a cleaned-up container is fine");
    exited.destroy().await.unwrap();
    theirs.destroy().await.unwrap();
}

#[tokio::test]
async fn a_missing_blackbox_image_is_an_image_pull_error() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = net.executor().await;
    // The image's registry is a closed loopback port: the pull fails at once.
    let image = format!("127.0.0.1:9/whisk-absent-{}:1", net.id);
    let blackbox = ContainerSpec {
        kind: "blackbox".into(),
        image: Some(image.clone()),
        ..spec("bb", 64, SLEEPER)
    };
    let started = Instant::now();
    assert_eq!(
        exec.create(&blackbox).await.err(),
        Some(ExecutorError::ImagePull(image))
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    // Named without a tag: `:latest` is pulled, the error names the image as given.
    let untagged = format!("127.0.0.1:9/whisk-absent-{}", net.id);
    let blackbox = ContainerSpec {
        image: Some(untagged.clone()),
        ..blackbox
    };
    assert_eq!(
        exec.create(&blackbox).await.err(),
        Some(ExecutorError::ImagePull(untagged))
    );
    // A manifest image that cannot be pulled is the platform's failure.
    let missing = ContainerSpec {
        kind: MISSING_KIND.into(),
        ..spec("mf", 64, SLEEPER)
    };
    assert!(matches!(
        exec.create(&missing).await,
        Err(ExecutorError::StartFailed(_))
    ));
    assert_eq!(
        net.names(&net.prefix()).await,
        Vec::<String>::new(),
        "no container left"
    );
}

#[tokio::test]
async fn a_pull_that_hangs_ends_at_the_pull_timeout() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    // A "registry" on loopback that accepts connections and never answers.
    let registry = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = registry.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = registry.accept().await {
            held.push(socket);
        }
    });
    let exec = DockerExecutor::connect(DockerConfig {
        pull_timeout: Duration::from_secs(2),
        ..net.config()
    })
    .await
    .unwrap();
    let image = format!("127.0.0.1:{port}/whisk-hangs:1");
    let blackbox = ContainerSpec {
        kind: "blackbox".into(),
        image: Some(image.clone()),
        ..spec("hang", 64, SLEEPER)
    };
    let started = Instant::now();
    assert_eq!(
        exec.create(&blackbox).await.err(),
        Some(ExecutorError::ImagePull(image))
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "{took:?}"
    );
    silent.abort();
}

#[tokio::test]
async fn unknown_kinds_are_unsupported() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = net.executor().await;
    assert_eq!(exec.name(), "docker");
    assert!(exec.supports("blackbox"));
    assert!(exec.supports("nodejs:20"));
    assert!(exec.supports(TEST_KIND));
    assert!(!exec.supports("cobol:85"));
    let cobol = ContainerSpec {
        kind: "cobol:85".into(),
        ..spec("cobol", 64, SLEEPER)
    };
    assert!(matches!(
        exec.create(&cobol).await,
        Err(ExecutorError::Unsupported(_))
    ));
}

#[tokio::test]
async fn an_unreachable_daemon_fails_promptly() {
    // No daemon needed: these daemons are not there.
    let dir = std::env::temp_dir().join(unique("whisk-test-docker-"));
    std::fs::create_dir_all(&dir).unwrap();
    let with = |host: String| DockerConfig {
        host: Some(host),
        connect_timeout: Duration::from_secs(1),
        ..DockerConfig::default()
    };
    let expect_unreachable = |r: Result<DockerExecutor, ExecutorError>, what: &str| match r {
        Err(ExecutorError::Other(m)) => assert!(m.contains("unreachable"), "{what}: {m}"),
        Err(e) => panic!("{what}: {e}"),
        Ok(_) => panic!("{what}: connected"),
    };
    // No socket at all.
    let absent = dir.join("absent.sock");
    let started = Instant::now();
    let r = DockerExecutor::connect(with(format!("unix://{}", absent.display()))).await;
    expect_unreachable(r, "absent socket");
    // A socket nobody listens on any more.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    expect_unreachable(
        DockerExecutor::connect(with(stale.display().to_string())).await,
        "stale socket",
    );
    // A daemon that accepts and never answers: bounded by the connect timeout.
    let hung = dir.join("hung.sock");
    let listener = tokio::net::UnixListener::bind(&hung).unwrap();
    let accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    expect_unreachable(
        DockerExecutor::connect(with(format!("unix://{}", hung.display()))).await,
        "silent daemon",
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    accepting.abort();
    // Not a unix socket.
    assert!(DockerExecutor::connect(with("tcp://127.0.0.1:2375".into()))
        .await
        .is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_oom_killed_container_is_out_of_memory() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = net.executor().await;
    // Doubles a shell variable until the 16 MB limit kills the shell.
    let hog = "sleep 1; x=aaaaaaaaaaaaaaaa; while true; do x=\"$x$x\"; done";
    let oom = exec.create(&spec("oom", 16, hog)).await.unwrap();
    let exits = exec
        .create(&spec("exits", 16, "sleep 1; exit 3"))
        .await
        .unwrap();
    let sleeps = exec.create(&spec("sleeps", 16, SLEEPER)).await.unwrap();
    net.wait_stopped(oom.id()).await;
    net.wait_stopped(exits.id()).await;
    assert!(oom.out_of_memory().await, "killed for its memory");
    assert!(!exits.out_of_memory().await, "exited by itself");
    assert!(!sleeps.out_of_memory().await, "still running");
    oom.destroy().await.unwrap();
    assert!(!oom.out_of_memory().await, "gone");
    exits.destroy().await.unwrap();
    sleeps.destroy().await.unwrap();
}

#[tokio::test]
async fn logs_end_at_the_sentinels() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = net.executor().await;
    let script = format!(
        "echo out1; echo err1 >&2; printf '%040000d\\n' 7; echo {SENTINEL}; echo {SENTINEL} >&2; \
         sleep 1; echo out2; echo err2 >&2; echo {SENTINEL}; echo {SENTINEL} >&2; {SLEEPER}"
    );
    let c = exec.create(&spec("logs", 64, &script)).await.unwrap();
    let started = Instant::now();
    let first = c.logs(true, Duration::from_secs(30)).await.unwrap();
    let mut out: Vec<&str> = first
        .iter()
        .filter(|l| l.stream == Stream::Stdout)
        .map(|l| l.message.as_str())
        .collect();
    let err: Vec<&str> = first
        .iter()
        .filter(|l| l.stream == Stream::Stderr)
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(out.len(), 2, "{out:?}");
    let long = out.pop().unwrap();
    assert_eq!(
        long.len(),
        40_000,
        "a line longer than Docker's 16 KB log entries"
    );
    assert!(long.ends_with("07") && long.starts_with("000"));
    assert_eq!(out, ["out1"]);
    assert_eq!(err, ["err1"]);
    let second: Vec<(Stream, String)> = c
        .logs(true, Duration::from_secs(30))
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.stream, l.message))
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "ended by the sentinels"
    );
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(second.contains(&(Stream::Stdout, "out2".into())));
    assert!(second.contains(&(Stream::Stderr, "err2".into())));
    // Nothing more: the wait runs out.
    let started = Instant::now();
    let none = c.logs(true, Duration::from_millis(500)).await.unwrap();
    assert!(none.is_empty(), "{none:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn logs_end_early_when_the_container_dies() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = net.executor().await;
    let c = exec
        .create(&spec(
            "dies",
            64,
            "echo partial; echo oops >&2; sleep 2; exit 1",
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let lines = c.logs(true, Duration::from_secs(120)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let mut msgs: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    msgs.sort();
    assert_eq!(msgs, ["oops", "partial"]);
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn create_does_not_wait_for_the_runtime_port() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    let exec = net.executor().await;
    let started = Instant::now();
    let c = exec.create(&spec("silent", 64, SLEEPER)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    // The runtime client's retries end at the action's timeout.
    let init = RuntimeClient::default()
        .init(
            c.endpoint(),
            &init_body("x", None, Some("code"), false, Map::new()),
            Duration::from_secs(1),
        )
        .await;
    assert!(!init.response.is_success());
    assert!(init.container_failed, "{init:?}");
    c.destroy().await.unwrap();
}

#[tokio::test]
async fn a_blackbox_image_serves_the_runtime_protocol() {
    let Some(host) = daemon() else { return };
    let net = TestNet::new(&host).await;
    if !has_image(&net.docker, BLACKBOX_ECHO).await {
        return;
    }
    let exec = net.executor().await;
    let spec = ContainerSpec {
        name: "echo".into(),
        kind: "blackbox".into(),
        image: Some(BLACKBOX_ECHO.into()),
        memory_mb: 128,
        env: vec![],
        host_network: false,
    };
    let c = exec.create(&spec).await.unwrap();
    let client = RuntimeClient::default();
    let timeout = Duration::from_secs(20);
    let init = client
        .init(
            c.endpoint(),
            &init_body("echo", None, None, false, Map::new()),
            timeout,
        )
        .await;
    assert!(init.response.is_success(), "{init:?}");
    let run = client
        .run(c.endpoint(), &json!({"value": {"n": 1}}), timeout)
        .await;
    assert!(run.response.is_success(), "{run:?}");
    assert_eq!(run.response.result.unwrap()["echo"], json!({"n": 1}));
    let lines = c.logs(true, Duration::from_secs(5)).await.unwrap();
    let msgs: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(msgs, [r#"blackbox got {"n":1}"#]);
    c.destroy().await.unwrap();
}

/// The executor of a conformance case with the case's own network (removed with it).
struct NetExecutor {
    exec: DockerExecutor,
    _net: TestNet,
}

impl NetExecutor {
    /// `None` (skip) without a daemon or (outside CI) without the `nodejs:20` image.
    async fn new() -> Option<Self> {
        let net = TestNet::new(&daemon()?).await;
        if !has_image(&net.docker, NODEJS_IMAGE).await {
            return None;
        }
        Some(Self {
            exec: net.executor().await,
            _net: net,
        })
    }
}

#[async_trait::async_trait]
impl ContainerExecutor for NetExecutor {
    fn name(&self) -> &str {
        self.exec.name()
    }

    fn supports(&self, kind: &str) -> bool {
        self.exec.supports(kind)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<Arc<dyn Container>, ExecutorError> {
        self.exec.create(spec).await
    }
}

mod nodejs_conformance {
    use super::*;

    whisk_core::executor_conformance_tests!(
        match NetExecutor::new().await {
            Some(exec) => exec,
            None => return,
        },
        Fixture::nodejs()
    );
}
