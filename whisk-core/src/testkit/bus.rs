//! The MessageBus conformance suite.

use super::unique;
use crate::bus::{Consumer, MessageBus};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

/// Polls until `n` messages arrived (or the wait ran out) and returns them as strings.
async fn take(c: &mut Box<dyn Consumer>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < n && tokio::time::Instant::now() < deadline {
        for m in c
            .poll(n - got.len(), Duration::from_millis(200))
            .await
            .unwrap()
        {
            got.push(String::from_utf8(m.to_vec()).unwrap());
        }
    }
    got
}

async fn publish_all(b: &impl MessageBus, topic: &str, msgs: impl IntoIterator<Item = String>) {
    for m in msgs {
        b.publish(topic, Bytes::from(m)).await.unwrap();
    }
}

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

/// Messages of a topic arrive in publish order.
pub async fn delivers_in_order(b: Arc<impl MessageBus>) {
    let topic = unique("t");
    b.create_topic(&topic).await.unwrap();
    let mut c = b.subscribe(&topic, "g").await.unwrap();
    publish_all(&*b, &topic, numbered(50)).await;
    assert_eq!(take(&mut c, 50).await, numbered(50));
    c.commit().await.unwrap();
}

/// Two groups each receive every message.
pub async fn every_group_gets_every_message(b: Arc<impl MessageBus>) {
    let topic = unique("t");
    b.create_topic(&topic).await.unwrap();
    let mut g1 = b.subscribe(&topic, "g1").await.unwrap();
    let mut g2 = b.subscribe(&topic, "g2").await.unwrap();
    publish_all(&*b, &topic, numbered(10)).await;
    assert_eq!(take(&mut g1, 10).await, numbered(10));
    assert_eq!(take(&mut g2, 10).await, numbered(10));
}

/// Two members of one group together receive each message exactly once.
pub async fn group_members_share_messages(b: Arc<impl MessageBus>) {
    let topic = unique("t");
    b.create_topic(&topic).await.unwrap();
    let mut c1 = b.subscribe(&topic, "g").await.unwrap();
    let mut c2 = b.subscribe(&topic, "g").await.unwrap();
    publish_all(&*b, &topic, numbered(20)).await;
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while all.len() < 20 && tokio::time::Instant::now() < deadline {
        for c in [&mut c1, &mut c2] {
            for m in c.poll(5, Duration::from_millis(100)).await.unwrap() {
                all.push(String::from_utf8(m.to_vec()).unwrap());
            }
            c.commit().await.unwrap();
        }
    }
    all.sort();
    let mut want = numbered(20);
    want.sort();
    assert_eq!(all, want);
    assert!(c1
        .poll(10, Duration::from_millis(200))
        .await
        .unwrap()
        .is_empty());
    assert!(c2
        .poll(10, Duration::from_millis(200))
        .await
        .unwrap()
        .is_empty());
}

/// A group that joins late sees only messages published after it joined.
pub async fn new_group_starts_at_end(b: Arc<impl MessageBus>) {
    let topic = unique("t");
    b.create_topic(&topic).await.unwrap();
    let _early = b.subscribe(&topic, "early").await.unwrap();
    publish_all(&*b, &topic, ["old".to_string()]).await;
    let mut late = b.subscribe(&topic, "late").await.unwrap();
    publish_all(&*b, &topic, ["new".to_string()]).await;
    assert_eq!(take(&mut late, 1).await, ["new"]);
}

/// Messages polled but not committed go to the group's next consumer.
pub async fn uncommitted_messages_are_redelivered(b: Arc<impl MessageBus>) {
    let topic = unique("t");
    b.create_topic(&topic).await.unwrap();
    let mut c = b.subscribe(&topic, "g").await.unwrap();
    publish_all(&*b, &topic, numbered(3)).await;
    assert_eq!(take(&mut c, 2).await, ["m0", "m1"]);
    c.commit().await.unwrap();
    assert_eq!(take(&mut c, 1).await, ["m2"]);
    drop(c);
    let mut again = b.subscribe(&topic, "g").await.unwrap();
    assert_eq!(
        take(&mut again, 1).await,
        ["m2"],
        "uncommitted m2 is delivered again"
    );
    again.commit().await.unwrap();
    drop(again);
    let mut third = b.subscribe(&topic, "g").await.unwrap();
    assert!(third
        .poll(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
}

/// `poll` returns an empty batch after its timeout when nothing arrives.
pub async fn poll_times_out_empty(b: Arc<impl MessageBus>) {
    let topic = unique("t");
    b.create_topic(&topic).await.unwrap();
    let mut c = b.subscribe(&topic, "g").await.unwrap();
    let started = std::time::Instant::now();
    assert!(c
        .poll(10, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());
    assert!(started.elapsed() >= Duration::from_millis(90));
}

/// Waits until `c.lag()` is `want` (backends may report it a few seconds late).
async fn lag_becomes(c: &dyn Consumer, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let lag = c.lag();
        if lag == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag stays {lag:?}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lag counts published messages the group has not committed, received or not.
pub async fn lag_counts_uncommitted_messages(b: Arc<impl MessageBus>) {
    let topic = unique("t");
    b.create_topic(&topic).await.unwrap();
    let mut c = b.subscribe(&topic, "g").await.unwrap();
    publish_all(&*b, &topic, numbered(3)).await;
    assert_eq!(take(&mut c, 2).await, numbered(2));
    lag_becomes(c.as_ref(), 3).await;
    c.commit().await.unwrap();
    lag_becomes(c.as_ref(), 1).await;
    assert_eq!(take(&mut c, 1).await, ["m2"]);
    c.commit().await.unwrap();
    lag_becomes(c.as_ref(), 0).await;
}
