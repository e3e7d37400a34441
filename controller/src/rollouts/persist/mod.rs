//! How rollouts are kept in the store: a head record per rollout (its
//! phase, policy, tallies and notes: a [`RolloutRecord`] without members)
//! and one record per member (its state and the generations it was sent).
//! The driver collects what changed over a batch of steps ([`Changes`])
//! and writes it in one transaction, so a step costs the members it moved,
//! not the size of the rollout; loading puts the parts back together and
//! rebuilds the planner's indexes.

use super::rollback::RevertOutcome;
use super::RolloutRecord;
use crate::store::{Store, StoreError};
use petrel_protocol::rollout::Member;
use serde::{Deserialize, Serialize};

/// One member as stored.
#[derive(Debug, Serialize, Deserialize)]
struct MemberRecord {
    #[serde(flatten)]
    member: Member,
    /// The desired generation it was given for the rollout's release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    /// The generation of the desired state that sent it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reverted: Option<u64>,
    /// How that rollback ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollback: Option<RevertOutcome>,
}

/// What a batch of steps changed, serialized, waiting to be written.
#[derive(Default)]
pub(crate) struct Changes {
    heads: Vec<(String, Vec<u8>)>,
    members: Vec<(String, String, Vec<u8>)>,
}

impl Changes {
    /// Takes what changed in `rec` since it was last collected.
    pub fn collect(&mut self, rec: &mut RolloutRecord) {
        let dirty = rec.rollout.take_dirty();
        let changed = std::mem::take(&mut rec.changed);
        if dirty.is_empty() && !changed {
            return;
        }
        let id = rec.rollout.id.clone();
        for device in dirty {
            let Some(member) = rec.rollout.members.get(&device) else {
                continue;
            };
            let record = MemberRecord {
                member: member.clone(),
                generation: rec.generations.get(&device).copied(),
                reverted: rec.reverted.get(&device).copied(),
                rollback: rec.reverts.get(&device).cloned(),
            };
            self.members.push((id.clone(), device, to_json(&record)));
        }
        self.heads.push((id, head_json(rec)));
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty() && self.members.is_empty()
    }

    /// Writes everything collected, atomically; whether there was
    /// anything to write. On failure the records stay here for the next
    /// try.
    pub fn write(&mut self, store: &Store) -> Result<bool, StoreError> {
        if self.is_empty() {
            return Ok(false);
        }
        store.write_rollouts(&self.heads, &self.members)?;
        *self = Changes::default();
        Ok(true)
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The head: the record with its per-member parts set aside (moved, not
/// copied: a head write costs the same at 50 or 50,000 members).
fn head_json(rec: &mut RolloutRecord) -> Vec<u8> {
    let members = std::mem::take(&mut rec.rollout.members);
    let generations = std::mem::take(&mut rec.generations);
    let reverted = std::mem::take(&mut rec.reverted);
    let reverts = std::mem::take(&mut rec.reverts);
    let out = to_json(&*rec);
    rec.rollout.members = members;
    rec.generations = generations;
    rec.reverted = reverted;
    rec.reverts = reverts;
    out
}

/// A whole rollout (head and members), ready for the planner.
pub fn load(store: &Store, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
    let Some(mut rec) = store.rollout_head::<RolloutRecord>(id)? else {
        return Ok(None);
    };
    // a record from before members had records of their own holds them
    // inline: they are written out on the next step
    let inline: Vec<String> = rec.rollout.members.keys().cloned().collect();
    for (device, m) in store.rollout_members::<MemberRecord>(id)? {
        if let Some(g) = m.generation {
            rec.generations.insert(device.clone(), g);
        }
        if let Some(g) = m.reverted {
            rec.reverted.insert(device.clone(), g);
        }
        if let Some(outcome) = m.rollback {
            rec.reverts.insert(device.clone(), outcome);
        }
        rec.rollout.members.insert(device, m.member);
    }
    rec.rollout.reindex();
    for device in inline {
        rec.rollout.mark_dirty(&device);
    }
    Ok(Some(rec))
}

/// Every rollout without its members: what a listing shows.
pub fn summaries(store: &Store) -> Result<Vec<RolloutRecord>, StoreError> {
    store.rollout_heads()
}

/// Whether a rollout `id` was ever created.
pub fn exists(store: &Store, id: &str) -> Result<bool, StoreError> {
    Ok(store.rollout_head::<serde::de::IgnoredAny>(id)?.is_some())
}

#[cfg(test)]
mod tests;
