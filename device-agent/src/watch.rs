//! The post-update watch: for `post_update_watch_s` after a swap, the new
//! release's instances are sampled every second; a service that restarts
//! [`CRASH_LOOP_RESTARTS`] times or more within the period is a crash loop,
//! and the machine rolls the release back as it would an unhealthy swap.
//!
//! The watch is not persisted: after an agent restart during the period it
//! does not resume (the release has already passed its swap health check).

use crate::machine::{Applied, Input};
use crate::recover::parse_instance_name;
use petrel_runtime::Runtime;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Restarts within the watch period that make a crash loop.
pub const CRASH_LOOP_RESTARTS: u32 = 3;
/// How often the runtime is sampled.
const POLL: Duration = Duration::from_secs(1);

/// One instance's restart count, as the runtime last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub service: String,
    pub restarts: u32,
}

/// The first service whose restarts since the watch began (`first`)
/// reached [`CRASH_LOOP_RESTARTS`] in `latest`, with that count.
pub fn crash_loop(first: &[Sample], latest: &[Sample]) -> Option<Sample> {
    latest.iter().find_map(|s| {
        let base = first
            .iter()
            .find(|f| f.service == s.service)
            .map_or(0, |f| f.restarts);
        let restarts = s.restarts.saturating_sub(base);
        (restarts >= CRASH_LOOP_RESTARTS).then(|| Sample {
            service: s.service.clone(),
            restarts,
        })
    })
}

async fn sample<R: Runtime>(runtime: &R, instances: &[String]) -> Vec<Sample> {
    let mut out = Vec::new();
    for name in instances {
        if let Some(s) = runtime.inspect(name).await {
            let service = parse_instance_name(name).map_or(name.as_str(), |(svc, _)| svc);
            out.push(Sample {
                service: service.to_string(),
                restarts: s.restarts,
            });
        }
    }
    out
}

/// Samples `applied`'s instances until `period` ends or a crash loop is
/// found, which it sends as [`Input::CrashLoop`].
pub async fn run<R: Runtime>(
    runtime: Arc<R>,
    applied: Applied,
    period: Duration,
    tx: mpsc::Sender<Input>,
) {
    let until = Instant::now() + period;
    let first = sample(runtime.as_ref(), &applied.instances).await;
    while Instant::now() < until {
        tokio::time::sleep(POLL).await;
        let latest = sample(runtime.as_ref(), &applied.instances).await;
        if let Some(s) = crash_loop(&first, &latest) {
            let input = Input::CrashLoop {
                generation: applied.generation,
                service: s.service,
                restarts: s.restarts,
                within_s: period.as_secs(),
            };
            let _ = tx.send(input).await;
            return;
        }
    }
    tracing::info!(
        generation = applied.generation,
        "post-update watch ended: no crash loop"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(service: &str, restarts: u32) -> Sample {
        Sample {
            service: service.into(),
            restarts,
        }
    }

    #[test]
    fn three_restarts_within_the_watch_are_a_crash_loop() {
        let found = crash_loop(&[s("app", 0), s("db", 0)], &[s("app", 0), s("db", 3)]);
        assert_eq!(found, Some(s("db", 3)));
    }

    #[test]
    fn one_or_two_restarts_within_the_watch_are_not_a_crash_loop() {
        let first = [s("app", 0)];
        assert_eq!(crash_loop(&first, &[s("app", 1)]), None);
        assert_eq!(crash_loop(&first, &[s("app", 2)]), None);
    }

    #[test]
    fn restarts_before_the_watch_began_do_not_count() {
        assert_eq!(crash_loop(&[s("app", 2)], &[s("app", 4)]), None);
        assert_eq!(
            crash_loop(&[s("app", 2)], &[s("app", 5)]),
            Some(s("app", 3))
        );
    }

    #[test]
    fn a_service_first_seen_late_counts_from_zero() {
        assert_eq!(crash_loop(&[], &[s("app", 3)]), Some(s("app", 3)));
    }
}
