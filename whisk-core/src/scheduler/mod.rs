//! The `Scheduler` trait: which invoker runs an activation.

use crate::message::PoolReport;
use async_trait::async_trait;

mod warm;
pub use warm::WarmAware;

mod sharding;
pub use sharding::ShardingBalancer;

/// What the load balancer knows about one invoker when it asks for a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokerView {
    /// Invoker id (`invoker{id}` topic).
    pub id: u32,
    /// Whether it may receive work.
    pub usable: bool,
    /// Its user memory in MB.
    pub user_memory_mb: u64,
    /// Memory not booked by in-flight activations, in MB (zero when overbooked).
    pub free_memory_mb: u64,
    /// Memory booked by in-flight activations, in MB; more than `user_memory_mb` when the
    /// invoker is overloaded (its pool queues the excess).
    pub booked_memory_mb: u64,
}

impl InvokerView {
    /// A usable invoker with `user_memory_mb` of which `booked_memory_mb` is booked.
    pub fn new(id: u32, user_memory_mb: u64, booked_memory_mb: u64) -> Self {
        Self {
            id,
            usable: true,
            user_memory_mb,
            free_memory_mb: user_memory_mb.saturating_sub(booked_memory_mb),
            booked_memory_mb,
        }
    }

    /// Unbooked memory in MB, negative when overbooked: the least loaded invoker has the
    /// most, also under overload.
    pub fn headroom_mb(&self) -> i64 {
        self.user_memory_mb as i64 - self.booked_memory_mb as i64
    }

    /// Books (`delta_mb` > 0) or returns (< 0) memory of in-flight activations.
    pub fn book(&mut self, delta_mb: i64) {
        self.booked_memory_mb = self.booked_memory_mb.saturating_add_signed(delta_mb);
        self.free_memory_mb = self.user_memory_mb.saturating_sub(self.booked_memory_mb);
    }
}

/// The activation to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement<'a> {
    /// The invoking namespace.
    pub namespace: &'a str,
    /// `ns/[pkg/]name` of the action.
    pub action: &'a str,
    /// Memory the action needs, in MB.
    pub memory_mb: u64,
    /// Its kind.
    pub kind: &'a str,
}

/// What a finished activation teaches the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion<'a> {
    /// The invoker that ran it.
    pub invoker: u32,
    /// `ns/[pkg/]name` of the action.
    pub action: &'a str,
    /// Run time in ms, when known.
    pub duration_ms: Option<u64>,
    /// The `/init` time in ms when the activation started a container (cold or prewarmed
    /// start: a new warm container of the action now exists on `invoker`); `None` for a warm
    /// start or when unknown.
    pub init_ms: Option<u64>,
    /// Whether the invoker failed it as a system error.
    pub system_error: bool,
}

/// Picks invokers.
#[async_trait]
pub trait Scheduler: Send + Sync + 'static {
    /// The invoker for `placement`, or `None` when no invoker is usable. The load balancer
    /// books the memory afterwards, even when the chosen invoker has too little free
    /// (overload), so a scheduler should prefer invokers with room.
    async fn schedule(&self, placement: &Placement<'_>, invokers: &[InvokerView]) -> Option<u32>;

    /// Called for every completion.
    async fn completed(&self, _completion: &Completion<'_>) {}

    /// Called with what `invoker` reported of its container pool in a ping (whisk's
    /// invokers report it; OpenWhisk's do not).
    async fn invoker_report(&self, _invoker: u32, _report: &PoolReport) {}
}

/// Places each activation on the usable invoker with the most unbooked memory, counting
/// overbooking under overload (lowest id on ties).
#[derive(Debug, Default, Clone, Copy)]
pub struct LeastLoaded;

#[async_trait]
impl Scheduler for LeastLoaded {
    async fn schedule(&self, _placement: &Placement<'_>, invokers: &[InvokerView]) -> Option<u32> {
        invokers
            .iter()
            .filter(|i| i.usable)
            .min_by_key(|i| (std::cmp::Reverse(i.headroom_mb()), i.id))
            .map(|i| i.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(id: u32, usable: bool, free: u64) -> InvokerView {
        InvokerView {
            usable,
            ..InvokerView::new(id, 1024, 1024 - free)
        }
    }

    #[tokio::test]
    async fn least_loaded_prefers_free_usable_invokers() {
        let p = Placement {
            namespace: "g",
            action: "g/a",
            memory_mb: 256,
            kind: "nodejs:20",
        };
        let s = LeastLoaded;
        assert_eq!(
            s.schedule(&p, &[inv(0, true, 100), inv(1, true, 900)])
                .await,
            Some(1)
        );
        assert_eq!(
            s.schedule(&p, &[inv(0, true, 100), inv(1, false, 900)])
                .await,
            Some(0)
        );
        assert_eq!(s.schedule(&p, &[inv(0, false, 100)]).await, None);
        // Under overload (no free memory anywhere) the least overbooked one.
        let over = [
            InvokerView::new(0, 1024, 2048),
            InvokerView::new(1, 1024, 1280),
        ];
        assert_eq!(s.schedule(&p, &over).await, Some(1));
    }
}
