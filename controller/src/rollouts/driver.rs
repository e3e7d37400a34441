//! The rollout driver: one task owns every unfinished rollout. Device
//! changes, operator commands and a one-second tick become planner
//! inputs; each step is persisted before its actions are performed, and
//! persisted again with what the actions recorded.

use super::{act, Msg, RolloutRecord};
use crate::http::Api;
use crate::watch::{outcome, Outcome};
use petrel_protocol::rollout::{step, Action, DeviceState, Input, Phase, Rollout};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

type Active = BTreeMap<String, RolloutRecord>;

/// Starts the driver: loads every unfinished rollout from the store (a
/// restart resumes them) and runs until the channel closes.
pub(crate) fn spawn(api: Api, mut rx: UnboundedReceiver<Msg>) {
    tokio::spawn(async move {
        let mut active: Active = api
            .store
            .rollouts::<RolloutRecord>()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| !finished(&r.rollout))
            .map(|r| (r.rollout.id.clone(), r))
            .collect();
        resume_unrecorded(&api, &mut active).await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(msg) => handle(&api, &mut active, msg).await,
                },
                _ = tick.tick() => {
                    let ids: Vec<String> = active.keys().cloned().collect();
                    for id in ids {
                        let _ = run(&api, &mut active, &id, Input::Tick).await;
                    }
                }
            }
        }
    });
}

fn finished(r: &Rollout) -> bool {
    matches!(r.phase, Phase::Completed | Phase::Aborted { .. })
}

async fn handle(api: &Api, active: &mut Active, msg: Msg) {
    match msg {
        Msg::Observed(device) => observed(api, active, &device).await,
        Msg::Create(rollout, reply) => {
            let id = rollout.id.clone();
            let exists = active.contains_key(&id)
                || matches!(api.store.rollout::<RolloutRecord>(&id), Ok(Some(_)));
            if exists {
                let _ = reply.send(Err(format!("rollout {id} exists already")));
                return;
            }
            let rec = RolloutRecord {
                rollout: *rollout,
                generations: Default::default(),
                reverted: Default::default(),
                notes: Default::default(),
            };
            active.insert(id.clone(), rec);
            let _ = reply.send(run(api, active, &id, Input::Tick).await);
        }
        Msg::Command(id, input, reply) => {
            let result = match active.contains_key(&id) {
                true => run(api, active, &id, input).await,
                false => match api.store.rollout::<RolloutRecord>(&id) {
                    Ok(Some(_)) => Err(format!("rollout {id} has finished")),
                    _ => Err(format!("no rollout {id}")),
                },
            };
            let _ = reply.send(result);
        }
    }
}

/// One planner step on rollout `id`, persisted, then its actions (and
/// what they lead to), persisted again.
async fn run(
    api: &Api,
    active: &mut Active,
    id: &str,
    input: Input,
) -> Result<RolloutRecord, String> {
    let persist_always = !matches!(input, Input::Tick | Input::Progress { .. });
    let rec = active
        .get_mut(id)
        .ok_or_else(|| format!("no rollout {id}"))?;
    let now = crate::now_ms();
    let mut inputs = vec![input];
    while let Some(input) = inputs.pop() {
        let mut actions = step(&mut rec.rollout, input, now);
        // progress-only steps change nothing durable worth a write
        if actions.is_empty() && !persist_always {
            continue;
        }
        // the step's notes are part of its record
        actions.retain(|a| match a {
            Action::Note(text) => {
                act::note(rec, now, text.clone());
                false
            }
            _ => true,
        });
        api.store
            .put_rollout(id, &*rec)
            .map_err(|e| e.to_string())?;
        inputs.extend(act::perform(api, rec, actions, now).await);
        api.store
            .put_rollout(id, &*rec)
            .map_err(|e| e.to_string())?;
    }
    let out = rec.clone();
    if finished(&rec.rollout) {
        active.remove(id);
    }
    Ok(out)
}

/// What a device's change means to each active rollout.
async fn observed(api: &Api, active: &mut Active, device: &str) {
    let Ok(view) = crate::http::views::view(api, device) else {
        return;
    };
    let facts = view.facts();
    let ids: Vec<String> = active.keys().cloned().collect();
    for id in ids {
        let Some(rec) = active.get(&id) else { continue };
        let r = &rec.rollout;
        let selected = r.selector.matches(&facts);
        let joined = Input::Joined {
            device: device.to_string(),
            previous: view.current.clone(),
        };
        let input = match r.members.get(device).map(|m| &m.state) {
            None | Some(DeviceState::Left) if selected => Some(joined),
            Some(DeviceState::Queued) if !selected => Some(Input::Left {
                device: device.to_string(),
            }),
            Some(DeviceState::Started { .. }) => {
                rec.generations
                    .get(device)
                    .map(|g| match outcome(&view, *g) {
                        Outcome::Converged => Input::Succeeded {
                            device: device.into(),
                        },
                        Outcome::Failed(reason) => Input::Failed {
                            device: device.into(),
                            reason,
                        },
                        Outcome::Superseded(g) => Input::Failed {
                            device: device.into(),
                            reason: format!("superseded by generation {g}"),
                        },
                        Outcome::Pending => Input::Progress {
                            device: device.into(),
                            phase: crate::cli::phase_name(view.phase),
                        },
                    })
            }
            _ => None,
        };
        if let Some(input) = input {
            let _ = run(api, active, &id, input).await;
        }
    }
}

/// Members started just before a crash, whose desired state was never
/// recorded, are sent the release again.
async fn resume_unrecorded(api: &Api, active: &mut Active) {
    for rec in active.values_mut() {
        let missing: Vec<String> = rec
            .rollout
            .members
            .iter()
            .filter(|(d, m)| {
                matches!(m.state, DeviceState::Started { .. }) && !rec.generations.contains_key(*d)
            })
            .map(|(d, _)| d.clone())
            .collect();
        let actions = missing
            .into_iter()
            .map(|device| Action::Deploy { device })
            .collect();
        let now = crate::now_ms();
        act::perform(api, rec, actions, now).await;
        let _ = api.store.put_rollout(&rec.rollout.id, &*rec);
    }
}
