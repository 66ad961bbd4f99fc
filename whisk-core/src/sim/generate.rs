//! A seeded synthetic trace generator with the statistics published for the Azure Functions
//! 2019 trace.
//!
//! [`Synthetic::generate`] builds a [`Trace`] that is a pure function of its parameters: the
//! same [`Synthetic`] always gives the same trace (on every platform and Rust version: the
//! generator uses its own SplitMix64 stream and inverse-CDF sampling, no external crate), and
//! a different seed gives a different one.
//!
//! # The model and where each number comes from
//!
//! "the paper" is Shahrad et al., *Serverless in the Wild: Characterizing and Optimizing the
//! Serverless Workload at a Large Cloud Provider*, USENIX ATC 2020, which describes the Azure
//! Functions trace of July 2019. Numbers marked *assumption* are not published there; they are
//! chosen to be plausible and documented so they can be changed.
//!
//! | aspect | model | source |
//! |---|---|---|
//! | triggers | share of functions: HTTP 55.0 %, queue 15.2 %, timer 15.6 %, orchestration 6.9 %, storage 2.8 %, event 2.2 %, others 2.2 % (exact counts by largest remainder, then shuffled) | the paper's trigger table (Fig. 3): % of functions per trigger group |
//! | who is popular | event and queue functions tend to get the high rates: the rate ranks are assigned by a weighted random order (weight = share of invocations / share of functions: event 11.2, queue 2.2, HTTP 0.65, others 0.45, orchestration 0.33, storage 0.25) | the same table's % of invocations (event 24.7 %, queue 33.5 %, HTTP 35.9 %, ...) |
//! | popularity | mean invocation rate of a non-timer function log-normal, `ln(rate per min) ~ N(μ, σ)`, σ = [`Synthetic::popularity_sigma`] (4.08), μ = −σ·Φ⁻¹(0.81) (−3.58); rates are the distribution's quantiles at `(k + ½)/n` (so every trace spans the whole distribution), times [`Synthetic::rate_scale`] | the paper (Fig. 5): 45 % of apps are invoked at most once per hour and 81 % at most once per minute; a log-normal through those two points has σ = 4.08, μ = −3.58, and spans the paper's "8 orders of magnitude" |
//! | timers | periodic, every 1, 5, 15 or 60 min (weights 0.25, 0.35, 0.2, 0.2) at a random phase; no diurnal cycle, no bursts | periodic timers: the paper; the periods and weights: *assumption* |
//! | HTTP, orchestration, storage, others | Poisson process with the diurnal rate | *assumption* (the paper shows their inter-arrival times are mostly not periodic) |
//! | queue, event | bursty: a two-state Markov-modulated Poisson process, 5 % of the time in bursts of mean 10 s at 10× the rate (0.53× between bursts, so the mean rate is kept), times the diurnal rate | bursts: the paper (high inter-arrival-time variability); the numbers: *assumption* |
//! | diurnal cycle | rate × `1 − A·cos(2π t / P)`, A = [`Synthetic::diurnal_amplitude`] (0.5, so peak/trough = 3), P = [`Synthetic::diurnal_period_minutes`] (default: the trace length, i.e. one "day" compressed into the trace; `Some(1440)` for real days); the trace starts at the trough | the diurnal pattern: the paper (Fig. 4); A: *assumption* |
//! | run time | a function's average run time log-normal, `ln(seconds) ~ N(−0.38, 2.36)` (quantiles at `(k + ½)/n`, clamped to 1 ms..=300 s, OpenWhisk's largest time limit); so ~56 % of functions average < 1 s, ~87 % < 10 s | the paper (Fig. 7): ~50 % of functions run < 1 s on average; the log-normal fit μ = −0.38, σ = 2.36 as I recall it from that figure |
//! | run time vs popularity | the 10 % most popular non-timer functions draw their averages from the shorter half, so one busy function cannot hold thousands of containers | *assumption* (the paper reports no correlation) |
//! | run time of one invocation | log-normal around its function's average (σ = 0.5, mean = the average), 1 ms..=300 s | *assumption* |
//! | memory | a Burr XII distribution, c = 11.652, k = 0.221, λ = 107.083 MB (quantiles, shuffled), rounded up to a multiple of 64 MB and clamped to OpenWhisk's 128..=512 MB: ~38 % 128 MB, ~39 % 192 MB, ~12 % 256 MB, ~96 % ≤ 384 MB | the paper (Fig. 9): Burr fit of apps' average allocated memory, as I recall its parameters; ~90 % of apps use ≤ 400 MB |
//! | cold start | a function's container init time log-normal, median 300 ms, σ = 0.5, 50 ms..=5 s | *assumption* (the paper does not measure init times) |
//! | functions ↔ apps | one function per app | simplification (the paper: 54 % of apps have one function) |
//!
//! Names are `f<index>-<trigger>` (`f007-http`, `f012-timer-5m`), valid entity names; kinds
//! are [`DEFAULT_KIND`](super::trace::DEFAULT_KIND).
//!
//! # `Synthetic::default()`
//!
//! 150 functions over 60 minutes, seed 1, `rate_scale` 0.25: about 31 thousand invocations
//! (28-40 thousand over seeds 1..30), dominated as in the real trace by a few popular
//! functions (the busiest makes about two thirds, the top 10 % about 97 %), while about 40 %
//! of the functions are never invoked within the hour and many others only a few times (the
//! cold-start-prone tail); a quick yet realistic simulation. `rate_scale` 1.0 gives the
//! paper's absolute rates (about 4× as many invocations).

use std::f64::consts::PI;

use super::trace::{Function, Invocation, Trace};

/// Parameters of a synthetic trace; [`Synthetic::generate`] builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    /// Number of functions (default 150).
    pub functions: usize,
    /// Length of the trace in minutes (default 60).
    pub minutes: u32,
    /// The seed; the trace is a pure function of all the fields (default 1).
    pub seed: u64,
    /// Multiplies the paper's per-function invocation rates of non-timer functions (default
    /// 0.25; 1.0 is the paper's absolute scale).
    pub rate_scale: f64,
    /// σ of the log-normal per-function rate in natural-log units (default 4.08, fitted to the
    /// paper; smaller values make popularity less skewed).
    pub popularity_sigma: f64,
    /// Relative amplitude of the diurnal rate cycle, 0..=1 (default 0.5: peak/trough = 3).
    pub diurnal_amplitude: f64,
    /// Length of the diurnal cycle in minutes; `None` (default) uses the trace length, so a
    /// trace of any length holds one whole compressed "day".
    pub diurnal_period_minutes: Option<u32>,
}

impl Default for Synthetic {
    fn default() -> Self {
        Self {
            functions: 150,
            minutes: 60,
            seed: 1,
            rate_scale: 0.25,
            popularity_sigma: 4.08,
            diurnal_amplitude: 0.5,
            diurnal_period_minutes: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Http,
    Queue,
    Event,
    Orchestration,
    Timer,
    Storage,
    Others,
}

/// (trigger, % of functions, % of invocations, name): the paper's trigger table.
const TRIGGERS: [(Trigger, f64, f64, &str); 7] = [
    (Trigger::Http, 55.0, 35.9, "http"),
    (Trigger::Queue, 15.2, 33.5, "queue"),
    (Trigger::Event, 2.2, 24.7, "event"),
    (Trigger::Orchestration, 6.9, 2.3, "orchestration"),
    (Trigger::Timer, 15.6, 2.0, "timer"),
    (Trigger::Storage, 2.8, 0.7, "storage"),
    (Trigger::Others, 2.2, 1.0, "others"),
];

/// Timer periods in minutes and their weights (assumption).
const TIMER_PERIODS: [(u64, f64); 4] = [(1, 0.25), (5, 0.35), (15, 0.2), (60, 0.2)];
/// Share of apps invoked at most once a minute (the paper), the anchor of the rate μ.
const RATE_ANCHOR: f64 = 0.81;
/// Log-normal of a function's average run time in seconds (the paper's fit).
const DURATION_MU: f64 = -0.38;
const DURATION_SIGMA: f64 = 2.36;
/// Spread of one invocation's run time around its function's average (assumption).
const INVOCATION_SIGMA: f64 = 0.5;
/// OpenWhisk's largest action time limit.
const MAX_DURATION_MS: f64 = 300_000.0;
/// Share of the most popular non-timer functions given short run times (assumption).
const POPULAR_SHARE: f64 = 0.1;
/// Burr XII fit of apps' average allocated memory in MB (the paper).
const BURR_C: f64 = 11.652;
const BURR_K: f64 = 0.221;
const BURR_LAMBDA: f64 = 107.083;
/// Cold-start init time: median and log-normal σ (assumption).
const INIT_MEDIAN_MS: f64 = 300.0;
const INIT_SIGMA: f64 = 0.5;
/// Bursts of queue/event functions (assumption).
const BURST_SHARE: f64 = 0.05;
const BURST_FACTOR: f64 = 10.0;
const BURST_MEAN_MS: f64 = 10_000.0;

/// What the generator decided for one function.
#[derive(Debug, Clone)]
struct Plan {
    trigger: Trigger,
    /// Timers: period and phase in ms.
    period_ms: u64,
    phase_ms: u64,
    /// Non-timers: mean invocations per minute.
    rate_per_min: f64,
    avg_duration_ms: f64,
    memory_mb: u64,
    init_ms: u64,
}

impl Synthetic {
    /// Generates the trace.
    pub fn generate(&self) -> Trace {
        let plans = self.plan();
        let total_ms = u64::from(self.minutes) * 60_000;
        let period_ms =
            f64::from(self.diurnal_period_minutes.unwrap_or(self.minutes).max(1)) * 60_000.0;
        let amplitude = self.diurnal_amplitude.clamp(0.0, 1.0);
        let mut trace = Trace::default();
        for (idx, p) in plans.iter().enumerate() {
            let label = TRIGGERS.iter().find(|t| t.0 == p.trigger).expect("known").3;
            let name = match p.trigger {
                Trigger::Timer => format!("f{idx:03}-timer-{}m", p.period_ms / 60_000),
                _ => format!("f{idx:03}-{label}"),
            };
            trace.functions.push(Function::new(name, p.memory_mb));
            let mut rng = Rng::derive(self.seed, idx as u64 + 1);
            let median_ms = p.avg_duration_ms * (-INVOCATION_SIGMA * INVOCATION_SIGMA / 2.0).exp();
            let mut arrivals = Vec::new();
            if p.trigger == Trigger::Timer {
                let mut t = p.phase_ms;
                while t < total_ms {
                    arrivals.push(t);
                    t += p.period_ms;
                }
            } else {
                let bursty = matches!(p.trigger, Trigger::Queue | Trigger::Event);
                let (high, low) = if bursty {
                    (
                        BURST_FACTOR,
                        (1.0 - BURST_SHARE * BURST_FACTOR) / (1.0 - BURST_SHARE),
                    )
                } else {
                    (1.0, 1.0)
                };
                let normal_mean_ms = BURST_MEAN_MS * (1.0 - BURST_SHARE) / BURST_SHARE;
                let rate_per_ms = p.rate_per_min / 60_000.0;
                let max_rate = rate_per_ms * (1.0 + amplitude) * high;
                let mut in_burst = false;
                let mut next_switch = if bursty {
                    rng.exp() * normal_mean_ms
                } else {
                    f64::INFINITY
                };
                let mut t = 0.0;
                if max_rate > 0.0 {
                    loop {
                        t += rng.exp() / max_rate;
                        if t >= total_ms as f64 {
                            break;
                        }
                        while t >= next_switch {
                            in_burst = !in_burst;
                            let mean = if in_burst {
                                BURST_MEAN_MS
                            } else {
                                normal_mean_ms
                            };
                            next_switch += rng.exp() * mean;
                        }
                        let rate = rate_per_ms
                            * (1.0 - amplitude * (2.0 * PI * t / period_ms).cos())
                            * if in_burst { high } else { low };
                        if rng.uniform() * max_rate < rate {
                            arrivals.push(t as u64);
                        }
                    }
                }
            }
            for at_ms in arrivals {
                let d = median_ms * (INVOCATION_SIGMA * rng.normal()).exp();
                trace.invocations.push(Invocation {
                    at_ms,
                    function: idx,
                    duration_ms: d.round().clamp(1.0, MAX_DURATION_MS) as u64,
                    init_ms: p.init_ms,
                });
            }
        }
        trace.invocations.sort_by_key(|i| i.at_ms);
        trace
    }

    /// The per-function parameters.
    fn plan(&self) -> Vec<Plan> {
        let n = self.functions;
        let mut rng = Rng::derive(self.seed, 0);

        // Triggers: exact shares by largest remainder, shuffled.
        let total_share: f64 = TRIGGERS.iter().map(|t| t.1).sum();
        let quotas: Vec<f64> = TRIGGERS
            .iter()
            .map(|t| t.1 / total_share * n as f64)
            .collect();
        let mut counts: Vec<usize> = quotas.iter().map(|q| q.floor() as usize).collect();
        let mut by_remainder: Vec<usize> = (0..TRIGGERS.len()).collect();
        by_remainder.sort_by(|&a, &b| {
            let ra = quotas[a] - quotas[a].floor();
            let rb = quotas[b] - quotas[b].floor();
            rb.total_cmp(&ra)
        });
        let missing = n - counts.iter().sum::<usize>();
        for &i in by_remainder.iter().take(missing) {
            counts[i] += 1;
        }
        let mut triggers: Vec<Trigger> = TRIGGERS
            .iter()
            .zip(&counts)
            .flat_map(|(t, &c)| std::iter::repeat_n(t.0, c))
            .collect();
        rng.shuffle(&mut triggers);

        let mut plans: Vec<Plan> = triggers
            .iter()
            .map(|&trigger| Plan {
                trigger,
                period_ms: 0,
                phase_ms: 0,
                rate_per_min: 0.0,
                avg_duration_ms: 0.0,
                memory_mb: 0,
                init_ms: 0,
            })
            .collect();

        // Timers: period and phase.
        for p in plans.iter_mut().filter(|p| p.trigger == Trigger::Timer) {
            let mut u = rng.uniform();
            let mut period_min = TIMER_PERIODS[TIMER_PERIODS.len() - 1].0;
            for (m, w) in TIMER_PERIODS {
                if u < w {
                    period_min = m;
                    break;
                }
                u -= w;
            }
            p.period_ms = period_min * 60_000;
            p.phase_ms = rng.below(p.period_ms);
        }

        // Rates of the others: log-normal quantiles, highest first, to a weighted random order
        // that favours the triggers with many invocations per function.
        let sigma = self.popularity_sigma.max(0.0);
        let mu = -sigma * inverse_normal_cdf(RATE_ANCHOR);
        let mut ranked: Vec<(f64, usize)> = plans
            .iter()
            .enumerate()
            .filter(|(_, p)| p.trigger != Trigger::Timer)
            .map(|(i, p)| {
                let t = TRIGGERS.iter().find(|t| t.0 == p.trigger).expect("known");
                (rng.open01().ln() / (t.2 / t.1), i)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let nt = ranked.len();
        for (k, &(_, i)) in ranked.iter().enumerate() {
            let z = inverse_normal_cdf(1.0 - (k as f64 + 0.5) / nt as f64);
            plans[i].rate_per_min = (mu + sigma * z).exp() * self.rate_scale.max(0.0);
        }

        // Average run times: quantiles; the popular functions take theirs from the short half.
        let mut durations: Vec<f64> = (0..n)
            .map(|k| {
                let z = inverse_normal_cdf((k as f64 + 0.5) / n as f64);
                ((DURATION_MU + DURATION_SIGMA * z).exp() * 1000.0).clamp(1.0, MAX_DURATION_MS)
            })
            .collect();
        let mut long = durations.split_off(n / 2);
        let mut short = durations;
        rng.shuffle(&mut short);
        let popular = ((nt as f64 * POPULAR_SHARE).ceil() as usize).min(short.len());
        for &(_, i) in ranked.iter().take(popular) {
            plans[i].avg_duration_ms = short.pop().expect("counted");
        }
        long.append(&mut short);
        rng.shuffle(&mut long);
        for p in plans.iter_mut().filter(|p| p.avg_duration_ms == 0.0) {
            p.avg_duration_ms = long.pop().expect("one per function");
        }

        // Memory: Burr quantiles, shuffled.
        let mut memory: Vec<u64> = (0..n)
            .map(|k| {
                let u = (k as f64 + 0.5) / n as f64;
                let mb = BURR_LAMBDA * ((1.0 - u).powf(-1.0 / BURR_K) - 1.0).powf(1.0 / BURR_C);
                (((mb / 64.0).ceil() * 64.0) as u64).clamp(128, 512)
            })
            .collect();
        rng.shuffle(&mut memory);
        for (p, m) in plans.iter_mut().zip(memory) {
            p.memory_mb = m;
        }

        // Cold-start init times.
        for p in &mut plans {
            let ms = INIT_MEDIAN_MS * (INIT_SIGMA * rng.normal()).exp();
            p.init_ms = ms.round().clamp(50.0, 5000.0) as u64;
        }
        plans
    }
}

/// The inverse of the standard normal CDF for `p` in (0, 1), by Acklam's rational
/// approximation (relative error below 1.2e-9).
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let p = p.clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON / 2.0);
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// A small seedable PRNG (SplitMix64) for the simulator's traces: fast, good enough for
/// simulation, and stable forever (unlike a library generator whose stream may change between
/// versions), so a seed names the same trace in every build.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `stream` of `seed`: different streams give unrelated sequences.
    pub(crate) fn derive(seed: u64, stream: u64) -> Self {
        let mut mixer = Rng(stream ^ 0x6a09_e667_f3bc_c908);
        let mut rng = Rng(seed ^ mixer.next_u64());
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in (0, 1).
    pub(crate) fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (0 when n is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Standard normal.
    pub(crate) fn normal(&mut self) -> f64 {
        inverse_normal_cdf(self.open01())
    }

    /// Exponential with mean 1.
    pub(crate) fn exp(&mut self) -> f64 {
        -self.open01().ln()
    }

    /// Fisher-Yates.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::EntityName;

    fn percentile(sorted: &[u64], p: f64) -> u64 {
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }

    fn counts(t: &Trace) -> Vec<usize> {
        let mut c = vec![0; t.functions.len()];
        for i in &t.invocations {
            c[i.function] += 1;
        }
        c
    }

    #[test]
    fn inverse_normal_cdf_is_accurate() {
        for (p, z) in [
            (0.5, 0.0),
            (0.81, 0.877_896),
            (0.975, 1.959_964),
            (0.01, -2.326_348),
            (0.999_9, 3.719_016),
        ] {
            assert!((inverse_normal_cdf(p) - z).abs() < 1e-5, "{p}");
        }
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut r = Rng::derive(3, 4);
        let n = 100_000;
        let mean = (0..n).map(|_| r.uniform()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let below: Vec<u64> = (0..1000).map(|_| r.below(10)).collect();
        assert!(below.iter().all(|&b| b < 10));
        assert!((0..10).all(|d| below.contains(&d)));
        let normals: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let m = normals.iter().sum::<f64>() / n as f64;
        let var = normals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.02 && (var - 1.0).abs() < 0.03, "{m} {var}");
        assert_ne!(Rng::derive(3, 4).next_u64(), Rng::derive(3, 5).next_u64());
        assert_ne!(Rng::derive(3, 4).next_u64(), Rng::derive(4, 4).next_u64());
    }

    #[test]
    fn deterministic_per_seed_and_different_across_seeds() {
        let a = Synthetic::default().generate();
        assert_eq!(a, Synthetic::default().generate());
        let b = Synthetic {
            seed: 2,
            ..Synthetic::default()
        }
        .generate();
        assert_ne!(a.invocations, b.invocations);
        assert!(a.invocations.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert!(a.invocations.iter().all(|i| i.at_ms < 60 * 60_000));
        assert!(a
            .functions
            .iter()
            .all(|f| EntityName::new(&f.name).is_ok() && f.kind == "nodejs:20"));
        // It survives the CSV format.
        let mut csv = Vec::new();
        a.write_csv(&mut csv).unwrap();
        let back = Trace::parse_csv(&csv[..]).unwrap();
        let key = |t: &Trace| -> Vec<(u64, String, u64, u64, u64)> {
            t.invocations
                .iter()
                .map(|i| {
                    let f = &t.functions[i.function];
                    (
                        i.at_ms,
                        f.name.clone(),
                        i.duration_ms,
                        f.memory_mb,
                        i.init_ms,
                    )
                })
                .collect()
        };
        assert_eq!(key(&a), key(&back));
    }

    #[test]
    fn edge_sizes() {
        let empty = Synthetic {
            functions: 0,
            ..Synthetic::default()
        }
        .generate();
        assert_eq!(empty, Trace::default());
        let no_time = Synthetic {
            minutes: 0,
            ..Synthetic::default()
        }
        .generate();
        assert_eq!(no_time.functions.len(), 150);
        assert!(no_time.invocations.is_empty());
        for n in 1..12 {
            let t = Synthetic {
                functions: n,
                ..Synthetic::default()
            }
            .generate();
            assert_eq!(t.functions.len(), n);
        }
    }

    #[test]
    fn trigger_mix_matches_the_paper() {
        let plans = Synthetic {
            functions: 1000,
            ..Synthetic::default()
        }
        .plan();
        let share = |t: Trigger| plans.iter().filter(|p| p.trigger == t).count();
        assert_eq!(share(Trigger::Http), 551);
        assert_eq!(share(Trigger::Timer), 156);
        assert_eq!(share(Trigger::Queue), 152);
        assert_eq!(plans.len(), 1000);
    }

    #[test]
    fn default_statistics_match_the_claims() {
        let s = Synthetic::default();
        let t = s.generate();
        let plans = s.plan();
        let n = t.functions.len();
        assert_eq!(n, 150);

        // Size: a few tens of thousands of invocations.
        let total = t.invocations.len();
        assert!((10_000..80_000).contains(&total), "{total}");

        // Popularity: the top 10 % of functions make most invocations; rates span > 7
        // orders of magnitude.
        let mut c = counts(&t);
        c.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = c.iter().take(n / 10).sum();
        let top_share = top as f64 / total as f64;
        assert!(top_share > 0.9, "{top_share}");
        let rates: Vec<f64> = plans
            .iter()
            .filter(|p| p.trigger != Trigger::Timer)
            .map(|p| p.rate_per_min)
            .collect();
        let max = rates.iter().cloned().fold(0.0, f64::max);
        let min = rates.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(max / min > 1e7, "{max} / {min}");
        // ~45 % of apps invoked at most once an hour at the paper's scale (rate_scale 1).
        let hourly = rates
            .iter()
            .filter(|r| **r / s.rate_scale <= 1.0 / 60.0)
            .count();
        let hourly = hourly as f64 / rates.len() as f64;
        assert!((0.4..0.5).contains(&hourly), "{hourly}");

        // Run times: median function average < 1 s, ~90 % < 10 s; invocations median < 1 s.
        let mut avg: Vec<u64> = plans.iter().map(|p| p.avg_duration_ms as u64).collect();
        avg.sort_unstable();
        assert!(percentile(&avg, 0.5) < 1000, "{avg:?}");
        let under_10s = avg.iter().filter(|d| **d < 10_000).count() as f64 / n as f64;
        assert!((0.8..0.95).contains(&under_10s), "{under_10s}");
        let mut d: Vec<u64> = t.invocations.iter().map(|i| i.duration_ms).collect();
        d.sort_unstable();
        assert!(percentile(&d, 0.5) < 1000);
        assert!(d.iter().all(|d| (1..=300_000).contains(d)));

        // Memory: 128..=512 in 64 MB steps, skewed low.
        assert!(t
            .functions
            .iter()
            .all(|f| (128..=512).contains(&f.memory_mb) && f.memory_mb % 64 == 0));
        let low = t.functions.iter().filter(|f| f.memory_mb <= 384).count() as f64 / n as f64;
        assert!(low >= 0.9, "{low}");
        let smallest = t.functions.iter().filter(|f| f.memory_mb == 128).count() as f64;
        assert!(smallest / n as f64 > 0.3);

        // Cold starts: a few hundred ms.
        let mut init: Vec<u64> = plans.iter().map(|p| p.init_ms).collect();
        init.sort_unstable();
        let median_init = percentile(&init, 0.5);
        assert!((200..450).contains(&median_init), "{median_init}");

        // Print the statistics (cargo test -- --nocapture).
        let invoked = c.iter().filter(|c| **c > 0).count();
        let mem = |m: u64| t.functions.iter().filter(|f| f.memory_mb == m).count();
        println!(
            "functions {n} (invoked {invoked}), invocations {total}, top-10% share {top_share:.3}, \
             top-1 {}, duration p50 {} p90 {} p99 {} max {} ms, memory 128:{} 192:{} 256:{} \
             320:{} 384:{} 448:{} 512:{}, init p50 {median_init} ms, trace {} ms",
            c[0],
            percentile(&d, 0.5),
            percentile(&d, 0.9),
            percentile(&d, 0.99),
            d[d.len() - 1],
            mem(128),
            mem(192),
            mem(256),
            mem(320),
            mem(384),
            mem(448),
            mem(512),
            t.duration_ms(),
        );
    }

    #[test]
    fn timers_are_periodic() {
        let t = Synthetic::default().generate();
        let mut timers = 0;
        for (idx, f) in t.functions.iter().enumerate() {
            let Some(period) = f.name.split("-timer-").nth(1) else {
                continue;
            };
            timers += 1;
            let period_ms: u64 = period.trim_end_matches('m').parse::<u64>().unwrap() * 60_000;
            assert!([60_000, 300_000, 900_000, 3_600_000].contains(&period_ms));
            let at: Vec<u64> = t
                .invocations
                .iter()
                .filter(|i| i.function == idx)
                .map(|i| i.at_ms)
                .collect();
            assert_eq!(at.len() as u64, 3_600_000 / period_ms, "{}", f.name);
            assert!(at[0] < period_ms);
            assert!(
                at.windows(2).all(|w| w[1] - w[0] == period_ms),
                "{}",
                f.name
            );
        }
        assert_eq!(timers, 24);
    }

    #[test]
    fn diurnal_cycle_over_a_day() {
        let t = Synthetic {
            functions: 60,
            minutes: 24 * 60,
            diurnal_period_minutes: Some(24 * 60),
            seed: 9,
            ..Synthetic::default()
        }
        .generate();
        let mut hours = [0usize; 24];
        for i in &t.invocations {
            hours[(i.at_ms / 3_600_000) as usize] += 1;
        }
        let max = *hours.iter().max().unwrap() as f64;
        let min = *hours.iter().min().unwrap() as f64;
        assert!(max / min > 2.0, "{hours:?}");
        // The trough is at the start, the peak in the middle.
        let peak = hours.iter().position(|h| *h as f64 == max).unwrap();
        assert!((8..16).contains(&peak), "{hours:?}");
        // Middle of the day vs its edges: ~(1 + A) / (1 - A) = 3 with the cycle, ~1 without.
        let middle_to_edges = |hours: &[usize; 24]| {
            (hours[10..14].iter().sum::<usize>() as f64)
                / ((hours[0] + hours[1] + hours[22] + hours[23]) as f64)
        };
        let with_cycle = middle_to_edges(&hours);
        assert!(with_cycle > 2.0, "{hours:?}");
        let flat = Synthetic {
            diurnal_amplitude: 0.0,
            functions: 60,
            minutes: 24 * 60,
            seed: 9,
            ..Synthetic::default()
        }
        .generate();
        let mut hours = [0usize; 24];
        for i in &flat.invocations {
            hours[(i.at_ms / 3_600_000) as usize] += 1;
        }
        let without = middle_to_edges(&hours);
        assert!((0.7..1.4).contains(&without), "{hours:?}");
    }

    #[test]
    fn bursty_triggers_are_burstier_than_poisson() {
        // Same mean rate; queue/event functions have a larger variance of per-minute counts.
        let t = Synthetic {
            functions: 400,
            minutes: 120,
            diurnal_amplitude: 0.0,
            ..Synthetic::default()
        }
        .generate();
        let plans = Synthetic {
            functions: 400,
            minutes: 120,
            diurnal_amplitude: 0.0,
            ..Synthetic::default()
        }
        .plan();
        // Index of dispersion (variance / mean of per-minute counts) of busy functions.
        let dispersion = |idx: usize| {
            let mut per_min = vec![0f64; 120];
            for i in t.invocations.iter().filter(|i| i.function == idx) {
                per_min[(i.at_ms / 60_000) as usize] += 1.0;
            }
            let m = per_min.iter().sum::<f64>() / 120.0;
            per_min.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 120.0 / m
        };
        let busy = |bursty: bool| -> Vec<f64> {
            plans
                .iter()
                .enumerate()
                .filter(|(_, p)| p.rate_per_min > 5.0)
                .filter(|(_, p)| {
                    bursty == matches!(p.trigger, Trigger::Queue | Trigger::Event)
                        && p.trigger != Trigger::Timer
                })
                .map(|(i, _)| dispersion(i))
                .collect()
        };
        let (b, p) = (busy(true), busy(false));
        assert!(!b.is_empty() && !p.is_empty(), "{b:?} {p:?}");
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (mb, mp) = (median(b), median(p));
        assert!(mp < 2.0 && mb > 3.0, "poisson {mp}, bursty {mb}");
    }
}
