use super::*;

const SMALL: &str = r#"
name = "t"
seed = 1
devices = 10
[[fleet]]
profile = "wifi"
share = 70
[[fleet]]
profile = "flaky-2g"
share = 30
[[releases]]
version = "1"
[[releases]]
version = "2"
fail_percent = 20
[[faults]]
at_s = 5
kind = "power-loss"
share = 10
"#;

#[test]
fn a_scenario_parses_and_lays_out_its_fleet_from_the_seed() {
    let s = Scenario::parse(SMALL).unwrap();
    let a = s.assignment();
    assert_eq!(a.iter().filter(|k| **k == 1).count(), 3);
    assert_eq!(
        a,
        Scenario::parse(SMALL).unwrap().assignment(),
        "deterministic"
    );
    assert_eq!(s.pick(20, 9).len(), 2);
    assert_eq!(s.faults[0].kind, FaultKind::PowerLoss);
    assert_eq!(s.rollout.waves, "10%,50%,100%");
    assert_eq!(s.broker, BrokerKind::Embedded, "the default");
    let on_mosquitto = Scenario::parse(&format!("broker = \"mosquitto\"\n{SMALL}")).unwrap();
    assert_eq!(on_mosquitto.broker, BrokerKind::Mosquitto);
}

#[test]
fn bad_scenarios_are_refused_with_the_reason() {
    let shares = SMALL.replace("share = 30", "share = 20");
    let e = Scenario::parse(&shares).unwrap_err().to_string();
    assert!(e.contains("add up to 90%"), "{e}");
    let no_share = SMALL.replace("share = 10\n", "");
    let e = Scenario::parse(&no_share).unwrap_err().to_string();
    assert!(e.contains("share 0%"), "{e}");
    let restart = no_share.replace("power-loss", "controller-restart");
    assert!(
        Scenario::parse(&restart).is_ok(),
        "a restart needs no share"
    );
    let profile = SMALL.replace("flaky-2g", "pigeon");
    let e = Scenario::parse(&profile).unwrap_err().to_string();
    assert!(e.contains("no link profile \"pigeon\""), "{e}");
    let e = Scenario::parse("name = 1").unwrap_err().to_string();
    assert!(e.contains("invalid type"), "{e}");
}
