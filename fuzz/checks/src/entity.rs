//! Entity JSON: stored entities and the bodies of `PUT` requests.

use crate::{document_reads_back, round_trip};
use std::sync::OnceLock;
use whisk_core::entity::limits::LimitRange;
use whisk_core::entity::{
    ActionLimits, RuntimeManifest, SystemLimits, WhiskAction, WhiskActionPut, WhiskActivation,
    WhiskPackage, WhiskPackagePut, WhiskRule, WhiskRulePut, WhiskTrigger, WhiskTriggerPut,
};

/// The bundled runtime manifest, parsed once.
fn manifest() -> &'static RuntimeManifest {
    static MANIFEST: OnceLock<RuntimeManifest> = OnceLock::new();
    MANIFEST.get_or_init(RuntimeManifest::default)
}

/// The input as each stored entity (action, package, trigger, rule, activation) and each
/// `PUT` body. Whatever parses serialises and parses back to itself, and a stored entity's
/// document reads back as the same entity. An action `PUT` body that creates (and then
/// updates) an action gives one whose limits are in OpenWhisk's ranges and whose document
/// reads back.
pub fn entity_json(data: &[u8]) {
    if let Some(a) = round_trip::<WhiskAction>(data) {
        document_reads_back(a.to_document(), &a);
        assert!(a.summary().is_object());
    }
    if let Some(p) = round_trip::<WhiskPackage>(data) {
        document_reads_back(p.to_document(), &p);
    }
    if let Some(t) = round_trip::<WhiskTrigger>(data) {
        document_reads_back(t.to_document(), &t);
        assert!(t.summary().is_object());
    }
    if let Some(r) = round_trip::<WhiskRule>(data) {
        document_reads_back(r.to_document(), &r);
    }
    if let Some(a) = round_trip::<WhiskActivation>(data) {
        document_reads_back(a.to_document(), &a);
        assert!(a.to_extended_json().is_object() && a.summary().is_object());
    }
    if let Some(put) = round_trip::<WhiskActionPut>(data) {
        action_put(put);
    }
    round_trip::<WhiskPackagePut>(data);
    round_trip::<WhiskTriggerPut>(data);
    round_trip::<WhiskRulePut>(data);
}

/// Creates an action from `put`, then updates it with the same body.
fn action_put(put: WhiskActionPut) {
    let system = SystemLimits::default();
    let Ok(created) = WhiskAction::create("guest", "fuzz", put.clone(), manifest(), &system, 1)
    else {
        return;
    };
    within(&created.limits, &system);
    assert_eq!(
        created.annotations.get("exec").and_then(|k| k.as_str()),
        Some(created.exec.kind())
    );
    document_reads_back(created.to_document(), &created);
    if let Ok(updated) = created.update(put, manifest(), &system, 2) {
        within(&updated.limits, &system);
        document_reads_back(updated.to_document(), &updated);
    }
}

/// Panics unless every limit is in its system range.
fn within(limits: &ActionLimits, system: &SystemLimits) {
    let ok = |v: u64, r: LimitRange| (r.min..=r.max).contains(&v);
    assert!(ok(limits.timeout, system.timeout_ms), "{limits:?}");
    assert!(ok(limits.memory, system.memory_mb), "{limits:?}");
    assert!(ok(limits.logs, system.logs_mb), "{limits:?}");
    assert!(ok(limits.concurrency, system.concurrency), "{limits:?}");
}
