//! Parameters and annotations: OpenWhisk's ordered `[{"key": k, "value": v}]` lists.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One `{"key", "value"}` pair; `init: true` marks a parameter passed to `/init` as environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// The parameter name.
    pub key: String,
    /// Any JSON value.
    pub value: Value,
    /// Passed to the runtime's `/init` as an environment variable when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

/// An ordered list of parameters or annotations with unique keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Parameters(pub Vec<Parameter>);

impl Parameters {
    /// An empty list.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|p| p.key == key).map(|p| &p.value)
    }

    /// Sets `key` to `value`, replacing an existing entry in place.
    pub fn set(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|p| p.key == key) {
            Some(p) => p.value = value,
            None => self.0.push(Parameter {
                key: key.to_string(),
                value,
                init: false,
            }),
        }
    }

    /// Builder form of [`Parameters::set`].
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.set(key, value);
        self
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|p| p.key != key);
    }

    /// `self` overridden by `other` (OpenWhisk's `++`): keys of `other` win.
    pub fn merge(&self, other: &Parameters) -> Parameters {
        let mut out = self.clone();
        for p in &other.0 {
            match out.0.iter_mut().find(|q| q.key == p.key) {
                Some(q) => *q = p.clone(),
                None => out.0.push(p.clone()),
            }
        }
        out
    }

    /// Whether annotation `key` is truthy as OpenWhisk defines it (`Parameters.isTruthy`).
    pub fn is_truthy(&self, key: &str, default: bool) -> bool {
        self.get(key).map(truthy).unwrap_or(default)
    }

    /// The parameters as a JSON object (the action argument form).
    pub fn to_object(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect()
    }

    /// The action argument for `payload`: these parameters overridden by the payload's
    /// fields when it is an object; any other payload (an array) is passed as it is.
    pub fn merged_with(&self, payload: Value) -> Value {
        match payload {
            Value::Object(p) => {
                let mut args = self.to_object();
                args.extend(p);
                Value::Object(args)
            }
            other => other,
        }
    }

    /// Keys of parameters marked `init`.
    pub fn init_keys(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|p| p.init)
            .map(|p| p.key.clone())
            .collect()
    }

    /// The serialised size in bytes, as checked against `maxParameterSize`.
    pub fn size(&self) -> usize {
        serde_json::to_vec(self).map(|v| v.len()).unwrap_or(0)
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// OpenWhisk truthiness: bool; non-zero number; non-empty string; null is false; anything else true.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(true),
        Value::String(s) => !s.is_empty(),
        Value::Null => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_overrides_keys_in_place() {
        let a = Parameters::new().with("x", json!(1)).with("y", json!(2));
        let b = Parameters::new().with("y", json!(3)).with("z", json!(4));
        let m = a.merge(&b);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!([{"key":"x","value":1},{"key":"y","value":3},{"key":"z","value":4}])
        );
    }

    #[test]
    fn truthiness() {
        for (v, t) in [
            (json!(true), true),
            (json!(false), false),
            (json!(0), false),
            (json!(2), true),
            (json!(""), false),
            (json!("x"), true),
            (json!(null), false),
            (json!({}), true),
        ] {
            assert_eq!(truthy(&v), t, "{v}");
        }
    }

    #[test]
    fn init_flag_round_trips() {
        let p: Parameters =
            serde_json::from_value(json!([{"key":"a","value":"b","init":true}])).unwrap();
        assert_eq!(p.init_keys(), vec!["a"]);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!([{"key":"a","value":"b","init":true}])
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn params() -> impl Strategy<Value = Parameters> {
            prop::collection::btree_map(0u8..6, (any::<i8>(), any::<bool>()), 0..6).prop_map(|m| {
                Parameters(
                    m.into_iter()
                        .map(|(k, (v, init))| Parameter {
                            key: format!("k{k}"),
                            value: json!(v),
                            init,
                        })
                        .collect(),
                )
            })
        }

        fn keys(p: &Parameters) -> Vec<&str> {
            p.0.iter().map(|p| p.key.as_str()).collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// `a.merge(b)` (OpenWhisk's `a ++ b`): every key once; `b`'s entries (value and
            /// `init`) win; the other keys keep `a`'s; `a`'s keys keep their order and `b`'s
            /// new ones follow in theirs.
            #[test]
            fn merge_is_openwhisk_overlay(a in params(), b in params()) {
                let m = a.merge(&b);
                let mut seen = std::collections::HashSet::new();
                prop_assert!(m.0.iter().all(|p| seen.insert(p.key.clone())));
                for p in &m.0 {
                    let want = b.0.iter().chain(&a.0).find(|q| q.key == p.key).unwrap();
                    prop_assert_eq!(p, want);
                }
                let mut order = keys(&a);
                order.extend(keys(&b).into_iter().filter(|k| a.get(k).is_none()));
                prop_assert_eq!(keys(&m), order);
                prop_assert_eq!(m.init_keys().len(), m.0.iter().filter(|p| p.init).count());
            }

            /// The action argument: the parameters overridden by an object payload's fields; an
            /// array payload is the argument as it is.
            #[test]
            fn payload_overrides_parameters(p in params(), payload in params(), array in any::<bool>()) {
                let payload = match array {
                    true => Value::Array(payload.0.iter().map(|q| q.value.clone()).collect()),
                    false => Value::Object(payload.to_object()),
                };
                let args = p.merged_with(payload.clone());
                match &payload {
                    Value::Object(fields) => {
                        let args = args.as_object().unwrap();
                        for (k, v) in args {
                            prop_assert_eq!(Some(v), fields.get(k).or_else(|| p.get(k)));
                        }
                        prop_assert!(fields.keys().chain(p.0.iter().map(|q| &q.key)).all(|k| args.contains_key(k)));
                    }
                    _ => prop_assert_eq!(&args, &payload),
                }
            }
        }
    }
}
