//! The rollout driver: one task runs the [`Core`] on device changes,
//! operator commands and a one-second tick. Messages are taken in batches
//! (all that are waiting, up to [`BATCH_MAX`]): every step of a batch
//! runs, what changed is written in one transaction, and only then are the
//! steps' actions performed (and what they recorded written again). Under
//! a report storm one write serves many steps; when idle a message costs
//! one write.

use super::core::Core;
use super::{act, persist, Msg, RolloutRecord};
use crate::http::Api;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<RolloutRecord, String>>;

/// Messages handled between two writes at most.
const BATCH_MAX: usize = 4096;

/// Starts the driver: loads every unfinished rollout from the store (a
/// restart resumes them) and runs until the channel closes.
pub(crate) fn spawn(api: Api, mut rx: UnboundedReceiver<Msg>) {
    tokio::spawn(async move {
        let mut core = Core::load(&api.store);
        core.redeploy_unrecorded();
        settle(&api, &mut core, Vec::new(), crate::now_ms()).await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(msg) => batch.push(msg),
                },
                _ = tick.tick() => batch.push(Msg::Tick),
            }
            crate::drain_waiting(&mut rx, &mut batch, BATCH_MAX);
            let now = crate::now_ms();
            let mut replies = Vec::new();
            for msg in batch {
                if let Some(reply) = plan_msg(&api, &mut core, msg, now) {
                    replies.push(reply);
                }
            }
            settle(&api, &mut core, replies, now).await;
        }
    });
}

/// Runs the planner on one message; an operator request's reply waits
/// until its step is stored and acted on.
fn plan_msg(api: &Api, core: &mut Core, msg: Msg, now: u64) -> Option<(String, Reply)> {
    match msg {
        Msg::Tick => core.tick(now),
        Msg::Observed(device) => core.observed(&api.store, &device, now),
        Msg::Create(rollout, reply) => {
            let id = rollout.id.clone();
            if core.get(&id).is_some() || matches!(persist::exists(&api.store, &id), Ok(true)) {
                let _ = reply.send(Err(format!("rollout {id} exists already")));
                return None;
            }
            core.insert(RolloutRecord::new(*rollout));
            core.plan(&id, petrel_protocol::rollout::Input::Tick, now);
            return Some((id, reply));
        }
        Msg::Command(id, input, reply) => {
            if core.get(&id).is_none() {
                let why = match persist::exists(&api.store, &id) {
                    Ok(true) => format!("rollout {id} has finished"),
                    _ => format!("no rollout {id}"),
                };
                let _ = reply.send(Err(why));
                return None;
            }
            core.plan(&id, input, now);
            return Some((id, reply));
        }
    }
    None
}

/// Stores what changed, then performs the waiting actions, planning what
/// they lead to, until nothing is left; then answers the operator and
/// retires finished rollouts. If the store fails, nothing is performed:
/// the actions wait for the next batch.
async fn settle(api: &Api, core: &mut Core, replies: Vec<(String, Reply)>, now: u64) {
    loop {
        if let Err(e) = core.store(&api.store) {
            tracing::error!("rollout state could not be stored; its actions wait: {e}");
            for (_, reply) in replies {
                let _ = reply.send(Err(format!("the rollout could not be stored: {e}")));
            }
            return;
        }
        let actions = core.take_actions();
        if actions.is_empty() {
            break;
        }
        for (id, action) in actions {
            let Some(rec) = core.get_mut(&id) else {
                continue;
            };
            for input in act::perform(api, rec, vec![action], now).await {
                core.plan(&id, input, now);
            }
        }
    }
    for (id, reply) in replies {
        let rec = core.get(&id).cloned();
        let _ = reply.send(rec.ok_or_else(|| format!("no rollout {id}")));
    }
    core.retire_finished();
}
