//! The load balancer: books invoker memory, asks the [`Scheduler`] where to run, publishes
//! the `ActivationMessage` and matches acknowledgements back to waiting requests.

use crate::bus::{topics, BusError, MessageBus};
use crate::entity::{ActivationId, WhiskActivation};
use crate::message::{AckResponse, Acknowledgement, ActivationMessage};
use crate::scheduler::{Completion, InvokerView, Placement, Scheduler};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Why an activation could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadBalancerError {
    /// No usable invoker (HTTP 503).
    #[error("No invokers available")]
    NoInvokers,
    /// The bus refused the message.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What a waiting request learns when its activation completes.
#[derive(Debug, Clone, PartialEq)]
pub enum Completed {
    /// The full record arrived with the acknowledgement.
    Activation(Box<WhiskActivation>),
    /// Only the id arrived; read the record from the store.
    IdOnly,
}

struct Slot {
    view: InvokerView,
}

struct Pending {
    namespace: String,
    invoker: u32,
    memory_mb: u64,
    action: String,
    waiter: Option<oneshot::Sender<Completed>>,
    expires: Instant,
}

/// The controller's load balancer.
pub struct LoadBalancer {
    bus: Arc<dyn MessageBus>,
    scheduler: Arc<dyn Scheduler>,
    controller: u32,
    invokers: Mutex<Vec<Slot>>,
    pending: Mutex<HashMap<ActivationId, Pending>>,
    per_namespace: Mutex<HashMap<String, u64>>,
}

impl LoadBalancer {
    /// A balancer for controller `controller`.
    pub fn new(
        bus: Arc<dyn MessageBus>,
        scheduler: Arc<dyn Scheduler>,
        controller: u32,
    ) -> Arc<Self> {
        Arc::new(Self {
            bus,
            scheduler,
            controller,
            invokers: Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
            per_namespace: Mutex::new(HashMap::new()),
        })
    }

    /// The controller id.
    pub fn controller(&self) -> u32 {
        self.controller
    }

    /// Registers (or updates) invoker `id` with `user_memory_mb` and marks it usable.
    pub fn add_invoker(&self, id: u32, user_memory_mb: u64) {
        let mut inv = self.invokers.lock().unwrap();
        let view = InvokerView {
            id,
            usable: true,
            user_memory_mb,
            free_memory_mb: user_memory_mb,
        };
        match inv.iter_mut().find(|s| s.view.id == id) {
            Some(s) => {
                let booked = s.view.user_memory_mb - s.view.free_memory_mb;
                s.view = InvokerView {
                    free_memory_mb: user_memory_mb.saturating_sub(booked),
                    ..view
                };
            }
            None => inv.push(Slot { view }),
        }
    }

    /// Marks invoker `id` usable or not.
    pub fn set_usable(&self, id: u32, usable: bool) {
        self.with_invoker(id, |v| v.usable = usable);
    }

    /// The invokers as the scheduler sees them.
    pub fn invokers(&self) -> Vec<InvokerView> {
        self.invokers
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.view.clone())
            .collect()
    }

    /// Number of activations in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.lock().unwrap().len()
    }

    /// Number of activations of invoking namespace `namespace` in flight.
    pub fn in_flight_of(&self, namespace: &str) -> u64 {
        self.per_namespace
            .lock()
            .unwrap()
            .get(namespace)
            .copied()
            .unwrap_or(0)
    }

    fn count_namespace(&self, namespace: &str, delta: i64) {
        let mut m = self.per_namespace.lock().unwrap();
        let n = m.entry(namespace.to_string()).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            m.remove(namespace);
        }
    }

    /// Applies `f` to the view of `invoker`, if registered.
    fn with_invoker(&self, invoker: u32, f: impl FnOnce(&mut InvokerView)) {
        if let Some(s) = self
            .invokers
            .lock()
            .unwrap()
            .iter_mut()
            .find(|s| s.view.id == invoker)
        {
            f(&mut s.view);
        }
    }

    /// Books `memory_mb` on `invoker`; overload is allowed, free memory saturates at zero.
    fn book(&self, invoker: u32, memory_mb: u64) {
        self.with_invoker(invoker, |v| {
            v.free_memory_mb = v.free_memory_mb.saturating_sub(memory_mb)
        });
    }

    /// Returns `memory_mb` booked on `invoker`.
    fn release(&self, invoker: u32, memory_mb: u64) {
        self.with_invoker(invoker, |v| {
            v.free_memory_mb = (v.free_memory_mb + memory_mb).min(v.user_memory_mb)
        });
    }

    /// Releases what a finished activation booked.
    fn finish(&self, p: &Pending) {
        self.release(p.invoker, p.memory_mb);
        self.count_namespace(&p.namespace, -1);
    }

    /// Places and publishes `msg`. The receiver resolves when the activation completes (it
    /// is dropped if the invoker never answers before the forced-completion deadline).
    pub async fn publish(
        &self,
        msg: &ActivationMessage,
        memory_mb: u64,
        kind: &str,
        timeout_ms: u64,
    ) -> Result<oneshot::Receiver<Completed>, LoadBalancerError> {
        let action = format!("{}/{}", msg.action.path, msg.action.name);
        let views = self.invokers();
        let placement = Placement {
            namespace: &msg.user.namespace.name,
            action: &action,
            memory_mb,
            kind,
        };
        let invoker = self
            .scheduler
            .schedule(&placement, &views)
            .await
            .ok_or(LoadBalancerError::NoInvokers)?;
        self.book(invoker, memory_mb);
        let (tx, rx) = oneshot::channel();
        // OpenWhisk's forced completion: max(timeout, 60 s) x 2 + 1 min.
        let expires = Instant::now()
            + Duration::from_millis(timeout_ms.max(60_000) * 2)
            + Duration::from_secs(60);
        let namespace = msg.user.namespace.name.clone();
        self.count_namespace(&namespace, 1);
        self.pending.lock().unwrap().insert(
            msg.activation_id.clone(),
            Pending {
                namespace,
                invoker,
                memory_mb,
                action,
                waiter: Some(tx),
                expires,
            },
        );
        let bytes = serde_json::to_vec(msg).expect("activation message serialises");
        if let Err(e) = self
            .bus
            .publish(&topics::invoker(invoker), bytes.into())
            .await
        {
            if let Some(p) = self.pending.lock().unwrap().remove(&msg.activation_id) {
                self.finish(&p);
            }
            return Err(e.into());
        }
        Ok(rx)
    }

    /// Handles one acknowledgement.
    pub async fn on_ack(&self, ack: Acknowledgement) {
        let id = ack.activation_id().clone();
        let (completes, response, system_error) = match &ack {
            Acknowledgement::Combined {
                response,
                is_system_error,
                ..
            } => (true, Some(response), *is_system_error),
            Acknowledgement::Completion {
                is_system_error, ..
            } => (true, None, *is_system_error),
            Acknowledgement::Result { response, .. } => (false, Some(response), false),
        };
        let (waiter, done) = {
            let mut pending = self.pending.lock().unwrap();
            let Some(p) = pending.get_mut(&id) else {
                return;
            };
            let waiter = if response.is_some() {
                p.waiter.take()
            } else {
                None
            };
            let done = if completes { pending.remove(&id) } else { None };
            (waiter, done)
        };
        if let (Some(w), Some(r)) = (waiter, response) {
            let _ = w.send(match r {
                AckResponse::Activation(a) => Completed::Activation(a.clone()),
                AckResponse::Id(_) => Completed::IdOnly,
            });
        }
        if let Some(p) = done {
            self.finish(&p);
            let duration = match response {
                Some(AckResponse::Activation(a)) => a.effective_duration(),
                _ => None,
            };
            self.scheduler
                .completed(&Completion {
                    invoker: p.invoker,
                    action: &p.action,
                    duration_ms: duration,
                    system_error,
                })
                .await;
        }
    }

    /// Releases activations whose invoker never answered in time.
    pub fn expire(&self, now: Instant) -> usize {
        let expired: Vec<Pending> = {
            let mut pending = self.pending.lock().unwrap();
            let ids: Vec<ActivationId> = pending
                .iter()
                .filter(|(_, p)| p.expires <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in &expired {
            tracing::warn!(
                invoker = p.invoker,
                action = p.action,
                "forced completion of an unanswered activation"
            );
            self.finish(p);
        }
        expired.len()
    }

    /// Consumes `completed{controller}` and runs the expiry sweep until aborted.
    pub async fn start(self: &Arc<Self>) -> Result<tokio::task::JoinHandle<()>, BusError> {
        let topic = topics::completed(self.controller);
        self.bus.create_topic(&topic).await?;
        let mut consumer = self
            .bus
            .subscribe(&topic, &format!("completed{}", self.controller))
            .await?;
        let me = self.clone();
        Ok(tokio::spawn(async move {
            let mut last_sweep = Instant::now();
            loop {
                match consumer.poll(256, Duration::from_secs(1)).await {
                    Ok(batch) => {
                        for bytes in &batch {
                            match Acknowledgement::parse(bytes) {
                                Ok(ack) => me.on_ack(ack).await,
                                Err(e) => {
                                    tracing::error!(error = %e, "dropping unreadable acknowledgement")
                                }
                            }
                        }
                        if !batch.is_empty() {
                            let _ = consumer.commit().await;
                        }
                    }
                    Err(BusError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "ack poll failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                if last_sweep.elapsed() >= Duration::from_secs(1) {
                    me.expire(Instant::now());
                    last_sweep = Instant::now();
                }
            }
        }))
    }
}
