//! HTTPS for the REST API (rustls) when a certificate is given: the binaries' `--tls-cert` /
//! `--tls-key`, the library's `ServeSettings::tls`, clear errors for unusable files, and the
//! handshake's share of the slow-client limits.

mod common;

use common::tls::Cert;
use common::{Platform, StandaloneConfig};
use reqwest::StatusCode;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use whisk_core::entity::identity::GUEST_KEY;
use whisk_examples::server::{ServeSettings, Tls};

/// `GET /api/v1/namespaces` as `key`.
async fn namespaces(
    http: &reqwest::Client,
    url: &str,
    key: &str,
) -> reqwest::Result<reqwest::Response> {
    let (user, pass) = key.split_once(':').unwrap();
    http.get(format!("{url}/api/v1/namespaces"))
        .basic_auth(user, Some(pass))
        .send()
        .await
}

/// Waits (up to a generous guard) for `child` to exit.
fn exit_of(child: &mut std::process::Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "platform did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The standalone binary with `--tls-cert`/`--tls-key` prints an https URL and serves the API
/// over TLS with wsk-style Basic auth; plain HTTP and clients that do not trust the
/// certificate get nothing; SIGTERM still drains (a blocking invoke in flight is answered).
#[tokio::test]
async fn the_binary_serves_https_with_the_given_certificate() {
    let cert = Cert::generate();
    let tls: [std::ffi::OsString; 4] = [
        "--tls-cert".into(),
        cert.cert().into(),
        "--tls-key".into(),
        cert.key().into(),
    ];
    let (mut child, url) = common::spawn_quiet_standalone(&tls);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let http = cert.client();

    let r = namespaces(&http, &url, GUEST_KEY).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!(["guest"])
    );
    let wrong = format!(
        "{}:{}",
        GUEST_KEY.split_once(':').unwrap().0,
        "x".repeat(64)
    );
    let r = namespaces(&http, &url, &wrong).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "The supplied authentication is invalid");

    // A client that does not trust the certificate, and plain HTTP to the TLS port, fail.
    let untrusting = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(namespaces(&untrusting, &url, GUEST_KEY).await.is_err());
    let plain = url.replacen("https://", "http://", 1);
    assert!(namespaces(&untrusting, &plain, GUEST_KEY).await.is_err());

    // Actions work over TLS, and a blocking invoke in flight at SIGTERM gets its result.
    let (user, pass) = GUEST_KEY.split_once(':').unwrap();
    let code =
        "function main() { return new Promise(r => setTimeout(() => r({ok: true}), 1500)); }";
    let r = http
        .put(format!("{url}/api/v1/namespaces/_/actions/slow"))
        .basic_auth(user, Some(pass))
        .json(&serde_json::json!({"exec": {"kind": "nodejs:20", "code": code}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let invoke = http
        .post(format!(
            "{url}/api/v1/namespaces/_/actions/slow?blocking=true&result=true"
        ))
        .basic_auth(user, Some(pass))
        .send();
    let blocking = tokio::spawn(invoke);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let answer = blocking.await.unwrap().expect("answered while draining");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"ok": true})
    );
    let status = tokio::task::spawn_blocking(move || exit_of(&mut child.0))
        .await
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
}

/// Runs `whisk-standalone` with `args`; its exit status, stdout and stderr.
fn standalone(args: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_whisk-standalone"))
        .args(["--port", "0", "--store", "memory", "--no-feeds"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Asserts the binary refused to start with `args`: a failing exit, no URL printed, and
/// stderr naming every one of `expected` (never a panic).
fn refuses(args: &[&Path], expected: &[&str]) {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (status, out, err) = standalone(&args);
    assert!(!status.success(), "{out}{err}");
    assert!(out.is_empty(), "it never listened: {out}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !err.contains("Custom {"),
        "the message, not its debug form: {err}"
    );
    for text in expected {
        assert!(err.contains(text), "{text:?} not in {err}");
    }
}

/// Unusable TLS settings stop the binary before it listens, with a message naming the flag or
/// file: one flag without the other, a missing file, a file without a certificate or key,
/// and a key that belongs to another certificate.
#[test]
fn unusable_tls_files_stop_the_binary_with_a_clear_message() {
    let cert = Cert::generate();
    let other = Cert::generate();
    let flag = |s: &'static str| Path::new(s);
    let (c, k) = (cert.cert(), cert.key());
    refuses(&[flag("--tls-cert"), &c], &["--tls-key"]);
    refuses(&[flag("--tls-key"), &k], &["--tls-cert"]);

    let missing = cert.dir.path().join("missing.pem");
    let m = missing.to_str().unwrap();
    refuses(
        &[flag("--tls-cert"), &missing, flag("--tls-key"), &k],
        &["TLS certificate", m],
    );
    refuses(
        &[flag("--tls-cert"), &c, flag("--tls-key"), &missing],
        &["TLS key", m],
    );
    // The key where the certificate belongs holds no certificate; the certificate where the
    // key belongs holds no key.
    refuses(
        &[flag("--tls-cert"), &k, flag("--tls-key"), &k],
        &["TLS certificate", k.to_str().unwrap(), "no PEM certificate"],
    );
    refuses(
        &[flag("--tls-cert"), &c, flag("--tls-key"), &c],
        &["TLS key", c.to_str().unwrap(), "no PEM private key"],
    );
    let (ok, ok_key) = (other.cert(), other.key());
    refuses(
        &[flag("--tls-cert"), &c, flag("--tls-key"), &ok_key],
        &[c.to_str().unwrap(), ok_key.to_str().unwrap()],
    );
    // The same files in their right places start (checked through the library, which the
    // binary calls).
    assert!(Tls::from_pem_files(&ok, &ok_key).is_ok());
}

/// The library serves TLS too: a standalone platform and a controller with
/// `ServeSettings::tls` answer on https URLs, and a client that connects without ever
/// completing the TLS handshake is cut off after the header read timeout while others are
/// served.
#[tokio::test]
async fn the_library_serves_https_and_cuts_off_stalled_handshakes() {
    use whisk_core::bus::MessageBus;
    use whisk_core::store::Store;
    use whisk_examples::cluster::{seed_keys, ControllerProcess, ControllerSettings};

    let cert = Cert::generate();
    let mut p = Platform::start_config(StandaloneConfig {
        serve: ServeSettings {
            header_read_timeout: Duration::from_secs(1),
            ..cert.settings()
        },
        prewarm: false,
        feeds: whisk_examples::feeds::FeedSettings {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    assert!(p.base.starts_with("https://"), "{}", p.base);
    p.http = cert.client();
    assert_eq!(
        p.get("/api/v1/namespaces").await.body,
        serde_json::json!(["guest"])
    );

    // A connection that never starts its handshake is closed; the API keeps serving.
    let mut stalled = tokio::net::TcpStream::connect(p.platform.addr)
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = Box::pin(async move {
        let mut buf = [0u8; 64];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let mut served = 0;
    loop {
        tokio::select! {
            _ = &mut closed => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                assert_eq!(p.get("/api/v1/namespaces").await.status, StatusCode::OK);
                served += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stalled connection was never closed"
        );
    }
    assert!(served > 0, "others were served while it stalled");

    // The controller of a cluster.
    let store: Arc<dyn Store> = Arc::new(whisk_store::MemoryStore::new());
    seed_keys(store.as_ref()).await.unwrap();
    let bus: Arc<dyn MessageBus> = Arc::new(whisk_bus::MemoryBus::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = ControllerSettings {
        serve: cert.settings(),
        ..ControllerSettings::default()
    };
    let controller = ControllerProcess::start_with(store, bus, listener, settings)
        .await
        .unwrap();
    let url = controller.server.url();
    assert!(url.starts_with("https://"), "{url}");
    let r = namespaces(&cert.client(), &url, GUEST_KEY).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    controller.shutdown().await;
    p.platform.shutdown().await;
}
