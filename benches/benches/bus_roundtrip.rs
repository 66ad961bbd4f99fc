//! Run with `WHISK_TEST_KAFKA=127.0.0.1:9092 cargo bench -p whisk-benches --bench bus_roundtrip`.
//!
//! The broker's own floor under the cluster benchmark: one message out on a topic and its
//! echo back on a second one (the two hops of a blocking invoke: `invoker0` and
//! `completed0`), through the Kafka bus beside the in-process memory bus. Reported per
//! window of 500 round trips, because a broker whose fetch cost grows with the records it
//! holds shows it here first.

use std::sync::Arc;
use whisk_benches::{kafka_brokers, kafka_bus, report, Echo};

const WINDOWS: usize = 4;
const PER_WINDOW: u64 = 500;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(brokers) = kafka_brokers("bus_roundtrip") else {
        return;
    };
    let floor_echo = Echo::start(Arc::new(whisk_bus::MemoryBus::new())).await;
    let kafka = kafka_bus(&brokers, "roundtrip").await;
    let wait = kafka.config().fetch_wait_max;
    let kafka_echo = Echo::start(Arc::new(kafka)).await;
    println!(
        "whisk bus_roundtrip: publish + consume + echo back, Kafka bus (fetch.wait.max.ms {} ms) vs memory bus (floor)",
        wait.as_millis()
    );
    for w in 0..WINDOWS {
        let floor = floor_echo.round_trips(PER_WINDOW).await;
        let kafka = kafka_echo.round_trips(PER_WINDOW).await;
        let name = format!(
            "round trip, msgs {}..{}",
            w as u64 * PER_WINDOW,
            (w as u64 + 1) * PER_WINDOW
        );
        report(&name, 1, kafka, floor);
    }
    std::process::exit(0);
}
