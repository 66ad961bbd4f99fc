//! OpenWhisk's hash-and-step placement (`ShardingContainerPoolBalancer`).
//!
//! [`ShardingBalancer`] reproduces the placement of OpenWhisk's legacy default load balancer,
//! `core/controller/src/main/scala/org/apache/openwhisk/core/loadBalancer/ShardingContainerPoolBalancer.scala`
//! (with the invoker-slot semaphores of `common/.../common/ForcibleSemaphore.scala` and the
//! invoker list of `core/controller/.../loadBalancer/InvokerSupervision.scala`). The
//! algorithm:
//!
//! 1. **Invoker list.** OpenWhisk keeps its invokers in a list indexed by instance id
//!    (`0..n`); when invoker `k` registers, the list is padded up to `k` with `Offline`
//!    placeholders. Here the invokers handed to [`Scheduler::schedule`] may come in any order,
//!    so they are indexed by [`InvokerView::id`] and `n = highest id + 1`; a missing id (a gap)
//!    is an unusable invoker, exactly like OpenWhisk's padding. (Memory and time are
//!    proportional to the highest id, so ids should be small and dense, as in OpenWhisk.) If an
//!    id appears twice, its first entry counts.
//! 2. **Pools.** `managed = max(1, ceil(n × managedFraction))` first invokers and
//!    `blackbox = max(1, floor(n × blackboxFraction))` last invokers; the two may overlap.
//!    The fractions are clamped like OpenWhisk: `managedFraction ∈ [0, 1]`,
//!    `blackboxFraction = max(1 − managedFraction, min(1, blackboxFraction))`; defaults `0.9`
//!    and `0.1`. A placement of kind `blackbox` uses the blackbox pool, any other kind the
//!    managed pool. (OpenWhisk routes on `exec.pull`, which is false for a blackbox action whose
//!    image the runtime manifest marks as skip-pull, e.g. its own docker skeleton; whisk's
//!    [`Placement`] carries only the kind, so every blackbox goes to the blackbox pool.)
//! 3. **Hash.** `hash = abs(namespace.hashCode ^ action.hashCode)` with Java's
//!    `String.hashCode` (UTF-16 code units, wrapping `i32`), where `namespace` is the
//!    *invoking* namespace (`msg.user.namespace.name`) and `action` the fully qualified name
//!    *without* version, `ns/[pkg/]name` (`action.fullyQualifiedName(false)`). Java's
//!    `Math.abs(Integer.MIN_VALUE)` stays `Integer.MIN_VALUE`.
//! 4. **Home and step.** `home = hash % poolSize` and `step = stepSizes(hash % stepSizes.size)`
//!    with Java's truncating `%`, where `stepSizes = pairwiseCoprimeNumbersUntil(poolSize)`: the
//!    numbers `1..=poolSize` coprime to `poolSize`, kept greedily in increasing order when
//!    coprime to every number already kept (see [`pairwise_coprime_numbers_until`]). When the
//!    hash is `Integer.MIN_VALUE` and a size does not divide 2³¹, an index comes out negative
//!    and OpenWhisk's `IndexedSeq` lookup throws, failing the activation; whisk returns no
//!    invoker (`None`) instead.
//! 5. **Probing.** OpenWhisk visits `home, home + step, home + 2·step, …` (mod `poolSize`) and
//!    gives up after `poolSize + 1` steps, i.e. `poolSize + 2` probes; as `step` is coprime to
//!    `poolSize` this covers every invoker of the pool. The first probed invoker that is usable
//!    and whose memory semaphore grants the action's memory wins.
//! 6. **Memory semaphore.** Each controller owns a share of every invoker:
//!    `userMemory / controllerClusterSize` MB (integer division; at least the minimal action
//!    memory, 128 MB by default, as OpenWhisk's `getInvokerSlot`). The semaphore grants `m` MB
//!    when `permits − m ≥ 0`. Whisk's load balancer books this controller's activations on the
//!    invoker view, so the permits are `share − (userMemory − freeMemory)`. (OpenWhisk's
//!    permits go negative under overload while whisk's free memory saturates at zero, so an
//!    overloaded invoker looks exactly full here; either way it grants nothing. With
//!    `concurrency > 1` OpenWhisk books memory per container, not per activation: whisk's
//!    placements carry no concurrency, so every activation books its memory.)
//! 7. **Overload.** When no probe succeeds, a uniformly random usable invoker *of the pool* is
//!    chosen and the memory is booked anyway (forced); none usable → `None`. Whisk's load
//!    balancer books the memory after [`Scheduler::schedule`] returns, including this forced
//!    case. The randomness comes from a small seedable generator (SplitMix64) so that tests are
//!    deterministic ([`ShardingBalancer::with_seed`]).
//!
//! Because the hash only depends on the namespace and action, every controller sends an
//! action to the same home invoker as long as it has room, which keeps its containers warm.

use std::hash::BuildHasher;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{InvokerView, Placement, Scheduler};

/// OpenWhisk's default `whisk.loadbalancer.managed-fraction`.
const DEFAULT_MANAGED_FRACTION: f64 = 0.9;
/// OpenWhisk's default `whisk.loadbalancer.blackbox-fraction`.
const DEFAULT_BLACKBOX_FRACTION: f64 = 0.1;
/// OpenWhisk's default minimal action memory (`whisk.memory.min`), in MB.
const DEFAULT_MIN_ACTION_MEMORY_MB: u64 = 128;

/// Java's `String.hashCode`: `s[0]·31^(n−1) + … + s[n−1]` over UTF-16 code units, in
/// wrapping 32-bit arithmetic.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// OpenWhisk's `generateHash`: `(namespace.hashCode ^ action.hashCode).abs`, with Java's
/// `Math.abs` (`Integer.MIN_VALUE` stays negative).
fn generate_hash(namespace: &str, action: &str) -> i32 {
    (java_string_hash(namespace) ^ java_string_hash(action)).wrapping_abs()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// OpenWhisk's `pairwiseCoprimeNumbersUntil(x)`: going through `1..=x` in order, keeps each
/// number coprime to `x` and to every number kept so far.
fn pairwise_coprime_numbers_until(x: usize) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    for cur in 1..=x {
        if gcd(cur, x) == 1 && kept.iter().all(|&k| gcd(k, cur) == 1) {
            kept.push(cur);
        }
    }
    kept
}

/// Java's `Math.max` on doubles (NaN wins).
fn java_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Java's `Math.min` on doubles (NaN wins).
fn java_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// SplitMix64 step.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// OpenWhisk's `ShardingContainerPoolBalancer` placement as a [`Scheduler`]: each action has a
/// home invoker derived from a hash of namespace and action; when the home is full or unusable
/// the pool is probed with an action-specific co-prime step, and when every invoker is full a
/// random usable one is overloaded. See the [module documentation](self) for the details.
///
/// ```
/// use whisk_core::scheduler::{InvokerView, Placement, ShardingBalancer};
///
/// let balancer = ShardingBalancer::new().with_controller_cluster_size(2);
/// let invokers: Vec<InvokerView> = (0..5)
///     .map(|id| InvokerView::new(id, 2048, 0))
///     .collect();
/// let placement = Placement {
///     namespace: "guest",
///     action: "guest/hello",
///     memory_mb: 256,
///     kind: "nodejs:20",
/// };
/// // guest/hello's home among five invokers, not forced.
/// assert_eq!(balancer.place(&placement, &invokers), Some((4, false)));
/// ```
#[derive(Debug)]
pub struct ShardingBalancer {
    managed_fraction: f64,
    blackbox_fraction: f64,
    controller_cluster_size: u32,
    min_action_memory_mb: u64,
    rng: Mutex<u64>,
}

impl Default for ShardingBalancer {
    fn default() -> Self {
        Self::new()
    }
}

impl ShardingBalancer {
    /// A balancer with OpenWhisk's defaults (managed fraction 0.9, blackbox fraction 0.1, one
    /// controller, 128 MB minimal action memory) and a randomly seeded overload generator.
    pub fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64);
        Self {
            managed_fraction: DEFAULT_MANAGED_FRACTION,
            blackbox_fraction: DEFAULT_BLACKBOX_FRACTION,
            controller_cluster_size: 1,
            min_action_memory_mb: DEFAULT_MIN_ACTION_MEMORY_MB,
            rng: Mutex::new(seed),
        }
    }

    /// Sets `whisk.loadbalancer.managed-fraction` and `blackbox-fraction` (defaults 0.9 and
    /// 0.1), normalised like OpenWhisk: the managed fraction is clamped to `[0, 1]` and the
    /// blackbox fraction to `[1 − managed, 1]`, so the pools always cover every invoker.
    pub fn with_fractions(mut self, managed_fraction: f64, blackbox_fraction: f64) -> Self {
        let managed = java_max(0.0, java_min(1.0, managed_fraction));
        self.blackbox_fraction = java_max(1.0 - managed, java_min(1.0, blackbox_fraction));
        self.managed_fraction = managed;
        self
    }

    /// Sets the number of controllers sharing the invokers (default 1, `0` counts as 1): each
    /// controller may book `userMemory / controller_cluster_size` MB of every invoker.
    pub fn with_controller_cluster_size(mut self, controller_cluster_size: u32) -> Self {
        self.controller_cluster_size = controller_cluster_size.max(1);
        self
    }

    /// Sets the minimal action memory in MB (`whisk.memory.min`, default 128): a controller's
    /// share of an invoker is never smaller.
    pub fn with_min_action_memory_mb(mut self, min_action_memory_mb: u64) -> Self {
        self.min_action_memory_mb = min_action_memory_mb;
        self
    }

    /// Seeds the generator that picks the invoker to overload, for reproducible placements.
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            rng: Mutex::new(seed),
            ..self
        }
    }

    /// The managed fraction in effect (after normalisation).
    pub fn managed_fraction(&self) -> f64 {
        self.managed_fraction
    }

    /// The blackbox fraction in effect (after normalisation).
    pub fn blackbox_fraction(&self) -> f64 {
        self.blackbox_fraction
    }

    /// The number of controllers sharing the invokers.
    pub fn controller_cluster_size(&self) -> u32 {
        self.controller_cluster_size
    }

    /// Sizes of the managed and blackbox pools for `n` invokers (ids `0..n`): the managed pool is
    /// the first, the blackbox pool the last invokers; both hold at least one.
    pub fn pool_sizes(&self, n: usize) -> (usize, usize) {
        // `as` saturates and maps NaN to 0, like Scala's `Double.toInt`.
        let managed = ((n as f64 * self.managed_fraction).ceil() as usize).clamp(1, n.max(1));
        let blackbox = ((n as f64 * self.blackbox_fraction).floor() as usize).clamp(1, n.max(1));
        (managed, blackbox)
    }

    /// Places `placement` and says whether the placement is forced (overload: no invoker of the
    /// pool had room, so a random usable one was chosen). `None` when no invoker of the pool is
    /// usable, or when OpenWhisk would fail on a negative index (see the module docs).
    pub fn place(
        &self,
        placement: &Placement<'_>,
        invokers: &[InvokerView],
    ) -> Option<(u32, bool)> {
        let n = invokers.iter().map(|i| i.id as usize + 1).max()?;
        let mut table: Vec<Option<&InvokerView>> = vec![None; n];
        for invoker in invokers {
            let slot = &mut table[invoker.id as usize];
            if slot.is_none() {
                *slot = Some(invoker);
            }
        }
        let (managed, blackbox) = self.pool_sizes(n);
        let pool = if placement.kind == "blackbox" {
            &table[n - blackbox..]
        } else {
            &table[..managed]
        };
        let step_sizes = pairwise_coprime_numbers_until(pool.len());
        let hash = generate_hash(placement.namespace, placement.action);
        // Pool sizes fit in i32 in any real deployment; beyond, Java's Int could not index them.
        let size = i32::try_from(pool.len()).ok()?;
        let steps = i32::try_from(step_sizes.len()).ok()?;
        let home = usize::try_from(hash.wrapping_rem(size)).ok()?;
        let step = step_sizes[usize::try_from(hash.wrapping_rem(steps)).ok()?];

        let mut index = home;
        for _ in 0..pool.len() + 2 {
            if let Some(invoker) = pool[index] {
                if invoker.usable && self.has_room(invoker, placement.memory_mb) {
                    return Some((invoker.id, false));
                }
            }
            index = (index + step) % pool.len();
        }

        let usable: Vec<u32> = pool
            .iter()
            .flatten()
            .filter(|i| i.usable)
            .map(|i| i.id)
            .collect();
        if usable.is_empty() {
            return None;
        }
        let chosen = usable[self.random_below(usable.len())];
        tracing::warn!(
            invoker = chosen,
            action = placement.action,
            "system is overloaded, chose invoker{chosen} by random assignment"
        );
        Some((chosen, true))
    }

    /// This controller's share of `invoker`'s memory, in MB (OpenWhisk's `getInvokerSlot`).
    fn share_mb(&self, invoker: &InvokerView) -> u64 {
        let share = invoker.user_memory_mb / u64::from(self.controller_cluster_size);
        if share < self.min_action_memory_mb {
            self.min_action_memory_mb
        } else {
            share
        }
    }

    /// Whether the memory semaphore of `invoker` grants `memory_mb` permits.
    fn has_room(&self, invoker: &InvokerView, memory_mb: u64) -> bool {
        let booked = invoker
            .user_memory_mb
            .saturating_sub(invoker.free_memory_mb);
        let permits = i128::from(self.share_mb(invoker)) - i128::from(booked);
        permits - i128::from(memory_mb) >= 0
    }

    /// A uniform number in `0..bound` (`bound > 0`).
    fn random_below(&self, bound: usize) -> usize {
        let mut state = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        ((u128::from(splitmix64(&mut state)) * bound as u128) >> 64) as usize
    }
}

#[async_trait]
impl Scheduler for ShardingBalancer {
    async fn schedule(&self, placement: &Placement<'_>, invokers: &[InvokerView]) -> Option<u32> {
        self.place(placement, invokers).map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024;

    fn inv(id: u32, usable: bool, free: u64) -> InvokerView {
        InvokerView {
            usable,
            ..InvokerView::new(id, MB, MB - free)
        }
    }

    fn free_invokers(n: u32) -> Vec<InvokerView> {
        (0..n).map(|id| inv(id, true, MB)).collect()
    }

    fn placement<'a>(namespace: &'a str, action: &'a str, kind: &'a str) -> Placement<'a> {
        Placement {
            namespace,
            action,
            memory_mb: 256,
            kind,
        }
    }

    fn hello() -> Placement<'static> {
        placement("guest", "guest/hello", "nodejs:20")
    }

    /// Expected values computed independently with Java's definition
    /// (`h = 31*h + codeUnit` over UTF-16 code units, wrapped to i32), once in Python
    /// (`s.encode('utf-16-le')`, `& 0xffffffff`) and once in Node
    /// (`Math.imul(h, 31) + s.charCodeAt(i) | 0`); both agreed.
    #[test]
    fn java_string_hash_matches_java() {
        let cases: &[(&str, i32)] = &[
            ("", 0),
            ("a", 97),
            ("Aa", 2112),
            ("BB", 2112),
            ("guest", 98_708_952),
            ("guest/hello", 86_723_035),
            ("whisk.system", -1_796_040_243),
            ("whisk.system/utils/echo", 1_928_623_685),
            ("polygenelubricants", i32::MIN),
            ("héllo", 103_094_734),
            ("😀", 1_772_899), // a surrogate pair: two code units
            ("namespace/pkg/äction", -1_260_630_422),
        ];
        for &(s, expected) in cases {
            assert_eq!(java_string_hash(s), expected, "hashCode of {s:?}");
        }
    }

    #[test]
    fn generate_hash_is_abs_of_xor_and_keeps_min_value() {
        // 98708952 ^ 86723035 = 13198339 (Python).
        assert_eq!(generate_hash("guest", "guest/hello"), 13_198_339);
        // 0 ^ hashCode("whisk.system") is negative: abs.
        assert_eq!(generate_hash("", "whisk.system"), 1_796_040_243);
        // Math.abs(Integer.MIN_VALUE) == Integer.MIN_VALUE.
        assert_eq!(generate_hash("", "polygenelubricants"), i32::MIN);
    }

    #[test]
    fn pairwise_coprime_step_sizes() {
        for x in 1..=12usize {
            let got = pairwise_coprime_numbers_until(x);
            // Against the definition, by brute force.
            let mut expected = Vec::new();
            for c in 1..=x {
                let coprime = |a: usize, b: usize| {
                    (2..=a.min(b)).all(|d| !a.is_multiple_of(d) || !b.is_multiple_of(d))
                };
                if coprime(c, x) && expected.iter().all(|&k| coprime(k, c)) {
                    expected.push(c);
                }
            }
            assert_eq!(got, expected, "x = {x}");
            assert_eq!(got.first(), Some(&1), "x = {x}");
            for (i, &a) in got.iter().enumerate() {
                assert_eq!(gcd(a, x), 1, "{a} not coprime to {x}");
                for &b in &got[i + 1..] {
                    assert_eq!(gcd(a, b), 1, "{a} and {b} not coprime");
                }
            }
        }
        assert_eq!(pairwise_coprime_numbers_until(0), Vec::<usize>::new());
        assert_eq!(pairwise_coprime_numbers_until(1), vec![1]);
        assert_eq!(pairwise_coprime_numbers_until(5), vec![1, 2, 3]);
        // The example of the Scala doc comment: 2 and 5 are not coprime to 10.
        assert_eq!(pairwise_coprime_numbers_until(10), vec![1, 3, 7]);
        assert_eq!(pairwise_coprime_numbers_until(11), vec![1, 2, 3, 5, 7]);
        assert_eq!(pairwise_coprime_numbers_until(12), vec![1, 5, 7, 11]);
    }

    #[test]
    fn pool_sizes_follow_openwhisk() {
        let s = ShardingBalancer::new();
        assert_eq!(s.pool_sizes(1), (1, 1));
        assert_eq!(s.pool_sizes(5), (5, 1));
        assert_eq!(s.pool_sizes(10), (9, 1));
        assert_eq!(s.pool_sizes(20), (18, 2));
        assert_eq!(s.pool_sizes(30), (27, 3));
        // blackbox fraction raised to 1 - managed fraction.
        let s = ShardingBalancer::new().with_fractions(0.5, 0.2);
        assert_eq!(s.blackbox_fraction(), 0.5);
        assert_eq!(s.pool_sizes(10), (5, 5));
        // Clamped.
        let s = ShardingBalancer::new().with_fractions(1.5, 2.0);
        assert_eq!((s.managed_fraction(), s.blackbox_fraction()), (1.0, 1.0));
        assert_eq!(s.pool_sizes(4), (4, 4));
        let s = ShardingBalancer::new().with_fractions(0.0, 0.0);
        assert_eq!(s.pool_sizes(4), (1, 4));
    }

    /// guest/hello on 5 invokers: hash 13198339, home 13198339 % 5 = 4, step sizes [1, 2, 3],
    /// step = [1, 2, 3][13198339 % 3 = 1] = 2, probes 4, 1, 3, 0, 2 (computed in Python).
    #[test]
    fn home_invoker_and_probe_sequence_on_five_invokers() {
        let s = ShardingBalancer::new().with_seed(1);
        let p = hello();
        let mut invokers = free_invokers(5);
        assert_eq!(s.place(&p, &invokers), Some((4, false)));
        // Fill the probes one after the other: the next one in the sequence wins.
        for (filled, next) in [(4, 1), (1, 3), (3, 0), (0, 2)] {
            invokers[filled].free_memory_mb = 100;
            assert_eq!(
                s.place(&p, &invokers),
                Some((next, false)),
                "after filling {filled}"
            );
        }
        // Another action, another sequence: guest/world has hash 65102147, home 2, step 3.
        let world = placement("guest", "guest/world", "nodejs:20");
        let mut invokers = free_invokers(5);
        assert_eq!(s.place(&world, &invokers), Some((2, false)));
        invokers[2].free_memory_mb = 0;
        assert_eq!(s.place(&world, &invokers), Some((0, false)));
    }

    #[test]
    fn skips_unusable_and_full_invokers_in_probe_order() {
        let s = ShardingBalancer::new().with_seed(1);
        let p = hello();
        // Probe order 4, 1, 3, 0, 2: 4 unusable (but free), 1 full, 3 has room.
        let invokers = vec![
            inv(0, true, MB),
            inv(1, true, 255),
            inv(2, true, MB),
            inv(3, true, 256),
            inv(4, false, MB),
        ];
        assert_eq!(s.place(&p, &invokers), Some((3, false)));
    }

    #[test]
    fn order_of_the_slice_does_not_matter_and_gaps_are_unusable() {
        let s = ShardingBalancer::new().with_seed(1);
        let p = hello();
        let mut invokers = free_invokers(5);
        invokers.reverse();
        assert_eq!(s.place(&p, &invokers), Some((4, false)));
        // Invoker 1 missing: n is still 5 (highest id 4), 1 counts as offline.
        let mut invokers = vec![inv(4, true, 0), inv(3, true, MB), inv(0, true, MB)];
        assert_eq!(s.place(&p, &invokers), Some((3, false)));
        // Invoker 4 missing: n is 4, a different home (13198339 % 4 = 3).
        invokers.remove(0);
        invokers.push(inv(1, true, MB));
        invokers.push(inv(2, true, MB));
        assert_eq!(s.place(&p, &invokers), Some((3, false)));
    }

    #[test]
    fn controller_cluster_size_shares_invoker_memory() {
        let p = hello();
        // 424 MB booked of 1024: 600 free for one controller, 512 - 424 = 88 for two.
        let mut invokers = free_invokers(5);
        invokers[4].free_memory_mb = 600;
        let one = ShardingBalancer::new().with_seed(1);
        assert_eq!(one.controller_cluster_size(), 1);
        assert_eq!(one.place(&p, &invokers), Some((4, false)));
        let two = ShardingBalancer::new()
            .with_seed(1)
            .with_controller_cluster_size(2);
        assert_eq!(two.place(&p, &invokers), Some((1, false)));
        // The share never drops below the minimal action memory: 1024 / 16 = 64 < 128.
        let many = ShardingBalancer::new()
            .with_seed(1)
            .with_controller_cluster_size(16);
        let small = Placement {
            memory_mb: 128,
            ..hello()
        };
        assert_eq!(many.place(&small, &free_invokers(5)), Some((4, false)));
        assert_eq!(many.place(&p, &free_invokers(5)).map(|c| c.1), Some(true));
        // 0 controllers counts as one.
        let zero = ShardingBalancer::new().with_controller_cluster_size(0);
        assert_eq!(zero.controller_cluster_size(), 1);
    }

    #[test]
    fn overload_picks_a_random_usable_invoker() {
        let p = hello();
        // Everyone full; 0 and 3 unusable.
        let invokers = vec![
            inv(0, false, MB),
            inv(1, true, 0),
            inv(2, true, 10),
            inv(3, false, MB),
            inv(4, true, 0),
        ];
        let s = ShardingBalancer::new().with_seed(42);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let (id, forced) = s.place(&p, &invokers).unwrap();
            assert!(forced);
            assert!([1, 2, 4].contains(&id), "unusable invoker {id} chosen");
            seen.insert(id);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![1, 2, 4]);
        // Deterministic for a seed.
        let a = ShardingBalancer::new().with_seed(7);
        let b = ShardingBalancer::new().with_seed(7);
        let run = |s: &ShardingBalancer| {
            (0..20)
                .map(|_| s.place(&p, &invokers).unwrap().0)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(&a), run(&b));
    }

    #[tokio::test]
    async fn none_when_no_invoker_is_usable() {
        let s = ShardingBalancer::new().with_seed(1);
        let p = hello();
        assert_eq!(s.schedule(&p, &[]).await, None);
        let invokers: Vec<_> = (0..5).map(|id| inv(id, false, MB)).collect();
        assert_eq!(s.schedule(&p, &invokers).await, None);
        assert_eq!(s.place(&p, &[inv(3, false, MB)]), None);
    }

    #[test]
    fn blackbox_actions_use_the_blackbox_pool() {
        let s = ShardingBalancer::new().with_seed(3);
        let bb = placement("guest", "guest/hello", "blackbox");
        // 10 invokers: managed 0..=8, blackbox 9.
        let mut invokers = free_invokers(10);
        assert_eq!(s.place(&bb, &invokers), Some((9, false)));
        // 9 full: forced onto 9, never onto a managed invoker.
        invokers[9].free_memory_mb = 0;
        assert_eq!(s.place(&bb, &invokers), Some((9, true)));
        // Managed actions never reach 9, even when 0..=8 are full.
        let managed = hello();
        for i in &mut invokers {
            i.free_memory_mb = if i.id == 9 { MB } else { 0 };
        }
        for _ in 0..50 {
            let (id, forced) = s.place(&managed, &invokers).unwrap();
            assert!(forced && id < 9, "managed placed on {id}");
        }
        // 9 unusable: no blackbox placement.
        invokers[9].usable = false;
        assert_eq!(s.place(&bb, &invokers), None);
        // 5 invokers: the pools overlap (managed 0..=4, blackbox 4).
        assert_eq!(s.place(&bb, &free_invokers(5)), Some((4, false)));
        let other = placement("guest", "guest/world", "blackbox");
        assert_eq!(s.place(&other, &free_invokers(5)), Some((4, false)));
    }

    /// hash("", "polygenelubricants") is Integer.MIN_VALUE: MIN_VALUE % 5 = -3, a negative
    /// index on which OpenWhisk throws; with 4 invokers MIN_VALUE % 4 = 0 and
    /// MIN_VALUE % |[1, 3]| = 0, which OpenWhisk handles (home 0, step 1).
    #[test]
    fn min_value_hash_behaves_like_openwhisk() {
        let s = ShardingBalancer::new().with_seed(1);
        let p = placement("", "polygenelubricants", "nodejs:20");
        assert_eq!(s.place(&p, &free_invokers(5)), None);
        assert_eq!(s.place(&p, &free_invokers(4)), Some((0, false)));
        let mut invokers = free_invokers(4);
        invokers[0].free_memory_mb = 0;
        assert_eq!(s.place(&p, &invokers), Some((1, false)));
    }

    /// The warm-container property: while its home has room, an action always lands there,
    /// whatever the state of the other invokers, and it only moves when the home is full.
    #[test]
    fn an_action_stays_on_its_home_while_it_has_room() {
        let s = ShardingBalancer::new().with_seed(9);
        for n in 1..=12u32 {
            for a in 0..40 {
                let action = format!("guest/action{a}");
                let p = placement("guest", &action, "nodejs:20");
                let mut invokers = free_invokers(n);
                let (home, forced) = s.place(&p, &invokers).unwrap();
                assert!(!forced);
                // Book like the load balancer does: home keeps winning until it is full.
                for round in 0..4 {
                    assert_eq!(
                        s.place(&p, &invokers),
                        Some((home, false)),
                        "n={n} {action} round {round}"
                    );
                    invokers[home as usize].free_memory_mb -= 256;
                    // Others getting busy does not move it.
                    for i in invokers.iter_mut().filter(|i| i.id != home) {
                        i.free_memory_mb = i.free_memory_mb.saturating_sub(100);
                    }
                }
                let next = s.place(&p, &invokers).unwrap();
                if n == 1 {
                    // Nowhere else to go: overload.
                    assert_eq!(next, (home, true));
                } else {
                    assert_ne!(next.0, home, "n={n} {action}: full home still chosen");
                    assert!(!next.1);
                }
            }
        }
    }
}
