//! The messages on the bus: activation messages, acknowledgements, pings and user events.

use crate::round_trip;
use whisk_core::message::{Acknowledgement, ActivationMessage, EventMessage, PingMessage};

/// The input as each message the platform reads off the bus, with the parser the reader
/// uses. Whatever parses must be written by the writer's code and parse back to the same
/// message.
pub fn message_json(data: &[u8]) {
    round_trip::<ActivationMessage>(data);
    if let Ok(ack) = Acknowledgement::parse(data) {
        let wire = serde_json::to_vec(&ack.to_json()).expect("an acknowledgement serialises");
        assert_eq!(Acknowledgement::parse(&wire).as_ref().ok(), Some(&ack));
        let _ = (ack.transid(), ack.activation_id());
    }
    if let Ok(ping) = PingMessage::parse(data) {
        assert_eq!(PingMessage::parse(&ping.to_bytes()).ok(), Some(ping));
    }
    if let Ok(event) = EventMessage::parse(data) {
        assert_eq!(
            EventMessage::parse(&event.to_bytes()).ok().as_ref(),
            Some(&event)
        );
    }
}
