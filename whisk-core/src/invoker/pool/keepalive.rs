//! Keep-alive policies: how long an idle warm container of an action stays, and whether the
//! pool should let it go at once and warm a new one just before the action's next expected
//! invocation (pre-warming).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Decides, per action, how long idle containers are kept.
pub trait KeepAlive: Send + Sync + fmt::Debug + 'static {
    /// An activation of `action` (its document id, `ns/[pkg/]name`) arrived at the pool.
    fn invoked(&self, _action: &str, _now: Instant) {}

    /// The windows for `action`'s container that just became idle.
    fn windows(&self, action: &str) -> Windows;

    /// A short name for reports (`fixed-10m`, `hybrid`, ...).
    fn name(&self) -> String;
}

/// What a keep-alive policy decided for one idle container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// With `Some(w)`, the container is removed as soon as it is idle and a new one of the
    /// action is started and initialised `w` after its last use (if memory allows).
    pub prewarm: Option<Duration>,
    /// How long the (kept or pre-warmed) container stays idle before it is removed.
    pub keep_alive: Duration,
}

/// OpenWhisk's policy: every idle container is kept for the same time (the invoker's idle
/// container timeout, 10 minutes by default), never pre-warmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedKeepAlive(pub Duration);

impl KeepAlive for FixedKeepAlive {
    fn windows(&self, _action: &str) -> Windows {
        Windows {
            prewarm: None,
            keep_alive: self.0,
        }
    }

    fn name(&self) -> String {
        format!("fixed-{}", humantime::format_duration(self.0))
    }
}

/// The hybrid histogram policy of Shahrad et al., "Serverless in the Wild" (USENIX ATC 2020):
/// per action, a histogram of idle times between invocations (1-minute bins over a range of
/// 4 hours). When it is representative, the container is released after each run and
/// pre-warmed at the histogram's 5th percentile (minus a 10% margin), then kept until its 99th
/// percentile (plus 10%). When the action has too few idle times, too many beyond the range, or
/// a flat histogram (coefficient of variation of the bin counts under
/// [`min_cv`](Self::min_cv)), the fixed `fallback` applies.
#[derive(Debug)]
pub struct HybridHistogram {
    /// Width of a histogram bin.
    pub bin: Duration,
    /// Bins covered: idle times beyond `bin × bins` are out of range.
    pub bins: usize,
    /// Idle times needed before the histogram is used.
    pub min_samples: u32,
    /// Smallest coefficient of variation of the bin counts for a representative histogram.
    pub min_cv: f64,
    /// Largest share of out-of-range idle times for a representative histogram.
    pub max_out_of_range: f64,
    /// The policy when the histogram cannot be used.
    pub fallback: FixedKeepAlive,
    actions: Mutex<HashMap<String, History>>,
}

#[derive(Debug)]
struct History {
    last: Instant,
    counts: Vec<u32>,
    samples: u32,
    out_of_range: u32,
}

impl Default for HybridHistogram {
    fn default() -> Self {
        Self::new(FixedKeepAlive(Duration::from_secs(600)))
    }
}

impl HybridHistogram {
    /// The paper's parameters (1-minute bins, 4 hours, 10 samples, CV 2), `fallback` otherwise.
    pub fn new(fallback: FixedKeepAlive) -> Self {
        Self {
            bin: Duration::from_secs(60),
            bins: 240,
            min_samples: 10,
            min_cv: 2.0,
            max_out_of_range: 0.5,
            fallback,
            actions: Mutex::new(HashMap::new()),
        }
    }

    /// The windows from a histogram of `counts`, if it is representative.
    fn histogram_windows(&self, h: &History) -> Option<Windows> {
        let in_range: u32 = h.counts.iter().sum();
        if h.samples < self.min_samples
            || f64::from(h.out_of_range) > self.max_out_of_range * f64::from(h.samples)
            || in_range == 0
        {
            return None;
        }
        let n = h.counts.len() as f64;
        let mean = f64::from(in_range) / n;
        let var = h
            .counts
            .iter()
            .map(|&c| (f64::from(c) - mean).powi(2))
            .sum::<f64>()
            / n;
        if var.sqrt() / mean < self.min_cv {
            return None;
        }
        let percentile = |p: f64| {
            let target = (p * f64::from(in_range)).ceil().max(1.0) as u32;
            let mut seen = 0;
            for (i, &c) in h.counts.iter().enumerate() {
                seen += c;
                if seen >= target {
                    return i;
                }
            }
            h.counts.len() - 1
        };
        // Bin i holds idle times in [i, i+1) bins: the head is the bin's start, the tail its end.
        let head = self.bin * percentile(0.05) as u32;
        let tail = self.bin * (percentile(0.99) as u32 + 1);
        let prewarm = head.mul_f64(0.9);
        let keep_alive = tail.mul_f64(1.1).saturating_sub(prewarm).max(self.bin);
        Some(Windows {
            prewarm: (!prewarm.is_zero()).then_some(prewarm),
            keep_alive,
        })
    }
}

impl KeepAlive for HybridHistogram {
    fn invoked(&self, action: &str, now: Instant) {
        let mut actions = self.actions.lock().unwrap();
        match actions.get_mut(action) {
            Some(h) => {
                let idle = now.saturating_duration_since(h.last);
                h.last = now;
                h.samples += 1;
                let bin = (idle.as_nanos() / self.bin.as_nanos().max(1)) as usize;
                match h.counts.get_mut(bin) {
                    Some(c) => *c += 1,
                    None => h.out_of_range += 1,
                }
            }
            None => {
                actions.insert(
                    action.to_string(),
                    History {
                        last: now,
                        counts: vec![0; self.bins],
                        samples: 0,
                        out_of_range: 0,
                    },
                );
            }
        }
    }

    fn windows(&self, action: &str) -> Windows {
        let actions = self.actions.lock().unwrap();
        actions
            .get(action)
            .and_then(|h| self.histogram_windows(h))
            .unwrap_or_else(|| self.fallback.windows(action))
    }

    fn name(&self) -> String {
        "hybrid-histogram".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn feed(policy: &HybridHistogram, gaps: impl IntoIterator<Item = Duration>) {
        let mut t = Instant::now();
        policy.invoked("ns/a", t);
        for g in gaps {
            t += g;
            policy.invoked("ns/a", t);
        }
    }

    #[test]
    fn fixed_keeps_every_container_the_same_time() {
        let p = FixedKeepAlive(Duration::from_secs(600));
        assert_eq!(
            p.windows("ns/a"),
            Windows {
                prewarm: None,
                keep_alive: Duration::from_secs(600)
            }
        );
        assert_eq!(p.name(), "fixed-10m");
    }

    #[test]
    fn a_periodic_action_is_prewarmed_just_before_its_next_call() {
        let p = HybridHistogram::default();
        // Every 30 minutes (a timer): all idle times fall in bin 30.
        feed(&p, std::iter::repeat_n(30 * MIN, 20));
        let w = p.windows("ns/a");
        assert_eq!(w.prewarm, Some((30 * MIN).mul_f64(0.9)));
        // Kept from 27 min to 31 min × 1.1 = 34.1 min after the last use.
        assert_eq!(
            w.keep_alive,
            (31 * MIN).mul_f64(1.1) - (30 * MIN).mul_f64(0.9)
        );
    }

    #[test]
    fn frequent_calls_keep_the_container_without_prewarming() {
        let p = HybridHistogram::default();
        feed(&p, std::iter::repeat_n(Duration::from_secs(5), 50));
        let w = p.windows("ns/a");
        assert_eq!(w.prewarm, None, "the head is bin 0");
        assert_eq!(w.keep_alive, MIN.mul_f64(1.1));
    }

    #[test]
    fn unrepresentative_histories_fall_back() {
        let p = HybridHistogram::default();
        assert_eq!(
            p.windows("ns/never"),
            p.fallback.windows("x"),
            "unknown action"
        );
        feed(&p, std::iter::repeat_n(30 * MIN, 5));
        assert_eq!(
            p.windows("ns/a"),
            p.fallback.windows("x"),
            "too few idle times"
        );
        let q = HybridHistogram::default();
        feed(&q, std::iter::repeat_n(5 * 60 * MIN, 20));
        assert_eq!(
            q.windows("ns/a"),
            q.fallback.windows("x"),
            "beyond the range"
        );
        let r = HybridHistogram::default();
        // Idle times spread evenly over the range: a flat histogram.
        feed(&r, (0..240u32).map(|i| MIN * i + MIN / 2));
        assert_eq!(r.windows("ns/a"), r.fallback.windows("x"), "flat histogram");
    }
}
