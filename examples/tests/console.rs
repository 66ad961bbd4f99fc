//! The web console at `/console`, end to end in headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`): log in, list actions, triggers and rules,
//! invoke from the page, read activations with their result and logs, and watch the charts
//! follow `/metrics`.
//!
//! Needs `chromedriver`: `WHISK_TEST_CHROMEDRIVER` (its path, set by `.ci/run`) or one on
//! `PATH`. Without either the test is skipped, but under CI it fails.

mod common;

use common::Platform;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use whisk_core::entity::identity::GUEST_KEY;

/// Where `.ci/run` says chromedriver is.
const CHROMEDRIVER_VAR: &str = "WHISK_TEST_CHROMEDRIVER";
/// The Chromium binary, when not `chromium` on `PATH`.
const CHROMIUM_VAR: &str = "WHISK_TEST_CHROMIUM";
/// How long the page gets for anything the test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The program named by `var`, else `name` on `PATH`; `None` (skip, but a panic under CI)
/// when there is neither.
fn program(var: &str, name: &str, what: &str) -> Option<PathBuf> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => on_path(name).or_else(|| {
            // `var` is unset: this prints the skip message, or panics under CI.
            whisk_core::testkit::service_from_env(var, what);
            None
        }),
    }
}

/// chromedriver and Chromium, or `None` when either is missing.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let driver = program(
        CHROMEDRIVER_VAR,
        "chromedriver",
        "chromedriver (Debian's chromium-driver)",
    )?;
    let chromium = program(CHROMIUM_VAR, "chromium", "Chromium (Debian's chromium)")?;
    Some((driver, chromium))
}

/// A chromedriver process on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(path: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{url}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, url }
    }

    /// A headless Chromium session.
    async fn session(&self, chromium: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-proxy-server", "--window-size=1280,1600",
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it gives a value; fails with `what` after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The element at CSS `css`.
async fn find(c: &Client, css: &str) -> Element {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Clicks the element at `css`, finding it again when the console re-rendered it between the
/// find and the click (a stale element); any other WebDriver error fails the test.
async fn click(c: &Client, css: &str) {
    eventually(&format!("a click on {css}"), || async {
        match find(c, css).await.click().await {
            Ok(()) => Some(()),
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                None
            }
            Err(e) => panic!("click on {css}: {e}"),
        }
    })
    .await
}

/// The text content of the element at `css` (also when it is hidden), or "" when absent.
async fn text(c: &Client, css: &str) -> String {
    let script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';";
    c.execute(script, vec![json!(css)])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the text at `css` contains `want`; returns the text.
async fn text_containing(c: &Client, css: &str, want: &str) -> String {
    eventually(&format!("{css} to contain {want:?}"), || async {
        let t = text(c, css).await;
        t.contains(want).then_some(t)
    })
    .await
}

/// The number shown at `css` (`None` while it shows none).
async fn number(c: &Client, css: &str) -> Option<f64> {
    text(c, css).await.trim().parse().ok()
}

/// Types `value` into the (cleared) input at `css`.
async fn type_into(c: &Client, css: &str, value: &str) {
    let e = find(c, css).await;
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Whether the element at `css` is displayed.
async fn displayed(c: &Client, css: &str) -> bool {
    find(c, css).await.is_displayed().await.unwrap()
}

/// The number of activations of the guest namespace, through the API.
async fn activation_count(p: &Platform) -> u64 {
    let r = p.get("/api/v1/namespaces/_/activations?count=true").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["activations"].as_u64().unwrap()
}

#[tokio::test]
async fn console_lists_invokes_shows_activations_and_charts() {
    let Some((driver_path, chromium)) = browser() else {
        return;
    };
    let p = Platform::start().await;

    // The page and its assets are served without authentication.
    let r = p.send(Method::GET, "/console", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("whisk console"));
    let r = p
        .send(Method::GET, "/console/uPlot.iife.min.js", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        p.send(Method::GET, "/console/nope.js", None, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // What the page should list, made through the API.
    p.action(
        "hello",
        "nodejs:20",
        "function main(p) { console.log('hello log ' + (p.name || '')); \
         return {greeting: 'hello ' + (p.name || 'world')}; }",
        json!({}),
    )
    .await;
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/triggers/tick",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/rules/tick-hello",
            Some(json!({"trigger": "/_/tick", "action": "/_/hello"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let driver = Driver::start(&driver_path).await;
    let client = driver.session(&chromium).await;
    // Close the browser whatever happens, then report.
    let outcome = std::panic::AssertUnwindSafe(drive(&client, &p))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The browser part of the test.
async fn drive(c: &Client, p: &Platform) {
    let console = format!("{}/console", p.base);
    c.goto(&console).await.unwrap();
    eventually("the login form", || async {
        displayed(c, "#login").await.then_some(())
    })
    .await;
    assert!(!displayed(c, "#app").await);

    // A malformed key is refused by the page; a wrong key by the platform.
    type_into(c, "#key", "not-a-key").await;
    click(c, "#login-button").await;
    text_containing(c, "#login-error", "uuid:key").await;
    let wrong = format!("{}:wrong", GUEST_KEY.split_once(':').unwrap().0);
    type_into(c, "#key", &wrong).await;
    click(c, "#login-button").await;
    let err = text_containing(c, "#login-error", "Authentication failed").await;
    assert!(
        err.contains("The supplied authentication is invalid"),
        "{err}"
    );
    assert!(!displayed(c, "#app").await);

    // The guest key logs in; it is kept in sessionStorage only, never in the URL.
    type_into(c, "#key", GUEST_KEY).await;
    click(c, "#login-button").await;
    eventually("the app after login", || async {
        displayed(c, "#app").await.then_some(())
    })
    .await;
    assert!(text(c, "#login-error").await.is_empty());
    text_containing(c, "#namespace", "guest").await;
    let stored = c
        .execute(
            "return [sessionStorage.getItem('whisk.console.key'), localStorage.length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(stored, json!([GUEST_KEY, 0]));
    let url = c.current_url().await.unwrap();
    assert!(!url.as_str().contains("123zO3xZ"), "{url}");

    // Actions, triggers and rules of the namespace.
    text_containing(
        c,
        "li[data-testid=action-item][data-name=hello]",
        "nodejs:20",
    )
    .await;
    text_containing(c, "li[data-testid=trigger-item][data-name=tick]", "tick").await;
    let rule = text_containing(
        c,
        "li[data-testid=rule-item][data-name=tick-hello]",
        "/guest/tick",
    )
    .await;
    assert!(rule.contains("/guest/hello"), "{rule}");
    assert_eq!(text(c, "#actions-count").await, "(1)");

    // The charts have their baseline scrape; nothing has run yet.
    eventually("a first metrics scrape", || async {
        number(c, "#stat-activations-total")
            .await
            .map(|n| assert_eq!(n, 0.0))
    })
    .await;

    // Invalid JSON is reported in the page and sends nothing.
    find(c, "#invoke-action")
        .await
        .select_by_value("hello")
        .await
        .unwrap();
    type_into(c, "#invoke-payload", "{\"name\": ").await;
    click(c, "#invoke-button").await;
    text_containing(c, "#invoke-error", "Invalid JSON").await;
    type_into(c, "#invoke-payload", "[1, 2]").await;
    click(c, "#invoke-button").await;
    text_containing(c, "#invoke-error", "must be a JSON object").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(activation_count(p).await, 0, "invalid JSON was sent");
    assert_eq!(text(c, "#invoke-result").await, "");

    // A valid payload invokes the action and shows its result.
    type_into(c, "#invoke-payload", r#"{"name": "console"}"#).await;
    click(c, "#invoke-button").await;
    text_containing(c, "#invoke-result", "hello console").await;
    assert!(text(c, "#invoke-error").await.is_empty());
    let status = text(c, "#invoke-status").await;
    assert!(status.contains("success"), "{status}");
    let id = find(c, "#invoke-result")
        .await
        .attr("data-activation-id")
        .await
        .unwrap()
        .expect("the result names its activation");
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(activation_count(p).await, 1);

    // The activation is listed; a click shows its result and logs.
    let row = format!("tr[data-testid=activation-row][data-id='{id}']");
    let listed = text_containing(c, &row, "success").await;
    assert!(listed.contains("hello"), "{listed}");
    click(c, &row).await;
    let detail = format!("tr[data-testid=activation-detail][data-id='{id}']");
    text_containing(
        c,
        &format!("{detail} pre[data-testid=activation-result]"),
        "hello console",
    )
    .await;
    text_containing(
        c,
        &format!("{detail} pre[data-testid=activation-logs]"),
        "hello log console",
    )
    .await;
    // It stays open across the list's refreshes.
    click(c, "#activations-refresh").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    text_containing(
        c,
        &format!("{detail} pre[data-testid=activation-logs]"),
        "hello log console",
    )
    .await;

    // Two more invocations through the API: the charts count three in their window, show a
    // latency and the warm container.
    for _ in 0..2 {
        assert_eq!(
            p.invoke("hello", json!({}), "").await.status,
            StatusCode::OK
        );
    }
    eventually("the charts to count 3 activations", || async {
        (number(c, "#stat-activations-window").await == Some(3.0)).then_some(())
    })
    .await;
    assert_eq!(number(c, "#stat-activations-total").await, Some(3.0));
    assert!(
        !displayed(c, "#charts-note").await,
        "the standalone runs an invoker"
    );
    // New activations seen by the charts refresh the list, which keeps the open row open.
    eventually("3 listed activations", || async {
        let rows = c
            .find_all(Locator::Css("tr[data-testid=activation-row]"))
            .await
            .unwrap();
        (rows.len() == 3).then_some(())
    })
    .await;
    text_containing(
        c,
        &format!("{detail} pre[data-testid=activation-logs]"),
        "hello log console",
    )
    .await;
    assert_eq!(number(c, "#stat-errors-window").await, Some(0.0));
    let charts = c
        .execute(
            "const d = (id) => document.getElementById(id).dataset; return [\
             d('chart-invocations').total, d('chart-latency').points, d('chart-containers').last,\
             document.querySelectorAll('#chart-invocations canvas, #chart-latency canvas, \
             #chart-containers canvas').length];",
            vec![],
        )
        .await
        .unwrap();
    let Value::Array(charts) = charts else {
        panic!("{charts}")
    };
    assert_eq!(charts[0], json!("3"));
    let latency_points: u32 = charts[1].as_str().unwrap().parse().unwrap();
    assert!(latency_points >= 1, "no latency point: {charts:?}");
    let containers: u32 = charts[2].as_str().unwrap().parse().unwrap();
    assert!(containers >= 1, "no container: {charts:?}");
    assert_eq!(
        charts[3],
        json!(3),
        "the three uPlot charts draw on canvases"
    );
    assert!(number(c, "#stat-containers").await >= Some(1.0));
    let latency = text(c, "#stat-latency").await;
    assert!(latency.ends_with(" ms"), "{latency}");

    // For a person to look at: WHISK_TEST_SCREENSHOT_DIR=dir saves the page as dir/console.png.
    if let Ok(dir) = std::env::var("WHISK_TEST_SCREENSHOT_DIR") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join("console.png"), png).unwrap();
    }

    // Logging out forgets the key.
    click(c, "#logout").await;
    eventually("the login form after logout", || async {
        displayed(c, "#login").await.then_some(())
    })
    .await;
    let stored = c
        .execute(
            "return sessionStorage.getItem('whisk.console.key');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(stored, Value::Null);
}
