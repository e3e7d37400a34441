//! MQTT topic names. Every topic is built and parsed here and nowhere else,
//! so moving the tree (e.g. under a per-tenant prefix for broker-enforced
//! isolation) is a one-function change.

use crate::validate_device_id;

/// Root of every Petrel topic.
pub const ROOT: &str = "petrel/v1/devices";

/// The per-device channels of the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Retained, QoS 1, controller → device.
    Desired,
    /// Retained, QoS 1, device → controller: full current state.
    Reported,
    /// QoS 1, device → controller: progress and lifecycle events.
    Events,
    /// Retained `online` / `offline` (the latter as last will).
    Status,
    /// QoS 1, not retained, controller → device: a service log tail asked
    /// for ([`crate::logs::LogRequest`]).
    LogsRequest,
    /// QoS 1, not retained, device → controller: its answer
    /// ([`crate::logs::LogReply`]).
    Logs,
}

impl Channel {
    const ALL: [Channel; 6] = [
        Channel::Desired,
        Channel::Reported,
        Channel::Events,
        Channel::Status,
        Channel::LogsRequest,
        Channel::Logs,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Channel::Desired => "desired",
            Channel::Reported => "reported",
            Channel::Events => "events",
            Channel::Status => "status",
            Channel::LogsRequest => "logs-request",
            Channel::Logs => "logs",
        }
    }
}

/// The topic of one device's channel.
pub fn topic(device_id: &str, channel: Channel) -> String {
    format!("{ROOT}/{device_id}/{}", channel.as_str())
}

/// The subscription filter matching one channel of every device.
pub fn all_devices(channel: Channel) -> String {
    format!("{ROOT}/+/{}", channel.as_str())
}

/// Splits a topic into (device id, channel); `None` for foreign topics or
/// ids that are not valid device ids.
pub fn parse(topic: &str) -> Option<(&str, Channel)> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
    let (id, chan) = rest.split_once('/')?;
    validate_device_id(id).ok()?;
    let channel = Channel::ALL.into_iter().find(|c| c.as_str() == chan)?;
    Some((id, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_parse() {
        for c in Channel::ALL {
            let t = topic("dev-1", c);
            assert_eq!(parse(&t), Some(("dev-1", c)));
        }
    }

    #[test]
    fn foreign_or_nested_topics_do_not_parse() {
        assert_eq!(parse("other/v1/devices/a/desired"), None);
        assert_eq!(parse("petrel/v1/devices/a/b/desired"), None);
        assert_eq!(parse("petrel/v1/devices/a/unknown"), None);
        assert_eq!(parse("petrel/v1/devices/a/logs/extra"), None);
        assert_eq!(parse("petrel/v1/devices/a/logs-"), None);
        assert_eq!(parse("petrel/v1/devices/+/logs"), None);
        assert_eq!(
            all_devices(Channel::Reported),
            "petrel/v1/devices/+/reported"
        );
    }
}
