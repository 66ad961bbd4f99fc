//! The system packages of the sources, installed like OpenWhisk's catalog: a public package
//! `/whisk.system/<package>` per source package and one feed action (annotation `feed: true`)
//! per source.

use super::provider::FeedProvider;
use super::{EventSource, FeedParameter, SYSTEM_NAMESPACE};
use crate::entity::exec::ExecPut;
use crate::entity::{Parameters, WhiskAction, WhiskActionPut, WhiskPackage};
use crate::store::{Collection, StoreError, StoreExt};
use serde_json::{json, Value};

/// The kind of the feed actions (the manifest's default Node.js).
pub const FEED_ACTION_KIND: &str = "nodejs:default";

/// The code of the feed action of `package/feed`: it forwards its argument to the provider at
/// `$__OW_API_HOST/api/v1/feeds/<package>/<feed>` with the `authKey` it was given as Basic
/// credentials, and answers with the provider's result, or `{error}` when it refused. An
/// https API host on a loopback address is called without checking its certificate (the
/// standalone platform with a self-signed one).
pub fn feed_action_code(package: &str, feed: &str) -> String {
    format!(
        r#"const FEED = {path};

async function main(params) {{
  if (typeof params.authKey !== 'string') {{
    return {{ error: 'The feed action needs the authKey parameter (uuid:key).' }};
  }}
  const url = process.env.__OW_API_HOST + '/api/v1/feeds/' + FEED;
  // A platform serving TLS on loopback (often with a self-signed certificate) is called back
  // without checking its certificate: no one off this host can stand in between.
  const host = new URL(url).hostname;
  if (url.startsWith('https:') && (host === 'localhost' || host.startsWith('127.') || host === '[::1]')) {{
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  }}
  let response;
  try {{
    response = await fetch(url, {{
      method: 'POST',
      headers: {{
        'Authorization': 'Basic ' + Buffer.from(params.authKey).toString('base64'),
        'Content-Type': 'application/json',
      }},
      body: JSON.stringify(params),
    }});
  }} catch (e) {{
    return {{ error: 'The feed provider at ' + url + ' cannot be reached: ' + e.message }};
  }}
  const body = await response.json().catch(() => ({{}}));
  if (!response.ok) {{
    return {{ error: body.error || ('The feed provider answered HTTP ' + response.status) }};
  }}
  return body;
}}
"#,
        path = json!(format!("{package}/{feed}"))
    )
}

/// OpenWhisk's catalog form of parameter documentation.
fn parameters_annotation(params: &[FeedParameter]) -> Value {
    params
        .iter()
        .map(|p| json!({"name": p.name, "required": p.required, "description": p.description}))
        .collect()
}

impl FeedProvider {
    /// Creates or replaces the system packages and feed actions of every source.
    pub async fn install(&self) -> Result<(), StoreError> {
        let controller = self.controller();
        let store = controller.store();
        let config = controller.config();
        let now = crate::message::now_ms();
        let mut packages: Vec<&str> = self.sources().map(|(_, s)| s.package()).collect();
        packages.sort_unstable();
        packages.dedup();
        for package in packages {
            let mut annotations = Parameters::new();
            annotations.set(
                "description",
                json!(format!("Event source feeds of the {package} package")),
            );
            let pkg = WhiskPackage {
                namespace: SYSTEM_NAMESPACE.into(),
                name: package.into(),
                binding: None,
                parameters: Parameters::new(),
                version: Default::default(),
                publish: true,
                annotations,
                updated: now,
            };
            store
                .upsert(Collection::Whisks, &pkg.doc_id(), pkg.to_document())
                .await?;
        }
        for (_, source) in self.sources() {
            let action = feed_action(source.as_ref(), config, now).map_err(|e| {
                StoreError::Other(format!(
                    "cannot create the feed action /{SYSTEM_NAMESPACE}/{}/{}: {e}",
                    source.package(),
                    source.name()
                ))
            })?;
            store
                .upsert(Collection::Whisks, &action.doc_id(), action.to_document())
                .await?;
        }
        tracing::info!(sources = self.sources().count(), "feed actions installed");
        Ok(())
    }
}

fn feed_action(
    source: &dyn EventSource,
    config: &crate::controller::ControllerConfig,
    now: u64,
) -> Result<WhiskAction, crate::entity::action::ActionPutError> {
    let mut annotations = Parameters::new();
    annotations.set("feed", json!(true));
    annotations.set("description", json!(source.description()));
    annotations.set("parameters", parameters_annotation(source.parameters()));
    let put = WhiskActionPut {
        exec: Some(ExecPut {
            kind: FEED_ACTION_KIND.into(),
            code: Some(feed_action_code(source.package(), source.name())),
            ..ExecPut::default()
        }),
        annotations: Some(annotations),
        ..WhiskActionPut::default()
    };
    WhiskAction::create(
        &format!("{SYSTEM_NAMESPACE}/{}", source.package()),
        source.name(),
        put,
        &config.manifest,
        &config.limits,
        now,
    )
}
