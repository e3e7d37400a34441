//! Facts about the device the agent reports for the controller's
//! registry: its host name, the free space where it keeps its data, and
//! the host's health (uptime, memory, load, disk size).
//!
//! The `/proc` files are parsed by pure functions (`parse_*`) that take
//! the text and answer `None` for anything malformed: a kernel that says
//! something unexpected costs the report its health, never the agent.

use petrel_protocol::DeviceHealth;
use std::path::Path;
use std::time::Instant;

/// The kernel's host name.
pub fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

/// Bytes available to the agent on the filesystem holding `dir`.
// the conversions matter on 32-bit targets (armv7), where they widen
#[allow(clippy::useless_conversion)]
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size())))
}

/// Size in bytes of the filesystem holding `dir`.
#[allow(clippy::useless_conversion)]
pub fn total_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(u64::from(s.blocks()).saturating_mul(u64::from(s.fragment_size())))
}

/// The host's health now: `None` if `/proc` cannot be read or parsed.
/// `agent_started` is when this agent process started; `data_dir` where
/// it keeps its data.
pub fn health(agent_started: Instant, data_dir: &Path) -> Option<DeviceHealth> {
    let read = |f: &str| std::fs::read_to_string(Path::new("/proc").join(f)).ok();
    let (mem_total_bytes, mem_available_bytes) = parse_meminfo(&read("meminfo")?)?;
    let [load1_x100, load5_x100, load15_x100] = parse_loadavg(&read("loadavg")?)?;
    Some(DeviceHealth {
        uptime_s: parse_uptime(&read("uptime")?)?,
        agent_uptime_s: agent_started.elapsed().as_secs(),
        mem_total_bytes,
        mem_available_bytes,
        load1_x100,
        load5_x100,
        load15_x100,
        disk_total_bytes: total_bytes(data_dir),
    })
}

/// Whole seconds since boot from `/proc/uptime` (`"12345.67 23456.78"`).
pub fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let whole = first.split_once('.').map_or(first, |(w, _)| w);
    whole.parse().ok()
}

/// (`MemTotal`, `MemAvailable`) in bytes from `/proc/meminfo`; kernels
/// before 3.14 have no `MemAvailable`: `MemFree` stands in.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let mut parts = rest.split_whitespace();
            let n: u64 = parts.next()?.parse().ok()?;
            match parts.next() {
                Some("kB") => n.checked_mul(1024),
                None => Some(n),
                Some(_) => None,
            }
        })
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable").or_else(|| field("MemFree"))?;
    Some((total, available.min(total)))
}

/// The 1, 5 and 15 minute load averages times 100 from `/proc/loadavg`
/// (`"0.25 1.50 12.00 2/345 6789"`).
pub fn parse_loadavg(text: &str) -> Option<[u32; 3]> {
    let mut fields = text.split_whitespace();
    let mut load = [0u32; 3];
    for slot in &mut load {
        *slot = hundredths(fields.next()?)?;
    }
    Some(load)
}

/// `"1.5"` as 150, without floating point: digits, one optional point,
/// and at most two decimals counted (more are cut).
fn hundredths(s: &str) -> Option<u32> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(frac.is_empty() || digits(frac)) {
        return None;
    }
    let frac: String = frac.chars().chain("00".chars()).take(2).collect();
    whole
        .parse::<u32>()
        .ok()?
        .checked_mul(100)?
        .checked_add(frac.parse::<u32>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:        3884056 kB\nMemFree:          204400 kB\nMemAvailable:    2417740 kB\nBuffers:          101232 kB\n";

    #[test]
    fn this_machine_has_a_name_free_space_and_health() {
        assert!(hostname().is_some());
        assert!(free_bytes(Path::new("/")).unwrap_or(0) > 0);
        let h = health(Instant::now(), Path::new("/")).expect("health of this machine");
        assert!(h.uptime_s > 0 && h.mem_total_bytes >= h.mem_available_bytes);
        assert!(h.disk_total_bytes.unwrap_or(0) >= free_bytes(Path::new("/")).unwrap_or(0));
    }

    #[test]
    fn uptime_is_read_in_whole_seconds() {
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350735));
        assert_eq!(parse_uptime("12 3"), Some(12));
    }

    #[test]
    fn meminfo_gives_total_and_available_in_bytes() {
        assert_eq!(
            parse_meminfo(MEMINFO),
            Some((3884056 * 1024, 2417740 * 1024))
        );
    }

    #[test]
    fn an_old_kernel_without_mem_available_falls_back_to_mem_free() {
        let old = "MemTotal: 1000 kB\nMemFree: 300 kB\n";
        assert_eq!(parse_meminfo(old), Some((1000 * 1024, 300 * 1024)));
    }

    #[test]
    fn load_averages_are_kept_in_hundredths() {
        assert_eq!(
            parse_loadavg("0.25 1.50 12.00 2/345 6789\n"),
            Some([25, 150, 1200])
        );
        assert_eq!(parse_loadavg("3 0.5 0.125 1/1 1"), Some([300, 50, 12]));
    }

    #[test]
    fn malformed_proc_text_gives_none_and_never_panics() {
        for bad in ["", "   ", "abc", "-1.0 2", ".5 1", "1e9 2"] {
            assert_eq!(parse_uptime(bad), None, "uptime {bad:?}");
        }
        for bad in [
            "",
            "MemFree: 5 kB",
            "MemTotal: lots kB\nMemAvailable: 1 kB",
            "MemTotal: 5 MB\nMemAvailable: 1 kB",
            "MemTotal: 99999999999999999999 kB\nMemFree: 1 kB",
            "MemTotal: 18446744073709551615 kB\nMemFree: 1 kB",
            "MemTotalish: 5 kB\nMemFree: 1 kB",
        ] {
            assert_eq!(parse_meminfo(bad), None, "meminfo {bad:?}");
        }
        for bad in [
            "",
            "0.1 0.2",
            "a b c",
            "1..2 0 0",
            "-1 0 0",
            "1.x 0 0",
            "99999999999 0 0",
            "+1 0 0",
        ] {
            assert_eq!(parse_loadavg(bad), None, "loadavg {bad:?}");
        }
    }
}
