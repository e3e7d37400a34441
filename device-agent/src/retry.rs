//! When and how long a download is tried again: capped exponential backoff
//! with full jitter (a fleet that lost its controller comes back spread
//! out, not in waves), a budget of time without progress after which the
//! update fails with the reason (the device stays on its release), and
//! which failures are not worth retrying at all (refusals, missing blobs,
//! a TLS misconfiguration). Pure: the caller passes random numbers and
//! instants in.

use std::time::{Duration, Instant};

/// First backoff ceiling.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Largest backoff ceiling.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Largest wait between two tries of the broker: a device must be back
/// soon after its broker is.
pub const RECONNECT_CAP: Duration = Duration::from_secs(10);

/// The wait before retry `attempt` (0 = the first retry): uniform between
/// zero and `min(cap, base * 2^attempt)` ("full jitter").
pub fn backoff(attempt: u32) -> Duration {
    backoff_at(attempt, rand::random::<f64>(), BACKOFF_CAP)
}

/// [`backoff`] for reconnecting to the broker (capped at [`RECONNECT_CAP`]).
pub fn reconnect_backoff(attempt: u32) -> Duration {
    backoff_at(attempt, rand::random::<f64>(), RECONNECT_CAP)
}

/// The backoff of `attempt` with the random draw `r` in `[0, 1]` given.
pub fn backoff_at(attempt: u32, r: f64, cap: Duration) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(cap);
    ceiling.mul_f64(r.clamp(0.0, 1.0))
}

/// What an HTTP status means for a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200: the whole body follows.
    Whole,
    /// 206: the rest, from where we were.
    Rest,
    /// 416: the server holds fewer bytes than we do.
    Shorter,
    /// 404, 410: no such content (no delta; a blob the controller lost).
    Missing,
    /// 408, 429, 5xx: try again later.
    Later,
    /// 401, 403: this device may not have it; retrying will not change it.
    Refused,
    /// Anything else: a server this agent does not understand.
    Unexpected,
}

pub fn answer(status: u16) -> Answer {
    match status {
        200 => Answer::Whole,
        206 => Answer::Rest,
        416 => Answer::Shorter,
        404 | 410 => Answer::Missing,
        408 | 429 => Answer::Later,
        s if s >= 500 => Answer::Later,
        401 | 403 => Answer::Refused,
        _ => Answer::Unexpected,
    }
}

/// Time without progress, against a budget.
#[derive(Debug, Clone)]
pub struct Stall {
    budget: Duration,
    since: Option<Instant>,
}

impl Stall {
    pub fn new(budget: Duration) -> Stall {
        Stall {
            budget,
            since: None,
        }
    }

    /// Bytes arrived: the clock stops.
    pub fn progressed(&mut self) {
        self.since = None;
    }

    /// An attempt at `now` brought nothing; `Some(stalled for)` once that
    /// has lasted longer than the budget.
    pub fn stalled(&mut self, now: Instant) -> Option<Duration> {
        let since = *self.since.get_or_insert(now);
        let stalled = now.saturating_duration_since(since);
        (stalled > self.budget).then_some(stalled)
    }
}

/// Why a request failed in its TLS layer, if it did: a misconfiguration
/// (an `https://` URL to a plain HTTP server, a certificate not signed by
/// the fleet CA or not naming the host) that no retry will mend.
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = rustls_inside(err) {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// A rustls error that is `err` or that `err` wraps in I/O errors (hyper
/// nests an I/O error holding rustls's in another; `io::Error::source`
/// skips the error it holds, `get_ref` does not).
fn rustls_inside(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(tls) = err.downcast_ref::<petrel_tls::rustls::Error>() {
        return Some(tls.to_string());
    }
    let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_inside(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_capped_ceiling() {
        let cap = BACKOFF_CAP;
        assert_eq!(backoff_at(0, 0.0, cap), Duration::ZERO);
        assert_eq!(backoff_at(0, 1.0, cap), BACKOFF_BASE);
        assert_eq!(backoff_at(3, 1.0, cap), BACKOFF_BASE * 8);
        assert_eq!(backoff_at(3, 0.5, cap), BACKOFF_BASE * 4);
        assert_eq!(backoff_at(40, 1.0, cap), BACKOFF_CAP);
        for attempt in 0..20 {
            assert!(backoff(attempt) <= BACKOFF_CAP);
            assert!(reconnect_backoff(attempt) <= RECONNECT_CAP);
        }
    }

    #[test]
    fn refusals_and_missing_content_are_not_retried_but_overload_is() {
        assert_eq!(answer(403), Answer::Refused);
        assert_eq!(answer(401), Answer::Refused);
        assert_eq!(answer(404), Answer::Missing);
        assert_eq!(answer(410), Answer::Missing);
        assert_eq!(answer(429), Answer::Later);
        assert_eq!(answer(503), Answer::Later);
        assert_eq!(answer(418), Answer::Unexpected);
    }

    #[test]
    fn the_budget_counts_time_without_progress_only() {
        let t0 = Instant::now();
        let mut s = Stall::new(Duration::from_secs(10));
        assert_eq!(s.stalled(t0), None);
        assert_eq!(s.stalled(t0 + Duration::from_secs(9)), None);
        s.progressed();
        assert_eq!(s.stalled(t0 + Duration::from_secs(15)), None);
        assert_eq!(
            s.stalled(t0 + Duration::from_secs(26)),
            Some(Duration::from_secs(11))
        );
    }

    #[test]
    fn a_tls_error_is_found_inside_an_io_error() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            petrel_tls::rustls::Error::InvalidCertificate(
                petrel_tls::rustls::CertificateError::UnknownIssuer,
            ),
        );
        assert!(
            tls_failure(&io).is_some_and(|t| t.contains("UnknownIssuer")),
            "{io}"
        );
        let nested = std::io::Error::other(io);
        assert!(tls_failure(&nested).is_some());
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(tls_failure(&plain), None);
    }
}
