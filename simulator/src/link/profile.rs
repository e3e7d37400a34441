//! Link profiles: how a virtual device's network behaves (latency and
//! jitter, bandwidth each way, connections dropped, stalls). Built-in
//! profiles stand for common device links; a scenario may define more.

use serde::{Deserialize, Serialize};

/// One link's behaviour. Times in milliseconds or seconds as named;
/// bandwidth in kilobits per second (`None`: not capped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// Added one-way delay, and its random spread (uniform, ±).
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub jitter_ms: u64,
    /// Towards the device (downloads) and from it.
    #[serde(default)]
    pub down_kbps: Option<u64>,
    #[serde(default)]
    pub up_kbps: Option<u64>,
    /// A connection is dropped after a random time of this mean
    /// (exponential), seconds.
    #[serde(default)]
    pub drop_mean_s: Option<f64>,
    /// Every connection is dropped this long after it opened, seconds.
    #[serde(default)]
    pub drop_after_s: Option<f64>,
    /// The link freezes for `stall_ms` about every `stall_every_s`.
    #[serde(default)]
    pub stall_every_s: Option<f64>,
    #[serde(default)]
    pub stall_ms: u64,
}

impl Profile {
    fn named(name: &str) -> Profile {
        Profile {
            name: name.into(),
            latency_ms: 0,
            jitter_ms: 0,
            down_kbps: None,
            up_kbps: None,
            drop_mean_s: None,
            drop_after_s: None,
            stall_every_s: None,
            stall_ms: 0,
        }
    }

    /// The built-in profiles: `lan`, `wifi`, `lte`, `nbiot`, `flaky-2g`.
    pub fn builtin() -> Vec<Profile> {
        vec![
            Profile::named("lan"),
            Profile {
                latency_ms: 5,
                jitter_ms: 3,
                down_kbps: Some(20_000),
                up_kbps: Some(10_000),
                ..Profile::named("wifi")
            },
            Profile {
                latency_ms: 40,
                jitter_ms: 20,
                down_kbps: Some(5_000),
                up_kbps: Some(1_000),
                drop_mean_s: Some(600.0),
                ..Profile::named("lte")
            },
            Profile {
                latency_ms: 300,
                jitter_ms: 100,
                down_kbps: Some(60),
                up_kbps: Some(20),
                drop_mean_s: Some(300.0),
                stall_every_s: Some(120.0),
                stall_ms: 3_000,
                ..Profile::named("nbiot")
            },
            Profile {
                latency_ms: 500,
                jitter_ms: 300,
                down_kbps: Some(40),
                up_kbps: Some(20),
                drop_mean_s: Some(45.0),
                stall_every_s: Some(30.0),
                stall_ms: 5_000,
                ..Profile::named("flaky-2g")
            },
        ]
    }

    /// Bytes per second for `kbps` (`None`: unlimited).
    pub fn rate(kbps: Option<u64>) -> Option<u64> {
        kbps.map(|k| (k * 1000 / 8).max(1))
    }
}
