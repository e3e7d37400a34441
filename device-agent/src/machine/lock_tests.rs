//! The update-lock rule of the machine: deferral, release, override.

use super::tests::{desired, run_to_completion};
use super::*;

/// A machine running generation 1 with generation 2 installed.
fn installed_second(override_after_s: Option<u64>, lock: Option<&str>) -> (Machine, Vec<Action>) {
    let mut m = Machine::default();
    m.handle(desired(1, "1"));
    run_to_completion(&mut m, 1);
    let Input::Desired(mut d) = desired(2, "2") else {
        unreachable!()
    };
    d.lock_override_after_s = override_after_s;
    m.handle(Input::Desired(d));
    m.handle(Input::Downloaded {
        generation: 2,
        bytes: 10,
    });
    let acts = m.handle(Input::Installed {
        generation: 2,
        now_ms: 1_000,
        lock: lock.map(String::from),
    });
    (m, acts)
}

fn swaps(acts: &[Action]) -> bool {
    acts.iter().any(|a| matches!(a, Action::Swap { .. }))
}

#[test]
fn a_held_lock_defers_the_swap_persisted_and_reported_with_its_holder() {
    let (mut m, acts) = installed_second(None, Some("web (volume jobs)"));
    assert_eq!(m.state.phase, Phase::Deferred);
    assert_eq!(acts[0], Action::Persist);
    assert!(!swaps(&acts));
    assert!(acts.iter().any(
        |a| matches!(a, Action::Emit(EventKind::Deferred, m) if m.contains("web (volume jobs)"))
    ));
    let t = m.state.target.clone().unwrap();
    assert_eq!(t.deferred.unwrap().since_ms, 1_000);
    assert_eq!(m.state.update_bytes, Some(10));
    // still held, same holder: nothing to do; a restart re-issues nothing
    let held = Some("web (volume jobs)".to_string());
    assert!(m
        .handle(Input::Tick {
            now_ms: 9_000_000,
            lock: held
        })
        .is_empty());
    assert_eq!(m.resume(), vec![Action::Report]);
    // a new note is persisted and reported, without a new event
    let acts = m.handle(Input::Tick {
        now_ms: 9_000_001,
        lock: Some("web (volume jobs: step 2)".into()),
    });
    assert_eq!(acts, vec![Action::Persist, Action::Report]);
    // released: the swap starts, from the release that ran
    let acts = m.handle(Input::Tick {
        now_ms: 9_000_002,
        lock: None,
    });
    assert!(swaps(&acts), "{acts:?}");
    assert_eq!(m.state.phase, Phase::Swapping);
    assert!(m.state.target.as_ref().unwrap().deferred.is_none());
}

#[test]
fn the_override_swaps_through_a_lock_after_its_time_and_force_at_once() {
    let (mut m, _) = installed_second(Some(60), Some("web"));
    assert_eq!(m.state.phase, Phase::Deferred);
    let lock = || Some("web".to_string());
    assert!(m
        .handle(Input::Tick {
            now_ms: 60_999,
            lock: lock()
        })
        .is_empty());
    let acts = m.handle(Input::Tick {
        now_ms: 61_000,
        lock: lock(),
    });
    assert!(swaps(&acts));
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Emit(EventKind::Deferred, m) if m.contains("overridden"))));

    let (m, acts) = installed_second(Some(0), Some("web"));
    assert_eq!(m.state.phase, Phase::Swapping);
    assert!(swaps(&acts));
}

#[test]
fn a_new_desired_state_replaces_a_deferred_update() {
    let (mut m, _) = installed_second(None, Some("web"));
    let acts = m.handle(desired(3, "3"));
    assert_eq!(m.state.phase, Phase::Downloading);
    assert!(
        matches!(acts.last(), Some(Action::Download(t)) if t.generation == 3 && t.deferred.is_none())
    );
}
