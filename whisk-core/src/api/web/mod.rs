//! Web actions: `ANY /api/v1/web/{ns}/{pkg|default}/{action}[.ext][/more/path]`, as OpenWhisk's
//! `WebActions.scala` serves them.
//!
//! A web action is an action annotated `web-export: true`. Anyone may call it over plain HTTP;
//! it runs as its namespace's owner. One request goes through these steps:
//!
//! 1. the path names the namespace, the package (`default` for none), the action, an optional
//!    media extension ([`Media`]) and an optional remaining path (`__ow_path`);
//! 2. the owner identity and the action are looked up; any failure, or an action without
//!    `web-export: true`, is 404 without saying which part is missing;
//! 3. Basic credentials, when present and valid, make the caller known (`__ow_user`); the
//!    `require-whisk-auth` annotation decides whether an unknown caller may proceed;
//! 4. the request becomes the action argument ([`request`]) and the action runs blocking for up
//!    to 60 s;
//! 5. the result (or an application error's `error` field) is rendered in the requested media
//!    ([`transcode`]).
//!
//! Unless the action is annotated `web-custom-options: true`, OPTIONS answers a CORS preflight
//! without running the action and every response carries the CORS headers; with it, OPTIONS runs
//! the action like any other method and CORS is the action's business.

mod request;
mod transcode;

use super::actions::invoke_error;
use super::{basic_credentials, ApiError, ApiState, Tid, ACTIVATION_ID_HEADER};
use crate::controller::{Invocation, Invoked, ResolvedAction};
use crate::entity::name::validate_namespace;
use crate::entity::secret::secrets_equal;
use crate::entity::{EntityName, Identity, Parameters, StatusCode as Status, WhiskActivation};
use crate::message::TransactionId;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use request::WebRequest;
use serde_json::{json, Value};
use std::time::Duration;
pub(crate) use transcode::ActionResponse;
use transcode::{Media, PROPERTY_NOT_FOUND};

/// How long a web request waits for its activation (OpenWhisk's maximum blocking wait).
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The request header that must match a string or number `require-whisk-auth` annotation.
const REQUIRE_WHISK_AUTH_HEADER: &str = "x-require-whisk-auth";

/// The methods web actions accept.
const ALLOWED_METHODS: [Method; 7] = [
    Method::GET,
    Method::DELETE,
    Method::POST,
    Method::PUT,
    Method::HEAD,
    Method::OPTIONS,
    Method::PATCH,
];

/// `Access-Control-Allow-Methods` of web action responses.
const CORS_ALLOW_METHODS: &str = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH";

/// `Access-Control-Allow-Headers` when the request has no `Access-Control-Request-Headers`.
const CORS_ALLOW_HEADERS: &str =
    "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent";

/// The 401 message (Pekko's default text for the status, which OpenWhisk sends here).
const UNAUTHORIZED: &str = "Authentication is possible but has failed or not yet been provided.";

/// The 400 message for developer and whisk errors.
const ERROR_PROCESSING_REQUEST: &str = "There was an error processing your request.";

/// The 202 message when the activation outlasts the wait.
const RESPONSE_NOT_READY: &str = "Response not yet ready.";

/// Annotations that control web actions.
mod annotation {
    /// Makes an action a web action.
    pub const WEB_EXPORT: &str = "web-export";
    /// Passes query and body unparsed (`__ow_query`, `__ow_body`).
    pub const RAW_HTTP: &str = "raw-http";
    /// Lets the action answer OPTIONS and set its own CORS headers.
    pub const WEB_CUSTOM_OPTIONS: &str = "web-custom-options";
    /// `true`: callers must authenticate; a string or number: the secret callers must send.
    pub const REQUIRE_WHISK_AUTH: &str = "require-whisk-auth";
}

/// The parts of a web action path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPath {
    /// The namespace segment.
    pub ns: String,
    /// The package, `None` for `default`.
    pub pkg: Option<String>,
    /// The action name without its extension.
    pub name: String,
    /// The response media the extension asks for.
    media: Media,
    /// What follows the action segment (`__ow_path`): `""` or `/...`, still percent-encoded.
    pub rest: String,
}

impl WebPath {
    /// Parses a request path `/api/v1/web/{ns}/{pkg}/{action}[.ext][/rest]`; `None` unless
    /// the namespace, package and action are valid names.
    pub fn parse(path: &str) -> Option<Self> {
        let mut parts = path.strip_prefix("/api/v1/web/")?.splitn(4, '/');
        let ns = request::percent_decode(parts.next()?, false);
        let pkg = request::percent_decode(parts.next()?, false);
        let segment = request::percent_decode(parts.next()?, false);
        let rest = parts.next().map(|r| format!("/{r}")).unwrap_or_default();
        let (name, media) = Media::split(&segment);
        validate_namespace(&ns).ok()?;
        EntityName::new(&pkg).ok()?;
        EntityName::new(name).ok()?;
        Some(Self {
            ns,
            pkg: (pkg != "default").then_some(pkg),
            name: name.to_string(),
            media,
            rest,
        })
    }

    /// The action's path for resolution: `ns` or `ns/pkg`.
    pub fn action_path(&self) -> String {
        match &self.pkg {
            Some(p) => format!("{}/{p}", self.ns),
            None => self.ns.clone(),
        }
    }
}

/// Whether annotation `key` is the JSON boolean `true` (OpenWhisk reads these annotations as
/// booleans: a string `"true"` does not count).
fn annotated(annotations: &Parameters, key: &str) -> bool {
    annotations.get(key) == Some(&Value::Bool(true))
}

/// Serves a web action request.
pub(crate) async fn handle(
    State(s): State<ApiState>,
    Tid(tid): Tid,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !ALLOWED_METHODS.contains(&method) {
        // The transaction middleware words the error from `Allow` (RFC 9110 requires it on 405).
        let allow = ALLOWED_METHODS
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>();
        let allow = allow.join(", ");
        return Ok((StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, allow)]).into_response());
    }
    let target = WebPath::parse(uri.path()).ok_or_else(ApiError::not_found)?;
    let (owner, action) = verify(&s, &target).await?;
    let caller = caller(&s, &headers).await;
    let custom_options = annotated(&action.action.annotations, annotation::WEB_CUSTOM_OPTIONS);
    let call = Call {
        owner,
        action,
        caller,
        media: target.media,
        req: WebRequest {
            method: &method,
            headers: &headers,
            path: &target.rest,
            query: uri.query(),
            body,
        },
    };
    if custom_options {
        // The action answers OPTIONS itself, even for callers it would not otherwise admit.
        if method != Method::OPTIONS && !call.authorized() {
            return Err(unauthorized());
        }
        return Ok(call.run(&s, tid).await);
    }
    let mut resp = if method == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else if !call.authorized() {
        unauthorized().into_response()
    } else {
        call.run(&s, tid).await
    };
    add_cors_headers(resp.headers_mut(), &headers);
    Ok(resp)
}

/// 401 for a caller that `require-whisk-auth` does not admit.
fn unauthorized() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED)
}

/// Looks up the namespace owner and the exported action; every failure is 404 so nothing about
/// the namespace's contents leaks.
async fn verify(s: &ApiState, target: &WebPath) -> Result<(Identity, ResolvedAction), ApiError> {
    let store = s.controller.store();
    let owner = match store.namespace_identity(&target.ns).await {
        Ok(Some(owner)) => owner,
        Ok(None) => return Err(ApiError::not_found()),
        Err(e) => {
            tracing::warn!(ns = %target.ns, error = %e, "web action owner lookup failed");
            return Err(ApiError::not_found());
        }
    };
    let action = s
        .controller
        .resolve_action(&owner, &target.action_path(), &target.name)
        .await
        .map_err(|_| ApiError::not_found())?;
    if !annotated(&action.action.annotations, annotation::WEB_EXPORT) {
        return Err(ApiError::not_found());
    }
    Ok((owner, action))
}

/// The caller's identity when the request carries valid Basic credentials; invalid or missing
/// credentials make an anonymous caller, never an error.
async fn caller(s: &ApiState, headers: &HeaderMap) -> Option<Identity> {
    let (uuid, key) = basic_credentials(headers)?;
    match s.controller.authenticate(&uuid, &key).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(error = %e, "web action caller authentication failed");
            None
        }
    }
}

/// Whether the caller may run the action under its `require-whisk-auth` annotation: absent or
/// `false` admits everyone; `true` admits authenticated callers; a string or number admits
/// requests whose `X-Require-Whisk-Auth` header equals it (compared in constant time);
/// anything else admits no one.
fn authorized(annotations: &Parameters, headers: &HeaderMap, caller: &Option<Identity>) -> bool {
    let secret_matches = |expected: &str| {
        headers
            .get(REQUIRE_WHISK_AUTH_HEADER)
            .is_some_and(|v| secrets_equal(v.as_bytes(), expected.as_bytes()))
    };
    match annotations.get(annotation::REQUIRE_WHISK_AUTH) {
        None | Some(Value::Bool(false)) => true,
        Some(Value::Bool(true)) => caller.is_some(),
        Some(Value::String(secret)) => secret_matches(secret),
        Some(Value::Number(secret)) => secret_matches(&secret.to_string()),
        Some(_) => false,
    }
}

/// A verified web action request.
struct Call<'a> {
    /// The namespace owner, who runs the action.
    owner: Identity,
    /// The action.
    action: ResolvedAction,
    /// The authenticated caller, if any.
    caller: Option<Identity>,
    /// The media the result is rendered in.
    media: Media,
    /// The request.
    req: WebRequest<'a>,
}

impl Call<'_> {
    /// Whether the caller may run the action (see [`authorized`]).
    fn authorized(&self) -> bool {
        authorized(
            &self.action.action.annotations,
            self.req.headers,
            &self.caller,
        )
    }

    /// Runs the action and renders the outcome; every failure is an error response, so the
    /// caller can still add its headers.
    async fn run(self, s: &ApiState, tid: TransactionId) -> Response {
        let max = s.controller.config().limits.max_payload_bytes;
        if self.req.body.len() as u64 > max {
            return ApiError::too_large("Request", self.req.body.len(), max).into_response();
        }
        let raw = annotated(&self.action.action.annotations, annotation::RAW_HTTP);
        let args =
            match request::arguments(&self.req, self.caller.as_ref(), &self.action.action, raw) {
                Ok(args) => args,
                Err(e) => return e.into_response(),
            };
        let code = tid.id().to_string();
        let inv = Invocation {
            user: self.owner,
            action: self.action,
            args,
            blocking: true,
            wait: MAX_WAIT,
            transid: tid,
            cause: None,
        };
        let (id, mut resp) = match s.controller.invoke(inv).await.map_err(invoke_error) {
            Err(e) => return e.into_response(),
            Ok(Invoked::Accepted(id)) => {
                let body = json!({ "error": RESPONSE_NOT_READY, "code": code });
                (id, (StatusCode::ACCEPTED, Json(body)).into_response())
            }
            Ok(Invoked::Completed(a)) => (
                a.activation_id.clone(),
                respond(&a, self.media).unwrap_or_else(IntoResponse::into_response),
            ),
        };
        if let Ok(v) = HeaderValue::from_str(id.as_str()) {
            resp.headers_mut().insert(ACTIVATION_ID_HEADER, v);
        }
        resp
    }
}

/// Renders a finished activation: a success's result, or an application error's `error`
/// field, in `media`; developer and whisk errors are 400 without details.
fn respond(a: &WhiskActivation, media: Media) -> Result<Response, ApiError> {
    let result = a.response.result.clone().unwrap_or_else(|| json!({}));
    match a.response.status {
        Status::Success => media.render(&result),
        Status::ApplicationError => match result.get("error") {
            Some(error) => media.render(error),
            None => Err(ApiError::new(StatusCode::NOT_FOUND, PROPERTY_NOT_FOUND)),
        },
        Status::DeveloperError | Status::WhiskError => {
            Err(ApiError::bad_request(ERROR_PROCESSING_REQUEST))
        }
    }
}

/// Adds the web actions' CORS headers to `out` where the action did not set them itself;
/// `Access-Control-Allow-Headers` echoes the request's `Access-Control-Request-Headers`.
fn add_cors_headers(out: &mut HeaderMap, request: &HeaderMap) {
    let allow_headers = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static(CORS_ALLOW_HEADERS));
    out.entry(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .or_insert(HeaderValue::from_static("*"));
    out.entry(header::ACCESS_CONTROL_ALLOW_METHODS)
        .or_insert(HeaderValue::from_static(CORS_ALLOW_METHODS));
    out.entry(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .or_insert(allow_headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_namespace_package_action_extension_and_rest() {
        let p = WebPath::parse("/api/v1/web/guest/default/hello.json/a/b").unwrap();
        assert_eq!(
            p,
            WebPath {
                ns: "guest".into(),
                pkg: None,
                name: "hello".into(),
                media: Media::Json,
                rest: "/a/b".into(),
            }
        );
        assert_eq!(p.action_path(), "guest");
        let p = WebPath::parse("/api/v1/web/guest/pkg/my%20act").unwrap();
        assert_eq!((p.name.as_str(), p.media), ("my act", Media::Http));
        assert_eq!((p.rest.as_str(), p.action_path()), ("", "guest/pkg".into()));
        let p = WebPath::parse("/api/v1/web/guest/default/a.foo/").unwrap();
        assert_eq!(
            (p.name.as_str(), p.media, p.rest.as_str()),
            ("a.foo", Media::Http, "/")
        );
        assert!(WebPath::parse("/api/v1/web/guest/default/.json").is_none());
        assert!(WebPath::parse("/api/v1/web/guest/default").is_none());
        assert!(WebPath::parse("/api/v1/web/guest%2Fpkg/default/a").is_none());
        assert!(WebPath::parse("/api/v1/web/guest/pkg%2Fx/a").is_none());
        assert!(WebPath::parse("/api/v1/web/guest/pkg/a%2Fb").is_none());
    }

    #[test]
    fn require_whisk_auth_values() {
        let with = |v: Value| Parameters::new().with(annotation::REQUIRE_WHISK_AUTH, v);
        let mut h = HeaderMap::new();
        let user = Some(Identity::new(
            "guest",
            "guest",
            &crate::entity::AuthKey::parse(crate::entity::identity::GUEST_KEY).unwrap(),
        ));
        assert!(authorized(&Parameters::new(), &h, &None));
        assert!(authorized(&with(json!(false)), &h, &None));
        assert!(!authorized(&with(json!(true)), &h, &None));
        assert!(authorized(&with(json!(true)), &h, &user));
        assert!(!authorized(&with(json!("s3cret")), &h, &user));
        assert!(!authorized(&with(json!(null)), &h, &user));
        h.insert(
            REQUIRE_WHISK_AUTH_HEADER,
            HeaderValue::from_static("s3cret"),
        );
        assert!(authorized(&with(json!("s3cret")), &h, &None));
        assert!(!authorized(&with(json!("other")), &h, &None));
        h.insert(REQUIRE_WHISK_AUTH_HEADER, HeaderValue::from_static("42"));
        assert!(authorized(&with(json!(42)), &h, &None));
    }

    #[test]
    fn web_annotations_are_booleans() {
        let a = Parameters::new()
            .with("web-export", json!(true))
            .with("raw-http", json!("true"));
        assert!(annotated(&a, annotation::WEB_EXPORT));
        assert!(!annotated(&a, annotation::RAW_HTTP));
        assert!(!annotated(&a, annotation::WEB_CUSTOM_OPTIONS));
    }

    #[test]
    fn cors_headers_echo_requested_headers_and_keep_the_actions_own() {
        let mut req = HeaderMap::new();
        let mut out = HeaderMap::new();
        add_cors_headers(&mut out, &req);
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_HEADERS],
            CORS_ALLOW_HEADERS
        );
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_METHODS],
            CORS_ALLOW_METHODS
        );
        req.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-a"),
        );
        let mut out = HeaderMap::new();
        out.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://example.com"),
        );
        add_cors_headers(&mut out, &req);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_HEADERS], "x-a");
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://example.com"
        );
    }
}
