//! How an update may proceed on a device, beyond what it installs: how
//! long an application's update lock may hold the swap back, and how many
//! bytes the update may cost a metered link. The controller puts these in
//! the signed desired state (from the device's groups, or a deploy's
//! flags); the agent obeys them. Pure rules, no I/O: the agent's driver
//! reads the lock files and counts the bytes, these functions decide.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether a device may download a layer's full blob when it cannot get
/// a delta for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullFallback {
    #[default]
    Allow,
    /// The update fails instead (a metered link).
    Deny,
}

impl std::str::FromStr for FullFallback {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(FullFallback::Allow),
            "deny" => Ok(FullFallback::Deny),
            other => Err(format!(
                "full_fallback {other:?}: expected \"allow\" or \"deny\""
            )),
        }
    }
}

/// What one update may download.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataBudget {
    /// Most bytes one update may download (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub full_fallback: FullFallback,
}

/// Why a download may not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("the data budget denies the full download of layer {layer} ({size} bytes): no usable delta for it, and full_fallback is \"deny\"")]
    FullDenied { layer: String, size: u64 },
    #[error("the data budget of {max} bytes per update would be exceeded: {used} bytes used, layer {layer} needs up to {need} more")]
    Exceeded {
        layer: String,
        used: u64,
        need: u64,
        max: u64,
    },
}

impl DataBudget {
    /// Bytes still allowed after `used` (`u64::MAX`: no limit).
    pub fn remaining(&self, used: u64) -> u64 {
        self.max_bytes.map_or(u64::MAX, |m| m.saturating_sub(used))
    }

    /// Whether the full blob of `layer` (`size` bytes, of which `held`
    /// are already on the device) may be downloaded after `used` bytes.
    pub fn allow_full(
        &self,
        layer: &str,
        size: u64,
        held: u64,
        used: u64,
    ) -> Result<(), BudgetError> {
        if self.full_fallback == FullFallback::Deny {
            return Err(BudgetError::FullDenied {
                layer: layer.to_string(),
                size,
            });
        }
        self.allow(layer, size.saturating_sub(held), used)
    }

    /// Whether `need` more bytes fit after `used`.
    pub fn allow(&self, layer: &str, need: u64, used: u64) -> Result<(), BudgetError> {
        match self.max_bytes {
            Some(max) if used.saturating_add(need) > max => Err(BudgetError::Exceeded {
                layer: layer.to_string(),
                used,
                need,
                max,
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for DataBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max_bytes {
            Some(m) => write!(f, "at most {} per update", human_bytes(m))?,
            None => write!(f, "no byte limit")?,
        }
        match self.full_fallback {
            FullFallback::Allow => Ok(()),
            FullFallback::Deny => write!(f, ", deltas only"),
        }
    }
}

/// The update rules a desired state carries besides its release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdatePolicy {
    /// When the device may swap.
    pub window: Option<crate::window::Window>,
    /// See [`crate::Desired::lock_override_after_s`].
    pub lock_override_after_s: Option<u64>,
    pub budget: Option<DataBudget>,
}

impl UpdatePolicy {
    /// Each rule from `self`, or from `fallback` where `self` has none.
    pub fn or(self, fallback: UpdatePolicy) -> UpdatePolicy {
        UpdatePolicy {
            window: self.window.or(fallback.window),
            lock_override_after_s: self
                .lock_override_after_s
                .or(fallback.lock_override_after_s),
            budget: self.budget.or(fallback.budget),
        }
    }
}

/// What the agent does with an installed release when an application
/// holds its update lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockDecision {
    /// No lock held: swap.
    Swap,
    /// A lock is held: wait in `deferred`.
    Defer,
    /// A lock is held, but the operator's override applies: swap anyway.
    Override,
}

/// The lock rule: a held lock defers the swap until it is released, or
/// until the device has deferred `override_after_s` (0: the lock is
/// ignored, as with `petrel deploy --force`).
pub fn lock_decision(
    held: bool,
    deferred_since_ms: Option<u64>,
    override_after_s: Option<u64>,
    now_ms: u64,
) -> LockDecision {
    if !held {
        return LockDecision::Swap;
    }
    let Some(after) = override_after_s else {
        return LockDecision::Defer;
    };
    let since = deferred_since_ms.unwrap_or(now_ms);
    match now_ms.saturating_sub(since) >= after.saturating_mul(1000) {
        true => LockDecision::Override,
        false => LockDecision::Defer,
    }
}

/// `1500`, `64KB`, `10MB`, `1.5GiB` … (KB/MB/GB are powers of 1000,
/// KiB/MiB/GiB of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 500MB, 2GiB)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "mb" | "m" => 1000 * 1000,
        "gb" | "g" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// 1.5 MB, 820 KB, 12 B.
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 10_000_000 => format!("{} MB", n / 1_000_000),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{} KB", n / 1_000),
        n => format!("{n} B"),
    }
}

/// `90`, `90s`, `15m`, `2h`, `1d` as seconds.
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 90s, 15m, 2h)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{s:?}: unknown unit {other:?} (s, m, h, d)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_refuses_every_full_download_and_allow_only_past_the_limit() {
        let deny = DataBudget {
            max_bytes: None,
            full_fallback: FullFallback::Deny,
        };
        assert!(matches!(
            deny.allow_full("sha256:aa", 10, 0, 0),
            Err(BudgetError::FullDenied { size: 10, .. })
        ));
        let capped = DataBudget {
            max_bytes: Some(100),
            full_fallback: FullFallback::Allow,
        };
        assert!(capped.allow_full("l", 60, 0, 40).is_ok());
        // bytes already on the device cost nothing
        assert!(capped.allow_full("l", 80, 30, 40).is_ok());
        let err = capped.allow_full("l", 61, 0, 40).unwrap_err();
        assert!(err.to_string().contains("100 bytes per update"), "{err}");
        assert_eq!(capped.remaining(40), 60);
        assert_eq!(DataBudget::default().remaining(40), u64::MAX);
    }

    #[test]
    fn a_held_lock_defers_until_released_or_overridden() {
        use LockDecision::*;
        assert_eq!(lock_decision(false, None, None, 0), Swap);
        assert_eq!(lock_decision(true, None, None, 5_000), Defer);
        assert_eq!(lock_decision(true, Some(0), None, u64::MAX), Defer);
        assert_eq!(lock_decision(true, Some(1_000), Some(60), 60_999), Defer);
        assert_eq!(lock_decision(true, Some(1_000), Some(60), 61_000), Override);
        // --force: the lock is not even waited for
        assert_eq!(lock_decision(true, None, Some(0), 5), Override);
    }

    #[test]
    fn sizes_and_durations_parse_with_their_units() {
        assert_eq!(parse_bytes("1500").unwrap(), 1500);
        assert_eq!(parse_bytes("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_bytes("1.5 GiB").unwrap(), 1_610_612_736);
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
        assert_eq!(parse_seconds("15m").unwrap(), 900);
        assert_eq!(parse_seconds("90").unwrap(), 90);
        assert!(parse_seconds("1w").is_err());
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(4_290_000), "4.3 MB");
    }

    #[test]
    fn an_absent_budget_or_fallback_reads_as_allow() {
        let b: DataBudget = serde_json::from_str("{}").unwrap();
        assert_eq!(b, DataBudget::default());
        let b: DataBudget = serde_json::from_str(r#"{"full_fallback":"deny"}"#).unwrap();
        assert_eq!(b.full_fallback, FullFallback::Deny);
        assert_eq!("deny".parse::<FullFallback>().unwrap(), FullFallback::Deny);
        assert!("never".parse::<FullFallback>().is_err());
    }
}
