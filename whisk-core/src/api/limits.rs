//! The API's request limits: body size, URI length, header count and size, and how long a
//! request may take (OpenWhisk's Pekko settings `max-content-length = 50m`,
//! `max-uri-length = 8k`, `request-timeout = 65s`, and Pekko's `max-header-count = 64`).
//!
//! Each refusal is an OpenWhisk error body (`{"error": ..., "code": ...}`), rendered by the
//! transaction middleware like every other error. Connection-level limits (how long a client
//! may take to send a request's head, idle keep-alive connections) belong to the server that
//! runs the router.

use super::ApiError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

/// Limits on every request the API serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request body, in bytes (OpenWhisk: 50 MB). A larger `Content-Length` is
    /// refused (413) before any of the body is read; a body without one (chunked) is cut off
    /// (413) as soon as it passes the limit, never buffered whole.
    pub max_body_bytes: u64,
    /// Longest request target (path and query), in bytes (OpenWhisk: 8 KB); 414 beyond.
    pub max_uri_bytes: usize,
    /// Most header fields a request may carry (Pekko's default 64); 431 beyond.
    pub max_headers: usize,
    /// Largest total size of a request's header names and values, in bytes (default
    /// 64 KB); 431 beyond.
    pub max_header_bytes: usize,
    /// Longest time from a request's head to its response (OpenWhisk: 65 s, past the 60 s a
    /// blocking invoke waits): 408 while the request body is still arriving, else 503.
    pub request_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 50 * 1024 * 1024,
            max_uri_bytes: 8 * 1024,
            max_headers: 64,
            max_header_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(65),
        }
    }
}

/// Pekko's answer to a request that outlasts `request-timeout`, which OpenWhisk keeps.
const TIMEOUT_MESSAGE: &str = "The server was not able to produce a timely response to your \
                               request.\r\nPlease try again in a short while!";

/// Middleware enforcing `limits` (runs inside the transaction middleware, so refusals carry
/// the request's transaction id).
pub(crate) async fn enforce(
    State(limits): State<Arc<RequestLimits>>,
    req: Request,
    next: Next,
) -> Response {
    if let Err(e) = check_head(&limits, &req) {
        return e.into_response();
    }
    let (parts, body) = req.into_parts();
    let progress = Arc::new(Progress::default());
    let body = Body::new(Counted {
        inner: body,
        max: limits.max_body_bytes,
        progress: progress.clone(),
    });
    let run = next.run(Request::from_parts(parts, body));
    let resp = match tokio::time::timeout(limits.request_timeout, run).await {
        Ok(resp) => resp,
        Err(_) if progress.state() == READING => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body was not received within the request timeout ({} s).",
                    limits.request_timeout.as_secs_f64()
                ),
            )
            .into_response()
        }
        Err(_) => {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, TIMEOUT_MESSAGE).into_response()
        }
    };
    if progress.state() == EXCEEDED {
        // Whatever the handler made of the failed read, the answer is the limit's.
        let received = progress.received.load(Ordering::Relaxed);
        return too_large(received, limits.max_body_bytes).into_response();
    }
    resp
}

/// Checks the request line and headers against `limits`.
fn check_head(limits: &RequestLimits, req: &Request) -> Result<(), ApiError> {
    let uri = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri > limits.max_uri_bytes {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "The request URI is longer than allowed: {uri} > {} bytes.",
                limits.max_uri_bytes
            ),
        ));
    }
    let headers = req.headers();
    if headers.len() > limits.max_headers {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "The request has more header fields than allowed: {} > {}.",
                headers.len(),
                limits.max_headers
            ),
        ));
    }
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > limits.max_header_bytes {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "The request header fields are larger than allowed: {size} > {} bytes.",
                limits.max_header_bytes
            ),
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limits.max_body_bytes => {
            Err(too_large(length, limits.max_body_bytes))
        }
        _ => Ok(()),
    }
}

/// OpenWhisk's 413 for a request body of `size` bytes over `limit`.
fn too_large(size: u64, limit: u64) -> ApiError {
    ApiError::too_large(
        "Request",
        usize::try_from(size).unwrap_or(usize::MAX),
        limit,
    )
}

/// Nothing of the body read yet.
const UNREAD: u8 = 0;
/// The body is being read.
const READING: u8 = 1;
/// The body was read to its end (or failed on its own).
const DONE: u8 = 2;
/// The body passed the size limit.
const EXCEEDED: u8 = 3;

/// How far a request's body has been read.
#[derive(Default)]
struct Progress {
    state: AtomicU8,
    received: AtomicU64,
}

impl Progress {
    fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Relaxed);
    }
}

/// A request body that counts its bytes and fails once they pass `max`.
struct Counted {
    inner: Body,
    max: u64,
    progress: Arc<Progress>,
}

/// The error a [`Counted`] body fails with past its limit.
#[derive(Debug)]
struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body larger than allowed")
    }
}

impl std::error::Error for BodyTooLarge {}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if self.progress.state() == EXCEEDED {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTooLarge))));
        }
        if self.progress.state() == UNREAD {
            self.progress.set(READING);
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                let received = self.progress.received.fetch_add(len, Ordering::Relaxed) + len;
                if received > self.max {
                    self.progress.set(EXCEEDED);
                    return Poll::Ready(Some(Err(axum::Error::new(BodyTooLarge))));
                }
            }
            Some(Err(_)) | None => self.progress.set(DONE),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn request(uri: &str, headers: &[(&str, String)]) -> Request {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_head_is_checked_against_each_limit() {
        let limits = RequestLimits {
            max_uri_bytes: 20,
            max_headers: 2,
            max_header_bytes: 30,
            max_body_bytes: 100,
            ..RequestLimits::default()
        };
        let ok = request("/api/v1/namespaces", &[("a", "b".into())]);
        assert_eq!(check_head(&limits, &ok), Ok(()));
        let status = |r: &Request| check_head(&limits, r).unwrap_err().status;
        assert_eq!(
            status(&request("/api/v1/namespaces?x=1", &[])),
            StatusCode::URI_TOO_LONG
        );
        let three = [("a", "1".into()), ("b", "2".into()), ("c", "3".into())];
        assert_eq!(
            status(&request("/", &three)),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let big = [("a", "x".repeat(30))];
        let e = check_head(&limits, &request("/", &big)).unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(
            e.message,
            "The request header fields are larger than allowed: 31 > 30 bytes."
        );
        let e =
            check_head(&limits, &request("/", &[("content-length", "101".into())])).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.message, "Request larger than allowed: 101 > 100 bytes.");
        let at_limit = request("/", &[("content-length", "100".into())]);
        assert_eq!(check_head(&limits, &at_limit), Ok(()));
    }

    #[tokio::test]
    async fn a_counted_body_fails_past_its_limit() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from(vec![0; 60])), Ok(Bytes::from(vec![0; 60]))];
        let progress = Arc::new(Progress::default());
        let body = Counted {
            inner: Body::from_stream(futures::stream::iter(chunks)),
            max: 100,
            progress: progress.clone(),
        };
        assert!(body.collect().await.is_err());
        assert_eq!(progress.state(), EXCEEDED);
        assert_eq!(progress.received.load(Ordering::Relaxed), 120);

        let progress = Arc::new(Progress::default());
        let body = Counted {
            inner: Body::from(vec![0u8; 100]),
            max: 100,
            progress: progress.clone(),
        };
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 100);
        assert_eq!(progress.state(), DONE);
    }
}
