//! Rollouts as the controller runs them: the pure planner
//! (`petrel_protocol::rollout`) fed by one driver task with what devices
//! report, the operator's commands and a one-second tick; what each batch
//! of steps changed is persisted before its actions run, so a controller
//! restarted by kill -9 resumes every rollout where it was.
//!
//! - [`core`]: the unfinished rollouts; reports and commands become
//!   planner steps; what changed is written.
//! - [`driver`]: the task around the core, batching messages.
//! - [`act`]: performing the planner's actions (desired states).
//! - [`persist`]: the store layout (a head record, a record per member).
//! - [`rollback`]: following an abort's rollback to its end.

mod act;
pub mod core;
mod driver;
pub mod persist;
pub mod rollback;

use petrel_protocol::rollout::{Input, Rollout};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};

pub(crate) use driver::spawn;

/// A rollout with what the controller keeps beside the planner's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub rollout: Rollout,
    /// The desired generation each started member was given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub generations: BTreeMap<String, u64>,
    /// Members sent back by an abort, and the generation of that revert.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reverted: BTreeMap<String, u64>,
    /// How each sent-back member's rollback ended, once it has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reverts: BTreeMap<String, rollback::RevertOutcome>,
    /// The rollback's counts, once an abort sent members back.
    #[serde(default)]
    pub rollback: Option<rollback::Rollback>,
    /// What happened, oldest first (the last [`NOTES_KEPT`]).
    #[serde(default)]
    pub notes: Vec<Note>,
    /// The head (phase, tallies, notes) changed since it was last stored.
    #[serde(skip)]
    pub(crate) changed: bool,
}

impl RolloutRecord {
    /// A new rollout's record (all of it to be stored).
    pub fn new(rollout: Rollout) -> RolloutRecord {
        RolloutRecord {
            rollout,
            generations: Default::default(),
            reverted: Default::default(),
            reverts: Default::default(),
            rollback: None,
            notes: Default::default(),
            changed: true,
        }
    }

    /// Member `device` was sent the release under `generation`.
    pub fn deployed(&mut self, device: &str, generation: u64) {
        self.rollout.mark_dirty(device);
        self.generations.insert(device.to_string(), generation);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub at_ms: u64,
    pub text: String,
}

const NOTES_KEPT: usize = 200;

/// What the driver is asked.
pub(crate) enum Msg {
    /// The driver's clock (deadlines, soaks, the start rate).
    Tick,
    /// A device's report, presence or labels changed.
    Observed(String),
    Create(Box<Rollout>, oneshot::Sender<Result<RolloutRecord, String>>),
    Command(
        String,
        Input,
        oneshot::Sender<Result<RolloutRecord, String>>,
    ),
}

/// Handle of the driver task.
#[derive(Clone)]
pub struct Rollouts {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Rollouts {
    /// Tells the driver a device changed.
    pub fn observed(&self, device: &str) {
        let _ = self.tx.send(Msg::Observed(device.to_string()));
    }

    pub async fn create(&self, rollout: Rollout) -> Result<RolloutRecord, String> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Create(Box::new(rollout), tx));
        rx.await
            .map_err(|_| "the rollout driver stopped".to_string())?
    }

    /// Pause, resume or abort.
    pub async fn command(&self, id: &str, input: Input) -> Result<RolloutRecord, String> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Command(id.to_string(), input, tx));
        rx.await
            .map_err(|_| "the rollout driver stopped".to_string())?
    }
}

/// The channel the fleet link reports device changes into, and the
/// handle; the driver is started with [`spawn`] once the API exists.
pub(crate) fn channel() -> (Rollouts, mpsc::UnboundedReceiver<Msg>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Rollouts { tx }, rx)
}
