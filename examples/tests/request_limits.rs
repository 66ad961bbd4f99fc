//! Request limits, over raw TCP where a well-behaved client cannot misbehave: the body size
//! (declared, chunked, and a Content-Length that lies), the URI length, header count and size,
//! the request timeout, and the server's slow-client limits (a slowloris client, idle
//! keep-alive connections) and connection cap. Each refusal is an OpenWhisk error body. No
//! timing is asserted: only that a cut-off happens within a generous guard while others are
//! served.

mod common;

use base64::Engine;
use common::{Platform, StandaloneConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use whisk_core::api::RequestLimits;
use whisk_core::entity::identity::GUEST_KEY;
use whisk_examples::server::ServeSettings;

/// How long a cut-off may take before the test fails (the limits under test are 1-2 s).
const GUARD: Duration = Duration::from_secs(60);

/// A standalone platform (no feeds, no prewarm) served with `limits` and
/// `header_read_timeout`.
async fn platform(limits: RequestLimits, header_read_timeout: Duration) -> Platform {
    platform_serving(ServeSettings {
        tls: None,
        limits,
        header_read_timeout,
        ..ServeSettings::default()
    })
    .await
}

/// A standalone platform (no feeds, no prewarm) served with `serve`.
async fn platform_serving(serve: ServeSettings) -> Platform {
    Platform::start_config(StandaloneConfig {
        serve,
        prewarm: false,
        feeds: whisk_examples::feeds::FeedSettings {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

/// The `Authorization` header line of the guest key.
fn guest_auth() -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(GUEST_KEY);
    format!("Authorization: Basic {encoded}\r\n")
}

/// A response read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    request_id: Option<String>,
    body: Value,
}

/// Reads one response (status line, headers, `Content-Length` body) from `s`; `None` when
/// the connection ends (or fails) first.
async fn read_response(s: &mut TcpStream) -> Option<Raw> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
    while buf.len() < head_end + length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(Raw {
        status,
        request_id: header("x-request-id"),
        body: serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null),
    })
}

/// Asserts an OpenWhisk error body with `status` whose message starts with `prefix`, its
/// `code` the response's `X-Request-ID`.
fn assert_refused(r: &Raw, status: u16, prefix: &str) {
    assert_eq!(r.status, status, "{r:?}");
    let message = r.body["error"].as_str().unwrap_or_default();
    assert!(message.starts_with(prefix), "{message:?} vs {prefix:?}");
    assert_eq!(r.body["code"].as_str(), r.request_id.as_deref(), "{r:?}");
}

/// Sends `head` (a request line and headers, without the blank line) and `body` on a new
/// connection to `addr`; the response.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (TcpStream, Option<Raw>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{head}\r\n").as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let r = read_response(&mut s).await;
    (s, r)
}

/// Reads `s` until the server closes it (within [`GUARD`]); what it sent meanwhile.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("the server closes the connection");
    got
}

const PUT_ACTION: &str = "PUT /api/v1/namespaces/_/actions/big HTTP/1.1\r\nHost: t\r\n";

/// A body whose `Content-Length` passes the limit is refused (413) before any of it is read:
/// the client sends none. The default limit is OpenWhisk's 50 MB.
#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let p = platform(
        RequestLimits {
            max_body_bytes: 1000,
            ..RequestLimits::default()
        },
        Duration::from_secs(30),
    )
    .await;
    let head = format!("{PUT_ACTION}{}Content-Length: 1001\r\n", guest_auth());
    let (_, r) = exchange(p.platform.addr, &head, b"").await;
    assert_refused(
        &r.unwrap(),
        413,
        "Request larger than allowed: 1001 > 1000 bytes.",
    );
    // A Content-Length far beyond anything the client will send: refused at once too.
    let head = format!("{PUT_ACTION}Content-Length: 10000000000\r\n");
    let (_, r) = exchange(p.platform.addr, &head, b"{\"exec\"").await;
    assert_refused(
        &r.unwrap(),
        413,
        "Request larger than allowed: 10000000000 > 1000 bytes.",
    );
    // At the limit, the body is read (and judged as JSON).
    let head = format!("{PUT_ACTION}{}Content-Length: 1000\r\n", guest_auth());
    let (_, r) = exchange(p.platform.addr, &head, &[b' '; 1000]).await;
    assert_ne!(r.unwrap().status, 413);

    let defaults = platform(RequestLimits::default(), Duration::from_secs(30)).await;
    let head = format!("{PUT_ACTION}Content-Length: 52428801\r\n");
    let (_, r) = exchange(defaults.platform.addr, &head, b"").await;
    assert_refused(
        &r.unwrap(),
        413,
        "Request larger than allowed: 52428801 > 52428800 bytes.",
    );
}

/// A chunked body (no Content-Length) is cut off (413) as soon as it passes the limit: the
/// answer comes while the body has not ended.
#[tokio::test]
async fn a_chunked_body_is_cut_off_once_it_passes_the_limit() {
    let p = platform(
        RequestLimits {
            max_body_bytes: 64 * 1024,
            ..RequestLimits::default()
        },
        Duration::from_secs(30),
    )
    .await;
    let mut s = TcpStream::connect(p.platform.addr).await.unwrap();
    let head = format!(
        "{PUT_ACTION}{}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        guest_auth()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 16 * 1024];
    // Five chunks (80 KB), and never the last, empty one. The server may answer and close
    // before the last bytes are written.
    for _ in 0..5 {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        if s.write_all(&framed).await.is_err() {
            break;
        }
    }
    let r = read_response(&mut s).await.expect("answered mid-body");
    assert_refused(&r, 413, "Request larger than allowed: ");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .ends_with(" > 65536 bytes."),
        "{r:?}"
    );
    // The platform keeps serving.
    assert_eq!(p.get("/api/v1/namespaces").await.status, StatusCode::OK);
}

/// A Content-Length smaller than what the client sends: only the declared bytes are the body;
/// the rest is not a request, and the server answers it with 400 and closes the connection.
#[tokio::test]
async fn a_lying_content_length_reads_only_the_declared_bytes() {
    let p = platform(
        RequestLimits {
            max_body_bytes: 64 * 1024,
            ..RequestLimits::default()
        },
        Duration::from_secs(30),
    )
    .await;
    let head = format!(
        "{PUT_ACTION}{}Content-Type: application/json\r\nContent-Length: 10\r\n",
        guest_auth()
    );
    let mut body = b"{\"exec\": {\"kind\": \"nodejs:20\", \"code\": \"".to_vec();
    body.extend(std::iter::repeat_n(b'x', 20 * 1024));
    let (mut s, r) = exchange(p.platform.addr, &head, &body).await;
    assert_refused(&r.unwrap(), 400, "The request content was malformed");
    let rest = String::from_utf8_lossy(&until_closed(&mut s).await).to_string();
    assert!(
        rest.is_empty() || rest.starts_with("HTTP/1.1 400"),
        "{rest}"
    );
    assert_eq!(p.get("/api/v1/namespaces").await.status, StatusCode::OK);
}

/// A large body within the limit is served as usual: a 3 MB action under the default 50 MB
/// (past axum's own 2 MB default, which the limits replace).
#[tokio::test]
async fn a_large_body_within_the_limit_is_served() {
    let p = platform(RequestLimits::default(), Duration::from_secs(30)).await;
    let code = format!(
        "function main() {{ return {{ok: true}}; }}\n//{}",
        "x".repeat(3 * 1024 * 1024)
    );
    let r = p.action("big", "nodejs:20", &code, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.get("/api/v1/namespaces/_/actions/big").await;
    assert_eq!(r.body["exec"]["code"].as_str().unwrap().len(), code.len());
}

/// A request target longer than the limit (OpenWhisk: 8 KB) gets 414.
#[tokio::test]
async fn a_long_uri_gets_414() {
    let p = platform(RequestLimits::default(), Duration::from_secs(30)).await;
    let long = format!("/api/v1/namespaces/_/actions/{}", "a".repeat(8200));
    let r = p.get(&long).await;
    common::assert_error(
        &r,
        StatusCode::URI_TOO_LONG,
        &format!(
            "The request URI is longer than allowed: {} > 8192 bytes.",
            long.len()
        ),
    );
    let within = format!("/api/v1/namespaces/_/actions/{}", "a".repeat(8000));
    assert_ne!(p.get(&within).await.status, StatusCode::URI_TOO_LONG);
}

/// Too many header fields, or too many bytes of them, get 431; far past the limits the HTTP
/// parser itself refuses (431, no body) and closes the connection; the platform serves on.
#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let p = platform(RequestLimits::default(), Duration::from_secs(30)).await;
    let addr = p.platform.addr;
    let many: String = (0..70).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (_, r) = exchange(
        addr,
        &format!("GET /ping HTTP/1.1\r\nHost: t\r\n{many}"),
        b"",
    )
    .await;
    assert_refused(
        &r.unwrap(),
        431,
        "The request has more header fields than allowed: 71 > 64.",
    );
    let big = format!("X-Big: {}\r\n", "v".repeat(70 * 1024));
    let (_, r) = exchange(
        addr,
        &format!("GET /ping HTTP/1.1\r\nHost: t\r\n{big}"),
        b"",
    )
    .await;
    assert_refused(
        &r.unwrap(),
        431,
        "The request header fields are larger than allowed: ",
    );
    // Past twice the limits (2 x (64 KB + 8 KB)): hyper's own 431, and the connection is
    // closed (possibly before the client has written it all).
    let mut s = TcpStream::connect(addr).await.unwrap();
    let huge = format!("GET /ping HTTP/1.1\r\nX-Huge: {}", "v".repeat(150 * 1024));
    let _ = s.write_all(huge.as_bytes()).await;
    let rest = String::from_utf8_lossy(&until_closed(&mut s).await).to_string();
    assert!(rest.starts_with("HTTP/1.1 431"), "{rest}");
    // Within the limits, headers pass.
    let few: String = (0..50).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (_, r) = exchange(
        addr,
        &format!("GET /ping HTTP/1.1\r\nHost: t\r\n{few}"),
        b"",
    )
    .await;
    assert_eq!(r.unwrap().status, 200);
}

/// A client that sends its headers a byte at a time is cut off once the header read timeout
/// passes, while the platform serves others meanwhile.
#[tokio::test]
async fn a_slowloris_client_is_cut_off_while_others_are_served() {
    let p = platform(RequestLimits::default(), Duration::from_secs(1)).await;
    let s = TcpStream::connect(p.platform.addr).await.unwrap();
    let (mut read, mut write) = s.into_split();
    let dribble = tokio::spawn(async move {
        let head = b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Slow: ";
        write.write_all(head).await.unwrap();
        // A byte every 100 ms, for as long as the server takes them.
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut closed = Box::pin(async move {
        let mut got = Vec::new();
        let _ = read.read_to_end(&mut got).await;
        got
    });
    let mut served = 0;
    let got = loop {
        tokio::select! {
            got = &mut closed => break got,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                assert_eq!(p.get("/ping").await.text, "pong");
                served += 1;
            }
        }
        assert!(
            started.elapsed() < GUARD,
            "the slow client was never cut off"
        );
    };
    assert!(served > 0, "others were served meanwhile");
    let got = String::from_utf8_lossy(&got);
    assert!(
        !got.contains("pong"),
        "the slow request was not served: {got}"
    );
    dribble.abort();
}

/// Checks that the server at `addr` serves at most `cap` connections at once (its idle
/// connections must stay open during the check) and serves one more once one closes: opens
/// connections, each sending a ping, until one is not answered (the harness's own client may
/// hold a connection too, so the cap can be reached before `cap` of these), closes one and
/// waits for the waiting one's answer.
async fn assert_connection_cap(addr: SocketAddr, cap: usize) {
    let ping = "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut served = Vec::new();
    let mut waiting = loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(ping.as_bytes()).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(2), read_response(&mut s)).await {
            Ok(r) => {
                assert_eq!(r.expect("a response").status, 200);
                served.push(s);
                assert!(
                    served.len() <= cap,
                    "more than {cap} connections served at once"
                );
            }
            Err(_) => break s,
        }
    };
    assert!(!served.is_empty(), "no connection was served at all");
    drop(served.pop());
    let r = tokio::time::timeout(GUARD, read_response(&mut waiting))
        .await
        .expect("the waiting connection is served once another closes");
    assert_eq!(r.expect("a response").status, 200);
}

/// At most `max_connections` connections are served at once: one more is accepted only when
/// one of them closes, and is then served.
#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let p = platform_serving(ServeSettings {
        max_connections: 3,
        header_read_timeout: GUARD,
        ..ServeSettings::default()
    })
    .await;
    assert_connection_cap(p.platform.addr, 3).await;
}

/// A keep-alive connection left idle after its response is closed by the server.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let p = platform(RequestLimits::default(), Duration::from_secs(1)).await;
    let (mut s, r) = exchange(p.platform.addr, "GET /ping HTTP/1.1\r\nHost: t\r\n", b"").await;
    assert_eq!(r.unwrap().status, 200);
    assert!(until_closed(&mut s).await.is_empty());
}

/// A body that stops arriving gets 408 once the request timeout passes; a handler that takes
/// longer than it gets OpenWhisk's (Pekko's) 503.
#[tokio::test]
async fn the_request_timeout_answers_408_for_a_stalled_body_and_503_for_a_slow_handler() {
    let p = platform(
        RequestLimits {
            request_timeout: Duration::from_secs(2),
            ..RequestLimits::default()
        },
        Duration::from_secs(30),
    )
    .await;
    let head = format!(
        "{PUT_ACTION}{}Content-Type: application/json\r\nContent-Length: 100\r\n",
        guest_auth()
    );
    let (_, r) = exchange(p.platform.addr, &head, b"{\"exec\":").await;
    assert_refused(
        &r.unwrap(),
        408,
        "The request body was not received within the request timeout (2 s).",
    );

    let code =
        "function main() { return new Promise(r => setTimeout(() => r({ok: true}), 5000)); }";
    assert_eq!(
        p.action("slow", "nodejs:20", code, json!({})).await.status,
        StatusCode::OK
    );
    let r = p
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/slow?blocking=true",
            None,
        )
        .await;
    common::assert_error(
        &r,
        StatusCode::SERVICE_UNAVAILABLE,
        "The server was not able to produce a timely response to your request.\r\nPlease try again in a short while!",
    );
}

/// The binaries' limit flags reach the server: `--max-body-bytes`, `--max-uri-bytes`,
/// `--max-headers`, `--max-header-bytes`, `--request-timeout` and `--header-read-timeout`.
#[tokio::test]
async fn the_limit_flags_reach_the_server() {
    let (_child, url) = common::spawn_quiet_standalone(&[
        "--max-body-bytes",
        "100",
        "--max-uri-bytes",
        "50",
        "--max-headers",
        "5",
        "--max-header-bytes",
        "200",
        "--request-timeout",
        "1",
        "--header-read-timeout",
        "1",
    ]);
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let (_, r) = exchange(addr, &format!("{PUT_ACTION}Content-Length: 101\r\n"), b"").await;
    assert_refused(
        &r.unwrap(),
        413,
        "Request larger than allowed: 101 > 100 bytes.",
    );
    let path = format!("/{}", "p".repeat(50));
    let (_, r) = exchange(addr, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n"), b"").await;
    assert_refused(
        &r.unwrap(),
        414,
        "The request URI is longer than allowed: 51 > 50",
    );
    let six: String = (0..5).map(|i| format!("X-{i}: v\r\n")).collect();
    let (_, r) = exchange(
        addr,
        &format!("GET /ping HTTP/1.1\r\nHost: t\r\n{six}"),
        b"",
    )
    .await;
    assert_refused(
        &r.unwrap(),
        431,
        "The request has more header fields than allowed: 6 > 5.",
    );
    let big = format!("X-Big: {}\r\n", "v".repeat(200));
    let (_, r) = exchange(
        addr,
        &format!("GET /ping HTTP/1.1\r\nHost: t\r\n{big}"),
        b"",
    )
    .await;
    assert_refused(
        &r.unwrap(),
        431,
        "The request header fields are larger than allowed:",
    );
    let head = format!("{PUT_ACTION}{}Content-Length: 50\r\n", guest_auth());
    let (_, r) = exchange(addr, &head, b"{").await;
    assert_refused(&r.unwrap(), 408, "The request body was not received");
    let (mut s, r) = exchange(addr, "GET /ping HTTP/1.1\r\nHost: t\r\n", b"").await;
    assert_eq!(r.unwrap().status, 200);
    assert!(until_closed(&mut s).await.is_empty());
}

/// The binaries' `--max-connections` reaches the server.
#[tokio::test]
async fn the_connection_cap_flag_reaches_the_server() {
    let (_child, url) = common::spawn_quiet_standalone(&["--max-connections", "2"]);
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    assert_connection_cap(addr, 2).await;
}
