use super::*;

fn sample(t: f64, settled: usize) -> Sample {
    Sample {
        t_s: t,
        phases: [
            ("running".to_string(), settled),
            ("downloading".to_string(), 4 - settled),
        ]
        .into(),
        settled,
        http_down_bytes: 1000 * t as u64,
        controller_cpu_s: t * 0.1,
        controller_at_s: t,
        controller_rss_bytes: 50 << 20,
        ..Default::default()
    }
}

fn device(i: usize, profile: &str, at: Option<f64>) -> DeviceOutcome {
    DeviceOutcome {
        id: format!("sim-{i:05}"),
        profile: profile.into(),
        release: Some("sim@2".into()),
        settled_at_s: at,
        sent_new: true,
        http_down_bytes: 500,
        ..Default::default()
    }
}

#[test]
fn percentiles_count_devices_that_never_settled_as_never() {
    let c = Convergence::of(vec![Some(3.0), Some(1.0), None, Some(2.0)]);
    assert_eq!((c.p50_s, c.p90_s, c.p100_s), (Some(2.0), None, None));
    let all = Convergence::of(vec![Some(5.0), Some(1.0)]);
    assert_eq!((all.p50_s, all.p100_s), (Some(1.0), Some(5.0)));
}

#[test]
fn a_report_adds_up_and_writes_its_files() {
    let s = crate::scenario::Scenario::parse(
        "name = \"t\"\ndevices = 4\n[[fleet]]\nprofile = \"wifi\"\nshare = 100\n\
         [[releases]]\nversion = \"1\"\n[[releases]]\nversion = \"2\"\n",
    )
    .unwrap();
    let setup = Setup {
        image_bytes: vec![900, 1000],
        release: "sim@2".into(),
        ..Default::default()
    };
    let samples = (0..5).map(|t| sample(t as f64, t.min(4))).collect();
    let devices = vec![
        device(0, "wifi", Some(1.0)),
        device(1, "wifi", Some(2.0)),
        device(2, "lte", Some(3.0)),
        device(3, "lte", Some(4.0)),
    ];
    let r = Report::build(&s, setup, samples, devices, None, false);
    assert_eq!(r.http_down_bytes, 4 * 500);
    assert_eq!(r.full_image_bytes, 4 * 1000);
    assert_eq!(r.on_new_release, 4);
    assert_eq!(r.convergence.p100_s, Some(4.0));
    assert_eq!(r.convergence_by_profile["lte"].p50_s, Some(3.0));
    assert!((r.controller_peak_cpu_percent - 10.0).abs() < 0.01);
    for x in &r.samples {
        assert_eq!(x.phases.values().sum::<usize>(), 4);
    }
    let dir = tempfile::tempdir().unwrap();
    r.write(dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("Devices by phase"),
        "{html}"
    );
    let back: Report =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(back.per_device.len(), 4);
}
