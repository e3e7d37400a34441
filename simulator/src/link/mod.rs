//! The network fault layer between virtual devices and the controller.
//! Every device has a loopback address of its own (127.0.x.y); one proxy
//! listener per upstream (MQTT, HTTP) takes every device's connections and
//! tells the device by the address it was reached on, so 10,000 devices
//! cost two listeners, not 20,000. Each device's [`DeviceLink`] shapes its
//! traffic per its [`Profile`] and takes the scenario's faults: partitions
//! and power loss (every open connection cut).
//!
//! - [`profile`]: what a link does (built-in and scenario profiles).
//! - [`proxy`]: the listeners and the shaped pipes.

pub mod profile;
pub mod proxy;

pub use profile::Profile;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The first device's address; device `i` has this plus `i`.
const FIRST: u32 = u32::from_be_bytes([127, 0, 1, 1]);

/// Device `i`'s loopback address.
pub fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(FIRST + i as u32)
}

/// The index of the device reached on `ip`.
pub fn index_of(ip: IpAddr) -> Option<usize> {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).checked_sub(FIRST).map(|i| i as usize),
        IpAddr::V6(_) => None,
    }
}

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Controller to device.
    Down,
    Up,
}

/// Which upstream a connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mqtt,
    Http,
}

/// Bytes delivered on a device's link, by upstream and direction.
#[derive(Debug, Default)]
pub struct Counters {
    pub mqtt_down: AtomicU64,
    pub mqtt_up: AtomicU64,
    pub http_down: AtomicU64,
    pub http_up: AtomicU64,
    /// Connections the layer dropped (profile drops and power loss).
    pub dropped: AtomicU64,
}

impl Counters {
    fn slot(&self, kind: Kind, dir: Dir) -> &AtomicU64 {
        match (kind, dir) {
            (Kind::Mqtt, Dir::Down) => &self.mqtt_down,
            (Kind::Mqtt, Dir::Up) => &self.mqtt_up,
            (Kind::Http, Dir::Down) => &self.http_down,
            (Kind::Http, Dir::Up) => &self.http_up,
        }
    }

    pub fn get(&self, kind: Kind, dir: Dir) -> u64 {
        self.slot(kind, dir).load(Ordering::Relaxed)
    }
}

/// One device's link: its profile, its faults, its counters.
pub struct DeviceLink {
    pub profile: Profile,
    pub counters: Counters,
    partitioned: AtomicBool,
    /// Bumped to cut every open connection (power loss).
    cut: watch::Sender<u64>,
    rng: Mutex<StdRng>,
    /// Where the bandwidth of each direction is next free.
    next_free: Mutex<[Instant; 2]>,
    /// Offset of the stall cycle, so devices do not stall in step.
    stall_phase: Duration,
    born: Instant,
}

impl DeviceLink {
    pub fn new(profile: Profile, seed: u64) -> DeviceLink {
        let mut rng = StdRng::seed_from_u64(seed);
        let cycle = profile.stall_every_s.unwrap_or(1.0).max(0.001);
        let stall_phase = Duration::from_secs_f64(rng.gen_range(0.0..cycle));
        let now = Instant::now();
        DeviceLink {
            profile,
            counters: Counters::default(),
            partitioned: AtomicBool::new(false),
            cut: watch::channel(0).0,
            rng: Mutex::new(rng),
            next_free: Mutex::new([now; 2]),
            stall_phase,
            born: now,
        }
    }

    pub fn set_partitioned(&self, on: bool) {
        self.partitioned.store(on, Ordering::Relaxed);
    }

    pub fn partitioned(&self) -> bool {
        self.partitioned.load(Ordering::Relaxed)
    }

    /// Cuts every open connection of the device.
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    fn random(&self) -> f64 {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.gen::<f64>()
    }

    /// The delay of the next chunk: latency ± jitter.
    fn delay(&self) -> Duration {
        let p = &self.profile;
        let jitter = (self.random() * 2.0 - 1.0) * p.jitter_ms as f64;
        Duration::from_secs_f64(((p.latency_ms as f64 + jitter).max(0.0)) / 1000.0)
    }

    /// How long a new connection lives before the layer drops it.
    fn lifetime(&self) -> Option<Duration> {
        let p = &self.profile;
        let random = p.drop_mean_s.map(|mean| {
            let u = self.random().max(1e-9);
            -u.ln() * mean
        });
        let life = match (random, p.drop_after_s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        life.map(|s| Duration::from_secs_f64(s.max(0.05)))
    }

    /// When the stall under way (if any) ends.
    fn stalled_until(&self, now: Instant) -> Option<Instant> {
        let every = Duration::from_secs_f64(self.profile.stall_every_s?.max(0.001));
        let stall = Duration::from_millis(self.profile.stall_ms);
        let t = now.duration_since(self.born) + self.stall_phase;
        let into = Duration::from_nanos((t.as_nanos() % every.as_nanos()) as u64);
        (into < stall).then(|| now + (stall - into))
    }

    /// Reserves the bandwidth for `n` bytes going `dir`; when they may go.
    fn reserve(&self, dir: Dir, n: usize) -> Instant {
        let kbps = match dir {
            Dir::Down => self.profile.down_kbps,
            Dir::Up => self.profile.up_kbps,
        };
        let now = Instant::now();
        let Some(rate) = Profile::rate(kbps) else {
            return now;
        };
        let mut next = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut next[usize::from(dir == Dir::Up)];
        let start = (*slot).max(now);
        *slot = start + Duration::from_secs_f64(n as f64 / rate as f64);
        *slot
    }

    /// The largest chunk worth moving at once on this link (a tenth of a
    /// second of bandwidth, 512 B to 16 KiB).
    fn chunk(&self, dir: Dir) -> usize {
        let kbps = match dir {
            Dir::Down => self.profile.down_kbps,
            Dir::Up => self.profile.up_kbps,
        };
        Profile::rate(kbps).map_or(16_384, |r| (r as usize / 10).clamp(512, 16_384))
    }
}

/// The links of devices `first..first + devices.len()` (a simulator
/// process may hold a slice of the fleet).
pub struct Links {
    pub first: usize,
    pub devices: Vec<std::sync::Arc<DeviceLink>>,
}

impl Links {
    /// Device `i`'s link (by its fleet-wide index).
    pub fn get(&self, i: usize) -> Option<&std::sync::Arc<DeviceLink>> {
        self.devices.get(i.checked_sub(self.first)?)
    }
}
