//! How many device connections one controller process can hold with the
//! embedded broker. Each one costs three file descriptors (the device's
//! socket at the front, the front's socket to the broker, the broker's
//! side of it), and rumqttd refuses connections above its own maximum in
//! a way that breaks it (a stale last-will handle, as in [`super::front`]),
//! so the front caps connections below both, keeping room for HTTP
//! downloads, the store and the blobs. At the limit new connections are
//! closed at once: devices retry with backoff, the broker never sees them.

/// rumqttd's own connection maximum ([`super::embedded`]).
pub const BROKER_MAX_CONNECTIONS: usize = 20_000;
/// File descriptors per device connection through the front.
pub const FDS_PER_CONNECTION: u64 = 3;

/// The open-file limit, raised to its hard maximum first (as servers
/// do); 1024 where it cannot be read.
pub fn open_files() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if hard > soft && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// How many device connections the front admits with `open_files`.
pub fn for_open_files(open_files: u64) -> usize {
    // an eighth (at least 256) for HTTP, the store, blobs and the rest
    let reserve = (open_files / 8).max(256);
    let by_files = open_files.saturating_sub(reserve) / FDS_PER_CONNECTION;
    // the controller's own sessions stay under the broker's maximum too
    (by_files as usize).clamp(1, BROKER_MAX_CONNECTIONS - 16)
}

/// How many device connections the front admits in this process.
pub fn device_connections() -> usize {
    for_open_files(open_files())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_everything_else_under_the_file_limit() {
        let cap = for_open_files(20_000);
        assert_eq!(cap, 5_833);
        assert!(cap as u64 * FDS_PER_CONNECTION + 2_000 < 20_000);
    }

    #[test]
    fn a_small_file_limit_still_admits_a_lab_fleet() {
        assert_eq!(for_open_files(1024), 256);
        assert_eq!(for_open_files(0), 1);
    }

    #[test]
    fn a_huge_file_limit_stops_at_the_brokers_own_maximum() {
        assert_eq!(for_open_files(1 << 40), BROKER_MAX_CONNECTIONS - 16);
    }
}
