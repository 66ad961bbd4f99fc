//! `POST /api/v1/feeds/{package}/{feed}`: the feed provider's endpoint, called by the feed
//! actions with the trigger owner's key (see [`crate::feeds`]).

use super::params::json_body;
use super::{ApiError, ApiState, Auth};
use crate::feeds::FeedError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::Value;

impl From<FeedError> for ApiError {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::BadRequest(m) => ApiError::bad_request(m),
            FeedError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            FeedError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            FeedError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            FeedError::Store(e) => e.into(),
        }
    }
}

/// `POST /feeds/{package}/{feed}` with the feed action's argument as the body.
pub(crate) async fn lifecycle(
    State(s): State<ApiState>,
    Auth(user): Auth,
    Path((package, feed)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(provider) = s.feeds.as_ref() else {
        return Err(ApiError::not_found());
    };
    let Value::Object(params) = json_body(&body)? else {
        return Err(ApiError::bad_request(
            "The request content was malformed:\nthe feed event must be a JSON object.",
        ));
    };
    let result = provider.handle(&user, &package, &feed, params).await?;
    Ok(Json(result).into_response())
}
