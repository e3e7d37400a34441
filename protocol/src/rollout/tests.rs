use super::*;

fn rel(v: &str) -> ReleaseRef {
    ReleaseRef {
        name: "app".into(),
        version: v.into(),
    }
}

fn policy() -> Policy {
    Policy {
        waves: parse_waves("10%,50%,100%").unwrap(),
        canary: vec![],
        per_minute: None,
        rate_growth_percent: 0,
        success_percent: 90,
        soak_ms: 60_000,
        max_failed_percent: 20,
        min_failed: 3,
        on_breach: Breach::Abort,
        device_timeout_ms: 600_000,
        retries: 0,
    }
}

fn fleet(n: usize) -> Vec<(String, Option<ReleaseRef>)> {
    (0..n)
        .map(|i| (format!("d{i:03}"), Some(rel("1"))))
        .collect()
}

fn deployed(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deploy { device } => Some(device.clone()),
            _ => None,
        })
        .collect()
}

fn succeed_all(r: &mut Rollout, devices: &[String], now: u64) -> Vec<Action> {
    let mut out = Vec::new();
    for d in devices {
        out.extend(step(r, Input::Succeeded { device: d.clone() }, now));
    }
    out
}

#[test]
fn waves_start_in_turn_after_each_soak_and_the_rollout_completes() {
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), policy(), fleet(100), 0);
    assert_eq!(r.bounds, vec![10, 50, 100]);
    let first = deployed(&step(&mut r, Input::Tick, 0));
    assert_eq!(first.len(), 10);
    succeed_all(&mut r, &first, 1_000);
    assert_eq!(
        r.phase,
        Phase::Soaking {
            wave: 0,
            since_ms: 1_000
        }
    );
    assert!(
        deployed(&step(&mut r, Input::Tick, 30_000)).is_empty(),
        "no start during the soak"
    );
    let second = deployed(&step(&mut r, Input::Tick, 61_000));
    assert_eq!(second.len(), 40);
    succeed_all(&mut r, &second, 62_000);
    let third = deployed(&step(&mut r, Input::Tick, 130_000));
    assert_eq!(third.len(), 50);
    succeed_all(&mut r, &third, 131_000);
    step(&mut r, Input::Tick, 200_000);
    assert_eq!(r.phase, Phase::Completed);
    assert_eq!(r.tallies.iter().map(|t| t.succeeded).sum::<u32>(), 100);
}

#[test]
fn failures_over_the_threshold_abort_and_every_moved_device_rolls_back() {
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), policy(), fleet(100), 0);
    let first = deployed(&step(&mut r, Input::Tick, 0));
    succeed_all(&mut r, &first, 1);
    let second = deployed(&step(&mut r, Input::Tick, 70_000));
    // 20% of the second wave fail their health check: the third failure
    // (3 of 13 finished, over 20%) aborts
    let mut actions = Vec::new();
    for d in &second[..3] {
        let failed = Input::Failed {
            device: d.clone(),
            reason: "unhealthy".into(),
        };
        actions.extend(step(&mut r, failed, 71_000));
    }
    assert!(matches!(r.phase, Phase::Aborted { .. }), "{:?}", r.phase);
    let reverted: Vec<&Action> = actions
        .iter()
        .filter(|a| matches!(a, Action::Revert { .. }))
        .collect();
    // the 10 of wave 1 and the 40 started of wave 2 go back; wave 3 is untouched
    assert_eq!(reverted.len(), 50);
    assert!(reverted
        .iter()
        .all(|a| matches!(a, Action::Revert { to: Some(v), .. } if v.version == "1")));
    assert_eq!(r.tallies[2].queued, 50);
    assert!(deployed(&step(&mut r, Input::Tick, 500_000)).is_empty());
}

#[test]
fn a_pause_supersedes_unfinished_devices_and_a_resume_starts_them_again() {
    let mut p = policy();
    p.on_breach = Breach::Pause;
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), p, fleet(20), 0);
    let first = deployed(&step(&mut r, Input::Tick, 0));
    assert_eq!(first.len(), 2);
    let paused = step(&mut r, Input::Pause, 10);
    let reverts = paused
        .iter()
        .filter(|a| matches!(a, Action::Revert { .. }))
        .count();
    assert_eq!(reverts, 2);
    assert!(matches!(r.phase, Phase::Paused { wave: 0, .. }));
    assert!(deployed(&step(&mut r, Input::Tick, 100)).is_empty());
    let again = deployed(&step(&mut r, Input::Resume, 200));
    assert_eq!(again, first);
}

#[test]
fn a_silent_device_is_stuck_after_its_timeout_and_counts_as_failed() {
    let mut p = policy();
    p.on_breach = Breach::Pause;
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), p, fleet(10), 0);
    let first = deployed(&step(&mut r, Input::Tick, 0));
    step(
        &mut r,
        Input::Progress {
            device: first[0].clone(),
            phase: "downloading".into(),
        },
        5,
    );
    step(&mut r, Input::Tick, 599_999);
    assert!(matches!(
        r.members[&first[0]].state,
        DeviceState::Started { .. }
    ));
    step(&mut r, Input::Tick, 600_000);
    assert_eq!(
        r.members[&first[0]].state,
        DeviceState::Stuck {
            phase: "downloading".into()
        }
    );
    assert_eq!(r.failures(), (1, 1));
}

#[test]
fn retries_send_the_release_again_before_a_failure_counts() {
    let mut p = policy();
    p.retries = 1;
    p.on_breach = Breach::Pause;
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), p, fleet(10), 0);
    let d = deployed(&step(&mut r, Input::Tick, 0))[0].clone();
    let failed = || Input::Failed {
        device: d.clone(),
        reason: "x".into(),
    };
    assert_eq!(deployed(&step(&mut r, failed(), 1)), vec![d.clone()]);
    assert_eq!(r.failures().0, 0);
    assert!(deployed(&step(&mut r, failed(), 2)).is_empty());
    assert_eq!(r.failures().0, 1);
}

#[test]
fn the_rate_limit_spreads_starts_over_minutes() {
    let mut p = policy();
    p.waves = parse_waves("100%").unwrap();
    p.per_minute = Some(3);
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), p, fleet(10), 0);
    assert_eq!(deployed(&step(&mut r, Input::Tick, 0)).len(), 3);
    assert_eq!(deployed(&step(&mut r, Input::Tick, 30_000)).len(), 0);
    assert_eq!(deployed(&step(&mut r, Input::Tick, 60_000)).len(), 3);
}

#[test]
fn a_growing_rate_doubles_each_minute() {
    let mut p = policy();
    p.waves = parse_waves("100%").unwrap();
    p.per_minute = Some(2);
    p.rate_growth_percent = 100;
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), p, fleet(20), 0);
    assert_eq!(deployed(&step(&mut r, Input::Tick, 0)).len(), 2);
    assert_eq!(deployed(&step(&mut r, Input::Tick, 60_000)).len(), 4);
    assert_eq!(deployed(&step(&mut r, Input::Tick, 120_000)).len(), 8);
}

#[test]
fn canaries_go_first_and_joiners_enter_the_current_wave() {
    let mut p = policy();
    p.canary = vec!["d005".into()];
    p.soak_ms = 0;
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), p, fleet(20), 0);
    assert_eq!(
        deployed(&step(&mut r, Input::Tick, 0)),
        vec!["d005".to_string()]
    );
    let joined = Input::Joined {
        device: "new-1".into(),
        previous: None,
    };
    step(
        &mut r,
        Input::Succeeded {
            device: "d005".into(),
        },
        1,
    );
    let now_started = deployed(&step(&mut r, joined, 2));
    assert!(
        now_started.contains(&"new-1".to_string()),
        "{now_started:?}"
    );
    assert_eq!(r.members["new-1"].wave, 1);
    // a device that leaves before its start is not touched again
    let queued = r
        .members
        .iter()
        .find(|(_, m)| m.state == DeviceState::Queued)
        .map(|(d, _)| d.clone())
        .unwrap();
    step(
        &mut r,
        Input::Left {
            device: queued.clone(),
        },
        3,
    );
    assert_eq!(r.members[&queued].state, DeviceState::Left);
}

#[test]
fn a_rollout_survives_serialization_midway() {
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), policy(), fleet(30), 0);
    let first = deployed(&step(&mut r, Input::Tick, 0));
    let json = serde_json::to_string(&r).unwrap();
    let mut back: Rollout = serde_json::from_str(&json).unwrap();
    back.reindex();
    r.take_dirty();
    assert_eq!(back, r);
    // nothing is started twice after a reload
    assert!(deployed(&step(&mut back, Input::Tick, 1)).is_empty());
    succeed_all(&mut back, &first, 2);
    assert!(matches!(back.phase, Phase::Soaking { .. }));
}

#[test]
fn policies_and_wave_lists_are_checked() {
    assert!(parse_waves("1%,x").is_err());
    let mut p = policy();
    p.waves = vec![WaveSize::Percent(0)];
    assert!(p.validate().is_err());
    p.waves = vec![];
    assert_eq!(p.validate(), Err(PolicyError::NoWaves));
    assert!(policy().validate().is_ok());
}

#[test]
fn a_rollout_stored_as_head_and_changed_members_resumes_identically() {
    let mut p = policy();
    p.on_breach = Breach::Pause;
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), p, fleet(100), 0);
    let first = deployed(&step(&mut r, Input::Tick, 0));
    // the store writes the head (no members) and each dirty member
    let mut stored: BTreeMap<String, Member> = BTreeMap::new();
    let mut save = |r: &mut Rollout| {
        for d in r.take_dirty() {
            stored.insert(d.clone(), r.members[&d].clone());
        }
        let mut head = r.clone();
        head.members.clear();
        serde_json::to_string(&head).unwrap()
    };
    assert!(!save(&mut r).contains("members"));
    succeed_all(&mut r, &first[..4], 1_000);
    step(
        &mut r,
        Input::Failed {
            device: first[4].clone(),
            reason: "health".into(),
        },
        1_000,
    );
    let head = save(&mut r);
    assert!(r.take_dirty().is_empty(), "taking clears the set");
    let mut back: Rollout = serde_json::from_str(&head).unwrap();
    back.members = stored.clone();
    back.reindex();
    assert_eq!(back.tallies, r.tallies);
    assert_eq!(back.members, r.members);
    // both go on the same way: the stuck ones at the same deadline
    let a = step(&mut r, Input::Tick, 700_000);
    let b = step(&mut back, Input::Tick, 700_000);
    assert_eq!(a, b);
    let stuck = back
        .members
        .values()
        .filter(|m| matches!(m.state, DeviceState::Stuck { .. }))
        .count();
    assert_eq!((stuck, back.tallies[0].failed), (5, 6));
    assert!(matches!(back.phase, Phase::Paused { .. }));
}

#[test]
fn reindexing_a_member_from_a_foreign_wave_does_not_panic() {
    let mut r = Rollout::new("r1", rel("2"), Selector::default(), policy(), fleet(10), 0);
    if let Some(m) = r.members.get_mut("d000") {
        m.wave = 99;
    }
    r.reindex();
    assert_eq!(r.members["d000"].wave, 2);
    step(&mut r, Input::Tick, 0);
}
