//! Activation ids, as the API's paths and the messages carry them.

use whisk_core::entity::activation::ActivationIdError;
use whisk_core::entity::ActivationId;

/// Activation-id parsing: the input as a path segment (UTF-8) and as a JSON document.
///
/// An id that parses is 32 lowercase hex digits and prints as given; a refusal names the
/// real length or, at 32 characters, the bad characters; the JSON string form agrees with
/// the path form.
pub fn activation_id(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let len = text.chars().count();
        match ActivationId::parse(text) {
            Ok(id) => {
                assert_eq!(id.as_str(), text);
                assert_eq!(id.to_string(), text);
                assert!(
                    text.len() == 32
                        && text
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                );
                let json = serde_json::to_string(&id).expect("an id serialises");
                assert_eq!(serde_json::from_str::<ActivationId>(&json).ok(), Some(id));
            }
            Err(ActivationIdError::Length(n)) => assert!(n == len && n != 32, "{text:?}"),
            Err(ActivationIdError::Invalid) => assert_eq!(len, 32, "{text:?}"),
        }
        let quoted = serde_json::to_string(text).expect("a string serialises");
        assert_eq!(
            serde_json::from_str::<ActivationId>(&quoted).ok(),
            ActivationId::parse(text).ok(),
            "{text:?}"
        );
    }
    if let Some(id) = crate::round_trip::<ActivationId>(data) {
        assert_eq!(ActivationId::parse(id.as_str()).as_ref(), Ok(&id));
    }
}
