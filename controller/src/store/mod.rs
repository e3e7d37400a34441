//! The controller's durable state in sled: images, releases, each device's
//! desired state (with its generation), last report, presence and recent
//! events. Every write is flushed before the caller acts on it.

use petrel_protocol::{
    Desired, Digest, Event, ImageManifest, LayerDescriptor, ReleaseManifest, ReleaseRef, Reported,
    SCHEMA,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Events kept per device for `petrel events`.
const EVENTS_KEPT: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening store {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store: {0}")]
    Db(#[from] sled::Error),
    #[error("store record {key} is corrupt: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("release {0} not found")]
    NoRelease(String),
    #[error("release {0} already exists with different content")]
    ReleaseConflict(String),
}

/// Presence of a device as last seen on its status topic.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Presence {
    pub online: bool,
    pub last_seen_ms: u64,
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    images: sled::Tree,
    releases: sled::Tree,
    desired: sled::Tree,
    reported: sled::Tree,
    presence: sled::Tree,
    events: sled::Tree,
    /// diff_id → layer descriptor (which blob holds that tar).
    layers: sled::Tree,
    /// `name:tag` → every platform variant of a multi-platform image (the
    /// `images` record is its default variant).
    variants: sled::Tree,
    /// device id → the last generation of a forgotten device, so one that
    /// comes back is never sent a generation it already passed.
    retired: sled::Tree,
    /// rollout id → the rollout's head record (see `rollouts::persist`).
    rollouts: sled::Tree,
    /// `rollout id \0 device id` → that member's record.
    rollout_members: sled::Tree,
    /// device id → its operator labels.
    labels: sled::Tree,
    /// group name → saved selector and maintenance window.
    groups: sled::Tree,
    /// alert sequence number → alert (see `alerts`).
    alerts: sled::Tree,
}

mod alerts;
mod devices;
mod fleet_meta;

fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &str) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                key: key.to_string(),
                source,
            }),
    }
}

/// Writes `v` under `key`, not yet flushed.
fn insert<T: Serialize>(tree: &sled::Tree, key: &str, v: &T) -> Result<(), StoreError> {
    tree.insert(key, serde_json::to_vec(v).unwrap_or_default())?;
    Ok(())
}

fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for kv in tree.iter() {
        let (k, v) = kv?;
        let item = serde_json::from_slice(&v).map_err(|source| StoreError::Corrupt {
            key: String::from_utf8_lossy(&k).into_owned(),
            source,
        })?;
        out.push(item);
    }
    Ok(out)
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::open(dir).map_err(|source| StoreError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Store {
            images: db.open_tree("images")?,
            releases: db.open_tree("releases")?,
            desired: db.open_tree("desired")?,
            reported: db.open_tree("reported")?,
            presence: db.open_tree("presence")?,
            events: db.open_tree("events")?,
            layers: db.open_tree("layers")?,
            retired: db.open_tree("retired")?,
            variants: db.open_tree("variants")?,
            rollouts: db.open_tree("rollouts")?,
            rollout_members: db.open_tree("rollout_members")?,
            labels: db.open_tree("labels")?,
            groups: db.open_tree("groups")?,
            alerts: db.open_tree("alerts")?,
            db,
        })
    }

    fn put<T: Serialize>(&self, tree: &sled::Tree, key: &str, v: &T) -> Result<(), StoreError> {
        insert(tree, key, v)?;
        self.flush()
    }

    pub fn put_image(&self, m: &ImageManifest) -> Result<(), StoreError> {
        self.put_layers(m)?;
        self.put(&self.images, &format!("{}:{}", m.name, m.tag), m)
    }

    fn put_layers(&self, m: &ImageManifest) -> Result<(), StoreError> {
        for l in &m.layers {
            self.layers.insert(
                l.diff_id.to_string(),
                serde_json::to_vec(l).unwrap_or_default(),
            )?;
        }
        Ok(())
    }

    /// Stores an image with its platform variants (`variants` empty for a
    /// single-platform image).
    pub fn put_image_variants(
        &self,
        default: &ImageManifest,
        variants: &[ImageManifest],
    ) -> Result<(), StoreError> {
        let key = format!("{}:{}", default.name, default.tag);
        match variants.len() {
            0 | 1 => _ = self.variants.remove(&key)?,
            _ => {
                for v in variants {
                    self.put_layers(v)?;
                }
                self.variants
                    .insert(&key, serde_json::to_vec(variants).unwrap_or_default())?;
            }
        }
        self.put_image(default)
    }

    /// Every platform variant of `name:tag` (the one image when it has a
    /// single platform); empty if there is no such image.
    pub fn image_variants(&self, name: &str, tag: &str) -> Result<Vec<ImageManifest>, StoreError> {
        let key = format!("{name}:{tag}");
        if let Some(all) = get::<Vec<ImageManifest>>(&self.variants, &key)? {
            return Ok(all);
        }
        Ok(self.image(name, tag)?.into_iter().collect())
    }

    /// The stored layer whose uncompressed tar has this diff_id.
    pub fn layer(&self, diff_id: &Digest) -> Result<Option<LayerDescriptor>, StoreError> {
        get(&self.layers, &diff_id.to_string())
    }

    pub fn image(&self, name: &str, tag: &str) -> Result<Option<ImageManifest>, StoreError> {
        get(&self.images, &format!("{name}:{tag}"))
    }

    /// Every image, one entry per platform variant.
    pub fn images(&self) -> Result<Vec<ImageManifest>, StoreError> {
        let mut out = Vec::new();
        for image in all::<ImageManifest>(&self.images)? {
            out.extend(self.image_variants(&image.name, &image.tag)?);
        }
        Ok(out)
    }

    /// Removes an image record; `false` if there was none.
    pub fn delete_image(&self, name: &str, tag: &str) -> Result<bool, StoreError> {
        self.variants.remove(format!("{name}:{tag}"))?;
        let removed = self.images.remove(format!("{name}:{tag}"))?.is_some();
        self.db.flush()?;
        Ok(removed)
    }

    /// Keeps only the layer records (diff_id → blob) `keep` accepts.
    pub fn retain_layers(&self, keep: impl Fn(&Digest) -> bool) -> Result<(), StoreError> {
        for k in self.layers.iter().keys() {
            let k = k?;
            let dead = String::from_utf8_lossy(&k)
                .parse::<Digest>()
                .map_or(true, |d| !keep(&d));
            if dead {
                self.layers.remove(k)?;
            }
        }
        self.db.flush()?;
        Ok(())
    }

    /// Stores a release; re-creating an identical one is a no-op, a
    /// different one under the same name@version is a conflict.
    pub fn put_release(&self, r: &ReleaseManifest) -> Result<(), StoreError> {
        let key = r.reference().to_string();
        match get::<ReleaseManifest>(&self.releases, &key)? {
            Some(old) if old == *r => Ok(()),
            Some(_) => Err(StoreError::ReleaseConflict(key)),
            None => self.put(&self.releases, &key, r),
        }
    }

    pub fn release(&self, r: &ReleaseRef) -> Result<ReleaseManifest, StoreError> {
        get(&self.releases, &r.to_string())?.ok_or_else(|| StoreError::NoRelease(r.to_string()))
    }

    pub fn releases(&self) -> Result<Vec<ReleaseManifest>, StoreError> {
        all(&self.releases)
    }

    /// Removes a release record; `false` if there was none.
    pub fn delete_release(&self, r: &ReleaseRef) -> Result<bool, StoreError> {
        let removed = self.releases.remove(r.to_string())?.is_some();
        self.db.flush()?;
        Ok(removed)
    }

    /// Sets a device's desired release with the next generation; the
    /// returned state is durable before anything is published.
    pub fn set_desired(
        &self,
        device_id: &str,
        release: Option<ReleaseManifest>,
        policy: petrel_protocol::policy::UpdatePolicy,
        now_ms: u64,
    ) -> Result<Desired, StoreError> {
        let desired = self.record_desired(device_id, release, policy, now_ms)?;
        self.flush()?;
        Ok(desired)
    }

    /// [`Store::set_desired`] without the flush: a deploy to many devices
    /// records each, then calls [`Store::flush`] once before publishing.
    pub fn record_desired(
        &self,
        device_id: &str,
        release: Option<ReleaseManifest>,
        policy: petrel_protocol::policy::UpdatePolicy,
        now_ms: u64,
    ) -> Result<Desired, StoreError> {
        let prev: Option<Desired> = get(&self.desired, device_id)?;
        let retired: Option<u64> = get(&self.retired, device_id)?;
        let last = prev.map(|p| p.generation).or(retired).unwrap_or(0);
        let desired = Desired {
            schema: SCHEMA,
            device_id: device_id.to_string(),
            generation: last + 1,
            release,
            issued_at_ms: now_ms,
            expires_at_ms: None,
            window: policy.window,
            lock_override_after_s: policy.lock_override_after_s,
            budget: policy.budget,
        };
        insert(&self.desired, device_id, &desired)?;
        Ok(desired)
    }

    pub fn desired(&self, device_id: &str) -> Result<Option<Desired>, StoreError> {
        get(&self.desired, device_id)
    }

    /// The devices with a desired state, without reading the states.
    pub fn desired_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for k in self.desired.iter().keys() {
            ids.push(String::from_utf8_lossy(&k?).into_owned());
        }
        Ok(ids)
    }

    pub fn put_reported(&self, r: &Reported) -> Result<(), StoreError> {
        self.record_reported(r)?;
        self.flush()
    }

    /// Writes a report without flushing: the fleet link records a batch of
    /// device messages, then calls [`Store::flush`] once.
    pub fn record_reported(&self, r: &Reported) -> Result<(), StoreError> {
        insert(&self.reported, &r.device_id, r)
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn reported(&self, device_id: &str) -> Result<Option<Reported>, StoreError> {
        get(&self.reported, device_id)
    }

    /// Writes presence without flushing (see [`Store::record_reported`]).
    pub fn record_presence(&self, device_id: &str, p: &Presence) -> Result<(), StoreError> {
        insert(&self.presence, device_id, p)
    }

    pub fn presence(&self, device_id: &str) -> Result<Option<Presence>, StoreError> {
        get(&self.presence, device_id)
    }

    /// Forgets a device: its desired state, last report, presence and
    /// events. `false` if nothing was known of it.
    pub fn forget_device(&self, device_id: &str) -> Result<bool, StoreError> {
        let mut known = self.clear_desired(device_id)?.is_some();
        for tree in [&self.reported, &self.presence, &self.labels] {
            known |= tree.remove(device_id)?.is_some();
        }
        for k in self.events.scan_prefix(format!("{device_id}/")).keys() {
            self.events.remove(k?)?;
            known = true;
        }
        self.db.flush()?;
        Ok(known)
    }

    /// Removes a device's desired state, keeping its generation (a later
    /// one continues above it); returns the generation it had.
    pub fn clear_desired(&self, device_id: &str) -> Result<Option<u64>, StoreError> {
        let Some(d) = self.desired(device_id)? else {
            return Ok(None);
        };
        let generation = serde_json::to_vec(&d.generation).unwrap_or_default();
        self.retired.insert(device_id, generation)?;
        self.desired.remove(device_id)?;
        self.db.flush()?;
        Ok(Some(d.generation))
    }

    /// Records an event without flushing (see [`Store::record_reported`]);
    /// a re-sent duplicate (same seq) overwrites itself.
    pub fn record_event(&self, e: &Event) -> Result<(), StoreError> {
        let key = format!("{}/{:020}", e.device_id, e.seq);
        insert(&self.events, &key, e)?;
        let prefix = format!("{}/", e.device_id);
        let n = self.events.scan_prefix(&prefix).count();
        for k in self
            .events
            .scan_prefix(&prefix)
            .keys()
            .take(n.saturating_sub(EVENTS_KEPT))
        {
            self.events.remove(k?)?;
        }
        Ok(())
    }

    pub fn events(&self, device_id: &str) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for v in self.events.scan_prefix(format!("{device_id}/")).values() {
            if let Ok(e) = serde_json::from_slice(&v?) {
                out.push(e);
            }
        }
        Ok(out)
    }
}
