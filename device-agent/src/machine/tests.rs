use super::*;
use petrel_protocol::{ImageConfig, ImageManifest, ReleaseManifest, ServiceSpec, SCHEMA};

pub(crate) fn release(version: &str) -> ReleaseManifest {
    let image = ImageManifest {
        schema: SCHEMA,
        name: "app".into(),
        tag: version.into(),
        layers: vec![],
        config: ImageConfig::default(),
        platform: None,
    };
    let svc = ServiceSpec {
        image,
        command: Some(vec!["/x".into()]),
        environment: Default::default(),
        ports: vec![],
        volumes: vec![],
        restart: Default::default(),
        healthcheck: None,
        swap: Default::default(),
        mem_limit: None,
        cpu_millis: None,
        depends_on: vec![],
        variants: vec![],
        allow_setid: false,
        user: None,
        network_mode: Default::default(),
    };
    ReleaseManifest {
        schema: SCHEMA,
        name: "demo".into(),
        version: version.into(),
        services: [("web".to_string(), svc)].into(),
    }
}

pub(crate) fn desired(generation: u64, version: &str) -> Input {
    Input::Desired(Desired {
        schema: SCHEMA,
        device_id: "d".into(),
        generation,
        release: Some(release(version)),
        issued_at_ms: 0,
        expires_at_ms: None,
        window: None,
        lock_override_after_s: None,
        budget: None,
    })
}

pub(crate) fn run_to_completion(m: &mut Machine, generation: u64) {
    m.handle(Input::Downloaded {
        generation,
        bytes: 0,
    });
    m.handle(Input::Installed {
        generation,
        now_ms: 0,
        lock: None,
    });
    m.handle(Input::Started {
        generation,
        instances: vec![format!("web-g{generation}")],
    });
}

#[test]
fn a_new_desired_release_is_persisted_before_the_download_starts() {
    let mut m = Machine::default();
    let acts = m.handle(desired(1, "1"));
    assert_eq!(acts[0], Action::Persist);
    assert!(matches!(acts.last(), Some(Action::Download(t)) if t.generation == 1));
    assert_eq!(m.state.phase, Phase::Downloading);
}

#[test]
fn an_update_runs_through_install_and_swap_to_running() {
    let mut m = Machine::default();
    m.handle(desired(1, "1"));
    let acts = m.handle(Input::Downloaded {
        generation: 1,
        bytes: 0,
    });
    assert!(matches!(acts.last(), Some(Action::Install(_))));
    let acts = m.handle(Input::Installed {
        generation: 1,
        now_ms: 0,
        lock: None,
    });
    assert!(matches!(acts.last(), Some(Action::Swap { from: None, .. })));
    m.handle(Input::Started {
        generation: 1,
        instances: vec!["web-g1".into()],
    });
    assert_eq!(m.state.phase, Phase::Running);
    assert_eq!(m.state.current_ref().unwrap().version, "1");
    assert!(m.state.target.is_none());
}

#[test]
fn an_older_generation_is_rejected_as_a_replay() {
    let mut m = Machine::default();
    m.handle(desired(5, "1"));
    let acts = m.handle(desired(4, "0"));
    assert!(matches!(
        acts[0],
        Action::Emit(EventKind::DesiredRejected, _)
    ));
    assert_eq!(m.state.target.as_ref().unwrap().generation, 5);
}

#[test]
fn the_retained_copy_seen_again_changes_nothing() {
    let mut m = Machine::default();
    m.handle(desired(2, "1"));
    assert!(m.handle(desired(2, "1")).is_empty());
}

#[test]
fn results_of_a_superseded_target_are_ignored() {
    let mut m = Machine::default();
    m.handle(desired(1, "1"));
    m.handle(desired(2, "2"));
    assert!(m
        .handle(Input::Downloaded {
            generation: 1,
            bytes: 0
        })
        .is_empty());
    assert_eq!(m.state.phase, Phase::Downloading);
}

#[test]
fn a_failed_update_keeps_the_current_release_and_records_the_reason() {
    let mut m = Machine::default();
    m.handle(desired(1, "1"));
    run_to_completion(&mut m, 1);
    m.handle(desired(2, "2"));
    m.handle(Input::Failed {
        generation: 2,
        reason: "bad digest".into(),
    });
    assert_eq!(m.state.phase, Phase::Failed);
    assert_eq!(m.state.current_ref().unwrap().version, "1");
    assert_eq!(m.state.last_error.as_deref(), Some("bad digest"));
}

#[test]
fn the_same_release_under_a_new_generation_needs_no_update() {
    let mut m = Machine::default();
    m.handle(desired(1, "1"));
    run_to_completion(&mut m, 1);
    let acts = m.handle(desired(2, "1"));
    assert!(!acts.iter().any(|a| matches!(a, Action::Download(_))));
    assert_eq!(m.state.current.as_ref().unwrap().generation, 2);
}

#[test]
fn resume_reissues_the_action_of_the_persisted_phase() {
    let mut m = Machine::default();
    m.handle(desired(1, "1"));
    m.handle(Input::Downloaded {
        generation: 1,
        bytes: 0,
    });
    let restarted = Machine::new(m.state.clone());
    assert!(matches!(
        restarted.resume().last(),
        Some(Action::Install(_))
    ));
}

#[test]
fn a_completed_update_keeps_the_previous_release_and_collects_the_rest() {
    let mut m = Machine::default();
    m.handle(desired(1, "1"));
    run_to_completion(&mut m, 1);
    m.handle(desired(2, "2"));
    let acts = {
        m.handle(Input::Downloaded {
            generation: 2,
            bytes: 0,
        });
        m.handle(Input::Installed {
            generation: 2,
            now_ms: 0,
            lock: None,
        });
        m.handle(Input::Started {
            generation: 2,
            instances: vec!["web-g2".into()],
        })
    };
    let previous = m.state.previous.as_ref().and_then(|p| p.release.as_ref());
    assert_eq!(previous.map(|r| r.version.as_str()), Some("1"));
    let keep: Vec<&str> = match acts.iter().find(|a| matches!(a, Action::Collect(_))) {
        Some(Action::Collect(keep)) => keep.iter().map(|r| r.version.as_str()).collect(),
        other => panic!("expected a collect action, got {other:?}"),
    };
    assert_eq!(keep, ["2", "1"]);
}

#[test]
fn an_unhealthy_release_is_rolled_back_with_the_journal_written_first() {
    let mut m = Machine::default();
    m.handle(desired(1, "1"));
    run_to_completion(&mut m, 1);
    m.handle(desired(2, "2"));
    m.handle(Input::Downloaded {
        generation: 2,
        bytes: 0,
    });
    m.handle(Input::Installed {
        generation: 2,
        now_ms: 0,
        lock: None,
    });
    let acts = m.handle(Input::Unhealthy {
        generation: 2,
        reason: "exited".into(),
    });
    assert_eq!(acts[0], Action::Persist);
    assert_eq!(m.state.phase, Phase::RollingBack);
    assert!(matches!(acts.last(), Some(Action::RollBack { failed, .. }) if failed.generation == 2));
    // a crash here resumes the rollback
    let resumed = Machine::new(m.state.clone()).resume();
    assert!(matches!(resumed.last(), Some(Action::RollBack { .. })));
    let acts = m.handle(Input::Restored { generation: 2 });
    assert_eq!(m.state.phase, Phase::RolledBack);
    assert_eq!(m.state.current_ref().unwrap().version, "1");
    assert!(m.state.target.is_none());
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Emit(EventKind::RolledBack, msg) if msg.contains("exited"))));
}

#[test]
fn an_installed_release_outside_its_window_waits_in_ready_and_swaps_when_it_opens() {
    let mut m = Machine::new(AgentState::default());
    let Input::Desired(mut d) = desired(1, "1") else {
        unreachable!()
    };
    // open one minute a day, at midnight UTC
    d.window = Some("daily 00:00-00:01 UTC".parse().unwrap());
    m.handle(Input::Desired(d));
    m.handle(Input::Downloaded {
        generation: 1,
        bytes: 0,
    });
    let held = m.handle(Input::Installed {
        generation: 1,
        now_ms: 120_000,
        lock: None,
    });
    assert_eq!(m.state.phase, Phase::Ready);
    assert_eq!(held[0], Action::Persist, "held is persisted first");
    assert!(!held.iter().any(|a| matches!(a, Action::Swap { .. })));
    assert!(m
        .handle(Input::Tick {
            now_ms: 3_600_000,
            lock: None
        })
        .is_empty());
    let opened = m.handle(Input::Tick {
        now_ms: 86_400_000,
        lock: None,
    });
    assert!(
        opened.iter().any(|a| matches!(a, Action::Swap { .. })),
        "{opened:?}"
    );
    assert_eq!(m.state.phase, Phase::Swapping);
    // the window closing mid-swap changes nothing
    assert!(m
        .handle(Input::Tick {
            now_ms: 86_500_000,
            lock: None
        })
        .is_empty());
    assert_eq!(m.state.phase, Phase::Swapping);
    // and a restart while held re-issues no swap
    let mut m2 = Machine::new(AgentState {
        phase: Phase::Ready,
        ..m.state.clone()
    });
    assert_eq!(m2.resume(), vec![Action::Report]);
    assert!(
        m2.handle(Input::Tick {
            now_ms: 86_400_000,
            lock: None
        })
        .len()
            > 1
    );
}

#[test]
fn a_desired_state_back_to_the_running_release_cancels_the_update_under_way() {
    let mut m = Machine::new(AgentState::default());
    m.handle(desired(1, "1"));
    run_to_completion(&mut m, 1);
    m.handle(desired(2, "2"));
    assert_eq!(m.state.phase, Phase::Downloading);
    let back = m.handle(desired(3, "1"));
    assert_eq!(back, vec![Action::Persist, Action::Report, Action::Cancel]);
    assert_eq!(m.state.phase, Phase::Running);
    assert!(m.state.target.is_none());
    // with nothing under way, nothing to cancel
    assert_eq!(
        m.handle(desired(4, "1")),
        vec![Action::Persist, Action::Report]
    );
}

/// A machine rebuilt after a store loss with `web-g{generation}` running.
fn recovered(generation: u64) -> Machine {
    let running = petrel_runtime::InstanceStatus {
        name: format!("web-g{generation}"),
        state: "running".into(),
        pid: Some(1),
        restarts: 0,
        exit_code: None,
    };
    Machine::new(crate::recover::from_running(&[running]).unwrap())
}

#[test]
fn after_a_store_loss_the_desired_state_of_the_running_generation_is_adopted_without_a_swap() {
    let mut m = recovered(3);
    let actions = m.handle(desired(3, "1"));
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::Swap { .. } | Action::Download(_))));
    assert_eq!(actions.first(), Some(&Action::Persist));
    assert!(actions.contains(&Action::Reconcile));
    assert!(!m.state.recovered);
    let current = m.state.current.as_ref().unwrap();
    assert_eq!(current.release, Some(release("1")));
    assert_eq!(current.instances, vec!["web-g3"]);
    assert_eq!(m.state.desired_generation, 3);
    assert_eq!(m.state.current_ref().unwrap().version, "1");
}

#[test]
fn after_a_store_loss_a_generation_older_than_the_running_one_is_refused() {
    let mut m = recovered(3);
    let actions = m.handle(desired(2, "0"));
    assert!(matches!(
        actions.as_slice(),
        [Action::Emit(EventKind::DesiredRejected, _)]
    ));
    assert!(m.state.recovered);
    assert_eq!(m.state.desired_generation, 3);
    assert_eq!(m.state.target, None);
}

#[test]
fn after_a_store_loss_a_newer_generation_updates_from_the_running_instances() {
    let mut m = recovered(3);
    let actions = m.handle(desired(4, "2"));
    assert!(actions.iter().any(|a| matches!(a, Action::Download(_))));
    m.handle(Input::Downloaded {
        generation: 4,
        bytes: 0,
    });
    let actions = m.handle(Input::Installed {
        generation: 4,
        now_ms: 0,
        lock: None,
    });
    let from = actions.iter().find_map(|a| match a {
        Action::Swap { from, .. } => Some(from.clone()),
        _ => None,
    });
    let from = from.flatten().unwrap();
    assert_eq!(
        from.instances,
        vec!["web-g3"],
        "the old instances are stopped"
    );
    m.handle(Input::Started {
        generation: 4,
        instances: vec!["web-g4".into()],
    });
    assert!(!m.state.recovered);
    assert_eq!(m.state.current_ref().unwrap().version, "2");
}

#[test]
fn after_a_store_loss_a_desired_state_of_nothing_is_not_taken_for_the_running_release() {
    let mut m = recovered(3);
    let mut d = desired(4, "x");
    if let Input::Desired(d) = &mut d {
        d.release = None;
    }
    let actions = m.handle(d);
    assert!(actions.iter().any(|a| matches!(a, Action::Download(_))));
    assert_eq!(m.state.target.as_ref().map(|t| t.generation), Some(4));
}

fn updated_from_1_to_2() -> (Machine, Vec<Action>) {
    let mut m = Machine::default();
    m.handle(desired(1, "1"));
    run_to_completion(&mut m, 1);
    m.handle(desired(2, "2"));
    m.handle(Input::Downloaded {
        generation: 2,
        bytes: 0,
    });
    m.handle(Input::Installed {
        generation: 2,
        now_ms: 0,
        lock: None,
    });
    let acts = m.handle(Input::Started {
        generation: 2,
        instances: vec!["web-g2".into()],
    });
    (m, acts)
}

fn crash_loop(generation: u64, restarts: u32) -> Input {
    Input::CrashLoop {
        generation,
        service: "web".into(),
        restarts,
        within_s: 600,
    }
}

#[test]
fn a_swapped_in_release_with_one_to_go_back_to_is_watched() {
    let (_, acts) = updated_from_1_to_2();
    assert!(matches!(acts.last(), Some(Action::Watch(a)) if a.generation == 2));
    let mut first = Machine::default();
    first.handle(desired(1, "1"));
    first.handle(Input::Downloaded {
        generation: 1,
        bytes: 0,
    });
    first.handle(Input::Installed {
        generation: 1,
        now_ms: 0,
        lock: None,
    });
    let acts = first.handle(Input::Started {
        generation: 1,
        instances: vec!["web-g1".into()],
    });
    assert!(!acts.iter().any(|a| matches!(a, Action::Watch(_))));
}

#[test]
fn a_crash_loop_after_the_swap_rolls_back_to_the_previous_release() {
    let (mut m, _) = updated_from_1_to_2();
    let acts = m.handle(crash_loop(2, 3));
    assert_eq!(acts[0], Action::Persist);
    assert_eq!(m.state.phase, Phase::RollingBack);
    assert_eq!(m.state.current_ref().unwrap().version, "1");
    assert_eq!(m.state.target_ref().unwrap().version, "2");
    assert!(m.state.previous.is_none());
    let rollback = acts.last();
    assert!(
        matches!(rollback, Some(Action::RollBack { failed, restore: Some(r) })
            if failed.generation == 2 && r.generation == 1)
    );
    // a crash here resumes the rollback, as after an unhealthy swap
    let resumed = Machine::new(m.state.clone()).resume();
    assert!(matches!(resumed.last(), Some(Action::RollBack { .. })));
    let acts = m.handle(Input::Restored { generation: 2 });
    assert_eq!(m.state.phase, Phase::RolledBack);
    assert_eq!(m.state.current_ref().unwrap().version, "1");
    let why = m.state.last_error.clone().unwrap_or_default();
    assert!(why.contains("web restarted 3 times"), "{why}");
    assert!(acts.iter().any(
        |a| matches!(a, Action::Emit(EventKind::RolledBack, msg) if msg.contains("crash loop"))
    ));
}

#[test]
fn a_crash_loop_report_of_a_superseded_release_is_ignored() {
    let (mut m, _) = updated_from_1_to_2();
    assert!(m.handle(crash_loop(1, 5)).is_empty());
    m.handle(desired(3, "3"));
    assert!(m.handle(crash_loop(2, 5)).is_empty());
    assert_eq!(m.state.phase, Phase::Downloading);
}
