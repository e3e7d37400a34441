//! Rebuilding the lifecycle record from what the runtime runs, when the
//! agent's store was lost (deleted, or unreadable and moved aside).
//!
//! Store-loss rule (issue 19, point 6): a lost store never stops the
//! running release. The runtime's instances are named
//! `{service}-g{generation}` ([`crate::apply::instance_name`]); the highest
//! generation among them is a floor for anti-replay (the agent accepted it
//! once), and the instances are kept as the current release, its manifest
//! unknown, until the controller's signed desired state of that generation
//! (or a newer one) says what it is.

use crate::machine::{AgentState, Applied};
use petrel_protocol::Phase;
use petrel_runtime::InstanceStatus;

/// The service and generation an instance name carries, if it is one of
/// the agent's (`{service}-g{generation}`).
pub fn parse_instance_name(name: &str) -> Option<(&str, u64)> {
    let (service, generation) = name.rsplit_once("-g")?;
    let digits = !generation.is_empty() && generation.bytes().all(|b| b.is_ascii_digit());
    if service.is_empty() || !digits {
        return None;
    }
    Some((service, generation.parse().ok()?))
}

/// The state a store-less agent resumes from, given every instance the
/// runtime reports; `None` when none of them is the agent's (a new device).
/// Every instance is kept (older generations too: a swap may have been
/// under way); the adopted desired state decides which of them stay.
pub fn from_running(running: &[InstanceStatus]) -> Option<AgentState> {
    let ours: Vec<(&str, u64)> = running
        .iter()
        .filter_map(|i| parse_instance_name(&i.name).map(|(_, g)| (i.name.as_str(), g)))
        .collect();
    let floor = ours.iter().map(|(_, g)| *g).max()?;
    let mut instances: Vec<String> = ours.iter().map(|(n, _)| n.to_string()).collect();
    instances.sort();
    Some(AgentState {
        desired_generation: floor,
        current: Some(Applied {
            generation: floor,
            release: None,
            instances,
        }),
        phase: Phase::Running,
        recovered: true,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(names: &[&str]) -> Vec<InstanceStatus> {
        names
            .iter()
            .map(|n| InstanceStatus {
                name: n.to_string(),
                state: "running".into(),
                pid: Some(1),
                restarts: 0,
                exit_code: None,
            })
            .collect()
    }

    #[test]
    fn an_instance_name_gives_its_service_and_generation() {
        assert_eq!(parse_instance_name("app-g7"), Some(("app", 7)));
        assert_eq!(
            parse_instance_name("my-gateway-g12"),
            Some(("my-gateway", 12))
        );
        assert_eq!(parse_instance_name("app-gx"), None);
        assert_eq!(parse_instance_name("app-g"), None);
        assert_eq!(parse_instance_name("-g3"), None);
        assert_eq!(parse_instance_name("postgres"), None);
    }

    #[test]
    fn a_device_running_nothing_of_ours_has_nothing_to_recover() {
        assert_eq!(from_running(&[]), None);
        assert_eq!(from_running(&running(&["someone-elses"])), None);
    }

    #[test]
    fn the_running_release_becomes_current_with_its_generation_as_the_floor() {
        let st = from_running(&running(&["web-g4", "db-g4"])).unwrap();
        assert_eq!(st.desired_generation, 4);
        assert!(st.recovered);
        assert_eq!(st.phase, Phase::Running);
        let current = st.current.unwrap();
        assert_eq!(current.generation, 4);
        assert_eq!(current.release, None);
        assert_eq!(current.instances, vec!["db-g4", "web-g4"]);
        assert_eq!(st.target, None);
    }

    #[test]
    fn the_highest_generation_is_the_floor_and_older_instances_are_kept() {
        let st = from_running(&running(&["web-g3", "web-g5", "other"])).unwrap();
        assert_eq!(st.desired_generation, 5);
        let current = st.current.unwrap();
        assert_eq!(current.generation, 5);
        assert_eq!(current.instances, vec!["web-g3", "web-g5"]);
    }
}
