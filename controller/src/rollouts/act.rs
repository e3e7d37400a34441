//! Performing the planner's actions: a member's desired state set to the
//! rollout's release (or back to what it ran), each under a new
//! generation recorded in the rollout record.

use super::{Note, RolloutRecord, NOTES_KEPT};
use crate::http::Api;
use petrel_protocol::rollout::{Action, Input};
use petrel_protocol::ReleaseRef;

/// Performs `actions`; returns inputs they lead to (a device its release
/// cannot be resolved for has failed).
pub(super) async fn perform(
    api: &Api,
    rec: &mut RolloutRecord,
    actions: Vec<Action>,
    now: u64,
) -> Vec<Input> {
    let mut follow = Vec::new();
    for action in actions {
        match action {
            Action::Deploy { device } => {
                let release = rec.rollout.release.clone();
                match set(api, &device, Some(&release)).await {
                    Ok(generation) => rec.deployed(&device, generation),
                    Err(reason) => follow.push(Input::Failed { device, reason }),
                }
            }
            Action::Revert { device, to } => match set(api, &device, to.as_ref()).await {
                Ok(generation) => rec.sent_back(&device, generation, to.is_none(), now),
                Err(reason) => note(
                    rec,
                    now,
                    format!("{device}: could not be sent back: {reason}"),
                ),
            },
            Action::Note(text) => note(rec, now, text),
        }
    }
    follow
}

pub(super) fn note(rec: &mut RolloutRecord, at_ms: u64, text: String) {
    rec.changed = true;
    rec.notes.push(Note { at_ms, text });
    let excess = rec.notes.len().saturating_sub(NOTES_KEPT);
    rec.notes.drain(..excess);
}

/// Sets the device's desired release, resolved for its platform.
async fn set(api: &Api, device: &str, release: Option<&ReleaseRef>) -> Result<u64, String> {
    let manifest = match release {
        Some(r) => {
            let rel = api.store.release(r).map_err(|e| e.to_string())?;
            let reported = api.store.reported(device).map_err(|e| e.to_string())?;
            let platform = reported.and_then(|r| r.platform);
            Some(
                rel.for_platform(platform.as_ref())
                    .map_err(|e| e.to_string())?,
            )
        }
        None => None,
    };
    let _guard = api.deploy_lock.lock().await;
    crate::http::deploy::publish(api, device, manifest)
        .map(|d| d.generation)
        .map_err(|e| e.1)
}
