//! KafkaBus against a real Kafka-protocol broker (CI: noida-db; the outage test: tansu).
//!
//! The broker address comes from `WHISK_TEST_KAFKA` (`host:port`); the outage test starts its
//! own broker from the tansu binary named by `WHISK_TEST_TANSU`. Without them the tests are
//! skipped, except under CI (`CI` set), where they fail. Every test uses its own topics and
//! groups, so they share one broker.
#![cfg(feature = "kafka")]

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::ClientConfig;
use std::future::Future;
use std::time::{Duration, Instant};
use whisk_bus::kafka::{KafkaBus, KafkaConfig};
use whisk_core::bus::{topics, BusError, Consumer, MessageBus};
use whisk_core::testkit::broker::{free_port, OwnBroker};
use whisk_core::testkit::{service_from_env, unique};

/// Generous guard against hangs; no test asserts on timing.
const GUARD: Duration = Duration::from_secs(90);

fn config(brokers: String) -> KafkaConfig {
    KafkaConfig::new(brokers)
}

async fn bus() -> Option<KafkaBus> {
    let brokers = service_from_env("WHISK_TEST_KAFKA", "Kafka-protocol broker")?;
    Some(
        KafkaBus::connect(config(brokers))
            .await
            .expect("connect to the test broker"),
    )
}

async fn guard<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {GUARD:?}"))
}

/// Polls until a message arrives (or the guard runs out).
async fn next(c: &mut Box<dyn Consumer>) -> String {
    guard("poll", async {
        loop {
            if let Some(m) = c.poll(1, Duration::from_millis(500)).await.unwrap().pop() {
                return String::from_utf8(m.to_vec()).unwrap();
            }
        }
    })
    .await
}

whisk_core::bus_conformance_tests!(match bus().await {
    Some(b) => b,
    None => return,
});

/// OpenWhisk's topic names, with a prefix, are created on the broker and carry messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openwhisk_topics_with_prefix() {
    let Some(brokers) = service_from_env("WHISK_TEST_KAFKA", "Kafka-protocol broker") else {
        return;
    };
    let prefix = format!("{}_", unique("whisk"));
    let bus = KafkaBus::connect(config(brokers.clone()).with_topic_prefix(&prefix))
        .await
        .unwrap();
    let names = [
        topics::invoker(0),
        topics::completed(0),
        topics::HEALTH.to_string(),
        topics::CACHE_INVALIDATION.to_string(),
        topics::EVENTS.to_string(),
    ];
    for t in &names {
        bus.create_topic(t).await.unwrap();
        bus.create_topic(t).await.unwrap(); // already there: fine
    }

    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let meta = tokio::task::spawn_blocking(move || {
        probe
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap()
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for t in &names {
        assert!(
            meta.contains(&format!("{prefix}{t}")),
            "{prefix}{t} on the broker"
        );
        assert!(!meta.contains(t), "unprefixed {t} not created");
    }

    let mut consumers = Vec::new();
    for t in &names {
        consumers.push(guard("subscribe", bus.subscribe(t, t)).await.unwrap());
    }
    for t in &names {
        bus.publish(t, Bytes::from(format!("to {t}")))
            .await
            .unwrap();
    }
    for (t, c) in names.iter().zip(consumers.iter_mut()) {
        assert_eq!(next(c).await, format!("to {t}"));
        c.commit().await.unwrap();
    }
}

/// Publish → poll round trip through the broker (printed, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_latency() {
    let Some(bus) = bus().await else { return };
    let topic = unique("rt");
    bus.create_topic(&topic).await.unwrap();
    let started = Instant::now();
    let mut c = guard("subscribe", bus.subscribe(&topic, "rt"))
        .await
        .unwrap();
    let join = started.elapsed();
    let mut rtts = Vec::new();
    let mut publish = Vec::new();
    for i in 0..200 {
        let msg = format!("m{i}");
        let t0 = Instant::now();
        bus.publish(&topic, Bytes::from(msg.clone())).await.unwrap();
        publish.push(t0.elapsed());
        assert_eq!(next(&mut c).await, msg);
        rtts.push(t0.elapsed());
        c.commit().await.unwrap();
    }
    let t0 = Instant::now();
    c.commit().await.unwrap();
    let idle_commit = t0.elapsed();
    bus.publish(&topic, "x".into()).await.unwrap();
    next(&mut c).await;
    let t0 = Instant::now();
    c.commit().await.unwrap();
    let commit = t0.elapsed();
    rtts.sort();
    publish.sort();
    let pct = |v: &[Duration], p: usize| v[(v.len() - 1) * p / 100];
    eprintln!(
        "kafka: group join {join:?}; publish p50 {:?} p99 {:?}; publish→poll p50 {:?} p90 {:?} p99 {:?} max {:?}; commit {commit:?} (nothing to commit {idle_commit:?})",
        pct(&publish, 50),
        pct(&publish, 99),
        pct(&rtts, 50),
        pct(&rtts, 90),
        pct(&rtts, 99),
        rtts[rtts.len() - 1],
    );
}

/// Messages over the broker's size limit fail with `TooLarge`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_is_reported() {
    let Some(bus) = bus().await else { return };
    let topic = unique("big");
    bus.create_topic(&topic).await.unwrap();
    let err = bus
        .publish(&topic, Bytes::from(vec![b'x'; 2 << 20]))
        .await
        .unwrap_err();
    assert_eq!(err, BusError::TooLarge(2 << 20));
    bus.publish(&topic, Bytes::from(vec![b'x'; 100 << 10]))
        .await
        .unwrap();
}

/// Several partitions: members of a group split them, and every message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_shared_by_members() {
    let Some(brokers) = service_from_env("WHISK_TEST_KAFKA", "Kafka-protocol broker") else {
        return;
    };
    let mut cfg = config(brokers);
    cfg.partitions = 3;
    let bus = KafkaBus::connect(cfg).await.unwrap();
    let topic = unique("parts");
    bus.create_topic(&topic).await.unwrap();
    let mut c1 = guard("subscribe", bus.subscribe(&topic, "g"))
        .await
        .unwrap();
    let mut c2 = guard("subscribe", bus.subscribe(&topic, "g"))
        .await
        .unwrap();
    for i in 0..60 {
        bus.publish(&topic, Bytes::from(format!("m{i:02}")))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    guard("both members", async {
        while got.len() < 60 {
            for c in [&mut c1, &mut c2] {
                for m in c.poll(100, Duration::from_millis(100)).await.unwrap() {
                    got.push(String::from_utf8(m.to_vec()).unwrap());
                }
                c.commit().await.unwrap();
            }
        }
    })
    .await;
    got.sort();
    let want: Vec<String> = (0..60).map(|i| format!("m{i:02}")).collect();
    assert_eq!(got, want);
}

/// A static member (`group.instance.id`) killed with a message read but not committed, then
/// started again with the same id, as a restarted invoker is: the new process is given the
/// partition and the message again. A new member without the id would have to wait for the
/// broker to drop the dead one (its session timeout; CI's broker never drops it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_static_member_takes_its_partition_back() {
    let Some(brokers) = service_from_env("WHISK_TEST_KAFKA", "Kafka-protocol broker") else {
        return;
    };
    let topic = unique("static");
    let id = unique("member");
    let bus = KafkaBus::connect(config(brokers.clone())).await.unwrap();
    bus.create_topic(&topic).await.unwrap();

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["static_member_child", "--exact", "--ignored", "--nocapture"])
        .env("WHISK_STATIC_CHILD", format!("{brokers} {topic} {id}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let said = guard(
        "the child reads the message",
        tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            std::io::BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .find(|l| l.starts_with("holding "))
        }),
    )
    .await
    .unwrap();
    assert_eq!(said.as_deref(), Some("holding m1"));
    child.kill().unwrap(); // SIGKILL: the member never leaves its group
    child.wait().unwrap();

    let mut cfg = config(brokers).with_group_instance_id(&id);
    cfg.join_timeout = Duration::from_secs(30);
    let again = KafkaBus::connect(cfg).await.unwrap();
    let mut c = guard("subscribe again", again.subscribe(&topic, "g"))
        .await
        .expect("the restarted member is given its partition");
    assert_eq!(
        next(&mut c).await,
        "m1",
        "the uncommitted message comes again"
    );
}

/// The member that `a_restarted_static_member_takes_its_partition_back` kills: joins as a
/// static member, reads a message without committing it, says so, and waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of a_restarted_static_member_takes_its_partition_back"]
async fn static_member_child() {
    let spec = std::env::var("WHISK_STATIC_CHILD").expect("run by its parent test");
    let [brokers, topic, id] = spec.split(' ').collect::<Vec<_>>()[..] else {
        panic!("bad WHISK_STATIC_CHILD {spec:?}")
    };
    let bus = KafkaBus::connect(config(brokers.to_string()).with_group_instance_id(id))
        .await
        .unwrap();
    let mut c = guard("subscribe", bus.subscribe(topic, "g")).await.unwrap();
    bus.publish(topic, "m1".into()).await.unwrap();
    println!("holding {}", next(&mut c).await);
    std::future::pending::<()>().await;
}

/// A broker that is not there: `connect` fails with `Unavailable`, promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_is_unavailable() {
    let port = free_port();
    let mut cfg = KafkaConfig::new(format!("127.0.0.1:{port}"));
    cfg.request_timeout = Duration::from_secs(2);
    let err = guard("connect", KafkaBus::connect(cfg)).await.unwrap_err();
    assert!(matches!(err, BusError::Unavailable(_)), "{err:?}");
}

/// Retries `op` until it succeeds (the broker is coming back).
async fn until_ok<T, F: Future<Output = Result<T, BusError>>>(
    what: &str,
    mut op: impl FnMut() -> F,
) -> T {
    guard(what, async {
        loop {
            match op().await {
                Ok(v) => return v,
                Err(e) => {
                    eprintln!("{what}: {e} (retrying)");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
    .await
}

/// The broker goes away and comes back (empty: memory storage): publish fails rather than
/// hangs, poll does not panic, and the same bus (and the same consumer) work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_broker_outage() {
    let Some(bin) = service_from_env("WHISK_TEST_TANSU", "tansu broker binary") else {
        return;
    };
    let mut broker = OwnBroker::start(&bin);
    let mut cfg = KafkaConfig::new(broker.address());
    cfg.publish_timeout = Duration::from_secs(3);
    cfg.request_timeout = Duration::from_secs(3);
    let bus = KafkaBus::connect(cfg).await.unwrap();
    let topic = unique("outage");
    bus.create_topic(&topic).await.unwrap();
    let unread = unique("outage-unread");
    bus.create_topic(&unread).await.unwrap();
    let mut c = guard("subscribe", bus.subscribe(&topic, "g"))
        .await
        .unwrap();
    bus.publish(&topic, "before".into()).await.unwrap();
    assert_eq!(next(&mut c).await, "before");
    c.commit().await.unwrap();
    bus.publish(&topic, "pending".into()).await.unwrap();
    assert_eq!(next(&mut c).await, "pending");

    broker.kill();
    let err = guard("publish while down", bus.publish(&topic, "lost".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Unavailable(_)), "{err:?}");
    let polled = guard("poll while down", c.poll(10, Duration::from_secs(1))).await;
    assert!(matches!(polled, Ok(ref v) if v.is_empty()), "{polled:?}");
    let err = guard("commit while down", c.commit()).await.unwrap_err();
    assert!(matches!(err, BusError::Unavailable(_)), "{err:?}");
    let err = guard("create_topic while down", bus.create_topic(&topic))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Unavailable(_)), "{err:?}");

    // The broker comes back empty. Once it answers, a publish to a topic it lost succeeds
    // at the first call (the producer has the broker create it again).
    broker.restart();
    until_ok("create_topic after restart", || bus.create_topic(&topic)).await;
    guard(
        "publish to a lost topic",
        bus.publish(&unread, "recreated".into()),
    )
    .await
    .expect("the lost topic is created again");
    until_ok("publish after restart", || {
        bus.publish(&topic, "again".into())
    })
    .await;
    let mut fresh = guard("subscribe after restart", bus.subscribe(&topic, "g2"))
        .await
        .unwrap();
    bus.publish(&topic, "after".into()).await.unwrap();
    assert_eq!(next(&mut fresh).await, "after");
    fresh.commit().await.unwrap();

    // The consumer from before the outage rejoins its group by itself.
    let started = Instant::now();
    let got = guard("old consumer after restart", async {
        let mut i = 0;
        loop {
            i += 1;
            bus.publish(&topic, Bytes::from(format!("late{i}")))
                .await
                .unwrap();
            let got = c.poll(10, Duration::from_millis(500)).await.unwrap();
            if let Some(m) = got.into_iter().next() {
                return String::from_utf8(m.to_vec()).unwrap();
            }
        }
    })
    .await;
    assert!(
        got.starts_with("late") || got == "again" || got == "after",
        "{got}"
    );
    c.commit().await.unwrap();
    eprintln!("old consumer back after {:?} with {got}", started.elapsed());
}
