//! The design documents (views) of OpenWhisk's CouchDB layout and their installation.
//!
//! Names, view names, keys and reduce functions are OpenWhisk's (`whisks.v2.1.0`,
//! `whisks-filters.v2.1.1`, `subjects.v2.0.0`); the map functions are written for whisk. They
//! classify an entity by its `entityType` field (falling back to OpenWhisk's structural tests for
//! documents without one) and sort documents without a numeric `updated`/`start` as `0`, so the
//! views agree with [`Query::matches`](whisk_core::store::Query::matches).

use super::client::{doc_path, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use whisk_core::store::StoreError;

/// Design document of entity and activation views (same name in both databases).
pub(crate) const WHISKS_DDOC: &str = "whisks.v2.1.0";
/// Design document of the activation-by-name view.
pub(crate) const FILTERS_DDOC: &str = "whisks-filters.v2.1.1";
/// Design document of the identities view.
pub(crate) const SUBJECTS_DDOC: &str = "subjects.v2.0.0";

/// whisk's own design document in the whisks database: the feed registrations
/// ([`whisk_core::feeds::Registration`]), which OpenWhisk's views never emit.
pub(crate) const FEEDS_DDOC: &str = "whisk-feeds.v1";

/// The design document and view listing entities of `entity_type`, if there is one.
pub(crate) fn entity_view(entity_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match entity_type {
        "action" => (WHISKS_DDOC, "actions"),
        "trigger" => (WHISKS_DDOC, "triggers"),
        "rule" => (WHISKS_DDOC, "rules"),
        "package" => (WHISKS_DDOC, "packages"),
        whisk_core::feeds::REGISTRATION_TYPE => (FEEDS_DDOC, "registrations"),
        _ => return None,
    })
}

/// Common head of the entity views: `kind` (the entity type) and `at` (sort key).
const ENTITY_HEAD: &str = r#"
  if (typeof doc.namespace !== 'string') return;
  var kind;
  if (typeof doc.entityType === 'string') kind = doc.entityType;
  else if (doc.exec !== undefined) kind = 'action';
  else if (doc.trigger !== undefined) kind = 'rule';
  else if (doc.binding !== undefined) kind = 'package';
  else if (doc.parameters !== undefined) kind = 'trigger';
  var at = doc.updated;
  if (typeof at !== 'number' || at < 0 || Math.floor(at) !== at) at = 0;
  var emitUnderRoot = function (value) {
    emit([doc.namespace, at], value);
    var cut = doc.namespace.indexOf('/');
    if (cut > 0) emit([doc.namespace.substring(0, cut), at], value);
  };
  var brief = function () {
    return { namespace: doc.namespace, name: doc.name, version: doc.version,
             publish: doc.publish, annotations: doc.annotations, updated: doc.updated };
  };
"#;

fn entity_map(body: &str) -> String {
    format!("function (doc) {{{ENTITY_HEAD}{body}}}")
}

fn actions_map() -> String {
    entity_map(
        r#"  if (kind !== 'action') return;
  var v = brief();
  v.limits = doc.limits;
  v.exec = { binary: !!(doc.exec && doc.exec.binary) };
  emitUnderRoot(v);
"#,
    )
}

fn registrations_map() -> String {
    format!(
        "  if (kind === '{}') emit([doc.namespace, at], 1);\n",
        whisk_core::feeds::REGISTRATION_TYPE
    )
}

fn triggers_map() -> String {
    entity_map("  if (kind === 'trigger') emitUnderRoot(brief());\n")
}

fn rules_map() -> String {
    entity_map("  if (kind === 'rule') emitUnderRoot(1);\n")
}

const PACKAGE_VALUE: &str = r#"  if (kind !== 'package') return;
  var bound = doc.binding !== null && typeof doc.binding === 'object' && Object.keys(doc.binding).length > 0;
  var v = brief();
  v.binding = bound ? doc.binding : false;
"#;

fn packages_map() -> String {
    entity_map(&format!("{PACKAGE_VALUE}  emitUnderRoot(v);\n"))
}

fn public_packages_map() -> String {
    entity_map(&format!(
        "{PACKAGE_VALUE}  if (doc.publish === true && !bound) emit([doc.namespace, at], v);\n"
    ))
}

/// Common head of the activation views: `at` (sort key) and `summary`.
const ACTIVATION_HEAD: &str = r#"
  if (typeof doc.namespace !== 'string') return;
  var at = doc.start;
  if (typeof at !== 'number' || at < 0 || Math.floor(at) !== at) at = 0;
  var finished = typeof doc.end === 'number' && doc.end !== 0;
  var summary = { namespace: doc.namespace, name: doc.name, version: doc.version,
                  publish: doc.publish, annotations: doc.annotations,
                  activationId: doc.activationId, start: doc.start, cause: doc.cause };
  if (finished) {
    summary.end = doc.end;
    summary.duration = doc.end - doc.start;
    if (doc.response && doc.response.statusCode !== undefined) summary.statusCode = doc.response.statusCode;
  }
"#;

fn activations_map() -> String {
    format!("function (doc) {{{ACTIVATION_HEAD}  emit([doc.namespace, at], summary);\n}}")
}

/// Keyed by `namespace/filter`, where the filter is `pkg/name` for an activation through a
/// package binding (`binding` annotation `ns/pkg`) or of a packaged action (`path` annotation
/// `ns/pkg/name`), else the name ([`activation_path_filter`](whisk_core::store::activation_path_filter)).
fn activation_filters_map() -> String {
    format!(
        r#"function (doc) {{{ACTIVATION_HEAD}  var name = typeof doc.name === 'string' ? doc.name : '';
  var path, binding;
  if (Array.isArray(doc.annotations)) {{
    doc.annotations.forEach(function (a) {{
      if (a && a.key === 'path' && typeof a.value === 'string') path = a.value.split('/');
      if (a && a.key === 'binding' && typeof a.value === 'string') binding = a.value.split('/');
    }});
  }}
  var filter = name;
  if (binding && binding.length > 1) filter = binding[1] + '/' + name;
  else if (path && path.length === 3) filter = path[1] + '/' + name;
  emit([doc.namespace + '/' + filter, at], summary);
}}"#
    )
}

fn identities_map() -> &'static str {
    r#"function (doc) {
  if (doc.blocked || !Array.isArray(doc.namespaces)) return;
  doc.namespaces.forEach(function (ns) {
    if (!ns || typeof ns.name !== 'string') return;
    var v = { _id: ns.name + '/limits', namespace: ns.name, uuid: ns.uuid, key: ns.key };
    emit([ns.name], v);
    emit([ns.uuid, ns.key], v);
  });
}"#
}

fn counted(map: String) -> Value {
    json!({ "map": map, "reduce": "_count" })
}

/// The design documents of database `db` (without prefix), as `(id, body)`.
pub(crate) fn design_docs(db: &str) -> Vec<(String, Value)> {
    let doc = |name: &str, views: Value| {
        (
            format!("_design/{name}"),
            json!({ "language": "javascript", "views": views }),
        )
    };
    match db {
        "whisks" => vec![
            doc(
                WHISKS_DDOC,
                json!({
                    "actions": counted(actions_map()),
                    "triggers": counted(triggers_map()),
                    "rules": counted(rules_map()),
                    "packages": counted(packages_map()),
                    "packages-public": counted(public_packages_map()),
                }),
            ),
            doc(
                FEEDS_DDOC,
                json!({ "registrations": counted(entity_map(&registrations_map())) }),
            ),
        ],
        "activations" => vec![
            doc(
                WHISKS_DDOC,
                json!({ "activations": counted(activations_map()) }),
            ),
            doc(
                FILTERS_DDOC,
                json!({ "activations": counted(activation_filters_map()) }),
            ),
        ],
        "subjects" => vec![doc(
            SUBJECTS_DDOC,
            json!({ "identities": { "map": identities_map() } }),
        )],
        _ => Vec::new(),
    }
}

/// Creates design document `id` in `db`, or replaces it when its views differ.
pub(crate) async fn install(
    client: &Client,
    db: &str,
    id: &str,
    wanted: &Value,
) -> Result<(), StoreError> {
    let path = doc_path(db, id);
    let current = client.send(Method::GET, &path, &[], None).await?;
    let mut body = wanted.clone();
    match current.status {
        StatusCode::NOT_FOUND => {}
        s if s.is_success() => {
            let stored = current.json();
            if stored.get("views") == wanted.get("views")
                && stored.get("language") == wanted.get("language")
            {
                return Ok(());
            }
            body["_rev"] = stored.get("_rev").cloned().unwrap_or(Value::Null);
            tracing::info!(db, id, "updating CouchDB design document");
        }
        _ => return Err(super::client::unexpected(&Method::GET, &path, &current)),
    }
    body["_id"] = json!(id);
    // 409: another process installed it at the same moment; theirs is as good as ours.
    client
        .send_ok(
            Method::PUT,
            &path,
            &[],
            Some(&body),
            &[StatusCode::CONFLICT],
        )
        .await
        .map(|_| ())
}
