//! Property tests (proptest) through the REST API: parameter merging (package < binding <
//! action < invoke payload, `init` parameters passed to `/init` as environment and left out
//! of the `/run` argument) and the action limit ranges, as OpenWhisk has them.

mod common;

use common::{assert_error, Platform};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use whisk_core::entity::SystemLimits;
use whisk_core::runtime::env_string;

/// The parameter keys the cases draw from (few, so that the levels overlap).
const KEYS: [&str; 4] = ["wp1", "wp2", "wp3", "wp4"];

/// An action that answers with its argument and the environment variables named in `KEYS`.
const ECHO: &str = r#"function main(args) {
  const env = {};
  for (const k of ["wp1", "wp2", "wp3", "wp4"]) {
    if (process.env[k] !== undefined) env[k] = process.env[k];
  }
  return {args: args, env: env};
}"#;

/// Parameters of one level: key to value and `init` flag.
type Params = BTreeMap<String, (Value, bool)>;

/// A runner with `cases` cases and no failure files.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS.to_vec()).prop_map(String::from)
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(|n| json!(n)),
        prop::sample::select(vec!["", "x", "two words"]).prop_map(|s| json!(s)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Value::Null),
        any::<u8>().prop_map(|n| json!({"n": n, "list": [n]})),
    ]
}

fn params() -> impl Strategy<Value = Params> {
    prop::collection::btree_map(key(), (value(), any::<bool>()), 0..4)
}

/// An invoke payload: mostly an object, sometimes an array (passed as it is).
fn payload() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::btree_map(key(), value(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => prop::collection::vec(value(), 0..3).prop_map(Value::Array),
    ]
}

/// The `parameters` JSON of `p`.
fn to_json(p: &Params) -> Value {
    p.iter()
        .map(|(k, (v, init))| match init {
            true => json!({"key": k, "value": v, "init": true}),
            false => json!({"key": k, "value": v}),
        })
        .collect()
}

/// `parameters` JSON read back into `Params`; a key listed twice fails.
fn from_json(v: &Value) -> Result<Params, TestCaseError> {
    let mut out = Params::new();
    for p in v.as_array().into_iter().flatten() {
        let key = p["key"].as_str().unwrap_or_default().to_string();
        let init = p["init"].as_bool().unwrap_or(false);
        prop_assert!(out.insert(key, (p["value"].clone(), init)).is_none(), "{v}");
    }
    Ok(out)
}

/// OpenWhisk's `++` of parameter maps: `over`'s entries (value and `init`) win.
fn overlay(base: &Params, over: &Params) -> Params {
    let mut out = base.clone();
    out.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// A PUT that must succeed.
async fn put(p: &Platform, path: &str, body: Value) -> Result<(), TestCaseError> {
    let r = p.call(Method::PUT, path, Some(body)).await;
    prop_assert_eq!(r.status, StatusCode::OK, "PUT {}: {}", path, r.text);
    Ok(())
}

/// One case: package `pkg{n}` and binding `bind{n}` of it, action `echo` in the package, got
/// and invoked through the binding.
async fn merge_case(
    p: &Platform,
    n: usize,
    (package, binding, action, payload): (Params, Params, Params, Value),
) -> Result<(), TestCaseError> {
    let base = "/api/v1/namespaces/_";
    put(
        p,
        &format!("{base}/packages/pkg{n}"),
        json!({"parameters": to_json(&package)}),
    )
    .await?;
    let bind = json!({"binding": {"namespace": "_", "name": format!("pkg{n}")},
                      "parameters": to_json(&binding)});
    put(p, &format!("{base}/packages/bind{n}"), bind).await?;
    let exec = json!({"kind": "nodejs:20", "code": ECHO});
    let body = json!({"exec": exec, "parameters": to_json(&action)});
    put(p, &format!("{base}/actions/pkg{n}/echo"), body).await?;

    // Package < binding < action, each key's value and `init` flag from the last level.
    let merged = overlay(&overlay(&package, &binding), &action);
    let got = p.get(&format!("{base}/actions/bind{n}/echo")).await;
    prop_assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    prop_assert_eq!(from_json(&got.body["parameters"])?, merged.clone());

    // The invoke payload overrides the parameters; `init` ones go to /init as environment
    // and are left out of the /run argument (OpenWhisk's `partitionArguments`). An array
    // payload is the argument as it is, with no environment.
    let r = p
        .invoke(&format!("bind{n}/echo"), payload.clone(), "")
        .await;
    prop_assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let result = &r.body["response"]["result"];
    let (args, env) = match &payload {
        Value::Object(fields) => {
            let mut all: Map<String, Value> = merged
                .iter()
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect();
            all.extend(fields.clone());
            let (env, args): (Map<_, _>, Map<_, _>) = all
                .into_iter()
                .partition(|(k, _)| merged.get(k).is_some_and(|(_, init)| *init));
            let env = env.into_iter().map(|(k, v)| (k, json!(env_string(&v))));
            (Value::Object(args), Value::Object(env.collect()))
        }
        other => (other.clone(), json!({})),
    };
    prop_assert_eq!(&result["args"], &args, "{}", r.text);
    prop_assert_eq!(&result["env"], &env, "{}", r.text);
    Ok(())
}

#[test]
fn parameters_merge_as_openwhisk_merges_them() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = rt.block_on(Platform::start());
    let n = std::cell::Cell::new(0);
    let cases = (params(), params(), params(), payload());
    let outcome = runner(24).run(&cases, |case| {
        n.set(n.get() + 1);
        rt.block_on(merge_case(&p, n.get(), case))
    });
    rt.block_on(async move { drop(p) });
    outcome.unwrap();
}

/// Found by the property above: a binding's (or package's) `init` parameter went to `/run`
/// as an argument, since the invoker took the `init` flags from the stored action alone. And
/// an array payload gets no environment, as in OpenWhisk.
#[tokio::test]
async fn inherited_init_parameters_go_to_init() {
    let p = Platform::start().await;
    let init = |k: &str, v: Value| Params::from([(k.to_string(), (v, true))]);
    let none = Params::new;
    let cases = [
        (none(), init("wp1", json!(0)), none(), json!({})),
        (init("wp2", json!("x")), none(), none(), json!({"wp3": 1})),
        (none(), none(), init("wp1", json!(2)), json!([1, 2])),
    ];
    for (n, case) in cases.into_iter().enumerate() {
        merge_case(&p, 1000 + n, case).await.unwrap();
    }
}

/// One limit: its `limits` field, its range on the platform and OpenWhisk's message parts.
struct Limit {
    field: &'static str,
    min: u64,
    max: u64,
    /// The message for value, direction and bound.
    message: fn(u64, &str, u64) -> String,
}

/// The four limits of the platform `limits` (concurrency up to `max_concurrency`).
fn limits(system: &SystemLimits) -> [Limit; 4] {
    [
        Limit {
            field: "timeout",
            min: system.timeout_ms.min,
            max: system.timeout_ms.max,
            message: |v, d, b| {
                format!("duration {v} milliseconds {d} allowed threshold of {b} milliseconds")
            },
        },
        Limit {
            field: "memory",
            min: system.memory_mb.min,
            max: system.memory_mb.max,
            message: |v, d, b| format!("memory size {v} MB {d} allowed threshold of {b} MB"),
        },
        Limit {
            field: "logs",
            min: system.logs_mb.min,
            max: system.logs_mb.max,
            message: |v, d, b| format!("log size {v} MB {d} allowed threshold of {b} MB"),
        },
        Limit {
            field: "concurrency",
            min: system.concurrency.min,
            max: system.concurrency.max,
            message: |v, d, b| format!("concurrency {v} {d} allowed threshold of {b}"),
        },
    ]
}

/// A value for a limit with range `min..=max`: in range, just outside, or far outside.
fn limit_value(min: u64, max: u64) -> impl Strategy<Value = u64> {
    let below = if min > 0 {
        (0..min).boxed()
    } else {
        (min..=max).boxed()
    };
    prop_oneof![
        3 => min..=max,
        1 => below,
        1 => (max + 1)..=(max.saturating_mul(100) + 1),
        1 => Just(min),
        1 => Just(max),
        1 => Just(max + 1),
    ]
}

#[test]
fn limits_in_range_are_accepted_and_others_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let max_concurrency = 4;
    let p = rt.block_on(Platform::start_config(common::StandaloneConfig {
        max_concurrency,
        ..Default::default()
    }));
    let mut system = SystemLimits::default();
    system.concurrency.max = max_concurrency;
    let all = limits(&system);
    let values: Vec<_> = all.iter().map(|l| limit_value(l.min, l.max)).collect();
    let n = std::cell::Cell::new(0);
    let outcome = runner(48).run(&values, |values| {
        n.set(n.get() + 1);
        let body = json!({
            "exec": {"kind": "nodejs:20", "code": "function main() { return {}; }"},
            "limits": all.iter().zip(&values).map(|(l, v)| (l.field.to_string(), json!(v))).collect::<Map<_, _>>(),
        });
        let path = format!("/api/v1/namespaces/_/actions/limits{}", n.get());
        let r = rt.block_on(p.call(Method::PUT, &path, Some(body)));
        // OpenWhisk checks timeout, memory, logs, concurrency in that order.
        let refusal = all.iter().zip(&values).find_map(|(l, &v)| match v {
            v if v > l.max => Some((l.message)(v, "exceeds", l.max)),
            v if v < l.min => Some((l.message)(v, "below", l.min)),
            _ => None,
        });
        match refusal {
            Some(message) => assert_error(&r, StatusCode::BAD_REQUEST, &message),
            None => {
                prop_assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                for (l, v) in all.iter().zip(&values) {
                    prop_assert_eq!(&r.body["limits"][l.field], &json!(v), "{}", r.text);
                }
            }
        }
        Ok(())
    });
    rt.block_on(async move { drop(p) });
    outcome.unwrap();
}
