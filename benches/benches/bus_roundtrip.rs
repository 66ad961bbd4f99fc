//! Run with `WHISK_TEST_KAFKA=127.0.0.1:9092 cargo bench -p whisk-benches --bench bus_roundtrip`.
//!
//! The broker's own floor under the cluster benchmark: one message out on a topic and its
//! echo back on a second one (the two hops of a blocking invoke: `invoker0` and
//! `completed0`), through the Kafka bus beside the in-process memory bus. Reported per
//! window of 500 round trips, because a broker whose fetch cost grows with the records it
//! holds shows it here first.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use whisk_benches::{closed_loop, report};
use whisk_core::bus::{Consumer, MessageBus};

const WINDOWS: usize = 4;
const PER_WINDOW: u64 = 500;

/// A topic pair with an echo task: what goes out on `ping` comes back on `pong`.
struct Echo {
    bus: Arc<dyn MessageBus>,
    replies: Mutex<Box<dyn Consumer>>,
}

impl Echo {
    async fn start(bus: Arc<dyn MessageBus>) -> Arc<Echo> {
        for t in ["ping", "pong"] {
            bus.create_topic(t).await.expect("create topic");
        }
        let replies = bus
            .subscribe("pong", "bench")
            .await
            .expect("subscribe pong");
        let mut requests = bus
            .subscribe("ping", "bench")
            .await
            .expect("subscribe ping");
        let echo_bus = bus.clone();
        tokio::spawn(async move {
            loop {
                let Ok(batch) = requests.poll(64, Duration::from_secs(1)).await else {
                    return;
                };
                for m in batch {
                    echo_bus.publish("pong", m).await.expect("publish pong");
                }
                let _ = requests.commit().await;
            }
        });
        Arc::new(Echo {
            bus,
            replies: Mutex::new(replies),
        })
    }

    /// One round trip.
    async fn round_trip(&self) {
        let mut replies = self.replies.lock().await;
        self.bus
            .publish("ping", Bytes::from_static(b"{}"))
            .await
            .expect("publish ping");
        let got = replies
            .poll(1, Duration::from_secs(30))
            .await
            .expect("poll pong");
        assert!(!got.is_empty(), "no echo within 30 s");
        replies.commit().await.expect("commit");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(brokers) = std::env::var("WHISK_TEST_KAFKA") else {
        println!(
            "whisk bus_roundtrip: not measured (set WHISK_TEST_KAFKA to a Kafka-protocol broker)"
        );
        return;
    };
    let floor_echo = Echo::start(Arc::new(whisk_bus::MemoryBus::new())).await;
    let config = whisk_bus::KafkaConfig::new(&brokers)
        .with_topic_prefix(format!("bench-rt-{}-", std::process::id()));
    let wait = config.fetch_wait_max;
    let kafka = whisk_bus::KafkaBus::connect(config)
        .await
        .expect("Kafka broker reachable");
    let kafka_echo = Echo::start(Arc::new(kafka)).await;
    println!(
        "whisk bus_roundtrip: publish + consume + echo back, Kafka bus (fetch.wait.max.ms {} ms) vs memory bus (floor)",
        wait.as_millis()
    );
    for w in 0..WINDOWS {
        let run = |echo: Arc<Echo>| {
            closed_loop(1, PER_WINDOW, Duration::from_secs(120), move || {
                let echo = echo.clone();
                async move { echo.round_trip().await }
            })
        };
        let floor = run(floor_echo.clone()).await;
        let kafka = run(kafka_echo.clone()).await;
        let name = format!(
            "round trip, msgs {}..{}",
            w as u64 * PER_WINDOW,
            (w as u64 + 1) * PER_WINDOW
        );
        report(&name, 1, kafka, floor);
    }
    std::process::exit(0);
}
