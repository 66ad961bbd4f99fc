//! The OpenWhisk REST API v1 over the [`Controller`] engine (axum).
//!
//! ```no_run
//! # async fn demo(controller: std::sync::Arc<whisk_core::controller::Controller>) {
//! let app = whisk_core::api::router(controller);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3233").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

mod actions;
mod activations;
mod admin;
mod console;
mod entities;
mod error;
mod feeds;
mod limits;
mod meta;
mod packages;
mod params;
mod rules;
mod triggers;
pub mod web;

pub use error::ApiError;
pub use limits::RequestLimits;

use crate::controller::Controller;
use crate::entity::name::{validate_namespace, DEFAULT_NAMESPACE};
use crate::entity::Identity;
use crate::message::TransactionId;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::Router;
use base64::Engine;
use error::{default_message, ErrorMessage};
use std::sync::Arc;

/// Header carrying the activation id on invoke responses.
pub const ACTIVATION_ID_HEADER: &str = "x-openwhisk-activation-id";

/// The shared state of the handlers.
#[derive(Clone)]
pub struct ApiState {
    controller: Arc<Controller>,
    feeds: Option<Arc<crate::feeds::FeedProvider>>,
}

/// Builds the API router, with the default [`RequestLimits`].
pub fn router(controller: Arc<Controller>) -> Router {
    router_with_limits(controller, None, RequestLimits::default())
}

/// Builds the API router with the feed provider's endpoint
/// (`POST /api/v1/feeds/{package}/{feed}`) served by `feeds`.
pub fn router_with_feeds(
    controller: Arc<Controller>,
    feeds: Arc<crate::feeds::FeedProvider>,
) -> Router {
    router_with_limits(controller, Some(feeds), RequestLimits::default())
}

/// Builds the API router refusing requests beyond `limits`, with the feed provider's
/// endpoint when `feeds` is given.
pub fn router_with_limits(
    controller: Arc<Controller>,
    feeds: Option<Arc<crate::feeds::FeedProvider>>,
    limits: RequestLimits,
) -> Router {
    build(ApiState { controller, feeds }, limits)
}

/// Every route the API serves: its path (axum's syntax) and handlers. The OpenAPI description
/// (`openapi.json`) documents each of them (checked by a test).
fn routes() -> Vec<(&'static str, MethodRouter<ApiState>)> {
    use crate::entity::{WhiskAction, WhiskRule, WhiskTrigger};
    vec![
        ("/", get(meta::info)),
        ("/ping", get(|| async { "pong" })),
        ("/invokers", get(admin::invokers)),
        ("/invokers/healthy/count", get(admin::healthy_count)),
        ("/invokers/ready", get(admin::ready)),
        ("/metrics", get(admin::metrics)),
        ("/console", get(console::index)),
        ("/console/", get(console::index)),
        ("/console/{file}", get(console::asset)),
        ("/api/v1", get(meta::api_info)),
        ("/api/v1/api-docs", get(meta::api_docs)),
        ("/api/v1/namespaces", get(meta::namespaces)),
        ("/api/v1/namespaces/{ns}/limits", get(meta::limits)),
        ("/api/v1/namespaces/{ns}/actions", get(list::<WhiskAction>)),
        (
            "/api/v1/namespaces/{ns}/actions/{name}",
            get(actions::get)
                .put(actions::put)
                .delete(actions::delete)
                .post(actions::invoke),
        ),
        (
            "/api/v1/namespaces/{ns}/actions/{pkg}/",
            get(packages::list_actions),
        ),
        (
            "/api/v1/namespaces/{ns}/actions/{pkg}/{name}",
            get(actions::get_in_package)
                .put(actions::put_in_package)
                .delete(actions::delete_in_package)
                .post(actions::invoke_in_package),
        ),
        ("/api/v1/namespaces/{ns}/packages", get(packages::list)),
        (
            "/api/v1/namespaces/{ns}/packages/{name}",
            get(packages::get)
                .put(packages::put)
                .delete(packages::delete),
        ),
        (
            "/api/v1/namespaces/{ns}/triggers",
            get(list::<WhiskTrigger>),
        ),
        (
            "/api/v1/namespaces/{ns}/triggers/{name}",
            get(triggers::get)
                .put(triggers::put)
                .delete(triggers::delete)
                .post(triggers::fire),
        ),
        ("/api/v1/namespaces/{ns}/rules", get(list::<WhiskRule>)),
        (
            "/api/v1/namespaces/{ns}/rules/{name}",
            get(rules::get)
                .put(rules::put)
                .delete(rules::delete)
                .post(rules::set_status),
        ),
        ("/api/v1/feeds/{package}/{feed}", post(feeds::lifecycle)),
        (
            "/api/v1/namespaces/{ns}/activations",
            get(activations::list),
        ),
        (
            "/api/v1/namespaces/{ns}/activations/{id}",
            get(activations::get),
        ),
        (
            "/api/v1/namespaces/{ns}/activations/{id}/logs",
            get(activations::logs),
        ),
        (
            "/api/v1/namespaces/{ns}/activations/{id}/result",
            get(activations::result),
        ),
        ("/api/v1/web/{ns}/{pkg}/{*rest}", any(web::handle)),
    ]
}

fn build(state: ApiState, limits: RequestLimits) -> Router {
    let routes = routes()
        .into_iter()
        .fold(Router::new(), |r, (path, handlers)| r.route(path, handlers))
        // The request limits bound the body (axum's own 2 MB default would cut it short).
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    // The transaction middleware wraps the whole router, not each route: a route's 405 gets
    // its `Allow` header from axum outside the route's own layers, and the error body names
    // those methods.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn_with_state(
            Arc::new(limits),
            limits::enforce,
        ))
        .layer(middleware::from_fn(transaction))
}

/// A router serving only `GET /metrics` from `metrics` (for processes without the REST API,
/// such as an invoker).
pub fn metrics_router(metrics: Arc<crate::metrics::Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || async move { admin::exposition(&metrics) }),
    )
}

/// Assigns the transaction id, renders error bodies and adds the CORS and `X-Request-ID`
/// headers.
async fn transaction(mut req: Request, next: Next) -> Response {
    let tid = TransactionId::from_header(
        req.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    // Web actions set their own CORS headers and may answer OPTIONS themselves (`web`).
    let path = req.uri().path();
    let cors = path.starts_with("/api/v1") && !path.starts_with("/api/v1/web/");
    req.extensions_mut().insert(tid.clone());
    // OPTIONS under /api/v1 (but web actions) is a CORS preflight: 200 without a handler.
    let mut resp = if cors && req.method() == axum::http::Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        // Every event logged while serving the request carries its transaction id.
        let span = tracing::info_span!("request", tid = %tid.id());
        tracing::Instrument::instrument(next.run(req), span).await
    };
    // A web action's own response is the action's to shape, whatever its status.
    let from_action = resp.extensions().get::<web::ActionResponse>().is_some();
    if (resp.status().is_client_error() || resp.status().is_server_error()) && !from_action {
        let is_json = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !is_json {
            let message = match resp.extensions().get::<ErrorMessage>() {
                Some(m) => m.0.clone(),
                None => {
                    let (parts, body) = resp.into_parts();
                    let bytes = axum::body::to_bytes(body, 64 * 1024)
                        .await
                        .unwrap_or_default();
                    let text = String::from_utf8_lossy(&bytes).to_string();
                    resp = Response::from_parts(parts, axum::body::Body::empty());
                    let allow = resp.headers().get(header::ALLOW);
                    default_message(resp.status(), allow.and_then(|v| v.to_str().ok()), &text)
                }
            };
            let (mut parts, _) = resp.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let body = serde_json::json!({"error": message, "code": tid.id()});
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp = Response::from_parts(parts, axum::body::Body::from(body.to_string()));
        }
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tid.id()) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    if cors {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
            ),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, DELETE, POST, PUT, HEAD"),
        );
    }
    resp
}

/// The authenticated caller (HTTP Basic `uuid:key`).
pub struct Auth(pub Identity);

impl FromRequestParts<ApiState> for Auth {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |msg: &str| {
            let mut r = ApiError::new(StatusCode::UNAUTHORIZED, msg).into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"OpenWhisk secure realm\""),
            );
            r
        };
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(unauthorized(
                "The resource requires authentication, which was not supplied with the request",
            ));
        }
        let Some((uuid, key)) = basic_credentials(&parts.headers) else {
            return Err(unauthorized("The supplied authentication is invalid"));
        };
        match state.controller.authenticate(&uuid, &key).await {
            Ok(Some(identity)) => Ok(Auth(identity)),
            Ok(None) => Err(unauthorized("The supplied authentication is invalid")),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

/// The `(uuid, key)` of an `Authorization: Basic` header, if present and well formed.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let creds = String::from_utf8(decoded).ok()?;
    let (uuid, key) = creds.split_once(':')?;
    Some((uuid.to_string(), key.to_string()))
}

/// The transaction id of the request.
pub struct Tid(pub TransactionId);

impl<S: Send + Sync> FromRequestParts<S> for Tid {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Tid(parts
            .extensions
            .get::<TransactionId>()
            .cloned()
            .unwrap_or_else(TransactionId::generate)))
    }
}

/// Maps a name-resolution failure to OpenWhisk's status and message.
pub(crate) fn resolve_error(e: crate::controller::ResolveError) -> ApiError {
    use crate::controller::ResolveError::*;
    match e {
        NotFound => ApiError::not_found(),
        WrongCollection => ApiError::wrong_collection(),
        Forbidden(resource) => ApiError::forbidden(&resource),
        Store(e) => e.into(),
    }
}

/// An entity type listed by `GET /namespaces/{ns}/{collection}` in the caller's namespace.
pub(crate) trait Listed: serde::de::DeserializeOwned {
    /// Its `entityType`.
    const ENTITY_TYPE: &'static str;
    /// The collection name (`actions`, ...), also the key of `count=true` answers.
    const COLLECTION: &'static str;
    /// The list item for a stored entity.
    fn list_item(self) -> serde_json::Value;
}

impl Listed for crate::entity::WhiskAction {
    const ENTITY_TYPE: &'static str = crate::entity::action::ENTITY_TYPE;
    const COLLECTION: &'static str = "actions";
    fn list_item(self) -> serde_json::Value {
        self.summary()
    }
}

impl Listed for crate::entity::WhiskTrigger {
    const ENTITY_TYPE: &'static str = crate::entity::trigger::TRIGGER_TYPE;
    const COLLECTION: &'static str = "triggers";
    fn list_item(self) -> serde_json::Value {
        self.summary()
    }
}

impl Listed for crate::entity::WhiskRule {
    const ENTITY_TYPE: &'static str = crate::entity::trigger::RULE_TYPE;
    const COLLECTION: &'static str = "rules";
    fn list_item(self) -> serde_json::Value {
        self.to_json()
    }
}

/// `GET /namespaces/{ns}/{actions|triggers|rules}`.
pub(crate) async fn list<E: Listed>(
    axum::extract::State(s): axum::extract::State<ApiState>,
    Auth(user): Auth,
    axum::extract::Path(ns): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<params::QueryMap>,
) -> Result<Response, ApiError> {
    let ns = resolve_namespace(&user, &ns, "")?;
    list_entities(&s, ns, E::ENTITY_TYPE, E::COLLECTION, &q, |v| {
        serde_json::from_value::<E>(v).ok().map(E::list_item)
    })
    .await
}

/// Lists entities of `entity_type` in `ns` with `limit`/`skip`/`count` as OpenWhisk does;
/// `summary` turns a stored document into a list item.
pub(crate) async fn list_entities(
    s: &ApiState,
    ns: String,
    entity_type: &str,
    collection: &str,
    q: &params::QueryMap,
    summary: impl Fn(serde_json::Value) -> Option<serde_json::Value>,
) -> Result<Response, ApiError> {
    let query = crate::store::Query {
        collection: Some(crate::store::Collection::Whisks),
        namespace: ns,
        entity_type: Some(entity_type.into()),
        limit: params::limit(q, collection)?,
        skip: params::skip(q)?,
        ..Default::default()
    };
    let store = s.controller.store();
    if params::flag(q, "count", false)? {
        let n = store.count(&query).await?;
        return Ok(axum::Json(serde_json::json!({ collection: n })).into_response());
    }
    let items: Vec<serde_json::Value> = store
        .query(&query)
        .await?
        .into_iter()
        .filter_map(summary)
        .collect();
    Ok(axum::Json(serde_json::Value::Array(items)).into_response())
}

/// Resolves the `{ns}` path segment for `user`: `_` is the caller's namespace; other
/// namespaces are validated and, in this slice, not accessible (403).
pub(crate) fn resolve_namespace(
    user: &Identity,
    ns: &str,
    resource: &str,
) -> Result<String, ApiError> {
    let own = &user.namespace.name;
    if ns == DEFAULT_NAMESPACE || ns == own {
        return Ok(own.clone());
    }
    validate_namespace(ns).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let target = if resource.is_empty() {
        ns.to_string()
    } else {
        format!("{ns}/{resource}")
    };
    Err(ApiError::forbidden(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path with every `{parameter}` (and `{*rest}`) written as `{}`.
    fn shape(path: &str) -> String {
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => in_param = true,
                '}' => {
                    in_param = false;
                    out.push_str("{}");
                }
                _ if !in_param => out.push(c),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn the_openapi_description_documents_every_route() {
        let doc: serde_json::Value = serde_json::from_str(meta::OPENAPI).unwrap();
        let documented: std::collections::HashSet<String> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(|p| shape(p))
            .collect();
        let served: Vec<String> = routes().iter().map(|(p, _)| shape(p)).collect();
        for path in &served {
            assert!(
                documented.contains(path),
                "{path} is served but not documented"
            );
        }
        // The web route's `{*rest}` is documented as the action alone and with a path after it.
        assert!(documented.contains("/api/v1/web/{}/{}/{}/{}"));
        assert_eq!(
            shape("/api/v1/namespaces/{ns}/actions/{pkg}/"),
            "/api/v1/namespaces/{}/actions/{}/"
        );
    }
}
