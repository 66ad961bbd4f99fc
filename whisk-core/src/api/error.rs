//! API errors: the OpenWhisk body `{"error": message, "code": transaction id}`.
//!
//! Handlers return [`ApiError`]; the response carries the message in an extension and the
//! transaction middleware renders the body, so every error (including the router's own
//! rejections such as 404, 405 and 413) has the same shape and the request's transaction id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error response with OpenWhisk's status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `error` text.
    pub message: String,
}

/// The message of an error response, read by the transaction middleware.
#[derive(Debug, Clone)]
pub(crate) struct ErrorMessage(pub String);

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 for a body that is not the expected JSON.
    pub fn malformed(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("The request content was malformed:\n{detail}"))
    }

    /// 400 for a malformed query parameter.
    pub fn bad_query(name: &str, detail: impl std::fmt::Display) -> Self {
        Self::bad_request(format!(
            "The query parameter '{name}' was malformed:\n{detail}"
        ))
    }

    /// 404 "The requested resource does not exist."
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "The requested resource does not exist.",
        )
    }

    /// 403 for `resource`.
    pub fn forbidden(resource: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("The supplied authentication is not authorized to access '{resource}'."),
        )
    }

    /// 409 "resource already exists".
    pub fn exists() -> Self {
        Self::new(StatusCode::CONFLICT, "resource already exists")
    }

    /// 409 for a revision conflict.
    pub fn conflict() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Concurrent modification to resource detected.",
        )
    }

    /// 409 for a document of another entity type at the same id.
    pub fn wrong_collection() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Resource by this name exists but is not in this collection.",
        )
    }

    /// 413 for a request larger than `limit`.
    pub fn too_large(what: &str, size: usize, limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} larger than allowed: {size} > {limit} bytes."),
        )
    }

    /// 500 for a platform failure.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server encountered an internal error.",
        )
    }

    /// 503 "No invokers available" and the like.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError::*;
        match e {
            NotFound => Self::not_found(),
            AlreadyExists => Self::exists(),
            Conflict => Self::conflict(),
            Unavailable(m) => Self::unavailable(format!("The data store is unavailable: {m}")),
            Corrupt(m) => {
                tracing::error!(document = %m, "corrupt document");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Resource is corrupted and cannot be read.",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.status.into_response();
        r.extensions_mut().insert(ErrorMessage(self.message));
        r
    }
}

/// Default messages for statuses produced without an [`ApiError`] (router rejections); a 405
/// names the methods of its `allow` header (axum's `GET,HEAD`), as Pekko's rejection does.
pub(crate) fn default_message(status: StatusCode, allow: Option<&str>, body: &str) -> String {
    match status {
        StatusCode::NOT_FOUND => "The requested resource could not be found.".into(),
        StatusCode::METHOD_NOT_ALLOWED => {
            let methods: Vec<&str> = allow
                .unwrap_or("GET,PUT,POST,DELETE")
                .split(',')
                .map(str::trim)
                .collect();
            format!(
                "HTTP method not allowed, supported methods: {}",
                methods.join(", ")
            )
        }
        StatusCode::PAYLOAD_TOO_LARGE => "The request content was too large.".into(),
        _ if !body.is_empty() => body.to_string(),
        s => s.canonical_reason().unwrap_or("error").to_string(),
    }
}
