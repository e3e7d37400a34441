//! Who may do what on the broker: the per-device authorization rules,
//! pure, shared by the embedded broker's authorizing front and the
//! Mosquitto ACL Petrel generates.
//!
//! A device (identity = its certificate's common name = its device id)
//! connects with its own id as client id, may subscribe to its own desired
//! and logs-request topics only, and may publish (retained or not) only on
//! its own reported, events, status and logs topics. The controller's identity may do anything
//! under the Petrel tree. Everyone else is refused.

use crate::topics::{self, Channel};
use crate::validate_device_id;

/// The controller's certificate common name. It contains a colon, which no
/// device id may, so no device can be provisioned under it.
pub const CONTROLLER_IDENTITY: &str = "petrel:controller";

/// The channels of its own a device may subscribe to.
pub const DEVICE_READS: [Channel; 2] = [Channel::Desired, Channel::LogsRequest];

/// The channels of its own a device may publish on.
pub const DEVICE_WRITES: [Channel; 4] = [
    Channel::Reported,
    Channel::Events,
    Channel::Status,
    Channel::Logs,
];

/// A connected party, from its verified certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Controller,
    Device(String),
}

/// Why the broker front refused a packet; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("certificate identity {0:?} is neither a device id nor the controller")]
    UnknownIdentity(String),
    #[error("device {identity} must connect with client id {identity:?}, not {client_id:?}")]
    ClientId { identity: String, client_id: String },
    #[error("device {identity} may not subscribe to {filter:?} (only its own desired and logs-request topics)")]
    Subscribe { identity: String, filter: String },
    #[error("device {identity} may not publish to {topic:?} (only its own reported, events, status and logs topics)")]
    Publish { identity: String, topic: String },
}

impl Identity {
    /// The identity a certificate common name stands for.
    pub fn from_common_name(cn: &str) -> Result<Identity, Denied> {
        if cn == CONTROLLER_IDENTITY {
            return Ok(Identity::Controller);
        }
        validate_device_id(cn)
            .map(|_| Identity::Device(cn.to_string()))
            .map_err(|_| Denied::UnknownIdentity(cn.to_string()))
    }

    /// CONNECT: a device's client id is its identity (so no one else can
    /// take over its session); its last will, if any, is a publish.
    pub fn may_connect(&self, client_id: &str, will_topic: Option<&str>) -> Result<(), Denied> {
        if let Identity::Device(id) = self {
            if client_id != id {
                return Err(Denied::ClientId {
                    identity: id.clone(),
                    client_id: client_id.to_string(),
                });
            }
        }
        will_topic.map_or(Ok(()), |t| self.may_publish(t))
    }

    /// SUBSCRIBE to one filter: a device, only to the exact topics the
    /// controller writes to it (no wildcard).
    pub fn may_subscribe(&self, filter: &str) -> Result<(), Denied> {
        match self {
            Identity::Controller => Ok(()),
            Identity::Device(id)
                if topics::parse(filter).is_some_and(|(owner, channel)| {
                    owner == id && DEVICE_READS.contains(&channel)
                }) =>
            {
                Ok(())
            }
            Identity::Device(id) => Err(Denied::Subscribe {
                identity: id.clone(),
                filter: filter.to_string(),
            }),
        }
    }

    /// PUBLISH (retained or not, an empty payload clearing a retained
    /// message included) to one topic.
    pub fn may_publish(&self, topic: &str) -> Result<(), Denied> {
        let id = match self {
            Identity::Controller => return Ok(()),
            Identity::Device(id) => id,
        };
        match topics::parse(topic) {
            Some((owner, channel)) if owner == id && DEVICE_WRITES.contains(&channel) => Ok(()),
            _ => Err(Denied::Publish {
                identity: id.clone(),
                topic: topic.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str) -> Identity {
        Identity::from_common_name(id).unwrap()
    }

    #[test]
    fn a_device_connects_only_under_its_own_client_id_and_will() {
        let d = device("pi-1");
        let own_status = topics::topic("pi-1", Channel::Status);
        assert!(d.may_connect("pi-1", Some(&own_status)).is_ok());
        assert!(d.may_connect("pi-2", None).is_err());
        let other_status = topics::topic("pi-2", Channel::Status);
        assert!(d.may_connect("pi-1", Some(&other_status)).is_err());
    }

    #[test]
    fn a_device_subscribes_to_its_own_desired_and_logs_request_topics_and_nothing_else() {
        let d = device("pi-1");
        for c in [Channel::Desired, Channel::LogsRequest] {
            assert!(d.may_subscribe(&topics::topic("pi-1", c)).is_ok());
        }
        for filter in [
            "#".to_string(),
            "petrel/#".into(),
            topics::all_devices(Channel::Desired),
            topics::all_devices(Channel::LogsRequest),
            topics::topic("pi-2", Channel::Desired),
            topics::topic("pi-2", Channel::LogsRequest),
            topics::topic("pi-1", Channel::Reported),
            topics::topic("pi-1", Channel::Logs),
            topics::topic("pi-2", Channel::Logs),
            format!("{}/pi-1/+", topics::ROOT),
        ] {
            assert!(d.may_subscribe(&filter).is_err(), "{filter}");
        }
    }

    #[test]
    fn a_device_publishes_its_own_reports_and_logs_but_never_a_desired_state_or_anothers_topic() {
        let d = device("pi-1");
        for c in [
            Channel::Reported,
            Channel::Events,
            Channel::Status,
            Channel::Logs,
        ] {
            assert!(d.may_publish(&topics::topic("pi-1", c)).is_ok());
            assert!(d.may_publish(&topics::topic("pi-2", c)).is_err());
        }
        for c in [Channel::Desired, Channel::LogsRequest] {
            assert!(d.may_publish(&topics::topic("pi-1", c)).is_err(), "{c:?}");
        }
        assert!(d.may_publish("elsewhere").is_err());
        assert!(d
            .may_publish(&format!("{}/+/reported", topics::ROOT))
            .is_err());
    }

    #[test]
    fn the_controller_may_do_anything_and_unknown_names_are_refused() {
        let c = Identity::from_common_name(CONTROLLER_IDENTITY).unwrap();
        assert!(c
            .may_publish(&topics::topic("pi-1", Channel::Desired))
            .is_ok());
        assert!(c.may_subscribe("#").is_ok());
        assert!(c.may_connect("anything", None).is_ok());
        assert!(Identity::from_common_name("evil/#").is_err());
        assert!(Identity::from_common_name("").is_err());
    }
}
