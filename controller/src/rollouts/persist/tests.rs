use super::*;
use petrel_protocol::rollout::{parse_waves, step, Breach, Input, Policy, Rollout, Selector};
use petrel_protocol::ReleaseRef;

fn rel(v: &str) -> ReleaseRef {
    ReleaseRef {
        name: "app".into(),
        version: v.into(),
    }
}

fn record(n: usize) -> RolloutRecord {
    let policy = Policy {
        waves: parse_waves("10%,100%").unwrap(),
        canary: vec![],
        per_minute: None,
        rate_growth_percent: 0,
        success_percent: 90,
        soak_ms: 0,
        max_failed_percent: 50,
        min_failed: 5,
        on_breach: Breach::Pause,
        device_timeout_ms: 600_000,
        retries: 0,
    };
    let fleet = (0..n).map(|i| (format!("d{i:04}"), Some(rel("1"))));
    let r = Rollout::new(
        "r1",
        rel("2"),
        Selector::default(),
        policy,
        fleet.collect(),
        0,
    );
    RolloutRecord::new(r)
}

fn started(rec: &mut RolloutRecord, now: u64) -> Vec<String> {
    let mut out = Vec::new();
    for a in step(&mut rec.rollout, Input::Tick, now) {
        if let petrel_protocol::rollout::Action::Deploy { device } = a {
            rec.generations.insert(device.clone(), 7);
            out.push(device);
        }
    }
    out
}

#[test]
fn a_stored_rollout_loads_back_whole_and_goes_on_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut rec = record(100);
    let first = started(&mut rec, 0);
    let mut changes = Changes::default();
    changes.collect(&mut rec);
    assert_eq!(
        changes.members.len(),
        100,
        "a new rollout writes every member"
    );
    changes.write(&store).unwrap();
    assert!(changes.is_empty());

    let mut back = load(&store, "r1").unwrap().unwrap();
    assert_eq!(back.rollout.members, rec.rollout.members);
    assert_eq!(back.rollout.tallies, rec.rollout.tallies);
    assert_eq!(back.generations.len(), 10);
    assert_eq!(back.generations[&first[0]], 7);
    // nothing is started twice; the first wave's outcomes move it on
    assert!(started(&mut back, 1).is_empty());
    let mut next = Vec::new();
    for d in &first {
        next.extend(step(
            &mut back.rollout,
            Input::Succeeded { device: d.clone() },
            2,
        ));
    }
    // no soak: the last success starts the second wave
    let deploys = next
        .iter()
        .filter(|a| matches!(a, petrel_protocol::rollout::Action::Deploy { .. }));
    assert_eq!(deploys.count(), 90);
}

#[test]
fn a_step_writes_only_the_members_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut rec = record(1000);
    let first = started(&mut rec, 0);
    let mut changes = Changes::default();
    changes.collect(&mut rec);
    changes.write(&store).unwrap();

    step(
        &mut rec.rollout,
        Input::Succeeded {
            device: first[0].clone(),
        },
        5,
    );
    changes.collect(&mut rec);
    assert_eq!((changes.heads.len(), changes.members.len()), (1, 1));
    let head = &changes.heads[0].1;
    assert!(
        head.len() < 2_000,
        "the head holds no members: {}",
        head.len()
    );
    changes.write(&store).unwrap();
    let back = load(&store, "r1").unwrap().unwrap();
    assert_eq!(back.rollout.tallies[0].succeeded, 1);
    // nothing changed, nothing to write
    changes.collect(&mut rec);
    assert!(changes.is_empty());
}

#[test]
fn a_record_written_whole_by_an_older_controller_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut rec = record(20);
    started(&mut rec, 0);
    rec.rollout.take_dirty();
    // the old layout: the whole record, members inline, under the id
    let whole = serde_json::to_vec(&rec).unwrap();
    store
        .write_rollouts(&[("r1".to_string(), whole)], &[])
        .unwrap();
    let mut back = load(&store, "r1").unwrap().unwrap();
    assert_eq!(back.rollout.members, rec.rollout.members);
    assert_eq!(back.generations.len(), 2);
    let mut changes = Changes::default();
    changes.collect(&mut back);
    assert_eq!(
        changes.members.len(),
        20,
        "its members get records of their own"
    );
    changes.write(&store).unwrap();
    let again = load(&store, "r1").unwrap().unwrap();
    assert_eq!(again.rollout.members, rec.rollout.members);
    assert_eq!(summaries(&store).unwrap()[0].rollout.members.len(), 0);
}
