//! Web actions: `/api/v1/web/{ns}/{pkg|default}/{action}[.ext][/path]`.

use super::{ApiError, ApiState};
use axum::extract::State;
use axum::response::Response;

/// Serves a web action request.
pub(crate) async fn handle(State(_s): State<ApiState>) -> Result<Response, ApiError> {
    Err(ApiError::not_found())
}
