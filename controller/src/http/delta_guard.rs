//! Who may make the controller compute a delta, and how often. Encoding
//! is the costliest thing the controller does (seconds of CPU and memory
//! in proportion to the layers), so a device may only ask for pairs
//! leading to a layer of its own desired release, and at most
//! [`GENERATIONS_PER_HOUR`] pairs not already cached per hour; without
//! TLS (no device identity) the target must be in some device's desired
//! release. Operators (tokens) are not limited. Cached pairs are always
//! served.

use super::{Api, ApiError};
use crate::auth::Caller;
use axum::http::StatusCode;
use petrel_protocol::Digest;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// New (uncached) pairs one device may have generated per hour.
pub const GENERATIONS_PER_HOUR: u32 = 64;
const WINDOW: Duration = Duration::from_secs(3600);

/// Per-device generation budgets.
#[derive(Default)]
pub struct DeltaGuard {
    budgets: Mutex<HashMap<String, (Instant, u32)>>,
}

impl DeltaGuard {
    /// Admits a request for the pair `from` -> `to`; `cached`: whether it
    /// is on disk already (free to serve).
    pub fn admit(
        &self,
        api: &Api,
        caller: &Caller,
        to: &Digest,
        cached: bool,
    ) -> Result<(), ApiError> {
        let device = match caller {
            Caller::Operator { .. } => return Ok(()),
            Caller::Device(id) => Some(id.as_str()),
            Caller::Anonymous => None,
        };
        if !needed(api, device, to) {
            let who = device.map_or("no device".to_string(), |d| format!("device {d}"));
            let why = format!(
                "{who}'s desired release does not contain layer {to}: no delta is made for it"
            );
            return Err(ApiError(StatusCode::FORBIDDEN, why));
        }
        match (device, cached) {
            (Some(id), false) => self.spend(id),
            _ => Ok(()),
        }
    }

    fn spend(&self, device: &str) -> Result<(), ApiError> {
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let entry = budgets.entry(device.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) > WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= GENERATIONS_PER_HOUR {
            let why = format!("device {device} asked for more than {GENERATIONS_PER_HOUR} new deltas this hour: fetch full blobs");
            return Err(ApiError(StatusCode::TOO_MANY_REQUESTS, why));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// Whether `to` is a layer of `device`'s desired release, or, when the
/// caller has no device identity (`--insecure`: no certificates), of any
/// stored release. The second check reads the releases, never every
/// device's desired state: with 10,000 devices each delta request would
/// otherwise parse 10,000 states, and the whole fleet's requests together
/// saturated the controller (found by the fleet simulator).
fn needed(api: &Api, device: Option<&str>, to: &Digest) -> bool {
    let has = |r: &petrel_protocol::ReleaseManifest| r.layers().iter().any(|l| &l.diff_id == to);
    match device {
        Some(id) => api
            .store
            .desired(id)
            .ok()
            .flatten()
            .and_then(|d| d.release)
            .is_some_and(|r| has(&r)),
        None => api.store.releases().is_ok_and(|all| all.iter().any(has)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_budget_runs_out_and_other_devices_keep_theirs() {
        let guard = DeltaGuard::default();
        for _ in 0..GENERATIONS_PER_HOUR {
            assert!(guard.spend("pi-1").is_ok());
        }
        let refused = guard.spend("pi-1").expect_err("over budget");
        assert_eq!(refused.0, StatusCode::TOO_MANY_REQUESTS);
        assert!(guard.spend("pi-2").is_ok());
    }
}
