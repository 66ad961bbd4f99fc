//! The feed mechanism and the alarms sources, end to end through the REST API the way the
//! `wsk` CLI drives them (trigger with a `feed` annotation, feed action invoked with
//! `lifecycleEvent`), on a fast-forwarded clock.

mod common;

use common::{Platform, StandaloneConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use whisk_core::feeds::{Clock, ManualClock};
use whisk_examples::feeds::FeedSettings;
use whisk_examples::standalone::StoreBackend;

/// 2026-01-01T00:00:30Z: half a minute before the first cron minute.
const T0: u64 = 1_767_225_630_000;
const ECHO: &str = "function main(params) { return params; }";
const ALARM: &str = "/whisk.system/alarms/alarm";
const WAIT: Duration = Duration::from_secs(60);

fn config(clock: &Arc<ManualClock>, store: StoreBackend) -> StandaloneConfig {
    StandaloneConfig {
        prewarm: false,
        store,
        feeds: FeedSettings {
            enabled: true,
            clock: clock.clone(),
        },
        ..Default::default()
    }
}

async fn platform(clock: &Arc<ManualClock>) -> Platform {
    Platform::start_config(config(clock, StoreBackend::Memory)).await
}

/// An action `echo`, trigger `trigger` fed by `feed` with `params`, and a rule between them.
async fn fed_echo(p: &Platform, trigger: &str, feed: &str, params: Value) {
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    let r = p.feed_trigger(trigger, feed, params).await;
    assert_eq!(r.status, StatusCode::OK, "feed CREATE: {}", r.text);
    assert_eq!(r.body, json!({}));
    p.rule(&format!("{trigger}-rule"), trigger, "echo").await;
}

/// Waits until `sources` alarm tasks sleep (so none computes its next time after the
/// clock moved), then moves the clock by `by`.
async fn advance(clock: &ManualClock, sources: usize, by: Duration) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while clock.sleepers() < sources {
        assert!(tokio::time::Instant::now() < deadline, "alarms never slept");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    clock.advance(by);
}

/// Moves the clock a minute (with one alarm task) and waits until `name` has `n`
/// activations.
async fn minute_later(p: &Platform, clock: &ManualClock, name: &str, n: usize) -> Vec<Value> {
    minute_later_of(p, clock, 1, name, n).await
}

/// [`minute_later`] with `sources` alarm tasks running.
async fn minute_later_of(
    p: &Platform,
    clock: &ManualClock,
    sources: usize,
    name: &str,
    n: usize,
) -> Vec<Value> {
    advance(clock, sources, Duration::from_secs(60)).await;
    let got = p.wait_activations(name, n, WAIT).await;
    assert_eq!(got.len(), n, "activations of {name}: {got:#?}");
    got
}

#[tokio::test]
async fn the_alarms_package_is_installed_as_openwhisks_catalog() {
    let clock = Arc::new(ManualClock::new(T0));
    let p = platform(&clock).await;
    let r = p
        .get("/api/v1/namespaces/whisk.system/packages/alarms")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["publish"], true);
    let mut feeds: Vec<&str> = r.body["feeds"]
        .as_array()
        .expect("feeds")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    feeds.sort_unstable();
    assert_eq!(feeds, ["alarm", "interval", "once"]);
    let r = p
        .get("/api/v1/namespaces/whisk.system/actions/alarms/alarm")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let annotations = r.body["annotations"].as_array().unwrap();
    let feed = annotations.iter().find(|a| a["key"] == "feed").unwrap();
    assert_eq!(feed["value"], true);
    let params = annotations
        .iter()
        .find(|a| a["key"] == "parameters")
        .unwrap();
    assert_eq!(params["value"][0]["name"], "cron");
    assert_eq!(params["value"][0]["required"], true);
}

#[tokio::test]
async fn a_cron_alarm_fires_its_trigger_each_scheduled_minute_with_its_payload() {
    let clock = Arc::new(ManualClock::new(T0));
    let p = platform(&clock).await;
    fed_echo(
        &p,
        "tick",
        ALARM,
        json!({"cron": "* * * * *", "trigger_payload": {"hello": "world"}}),
    )
    .await;
    for n in 1..=3 {
        let got = minute_later(&p, &clock, "echo", n).await;
        assert_eq!(got[0]["response"]["result"]["hello"], "world");
    }
    // The trigger's own activations record each fire.
    let fires = p.activations_of("tick").await;
    assert_eq!(fires.len(), 3, "{fires:#?}");
    assert_eq!(fires[0]["response"]["result"]["hello"], "world");

    // READ: the configuration and status, as OpenWhisk's alarm provider answers.
    let r = p.feed_event("tick", ALARM, "READ", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["config"]["cron"], "* * * * *");
    assert_eq!(r.body["config"]["trigger_payload"]["hello"], "world");
    assert_eq!(r.body["config"]["trigger"], "/guest/tick");
    assert_eq!(r.body["status"]["active"], true);
    assert!(
        r.body["config"].get("authKey").is_none(),
        "keys are not kept"
    );
}

#[tokio::test]
async fn interval_and_once_alarms_follow_their_schedules() {
    let clock = Arc::new(ManualClock::new(T0));
    let p = platform(&clock).await;
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    p.action("echo2", "nodejs:20", ECHO, json!({})).await;
    let r = p
        .feed_trigger(
            "every2",
            "/whisk.system/alarms/interval",
            json!({"minutes": 2, "trigger_payload": {"which": "interval"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    p.rule("every2-rule", "every2", "echo").await;
    let r = p
        .feed_trigger(
            "at5",
            "/whisk.system/alarms/once",
            json!({"date": T0 + 150_000, "trigger_payload": "{\"which\":\"once\"}"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    p.rule("at5-rule", "at5", "echo2").await;

    // Minute 1: nothing is due; minute 2: the interval; minute 3: the one-time alarm.
    advance(&clock, 2, Duration::from_secs(60)).await;
    minute_later_of(&p, &clock, 2, "echo", 1).await;
    let once = minute_later_of(&p, &clock, 2, "echo2", 1).await;
    assert_eq!(once[0]["response"]["result"]["which"], "once");
    // Minute 4: the interval again, the one-time alarm never again.
    let interval = minute_later(&p, &clock, "echo", 2).await;
    assert_eq!(interval[0]["response"]["result"]["which"], "interval");
    assert_eq!(p.activations_of("echo2").await.len(), 1);
    let r = p
        .feed_event("at5", "/whisk.system/alarms/once", "READ", json!({}))
        .await;
    assert_eq!(r.body["status"]["active"], false, "{}", r.text);
    assert_eq!(r.body["status"]["reason"], "the source has no more events");
}

#[tokio::test]
async fn pause_unpause_update_and_delete_follow_the_lifecycle() {
    let clock = Arc::new(ManualClock::new(T0));
    let p = platform(&clock).await;
    fed_echo(&p, "tick", ALARM, json!({"cron": "* * * * *"})).await;
    minute_later(&p, &clock, "echo", 1).await;

    let r = p.feed_event("tick", ALARM, "PAUSE", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.feed_event("tick", ALARM, "READ", json!({})).await;
    assert_eq!(r.body["status"]["active"], false);
    assert_eq!(r.body["status"]["reason"], "paused by the user");
    let deadline = tokio::time::Instant::now() + WAIT;
    while clock.sleepers() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a paused alarm still runs"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    clock.advance(Duration::from_secs(180));
    let r = p.feed_event("tick", ALARM, "UNPAUSE", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Paused minutes are not fired late; the next minute is.
    let got = minute_later(&p, &clock, "echo", 2).await;
    assert!(got[0]["response"]["result"].get("v").is_none());

    // UPDATE changes some parameters and keeps the others.
    let r = p
        .feed_event(
            "tick",
            ALARM,
            "UPDATE",
            json!({"trigger_payload": {"v": 2}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = minute_later(&p, &clock, "echo", 3).await;
    assert_eq!(got[0]["response"]["result"]["v"], 2);
    let r = p.feed_event("tick", ALARM, "READ", json!({})).await;
    assert_eq!(r.body["config"]["cron"], "* * * * *");
    let r = p
        .feed_event("tick", ALARM, "UPDATE", json!({"cron": "not a cron"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);

    let r = p.feed_event("tick", ALARM, "DELETE", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.feed_event("tick", ALARM, "READ", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(
        r.body["error"],
        "The trigger /guest/tick has no /whisk.system/alarms/alarm feed."
    );
    let feeds = p.platform.feeds().unwrap();
    assert!(!feeds.is_running("guest", "tick"));
    assert!(feeds.registration("guest", "tick").await.unwrap().is_none());
}

#[tokio::test]
async fn bad_feed_input_fails_the_trigger_creation_with_a_clear_error() {
    let clock = Arc::new(ManualClock::new(T0));
    let p = platform(&clock).await;
    let refused = |trigger: &'static str, feed: &'static str, params: Value| {
        let p = &p;
        async move {
            let r = p.feed_trigger(trigger, feed, params).await;
            assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
            // As the CLI does, the trigger is gone again.
            let t = p
                .get(&format!("/api/v1/namespaces/_/triggers/{trigger}"))
                .await;
            assert_eq!(t.status, StatusCode::NOT_FOUND);
            r.body["error"].as_str().unwrap_or_default().to_string()
        }
    };
    let e = refused("t1", ALARM, json!({"cron": "61 * * * *"})).await;
    assert!(
        e.starts_with("cron pattern '61 * * * *' is not valid"),
        "{e}"
    );
    let e = refused("t2", ALARM, json!({})).await;
    assert_eq!(e, "The parameter 'cron' is required.");
    let e = refused("t3", "/whisk.system/alarms/once", json!({"date": T0 - 1})).await;
    assert!(e.starts_with("date must be in the future"), "{e}");
    let e = refused(
        "t4",
        "/whisk.system/alarms/interval",
        json!({"minutes": -1}),
    )
    .await;
    assert!(e.starts_with("minutes must be a positive integer"), "{e}");

    // A feed action of the user's own that fails fails the creation the same way.
    p.action(
        "myfeed",
        "nodejs:20",
        "function main(p) { return { error: 'my feed refuses ' + p.lifecycleEvent }; }",
        json!({}),
    )
    .await;
    let e = refused("t5", "/guest/myfeed", json!({})).await;
    assert_eq!(e, "my feed refuses CREATE");

    // The provider's own checks, through the feed action.
    p.action("echo", "nodejs:20", ECHO, json!({})).await;
    let r = p
        .feed_event(
            "nosuchtrigger",
            ALARM,
            "CREATE",
            json!({"cron": "* * * * *"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        r.body["error"],
        "The trigger /guest/nosuchtrigger does not exist."
    );
    let r = p
        .feed_trigger("dup", ALARM, json!({"cron": "* * * * *"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p
        .feed_event("dup", ALARM, "CREATE", json!({"cron": "* * * * *"}))
        .await;
    assert_eq!(
        r.body["error"],
        "The trigger /guest/dup already has a feed."
    );
    let r = p.feed_event("dup", ALARM, "RESTART", json!({})).await;
    assert_eq!(
        r.body["error"],
        "The parameter 'lifecycleEvent' must be one of CREATE, READ, UPDATE, DELETE, PAUSE or UNPAUSE."
    );

    // The provider's endpoint directly: authentication, another namespace, bad bodies.
    let path = "/api/v1/feeds/alarms/alarm";
    let r = p.send(Method::POST, path, Some("{}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = p
        .call(
            Method::POST,
            path,
            Some(json!({"lifecycleEvent": "READ", "triggerName": "/someone/else"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = p.raw(Method::POST, path, "[1]").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = p
        .call(Method::POST, "/api/v1/feeds/alarms/nope", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(
        r.body["error"],
        "There is no feed /whisk.system/alarms/nope."
    );
}

#[tokio::test]
async fn a_deleted_trigger_ends_its_registration_and_others_keep_firing() {
    let clock = Arc::new(ManualClock::new(T0));
    let p = platform(&clock).await;
    fed_echo(&p, "keep", ALARM, json!({"cron": "* * * * *"})).await;
    let r = p
        .feed_trigger("gone", ALARM, json!({"cron": "* * * * *"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Deleted without the feed's DELETE (e.g. through the REST API alone).
    let r = p
        .call(Method::DELETE, "/api/v1/namespaces/_/triggers/gone", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    minute_later(&p, &clock, "echo", 1).await;
    let feeds = p.platform.feeds().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while feeds.registration("guest", "gone").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "registration kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    minute_later(&p, &clock, "echo", 2).await;
}

#[tokio::test]
async fn registrations_survive_a_restart_and_never_fire_twice() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("whisk_core=debug")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let store = StoreBackend::Embedded(dir.path().join("data"));
    let clock = Arc::new(ManualClock::new(T0));
    let p = Platform::start_config(config(&clock, store.clone())).await;
    fed_echo(&p, "tick", ALARM, json!({"cron": "* * * * *"})).await;
    minute_later(&p, &clock, "echo", 1).await;
    p.platform.shutdown().await;

    // Same data, same time: the minute that fired is behind the saved cursor.
    let clock = Arc::new(ManualClock::new(clock.now_ms()));
    let p = Platform::start_config(config(&clock, store)).await;
    let feeds = p.platform.feeds().unwrap();
    assert!(feeds.is_running("guest", "tick"), "resumed");
    minute_later(&p, &clock, "echo", 2).await;
    minute_later(&p, &clock, "echo", 3).await;
    let fires: Vec<u64> = p
        .activations_of("tick")
        .await
        .iter()
        .map(|a| a["start"].as_u64().unwrap())
        .collect();
    assert_eq!(
        fires.len(),
        3,
        "one fire per minute, none repeated: {fires:?}"
    );
}
