//! Web actions end to end: `/api/v1/web/{ns}/{pkg|default}/{action}[.ext][/path]` with real
//! Node.js actions — lookups, the action argument, raw HTTP, reserved and final parameters,
//! `require-whisk-auth`, the media extensions, errors, CORS and packages.

mod common;

use base64::Engine;
use common::{assert_error, assert_error_prefix, Platform, Resp};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use whisk_core::entity::identity::GUEST_KEY;

/// Returns its argument.
const ECHO: &str = "function main(p) { return p; }";

/// Returns the `r` field of its argument (POST `{"r": ...}` to choose the result).
const RESULT: &str = "function main(p) { return p.r; }";

/// Web actions of the guest namespace without a package.
const WEB: &str = "/api/v1/web/guest/default";

/// OpenWhisk's 404 message.
const NOT_FOUND: &str = "The requested resource does not exist.";

/// OpenWhisk's message for query or body fields that set reserved or final parameters.
const NOT_ALLOWED: &str =
    "Request defines parameters that are not allowed (e.g., reserved properties).";

/// The web actions' `Access-Control-Allow-Methods`.
const ALLOW_METHODS: &str = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH";

/// The default `Access-Control-Allow-Headers`.
const ALLOW_HEADERS: &str =
    "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent";

/// `{"annotations": [...]}` with `web-export: true` and `extra` annotations.
fn web_action(extra: &[(&str, Value)]) -> Value {
    let mut list = vec![json!({"key": "web-export", "value": true})];
    list.extend(extra.iter().map(|(k, v)| json!({"key": k, "value": v})));
    json!({ "annotations": list })
}

/// A web request being built.
struct Req {
    rb: reqwest::RequestBuilder,
}

impl Req {
    /// `method` on `path` (absolute, starting with `/api/v1/web/`), not following redirects.
    fn new(p: &Platform, method: Method, path: &str) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let rb = client.request(method, format!("{}{path}", p.base));
        Self { rb }
    }

    /// Adds a header.
    fn header(mut self, name: &str, value: &str) -> Self {
        self.rb = self.rb.header(name, value);
        self
    }

    /// Authenticates as `guest` (or with another `uuid:key`).
    fn auth(mut self, key: &str) -> Self {
        let (u, k) = key.split_once(':').unwrap();
        self.rb = self.rb.basic_auth(u, Some(k));
        self
    }

    /// A JSON body.
    fn json(self, body: Value) -> Self {
        self.body("application/json", body.to_string().into_bytes())
    }

    /// A body of `content_type`.
    fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.rb = self.rb.header("content-type", content_type).body(body);
        self
    }

    /// Sends the request: the response and its raw bytes.
    async fn send_bytes(self) -> (Resp, Vec<u8>) {
        let r = self.rb.send().await.expect("request sent");
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap().to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        let resp = Resp {
            status,
            headers,
            body,
            text,
        };
        (resp, bytes)
    }

    /// Sends the request.
    async fn send(self) -> Resp {
        self.send_bytes().await.0
    }
}

/// A `GET` of `path`.
async fn get(p: &Platform, path: &str) -> Resp {
    Req::new(p, Method::GET, path).send().await
}

/// A `POST` of `{"r": result}` to `path` (with the `RESULT` action: renders `result`).
async fn post_result(p: &Platform, path: &str, result: Value) -> Resp {
    Req::new(p, Method::POST, path)
        .json(json!({ "r": result }))
        .send()
        .await
}

/// Header `name` of `r` as text.
fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

/// Asserts a 200 with a JSON body and returns it.
fn ok_json(r: &Resp) -> &Value {
    assert_eq!(r.status, StatusCode::OK, "body: {}", r.text);
    assert!(r.body.is_object() || r.body.is_array(), "body: {}", r.text);
    &r.body
}

#[tokio::test]
async fn lookups_fail_with_404_and_no_details() {
    let p = Platform::start().await;
    p.action("hidden", "nodejs:20", ECHO, json!({})).await;
    p.action(
        "notexported",
        "nodejs:20",
        ECHO,
        json!({"annotations": [{"key": "web-export", "value": false}]}),
    )
    .await;
    p.action(
        "stringexport",
        "nodejs:20",
        ECHO,
        json!({"annotations": [{"key": "web-export", "value": "true"}]}),
    )
    .await;
    p.action("echo", "nodejs:20", ECHO, web_action(&[])).await;
    for path in [
        format!("{WEB}/hidden.json"),
        format!("{WEB}/notexported.json"),
        format!("{WEB}/stringexport.json"),
        format!("{WEB}/missing.json"),
        "/api/v1/web/nobody/default/echo.json".to_string(),
        "/api/v1/web/_/default/echo.json".to_string(),
        "/api/v1/web/guest/nopackage/echo.json".to_string(),
    ] {
        let r = get(&p, &path).await;
        assert_error(&r, StatusCode::NOT_FOUND, NOT_FOUND);
        assert!(!r.headers.contains_key("x-openwhisk-activation-id"));
        // Authentication does not reveal more.
        let r = Req::new(&p, Method::GET, &path)
            .auth(GUEST_KEY)
            .send()
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, NOT_FOUND);
    }
    let r = get(&p, &format!("{WEB}/echo.json")).await;
    assert_eq!(ok_json(&r)["__ow_method"], "get");
    let id = header(&r.headers, "x-openwhisk-activation-id").expect("activation id header");
    let a = p
        .get(&format!("/api/v1/namespaces/_/activations/{id}"))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["name"], "echo");
    assert_eq!(a.body["subject"], "guest", "runs as the namespace owner");
}

#[tokio::test]
async fn the_argument_carries_the_request() {
    let p = Platform::start().await;
    p.action(
        "echo",
        "nodejs:20",
        ECHO,
        json!({
            "parameters": [{"key": "p", "value": "param"}, {"key": "q", "value": "param"}],
            "annotations": [{"key": "web-export", "value": true}],
        }),
    )
    .await;

    // GET: method, headers, path, query over parameters; no body, no user.
    let r = Req::new(
        &p,
        Method::GET,
        &format!("{WEB}/echo.json/a/b?q=query&n=1&s=x+y%21"),
    )
    .header("X-Custom", "custom value")
    .send()
    .await;
    let a = ok_json(&r);
    assert_eq!(a["__ow_method"], "get");
    assert_eq!(a["__ow_path"], "/a/b");
    assert_eq!(a["__ow_headers"]["x-custom"], "custom value");
    assert!(a["__ow_headers"]["host"].is_string());
    assert!(a["__ow_headers"].get("content-length").is_none());
    assert_eq!((&a["p"], &a["q"]), (&json!("param"), &json!("query")));
    assert_eq!((&a["n"], &a["s"]), (&json!("1"), &json!("x y!")));
    for absent in ["__ow_user", "__ow_body", "__ow_query"] {
        assert!(a.get(absent).is_none(), "{absent} in {a}");
    }
    let r = get(&p, &format!("{WEB}/echo.json")).await;
    assert_eq!(ok_json(&r)["__ow_path"], "");

    // A JSON object body is merged over the query.
    let r = Req::new(
        &p,
        Method::POST,
        &format!("{WEB}/echo.json?q=query&k=query"),
    )
    .json(json!({"q": "body", "o": {"x": 1}}))
    .send()
    .await;
    let a = ok_json(&r);
    assert_eq!(a["__ow_method"], "post");
    assert_eq!(a["__ow_headers"]["content-type"], "application/json");
    assert_eq!((&a["q"], &a["k"]), (&json!("body"), &json!("query")));
    assert_eq!(a["o"], json!({"x": 1}));

    // Other JSON values, text, forms and binary data.
    let r = Req::new(&p, Method::PUT, &format!("{WEB}/echo.json"))
        .json(json!([1, "two"]))
        .send()
        .await;
    let a = ok_json(&r);
    assert_eq!(
        (&a["__ow_method"], &a["__ow_body"]),
        (&json!("put"), &json!([1, "two"]))
    );
    let r = Req::new(&p, Method::POST, &format!("{WEB}/echo.json"))
        .json(json!("just a string"))
        .send()
        .await;
    assert_eq!(ok_json(&r)["__ow_body"], "just a string");
    let r = Req::new(&p, Method::POST, &format!("{WEB}/echo.json?f=query"))
        .body(
            "application/x-www-form-urlencoded",
            b"f=1&g=two+words&h=%C3%A9".to_vec(),
        )
        .send()
        .await;
    let a = ok_json(&r);
    assert_eq!(
        (&a["f"], &a["g"], &a["h"]),
        (&json!("1"), &json!("two words"), &json!("é"))
    );
    assert!(a.get("__ow_body").is_none());
    let r = Req::new(&p, Method::PATCH, &format!("{WEB}/echo.json"))
        .body("text/plain; charset=utf-8", b"hello web".to_vec())
        .send()
        .await;
    let a = ok_json(&r);
    assert_eq!(
        (&a["__ow_method"], &a["__ow_body"]),
        (&json!("patch"), &json!("hello web"))
    );
    let r = Req::new(&p, Method::POST, &format!("{WEB}/echo.json"))
        .body("application/xml", b"<a>1</a>".to_vec())
        .send()
        .await;
    assert_eq!(ok_json(&r)["__ow_body"], "<a>1</a>");
    let binary = vec![0u8, 1, 2, 254, 255];
    let r = Req::new(&p, Method::DELETE, &format!("{WEB}/echo.json"))
        .body("application/octet-stream", binary.clone())
        .send()
        .await;
    let a = ok_json(&r);
    assert_eq!(a["__ow_method"], "delete");
    assert_eq!(
        a["__ow_body"],
        base64::engine::general_purpose::STANDARD.encode(&binary)
    );

    let r = Req::new(&p, Method::POST, &format!("{WEB}/echo.json"))
        .body("application/json", b"{not json".to_vec())
        .send()
        .await;
    assert_error_prefix(
        &r,
        StatusCode::BAD_REQUEST,
        "The request content was malformed",
    );

    // `__ow_user` only for authenticated callers; bad credentials make an anonymous caller.
    let r = Req::new(&p, Method::GET, &format!("{WEB}/echo.json"))
        .auth(GUEST_KEY)
        .send()
        .await;
    assert_eq!(ok_json(&r)["__ow_user"], "guest");
    let wrong = format!(
        "{}:{}",
        GUEST_KEY.split_once(':').unwrap().0,
        "x".repeat(64)
    );
    let r = Req::new(&p, Method::GET, &format!("{WEB}/echo.json"))
        .auth(&wrong)
        .send()
        .await;
    assert!(ok_json(&r).get("__ow_user").is_none());
}

#[tokio::test]
async fn raw_http_actions_get_query_and_body_unparsed() {
    let p = Platform::start().await;
    p.action(
        "raw",
        "nodejs:20",
        ECHO,
        web_action(&[("raw-http", json!(true))]),
    )
    .await;
    let r = get(&p, &format!("{WEB}/raw.json/x?a=1&b=x+y&__ow_method=z")).await;
    let a = ok_json(&r);
    assert_eq!(a["__ow_query"], "a=1&b=x+y&__ow_method=z");
    assert_eq!(a["__ow_body"], "");
    assert_eq!(
        (&a["__ow_method"], &a["__ow_path"]),
        (&json!("get"), &json!("/x"))
    );
    assert!(a.get("a").is_none());
    let r = get(&p, &format!("{WEB}/raw.json")).await;
    assert_eq!(ok_json(&r)["__ow_query"], "");

    let r = Req::new(&p, Method::POST, &format!("{WEB}/raw.json"))
        .json(json!({"a": 1}))
        .send()
        .await;
    let a = ok_json(&r);
    assert_eq!(
        a["__ow_body"],
        base64::engine::general_purpose::STANDARD.encode(br#"{"a":1}"#)
    );
    assert!(a.get("a").is_none());
    let r = Req::new(&p, Method::POST, &format!("{WEB}/raw.json"))
        .body("application/x-www-form-urlencoded", b"a=1&b=2".to_vec())
        .send()
        .await;
    assert_eq!(ok_json(&r)["__ow_body"], "a=1&b=2");
    let r = Req::new(&p, Method::POST, &format!("{WEB}/raw.json"))
        .body("text/plain", b"plain text".to_vec())
        .send()
        .await;
    assert_eq!(ok_json(&r)["__ow_body"], "plain text");
    let r = Req::new(&p, Method::POST, &format!("{WEB}/raw.json"))
        .body("image/png", vec![137, 80, 78, 71])
        .send()
        .await;
    assert_eq!(ok_json(&r)["__ow_body"], "iVBORw==");
}

#[tokio::test]
async fn reserved_and_final_parameters_are_refused() {
    let p = Platform::start().await;
    p.action("echo", "nodejs:20", ECHO, web_action(&[])).await;
    p.action(
        "fixed",
        "nodejs:20",
        ECHO,
        json!({
            "parameters": [{"key": "a", "value": 1}, {"key": "z", "value": null}],
            "annotations": [
                {"key": "web-export", "value": true},
                {"key": "final", "value": true},
            ],
        }),
    )
    .await;
    let r = get(&p, &format!("{WEB}/echo.json?__ow_method=put")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, NOT_ALLOWED);
    let r = Req::new(&p, Method::POST, &format!("{WEB}/echo.json"))
        .json(json!({"__ow_path": "/elsewhere"}))
        .send()
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, NOT_ALLOWED);
    let r = Req::new(&p, Method::POST, &format!("{WEB}/echo.json"))
        .body(
            "application/x-www-form-urlencoded",
            b"__ow_user=me".to_vec(),
        )
        .send()
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, NOT_ALLOWED);
    // Other `__ow_` names are ordinary.
    let r = get(&p, &format!("{WEB}/echo.json?__ow_other=1")).await;
    assert_eq!(ok_json(&r)["__ow_other"], "1");

    let r = get(&p, &format!("{WEB}/fixed.json?a=2")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, NOT_ALLOWED);
    let r = Req::new(&p, Method::POST, &format!("{WEB}/fixed.json"))
        .json(json!({"a": 2}))
        .send()
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, NOT_ALLOWED);
    let r = get(&p, &format!("{WEB}/fixed.json?b=2&z=3")).await;
    let a = ok_json(&r);
    assert_eq!(
        (&a["a"], &a["b"], &a["z"]),
        (&json!(1), &json!("2"), &json!("3"))
    );

    // Bodies over the payload limit.
    let big = vec![b'x'; 1024 * 1024 + 1];
    let r = Req::new(&p, Method::POST, &format!("{WEB}/echo.json"))
        .body("text/plain", big)
        .send()
        .await;
    assert_error_prefix(
        &r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request larger than allowed",
    );
}

#[tokio::test]
async fn require_whisk_auth_admits_authenticated_callers_or_secret_holders() {
    const UNAUTHORIZED: &str =
        "Authentication is possible but has failed or not yet been provided.";
    let p = Platform::start().await;
    for (name, value) in [
        ("authtrue", json!(true)),
        ("authsecret", json!("s3cret")),
        ("authnumber", json!(1234)),
        ("authfalse", json!(false)),
    ] {
        let extra = web_action(&[("require-whisk-auth", value)]);
        p.action(name, "nodejs:20", ECHO, extra).await;
    }
    let path = format!("{WEB}/authtrue.json");
    let r = get(&p, &path).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    assert!(!r.headers.contains_key("x-openwhisk-activation-id"));
    assert_eq!(header(&r.headers, "access-control-allow-origin"), Some("*"));
    let wrong = format!(
        "{}:{}",
        GUEST_KEY.split_once(':').unwrap().0,
        "x".repeat(64)
    );
    let r = Req::new(&p, Method::GET, &path).auth(&wrong).send().await;
    assert_error(&r, StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    let r = Req::new(&p, Method::GET, &path)
        .auth(GUEST_KEY)
        .send()
        .await;
    assert_eq!(ok_json(&r)["__ow_user"], "guest");

    let path = format!("{WEB}/authsecret.json");
    assert_error(
        &get(&p, &path).await,
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
    );
    let r = Req::new(&p, Method::GET, &path)
        .header("X-Require-Whisk-Auth", "wrong")
        .send()
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    let r = Req::new(&p, Method::GET, &path)
        .auth(GUEST_KEY)
        .send()
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    let r = Req::new(&p, Method::GET, &path)
        .header("X-Require-Whisk-Auth", "s3cret")
        .send()
        .await;
    let a = ok_json(&r);
    assert!(a.get("__ow_user").is_none());
    assert_eq!(a["__ow_headers"]["x-require-whisk-auth"], "s3cret");

    let path = format!("{WEB}/authnumber.json");
    assert_error(
        &get(&p, &path).await,
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
    );
    let r = Req::new(&p, Method::GET, &path)
        .header("x-require-whisk-auth", "1234")
        .send()
        .await;
    ok_json(&r);

    ok_json(&get(&p, &format!("{WEB}/authfalse.json")).await);
}

#[tokio::test]
async fn http_results_set_status_headers_and_body() {
    let p = Platform::start().await;
    p.action("result", "nodejs:20", RESULT, web_action(&[]))
        .await;
    let http = format!("{WEB}/result.http");

    let r = post_result(
        &p,
        &http,
        json!({
            "statusCode": 201,
            "headers": {"X-A": "a", "Set-Cookie": ["a=1", "b=2"], "X-N": 5, "X-B": false},
            "body": "<p>made</p>",
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.text, "<p>made</p>");
    assert_eq!(
        header(&r.headers, "content-type"),
        Some("text/html; charset=UTF-8")
    );
    assert_eq!(header(&r.headers, "x-a"), Some("a"));
    assert_eq!(header(&r.headers, "x-n"), Some("5"));
    assert_eq!(header(&r.headers, "x-b"), Some("false"));
    let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert!(r.headers.contains_key("x-openwhisk-activation-id"));
    assert_eq!(header(&r.headers, "access-control-allow-origin"), Some("*"));

    // No extension means .http; a numeric string status; a text type gets a charset.
    let r = post_result(
        &p,
        &format!("{WEB}/result"),
        json!({"statusCode": "202", "headers": {"content-type": "text/plain"}, "body": "later"}),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::ACCEPTED, "later"));
    assert_eq!(
        header(&r.headers, "content-type"),
        Some("text/plain; charset=UTF-8")
    );
    let r = post_result(
        &p,
        &http,
        json!({"statusCode": 302, "headers": {"location": "https://openwhisk.apache.org"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        header(&r.headers, "location"),
        Some("https://openwhisk.apache.org")
    );

    // JSON bodies.
    let r = post_result(&p, &http, json!({"body": {"a": [1, 2]}})).await;
    assert_eq!(ok_json(&r), &json!({"a": [1, 2]}));
    assert_eq!(header(&r.headers, "content-type"), Some("application/json"));
    let r = post_result(&p, &http, json!({"statusCode": 200, "body": 3})).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "3"));
    let r = post_result(
        &p,
        &http,
        json!({"headers": {"Content-Type": "application/problem+json"}, "body": {"title": "t"}}),
    )
    .await;
    assert_eq!(r.body, json!({"title": "t"}));
    assert_eq!(
        header(&r.headers, "content-type"),
        Some("application/problem+json")
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(br#"{"b":true}"#);
    let r = post_result(
        &p,
        &http,
        json!({"headers": {"content-type": "application/json"}, "body": encoded}),
    )
    .await;
    assert_eq!(ok_json(&r), &json!({"b": true}));

    // Binary bodies are base64-decoded.
    let png = vec![
        0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0xff,
    ];
    let encoded = base64::engine::general_purpose::STANDARD.encode(&png);
    for ct in ["image/png", "application/octet-stream"] {
        let (r, bytes) = Req::new(&p, Method::POST, &http)
            .json(json!({"r": {"headers": {"Content-Type": ct}, "body": encoded}}))
            .send_bytes()
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(header(&r.headers, "content-type"), Some(ct));
        assert_eq!(bytes, png);
    }

    // Empty bodies: 204 unless a status is given; no content type.
    for result in [json!({}), json!({"body": ""}), json!({"body": null})] {
        let r = post_result(&p, &http, result).await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::NO_CONTENT, ""));
        assert!(r.headers.contains_key("x-openwhisk-activation-id"));
    }
    let r = post_result(
        &p,
        &http,
        json!({"statusCode": 200, "headers": {"content-type": "application/json", "X-K": "k"}}),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, ""));
    assert_eq!(header(&r.headers, "x-k"), Some("k"));
    assert_ne!(header(&r.headers, "content-type"), Some("application/json"));

    // Invalid descriptions.
    for result in [
        json!({"headers": "x"}),
        json!({"headers": {"a": null}}),
        json!({"statusCode": "abc"}),
        json!({"statusCode": 42}),
        json!([1, 2]),
    ] {
        let r = post_result(&p, &http, result).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "Response is not valid 'message/http'.",
        );
        assert!(r.headers.contains_key("x-openwhisk-activation-id"));
    }
    let r = post_result(
        &p,
        &http,
        json!({"headers": {"content-type": "text/html"}, "body": {"a": 1}}),
    )
    .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Response type in header did not match generated content type.",
    );
    let r = post_result(
        &p,
        &http,
        json!({"headers": {"content-type": "xyzbar"}, "body": "hello"}),
    )
    .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Response did not specify a known content-type.",
    );
}

#[tokio::test]
async fn extensions_select_the_media() {
    let p = Platform::start().await;
    p.action("result", "nodejs:20", RESULT, web_action(&[]))
        .await;

    let r = post_result(&p, &format!("{WEB}/result.json"), json!({"a": {"b": 1}})).await;
    assert_eq!(ok_json(&r), &json!({"a": {"b": 1}}));
    assert_eq!(header(&r.headers, "content-type"), Some("application/json"));
    let r = post_result(&p, &format!("{WEB}/result.json"), json!([1, 2])).await;
    assert_eq!(ok_json(&r), &json!([1, 2]));

    let r = post_result(
        &p,
        &format!("{WEB}/result.html"),
        json!({"html": "<b>x</b>"}),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "<b>x</b>"));
    assert_eq!(
        header(&r.headers, "content-type"),
        Some("text/html; charset=UTF-8")
    );
    let r = post_result(
        &p,
        &format!("{WEB}/result.html"),
        json!({"body": "<i>body</i>", "html": "<b>html</b>"}),
    )
    .await;
    assert_eq!(r.text, "<i>body</i>");
    let r = post_result(&p, &format!("{WEB}/result.html"), json!({"text": "t"})).await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Response is not valid 'text/html'.",
    );

    let svg = r#"<svg><circle cx="3" cy="3" r="3"/></svg>"#;
    let r = post_result(&p, &format!("{WEB}/result.svg"), json!({ "svg": svg })).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, svg));
    assert_eq!(header(&r.headers, "content-type"), Some("image/svg+xml"));
    let r = post_result(&p, &format!("{WEB}/result.svg"), json!({})).await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Response is not valid 'image/svg+xml'.",
    );

    let r = post_result(&p, &format!("{WEB}/result.text"), json!({"text": "plain"})).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "plain"));
    assert_eq!(
        header(&r.headers, "content-type"),
        Some("text/plain; charset=UTF-8")
    );
    let r = post_result(&p, &format!("{WEB}/result.text"), json!({"body": 12})).await;
    assert_eq!(r.text, "12");
    let r = post_result(&p, &format!("{WEB}/result.text"), json!({"html": "x"})).await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "Response does not include requested property.",
    );
    assert!(r.headers.contains_key("x-openwhisk-activation-id"));

    // The extension comes off the action segment only; the rest is the path.
    let r = Req::new(&p, Method::POST, &format!("{WEB}/result.text/more/path"))
        .json(json!({"r": {"text": "with path"}}))
        .send()
        .await;
    assert_eq!(r.text, "with path");
}

#[tokio::test]
async fn errors_are_rendered_or_hidden() {
    let p = Platform::start().await;
    p.action(
        "apperr",
        "nodejs:20",
        "function main(p) { return {error: p.e}; }",
        web_action(&[]),
    )
    .await;
    p.action(
        "rejects",
        "nodejs:20",
        "function main(p) { return Promise.reject({statusCode: 409, body: 'taken'}); }",
        web_action(&[]),
    )
    .await;
    p.action(
        "throws",
        "nodejs:20",
        "function main() { throw new Error('secret detail'); }",
        web_action(&[]),
    )
    .await;
    p.action(
        "scalar",
        "nodejs:20",
        "function main() { return 7; }",
        web_action(&[]),
    )
    .await;

    // An application error's `error` field is the result to render.
    let r = Req::new(&p, Method::POST, &format!("{WEB}/apperr.http"))
        .json(json!({"e": {"statusCode": 418, "body": "teapot"}}))
        .send()
        .await;
    assert_eq!((r.status.as_u16(), r.text.as_str()), (418, "teapot"));
    assert!(r.headers.contains_key("x-openwhisk-activation-id"));
    let r = Req::new(&p, Method::POST, &format!("{WEB}/apperr.json"))
        .json(json!({"e": {"why": "because"}}))
        .send()
        .await;
    assert_eq!(ok_json(&r), &json!({"why": "because"}));
    let r = Req::new(&p, Method::POST, &format!("{WEB}/apperr.json"))
        .json(json!({"e": "a string"}))
        .send()
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "Response is not valid 'application/json'.",
    );
    let r = get(&p, &format!("{WEB}/rejects")).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::CONFLICT, "taken"));

    // Developer errors say nothing about the action.
    for name in ["throws", "scalar"] {
        for ext in ["", ".json", ".text"] {
            let r = get(&p, &format!("{WEB}/{name}{ext}")).await;
            assert_error(
                &r,
                StatusCode::BAD_REQUEST,
                "There was an error processing your request.",
            );
            let id = header(&r.headers, "x-openwhisk-activation-id").expect("activation id");
            assert!(!r.text.contains("secret detail"));
            let a = p
                .get(&format!("/api/v1/namespaces/_/activations/{id}"))
                .await;
            assert_eq!(a.body["response"]["status"], "action developer error");
        }
    }
}

#[tokio::test]
async fn options_and_cors() {
    let p = Platform::start().await;
    p.action(
        "echo",
        "nodejs:20",
        ECHO,
        web_action(&[("require-whisk-auth", json!(true))]),
    )
    .await;
    p.action(
        "owncors",
        "nodejs:20",
        "function main() { return {headers: {'Access-Control-Allow-Origin': 'https://a.example'}, body: 'x'}; }",
        web_action(&[]),
    )
    .await;
    p.action(
        "custom",
        "nodejs:20",
        "function main(p) { return {statusCode: 200, headers: {'Access-Control-Allow-Origin': 'https://b.example', 'X-Method': p.__ow_method}}; }",
        web_action(&[
            ("web-custom-options", json!(true)),
            ("require-whisk-auth", json!(true)),
        ]),
    )
    .await;

    // The platform answers OPTIONS, without running the action or asking for credentials.
    let r = Req::new(&p, Method::OPTIONS, &format!("{WEB}/echo.json"))
        .send()
        .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, ""));
    assert_eq!(header(&r.headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&r.headers, "access-control-allow-methods"),
        Some(ALLOW_METHODS)
    );
    assert_eq!(
        header(&r.headers, "access-control-allow-headers"),
        Some(ALLOW_HEADERS)
    );
    assert!(!r.headers.contains_key("x-openwhisk-activation-id"));
    let r = Req::new(&p, Method::OPTIONS, &format!("{WEB}/echo.json"))
        .header("Access-Control-Request-Headers", "x-foo, content-type")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        header(&r.headers, "access-control-allow-headers"),
        Some("x-foo, content-type")
    );

    // Other methods carry the same headers; the action's own win.
    let r = Req::new(&p, Method::GET, &format!("{WEB}/echo.json"))
        .auth(GUEST_KEY)
        .send()
        .await;
    ok_json(&r);
    assert_eq!(header(&r.headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&r.headers, "access-control-allow-methods"),
        Some(ALLOW_METHODS)
    );
    let r = get(&p, &format!("{WEB}/owncors")).await;
    assert_eq!(r.text, "x");
    assert_eq!(
        header(&r.headers, "access-control-allow-origin"),
        Some("https://a.example")
    );
    assert_eq!(
        header(&r.headers, "access-control-allow-methods"),
        Some(ALLOW_METHODS)
    );

    // web-custom-options: OPTIONS runs the action (even unauthenticated); no platform CORS.
    let r = Req::new(&p, Method::OPTIONS, &format!("{WEB}/custom"))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(header(&r.headers, "x-method"), Some("options"));
    assert_eq!(
        header(&r.headers, "access-control-allow-origin"),
        Some("https://b.example")
    );
    assert!(!r.headers.contains_key("access-control-allow-methods"));
    assert!(r.headers.contains_key("x-openwhisk-activation-id"));
    let r = get(&p, &format!("{WEB}/custom")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    let r = Req::new(&p, Method::GET, &format!("{WEB}/custom"))
        .auth(GUEST_KEY)
        .send()
        .await;
    assert_eq!(header(&r.headers, "x-method"), Some("get"));
    assert!(!r.headers.contains_key("access-control-allow-methods"));

    // The rest of the API keeps its own preflight answer.
    let r = p
        .send(Method::OPTIONS, "/api/v1/namespaces/_/actions", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        header(&r.headers, "access-control-allow-methods"),
        Some("GET, DELETE, POST, PUT, HEAD")
    );
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    // Found by the API fuzzing: this 405 had no `Allow` header (RFC 9110 requires one).
    let p = Platform::start().await;
    p.action("echo", "nodejs:20", ECHO, web_action(&[])).await;
    for path in [format!("{WEB}/echo.json"), format!("{WEB}/echo.json/a/b")] {
        let r = Req::new(&p, Method::TRACE, &path).send().await;
        assert_error(
            &r,
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTP method not allowed, supported methods: GET, DELETE, POST, PUT, HEAD, OPTIONS, PATCH",
        );
        assert_eq!(
            header(&r.headers, "allow"),
            Some("GET, DELETE, POST, PUT, HEAD, OPTIONS, PATCH")
        );
    }
}

#[tokio::test]
async fn actions_in_packages_and_bindings() {
    let p = Platform::start().await;
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/webpkg",
            Some(json!({"parameters": [{"key": "pp", "value": "package"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (name, extra) in [("echo", web_action(&[])), ("hidden", json!({}))] {
        let mut body = json!({"exec": {"kind": "nodejs:20", "code": ECHO}});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = p
            .call(
                Method::PUT,
                &format!("/api/v1/namespaces/_/actions/webpkg/{name}"),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = get(&p, "/api/v1/web/guest/webpkg/echo.json/p?q=1").await;
    let a = ok_json(&r);
    assert_eq!(
        (&a["pp"], &a["q"], &a["__ow_path"]),
        (&json!("package"), &json!("1"), &json!("/p"))
    );
    let r = get(&p, "/api/v1/web/guest/webpkg/hidden.json").await;
    assert_error(&r, StatusCode::NOT_FOUND, NOT_FOUND);
    let r = get(&p, &format!("{WEB}/echo.json")).await;
    assert_error(&r, StatusCode::NOT_FOUND, NOT_FOUND);

    // Through a binding, with the binding's parameters over the package's.
    let r = p
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/webbind",
            Some(json!({
                "binding": {"namespace": "guest", "name": "webpkg"},
                "parameters": [{"key": "pp", "value": "binding"}],
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get(&p, "/api/v1/web/guest/webbind/echo.json").await;
    assert_eq!(ok_json(&r)["pp"], "binding");
}
