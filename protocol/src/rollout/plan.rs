//! The rollout planner: [`step`] moves a rollout by one input and returns
//! what to do. Every phase move is in [`after_input`]; member changes go
//! through `Rollout::set` (see `members`).

use super::{Action, Breach, DeviceState, Input, Phase, Rollout};
use crate::ReleaseRef;

const MINUTE_MS: u64 = 60_000;

/// Moves `r` by one input at `now_ms`; the caller persists `r`, then
/// performs the actions.
pub fn step(r: &mut Rollout, input: Input, now_ms: u64) -> Vec<Action> {
    let mut out = Vec::new();
    on_input(r, input, now_ms, &mut out);
    after_input(r, now_ms, &mut out);
    out
}

/// What one input does to the members (and pause, resume, abort).
fn on_input(r: &mut Rollout, input: Input, now: u64, out: &mut Vec<Action>) {
    let started = |r: &Rollout, d: &str| {
        r.members
            .get(d)
            .is_some_and(|m| matches!(m.state, DeviceState::Started { .. }))
    };
    match input {
        Input::Tick => expire(r, now, out),
        Input::Joined { device, previous } => join(r, &device, previous),
        Input::Left { device } => {
            if r.members
                .get(&device)
                .is_some_and(|m| m.state == DeviceState::Queued)
            {
                r.set(&device, DeviceState::Left, now);
            }
        }
        Input::Progress { device, phase } => {
            if let Some(m) = r.members.get_mut(&device) {
                m.last_phase = phase;
            }
        }
        Input::Succeeded { device } if started(r, &device) => {
            r.set(&device, DeviceState::Succeeded, now);
        }
        Input::Failed { device, reason } if started(r, &device) => {
            retry_or_fail(r, &device, reason, now, out)
        }
        Input::Succeeded { .. } | Input::Failed { .. } => {}
        Input::Pause => pause(r, "paused by the operator".into(), out),
        Input::Resume => {
            if let Phase::Paused { wave, .. } = r.phase {
                r.phase = Phase::Active { wave };
                out.push(Action::Note(format!("resumed at wave {}", wave + 1)));
            }
        }
        Input::Abort { reason } => abort(r, reason, out),
    }
}

fn join(r: &mut Rollout, device: &str, previous: Option<ReleaseRef>) {
    let wave = match &r.phase {
        Phase::Active { wave } | Phase::Soaking { wave, .. } | Phase::Paused { wave, .. } => *wave,
        Phase::Completed => r.waves() - 1,
        Phase::Aborted { .. } => return,
    };
    match r.members.get(device).map(|m| m.state.clone()) {
        None => r.admit(device, previous, wave),
        // back in the selector before it was started: queued again
        Some(DeviceState::Left) => {
            if let Some(m) = r.members.get_mut(device) {
                r.tallies[m.wave].other -= 1;
                m.wave = wave;
                m.previous = previous;
            }
            r.tallies[wave].other += 1;
            r.set(device, DeviceState::Queued, 0);
        }
        Some(_) => {}
    }
}

fn retry_or_fail(r: &mut Rollout, device: &str, reason: String, now: u64, out: &mut Vec<Action>) {
    let attempt = match r.members.get(device).map(|m| &m.state) {
        Some(DeviceState::Started { attempt, .. }) => *attempt,
        _ => return,
    };
    if attempt < r.policy.retries {
        r.set(
            device,
            DeviceState::Started {
                since_ms: now,
                attempt: attempt + 1,
            },
            now,
        );
        out.push(Action::Deploy {
            device: device.into(),
        });
        out.push(Action::Note(format!(
            "{device} failed ({reason}); retry {}",
            attempt + 1
        )));
    } else {
        r.set(device, DeviceState::Failed { reason }, now);
    }
}

/// Started members past their deadline become stuck.
fn expire(r: &mut Rollout, now: u64, out: &mut Vec<Action>) {
    while let Some((deadline, device)) = r.deadlines.first().cloned() {
        if deadline > now {
            break;
        }
        let phase = r
            .members
            .get(&device)
            .map(|m| m.last_phase.clone())
            .unwrap_or_default();
        r.set(
            &device,
            DeviceState::Stuck {
                phase: phase.clone(),
            },
            now,
        );
        out.push(Action::Note(format!(
            "{device} is stuck ({phase:?} after the device timeout)"
        )));
    }
}

/// Stops starting devices; the unfinished ones are superseded by what
/// they ran (they stop downloading) and queued again for a resume.
fn pause(r: &mut Rollout, reason: String, out: &mut Vec<Action>) {
    let wave = match r.phase {
        Phase::Active { wave } | Phase::Soaking { wave, .. } => wave,
        _ => return,
    };
    let unfinished: Vec<String> = r
        .members
        .iter()
        .filter(|(_, m)| matches!(m.state, DeviceState::Started { .. }))
        .map(|(d, _)| d.clone())
        .collect();
    for d in unfinished {
        let to = r.members.get(&d).and_then(|m| m.previous.clone());
        r.set(&d, DeviceState::Queued, 0);
        out.push(Action::Revert { device: d, to });
    }
    out.push(Action::Note(format!(
        "paused at wave {}: {reason}",
        wave + 1
    )));
    r.phase = Phase::Paused { wave, reason };
}

/// Every member that moved goes back to what it ran; queued ones are
/// left alone.
fn abort(r: &mut Rollout, reason: String, out: &mut Vec<Action>) {
    if matches!(r.phase, Phase::Aborted { .. }) {
        return;
    }
    let moved: Vec<String> = r
        .members
        .iter()
        .filter(|(_, m)| {
            !matches!(
                m.state,
                DeviceState::Queued | DeviceState::Left | DeviceState::RolledBack
            )
        })
        .map(|(d, _)| d.clone())
        .collect();
    for d in moved {
        let to = r.members.get(&d).and_then(|m| m.previous.clone());
        r.set(&d, DeviceState::RolledBack, 0);
        out.push(Action::Revert { device: d, to });
    }
    out.push(Action::Note(format!("aborted: {reason}")));
    r.phase = Phase::Aborted { reason };
}

/// The phase moves that follow from the tallies and the clock, then the
/// starts the phase and the rate allow.
fn after_input(r: &mut Rollout, now: u64, out: &mut Vec<Action>) {
    if let Some(why) = breached(r) {
        match r.policy.on_breach {
            Breach::Pause => pause(r, why, out),
            Breach::Abort => abort(r, why, out),
        }
    }
    match r.phase.clone() {
        Phase::Active { wave } if wave_done(r, wave) => {
            let t = r.tallies[wave];
            let finished = t.succeeded + t.failed;
            if u64::from(t.succeeded) * 100
                < u64::from(r.policy.success_percent) * u64::from(finished)
            {
                let why = format!(
                    "wave {} succeeded on {}/{finished} devices, under {}%",
                    wave + 1,
                    t.succeeded,
                    r.policy.success_percent
                );
                match r.policy.on_breach {
                    Breach::Pause => pause(r, why, out),
                    Breach::Abort => abort(r, why, out),
                }
            } else {
                r.phase = Phase::Soaking {
                    wave,
                    since_ms: now,
                };
                out.push(Action::Note(format!(
                    "wave {} done: {}/{finished} succeeded; soaking",
                    wave + 1,
                    t.succeeded
                )));
            }
        }
        _ => {}
    }
    if let Phase::Soaking { wave, since_ms } = r.phase {
        if now >= since_ms + r.policy.soak_ms {
            r.phase = match wave + 1 < r.waves() {
                true => Phase::Active { wave: wave + 1 },
                false => Phase::Completed,
            };
            if r.phase == Phase::Completed {
                out.push(Action::Note("completed".into()));
            }
        }
    }
    start(r, now, out);
}

/// Whether every member of waves up to `wave` has an outcome.
fn wave_done(r: &Rollout, wave: usize) -> bool {
    r.tallies[..=wave]
        .iter()
        .all(|t| t.queued == 0 && t.started == 0)
}

/// The failure threshold, over the members with an outcome so far (so a
/// failing wave breaches early, once `min_failed` have failed).
fn breached(r: &Rollout) -> Option<String> {
    if !matches!(r.phase, Phase::Active { .. } | Phase::Soaking { .. }) {
        return None;
    }
    let (failed, finished) = r.failures();
    let p = &r.policy;
    let over = failed >= p.min_failed.max(1)
        && u64::from(failed) * 100 >= u64::from(p.max_failed_percent) * u64::from(finished);
    over.then(|| {
        format!(
            "{failed} of {finished} finished devices failed (threshold {}% and at least {})",
            p.max_failed_percent, p.min_failed
        )
    })
}

/// Starts allowed per minute `age_ms` after creation: `per_minute`,
/// grown by `rate_growth_percent` each whole minute.
fn rate_now(p: &super::Policy, age_ms: u64) -> Option<u32> {
    let base = p.per_minute?;
    let minutes = (age_ms / MINUTE_MS).min(10_000) as i32;
    let factor = (1.0 + f64::from(p.rate_growth_percent) / 100.0).powi(minutes);
    Some((f64::from(base) * factor).min(1e9) as u32)
}

/// Starts queued members of the current waves within the rate limit.
fn start(r: &mut Rollout, now: u64, out: &mut Vec<Action>) {
    let wave = match r.phase {
        Phase::Active { wave } => wave,
        Phase::Completed => r.waves() - 1,
        _ => return,
    };
    while r
        .recent_starts
        .front()
        .is_some_and(|t| now >= t + MINUTE_MS)
    {
        r.recent_starts.pop_front();
    }
    let rate = rate_now(&r.policy, now.saturating_sub(r.created_ms));
    while let Some((w, device)) = r.queue.first().cloned() {
        let limited = rate.is_some_and(|n| r.recent_starts.len() as u32 >= n);
        if w > wave || limited {
            break;
        }
        r.set(
            &device,
            DeviceState::Started {
                since_ms: now,
                attempt: 0,
            },
            now,
        );
        r.recent_starts.push_back(now);
        out.push(Action::Deploy { device });
    }
}
