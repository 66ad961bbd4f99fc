//! The classification of a runtime's `/init` and `/run` answers.

use bytes::Bytes;
use std::time::Duration;
use whisk_core::entity::{ActivationResponse, StatusCode};
use whisk_core::runtime::{Phase, Reply, RuntimeClient};

/// A runtime answer: byte 0 picks the phase (bit 0) and the result truncation limit (the
/// other bits, in steps of 64 bytes), bytes 1-2 are the HTTP status, the rest is the body.
///
/// A good `/init` (200) is a success that keeps the container; any other `/init` answer is
/// a developer error that fails it. A `/run` answer is a success only for a 200 with a JSON
/// object without `error` or an array, an application error only for a 200 (or a body over
/// the limit), and a developer error (container failed) otherwise. Every error result is
/// `{"error": ...}`, and the response survives the activation record's JSON.
pub fn runtime_reply(data: &[u8]) {
    let [head, hi, lo, body @ ..] = data else {
        return;
    };
    let phase = if head & 1 == 0 {
        Phase::Init
    } else {
        Phase::Run
    };
    let truncation = usize::from(head >> 1) * 64;
    let status = u16::from_be_bytes([*hi, *lo]);
    let reply = Reply::Answered {
        status,
        body: Bytes::copy_from_slice(body),
    };
    let timeout = Duration::from_millis(1000);
    let outcome =
        RuntimeClient::new(truncation).classify(phase, reply, timeout, Duration::from_millis(3));
    let response = &outcome.response;
    assert!(!outcome.timed_out);
    assert_eq!(outcome.elapsed, Duration::from_millis(3));
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    match phase {
        Phase::Init => {
            assert_eq!(response.is_success(), status == 200, "{response:?}");
            assert_eq!(outcome.container_failed, status != 200);
            if status != 200 {
                assert_eq!(response.status, StatusCode::DeveloperError);
            }
        }
        Phase::Run => {
            let over = body.len() > truncation;
            match response.status {
                StatusCode::Success => {
                    assert!(status == 200 && !over);
                    let result = response.result.as_ref().expect("a success has a result");
                    assert!(result.is_array() || result.get("error").is_none());
                    assert_eq!(Some(result), parsed.as_ref());
                }
                StatusCode::ApplicationError => assert!(status == 200 || over, "{status}"),
                StatusCode::DeveloperError => assert!(!over),
                StatusCode::WhiskError => panic!("a runtime's answer is never a whisk error"),
            }
            assert_eq!(
                outcome.container_failed,
                response.status == StatusCode::DeveloperError
            );
        }
    }
    if !response.is_success() {
        let result = response.result.as_ref().expect("an error has a result");
        let fields: Vec<&String> = result
            .as_object()
            .expect("an error is an object")
            .keys()
            .collect();
        assert_eq!(fields, ["error"], "{result}");
    }
    assert_eq!(&crate::reparsed::<ActivationResponse>(response), response);
    assert!(response.to_extended_json().is_object());
}
