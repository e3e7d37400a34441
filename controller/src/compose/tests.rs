use super::*;
use petrel_protocol::{Digest, ImageConfig, LayerDescriptor};

fn lookup(name: &str, tag: &str) -> Option<ImageManifest> {
    (name == "app").then(|| ImageManifest {
        schema: SCHEMA,
        name: name.into(),
        tag: tag.into(),
        layers: vec![LayerDescriptor {
            digest: Digest::of(b"b"),
            diff_id: Digest::of(b"t"),
            size: 1,
            unpacked_size: None,
        }],
        config: ImageConfig {
            entrypoint: vec!["/app".into()],
            ..Default::default()
        },
        platform: None,
    })
}

#[test]
fn a_plain_docker_compose_file_becomes_a_release() {
    let yaml = r#"
version: "3.8"
services:
  web:
    image: app:v2
    command: --greeting "hello world"
    environment:
      MODE: prod
      COUNT: 3
    ports: ["8080:8080"]
    volumes: ["data:/data"]
    restart: on-failure
    x-petrel-swap: stop-first
    mem_limit: 64m
    cpus: 0.5
    healthcheck:
      test: ["CMD", "true"]
      interval: 1m30s
      retries: 3
volumes:
  data: {}
"#;
    let r = to_release(yaml, "demo", "2", lookup).unwrap();
    let web = &r.services["web"];
    assert_eq!(web.image.tag, "v2");
    assert_eq!(
        web.command.as_deref().unwrap(),
        ["--greeting", "hello world"]
    );
    assert_eq!(web.environment["COUNT"], "3");
    assert_eq!(web.restart, RestartPolicy::OnFailure);
    assert_eq!(web.swap, petrel_protocol::SwapStrategy::StopFirst);
    assert_eq!((web.mem_limit, web.cpu_millis), (Some(64 << 20), Some(500)));
    assert_eq!(web.healthcheck.as_ref().unwrap().interval_s, Some(90));
    assert_eq!(web.ports, ["8080:8080"]);
}

#[test]
fn unsupported_service_keys_are_refused_by_name() {
    let yaml = "services:\n  web:\n    image: app:1\n    privileged: true\n";
    let e = to_release(yaml, "demo", "1", lookup)
        .unwrap_err()
        .to_string();
    assert!(e.contains("privileged"), "{e}");
}

#[test]
fn an_unknown_image_is_a_clear_error() {
    let yaml = "services:\n  web:\n    image: nope:1\n";
    let e = to_release(yaml, "demo", "1", lookup).unwrap_err();
    assert!(matches!(e, ComposeError::UnknownImage { .. }), "{e}");
}

#[test]
fn bad_restart_policies_and_durations_are_rejected() {
    let yaml = "services:\n  web:\n    image: app:1\n    restart: sometimes\n";
    assert!(to_release(yaml, "demo", "1", lookup).is_err());
    assert!(duration_s("10x").is_err());
    assert_eq!(duration_s("1500ms").unwrap(), 2);
}

#[test]
fn depends_on_orders_the_start_user_is_kept_and_ignored_keys_warn() {
    let yaml = "services:\n  web:\n    image: app:1\n    depends_on: [db]\n    user: \"1000\"\n    container_name: my-web\n  db:\n    image: app:1\n    depends_on:\n      cache: {condition: service_started}\n  cache:\n    image: app:1\n";
    let (r, warnings) = to_release_with_warnings(yaml, "demo", "1", lookup).unwrap();
    assert_eq!(r.start_order().unwrap(), ["cache", "db", "web"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("`container_name` is ignored"),
        "{warnings:?}"
    );
    assert_eq!(r.services["web"].user.as_deref(), Some("1000"));
    let numeric = yaml.replace("user: \"1000\"", "user: 1000");
    let (r, _) = to_release_with_warnings(&numeric, "demo", "1", lookup).unwrap();
    assert_eq!(r.services["web"].user.as_deref(), Some("1000"));
    for bad in ["\"a:b:c\"", "\"root;x\"", "\"\""] {
        let y = yaml.replace("\"1000\"", bad);
        assert!(to_release(&y, "demo", "1", lookup).is_err(), "{bad}");
    }
    let cycle = "services:\n  a:\n    image: app:1\n    depends_on: [b]\n  b:\n    image: app:1\n    depends_on: [a]\n";
    let err = to_release(cycle, "demo", "1", lookup)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cycle"), "{err}");
}

#[test]
fn a_healthcheck_the_device_could_not_run_is_refused_at_creation() {
    let yaml = "services:\n  web:\n    image: app:1\n    healthcheck:\n      test: [\"RUNNING\", \"soon\"]\n";
    let err = to_release(yaml, "demo", "1", lookup)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("web") && err.contains("RUNNING takes whole seconds"),
        "{err}"
    );
    let ok =
        "services:\n  web:\n    image: app:1\n    healthcheck:\n      test: [\"RUNNING\", \"5\"]\n";
    assert!(to_release(ok, "demo", "1", lookup).is_ok());
}
