//! Wire compatibility with OpenWhisk's own JavaScript client, the `openwhisk` npm package.
//!
//! The package is installed from the npm registry into `target/test-clients` on first use
//! (a package install, like any other dependency); the client then talks to a standalone
//! platform on loopback only.

mod common;

use common::Platform;
use std::path::PathBuf;
use std::process::Command;
use whisk_core::entity::identity::GUEST_KEY;

/// The pinned client version.
const CLIENT: &str = "openwhisk@3.21.9";

fn client_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-clients");
    if !dir.join("node_modules/openwhisk/package.json").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
            ])
            .arg(&dir)
            .arg(CLIENT)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm install {CLIENT} failed");
    }
    dir.join("node_modules")
}

/// Runs the client script against the platform at `base`; asserts its 14 checks pass.
async fn drive(base: &str) {
    let modules = client_dir();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/openwhisk-npm.js");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .arg(&modules)
        .arg(base)
        .arg(GUEST_KEY)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed:\n{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        14,
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openwhisk_npm_client_drives_the_platform() {
    let p = Platform::start().await;
    drive(&p.base).await;
}

/// The same over HTTPS (a self-signed certificate, the client's `ignore_certs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openwhisk_npm_client_drives_the_platform_over_https() {
    let cert = common::tls::Cert::generate();
    let p = Platform::start_config(common::StandaloneConfig {
        serve: cert.settings(),
        prewarm: false,
        ..Default::default()
    })
    .await;
    assert!(p.base.starts_with("https://"), "{}", p.base);
    drive(&p.base).await;
}
