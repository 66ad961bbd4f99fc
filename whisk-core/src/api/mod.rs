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
mod meta;
mod packages;
mod params;
mod rules;
mod triggers;
pub mod web;

pub use error::ApiError;

use crate::controller::Controller;
use crate::entity::name::{validate_namespace, DEFAULT_NAMESPACE};
use crate::entity::Identity;
use crate::message::TransactionId;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use error::{default_message, ErrorMessage};
use std::sync::Arc;

/// Largest request body the server reads at all (Pekko's `max-content-length`, 50 MB).
const MAX_CONTENT_LENGTH: usize = 50 * 1024 * 1024;

/// Header carrying the activation id on invoke responses.
pub const ACTIVATION_ID_HEADER: &str = "x-openwhisk-activation-id";

/// The shared state of the handlers.
#[derive(Clone)]
pub struct ApiState {
    controller: Arc<Controller>,
    feeds: Option<Arc<crate::feeds::FeedProvider>>,
}

/// Builds the API router.
pub fn router(controller: Arc<Controller>) -> Router {
    build(ApiState {
        controller,
        feeds: None,
    })
}

/// Builds the API router with the feed provider's endpoint
/// (`POST /api/v1/feeds/{package}/{feed}`) served by `feeds`.
pub fn router_with_feeds(
    controller: Arc<Controller>,
    feeds: Arc<crate::feeds::FeedProvider>,
) -> Router {
    build(ApiState {
        controller,
        feeds: Some(feeds),
    })
}

fn build(state: ApiState) -> Router {
    let ns = "/api/v1/namespaces/{ns}";
    let api = Router::new()
        .route("/api/v1", get(meta::api_info))
        .route("/api/v1/api-docs", get(meta::api_docs))
        .route("/api/v1/namespaces", get(meta::namespaces))
        .route(&format!("{ns}/limits"), get(meta::limits))
        .route(
            &format!("{ns}/actions"),
            get(list::<crate::entity::WhiskAction>),
        )
        .route(
            &format!("{ns}/actions/{{name}}"),
            get(actions::get)
                .put(actions::put)
                .delete(actions::delete)
                .post(actions::invoke),
        )
        .route(
            &format!("{ns}/actions/{{pkg}}/"),
            get(packages::list_actions),
        )
        .route(
            &format!("{ns}/actions/{{pkg}}/{{name}}"),
            get(actions::get_in_package)
                .put(actions::put_in_package)
                .delete(actions::delete_in_package)
                .post(actions::invoke_in_package),
        )
        .route(&format!("{ns}/packages"), get(packages::list))
        .route(
            &format!("{ns}/packages/{{name}}"),
            get(packages::get)
                .put(packages::put)
                .delete(packages::delete),
        )
        .route(
            &format!("{ns}/triggers"),
            get(list::<crate::entity::WhiskTrigger>),
        )
        .route(
            &format!("{ns}/triggers/{{name}}"),
            get(triggers::get)
                .put(triggers::put)
                .delete(triggers::delete)
                .post(triggers::fire),
        )
        .route(
            &format!("{ns}/rules"),
            get(list::<crate::entity::WhiskRule>),
        )
        .route(
            &format!("{ns}/rules/{{name}}"),
            get(rules::get)
                .put(rules::put)
                .delete(rules::delete)
                .post(rules::set_status),
        )
        .route(
            "/api/v1/feeds/{package}/{feed}",
            axum::routing::post(feeds::lifecycle),
        )
        .route(&format!("{ns}/activations"), get(activations::list))
        .route(&format!("{ns}/activations/{{id}}"), get(activations::get))
        .route(
            &format!("{ns}/activations/{{id}}/logs"),
            get(activations::logs),
        )
        .route(
            &format!("{ns}/activations/{{id}}/result"),
            get(activations::result),
        )
        .route(
            "/api/v1/web/{ns}/{pkg}/{*rest}",
            axum::routing::any(web::handle),
        );
    Router::new()
        .route("/", get(meta::info))
        .route("/ping", get(|| async { "pong" }))
        .route("/invokers", get(admin::invokers))
        .route("/invokers/healthy/count", get(admin::healthy_count))
        .route("/invokers/ready", get(admin::ready))
        .route("/metrics", get(admin::metrics))
        .route("/console", get(console::index))
        .route("/console/", get(console::index))
        .route("/console/{file}", get(console::asset))
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_CONTENT_LENGTH))
        .layer(middleware::from_fn(transaction))
        .with_state(state)
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
                    default_message(resp.status(), &text)
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
