//! The `desired_decode` harness. The fuzzer's bytes go through every
//! decoder of `petrel_protocol::codec` an agent or controller runs on a
//! desired state or a manifest:
//! - as a desired-state envelope, accepted unsigned (`Trust::Unsigned`)
//!   and signed (`Trust::Keys`: a fixed offline root and controller key);
//! - as the payload of an unsigned envelope, so that mutations of the
//!   desired state itself get past the envelope's JSON escaping;
//! - as a bare release manifest and a bare image manifest.
//!
//! What decodes is then put through the release checks: `validate`, and
//! what the agent and the controller do with a valid release (start order,
//! platform resolution, volumes, ports, health-check timing).

use crate::Seed;
use petrel_protocol::{
    codec, decode_desired_trusted, Desired, Digest, Envelope, ImageManifest, Limits, Platform,
    PublicKey, ReleaseManifest, SigningKey, Trust, SCHEMA,
};
use serde_json::json;
use std::sync::OnceLock;

/// The device every desired state must be addressed to.
const DEVICE: &str = "dev-1";
/// "Now" for signed desired states; the signed seeds expire an hour later.
const NOW_MS: u64 = 1_700_000_000_000;

/// The device trusts an offline root key and the controller's key; seeds
/// are signed by the controller's key, or by a new key the root endorses
/// (a root rotation, which retires the controller's key).
fn root_key() -> SigningKey {
    SigningKey::from_seed([7; 32])
}

fn controller_key() -> SigningKey {
    SigningKey::from_seed([8; 32])
}

fn rotated_key() -> SigningKey {
    SigningKey::from_seed([9; 32])
}

fn trusted() -> &'static [PublicKey] {
    static KEYS: OnceLock<[PublicKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| [root_key().public(), controller_key().public()])
}

fn roots() -> &'static [String] {
    static ROOTS: OnceLock<[String; 1]> = OnceLock::new();
    ROOTS.get_or_init(|| [root_key().public().id()])
}

fn device_platform() -> &'static Platform {
    static PLATFORM: OnceLock<Platform> = OnceLock::new();
    PLATFORM.get_or_init(|| "linux/arm64/v8".parse().expect("a platform"))
}

pub fn run(data: &[u8]) -> Result<(), String> {
    let limits = Limits::default();
    let signed = Trust::Keys {
        keys: trusted(),
        roots: roots(),
        retired: &[],
        now_ms: NOW_MS,
    };
    let wrapped = codec::encode(&Envelope {
        schema: SCHEMA,
        payload: String::from_utf8_lossy(data).into_owned(),
        signature: None,
        key_id: None,
        endorsements: Vec::new(),
    });
    let outcomes = [
        decode_desired_trusted(data, DEVICE, limits, Trust::Unsigned),
        decode_desired_trusted(data, DEVICE, limits, signed),
        decode_desired_trusted(&wrapped, DEVICE, limits, Trust::Unsigned),
    ];
    let mut checked: Vec<Result<(), String>> = outcomes
        .into_iter()
        .map(|outcome| {
            let accepted = outcome.map_err(|e| e.to_string())?;
            check_desired(&accepted.desired)
        })
        .collect();
    let release = codec::decode::<ReleaseManifest>(data, limits).map_err(|e| e.to_string());
    checked.push(release.and_then(|r| check_release(&r)));
    let image = codec::decode::<ImageManifest>(data, limits);
    checked.push(image.map(|i| _ = i.id()).map_err(|e| e.to_string()));
    // An input is at most one of these messages: accepted if one took it.
    match checked.iter().any(Result::is_ok) {
        true => Ok(()),
        false => Err(checked
            .into_iter()
            .filter_map(Result::err)
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

fn check_desired(desired: &Desired) -> Result<(), String> {
    match &desired.release {
        Some(release) => check_release(release),
        None => Ok(()),
    }
}

fn check_release(release: &ReleaseManifest) -> Result<(), String> {
    release.validate().map_err(|e| e.to_string())?;
    _ = release.layers();
    _ = release.start_order();
    _ = release.for_platform(None);
    _ = release.for_platform(Some(device_platform()));
    for service in release.services.values() {
        _ = service.argv();
        _ = service.volume_mounts();
        _ = service.listen_ports();
        if let Some(check) = &service.healthcheck {
            _ = check.probe();
            _ = check.timing();
        }
    }
    Ok(())
}

/// Envelopes (unsigned, signed, signed through an endorsement), a bare
/// desired state, and bare release and image manifests.
pub fn seeds() -> Vec<Seed> {
    let desired = |release: Option<ReleaseManifest>| Desired {
        schema: SCHEMA,
        device_id: DEVICE.into(),
        generation: 4,
        release,
        issued_at_ms: NOW_MS - 1000,
        expires_at_ms: Some(NOW_MS + 3_600_000),
        window: Some("mon-fri 02:00-04:00 Europe/Berlin".parse().expect("a valid window")),
    };
    let full = desired(Some(release()));
    let (controller, rotated) = (controller_key(), rotated_key());
    let chain = [root_key().endorse(&rotated.public())];
    vec![
        ("unsigned".into(), codec::encode(&Envelope::wrap(&full))),
        (
            "empty".into(),
            codec::encode(&Envelope::wrap(&desired(None))),
        ),
        (
            "signed".into(),
            codec::encode(&controller.sign_desired(&full, &[])),
        ),
        (
            "rotated".into(),
            codec::encode(&rotated.sign_desired(&full, &chain)),
        ),
        ("desired".into(), codec::encode(&full)),
        ("release".into(), codec::encode(&release())),
        (
            "image".into(),
            image(Some("linux/arm64/v8")).to_string().into_bytes(),
        ),
    ]
}

/// A release using every field a service has: two services, one
/// depending on the other, with platform variants, volumes, ports and
/// health checks. Written as JSON, as a controller sends it, so that a
/// field added to the manifest does not break the seeds.
fn release() -> ReleaseManifest {
    let web = json!({
        "image": image(None),
        "command": ["/bin/web", "--port=8080"],
        "environment": {"MODE": "prod"},
        "ports": ["8080", "9090:9090/tcp"],
        "volumes": ["data:/var/lib/web", "conf:/etc/web:ro"],
        "restart": "on-failure",
        "healthcheck": {
            "test": ["HTTP", "http://127.0.0.1:8080/health"],
            "interval_s": 5, "timeout_s": 2, "retries": 3, "start_period_s": 10
        },
        "swap": "stop-first",
        "mem_limit": 64 << 20,
        "cpu_millis": 500,
        "depends_on": ["db"],
        "variants": [image(Some("linux/amd64")), image(Some("linux/arm64/v8"))],
        "allow_setid": true,
        "user": "1000:1000"
    });
    let db = json!({
        "image": image(None),
        "healthcheck": {"test": ["CMD", "/bin/db", "--ping"]},
        "restart": "always"
    });
    let release = json!({
        "schema": SCHEMA,
        "name": "shop",
        "version": "1.2.3",
        "services": {"web": web, "db": db}
    });
    serde_json::from_value(release).expect("the seed release decodes")
}

fn image(platform: Option<&str>) -> serde_json::Value {
    let layer = |n: &[u8]| {
        json!({
            "digest": Digest::of(n),
            "diff_id": Digest::of(&[n, b".tar"].concat()),
            "size": 1234
        })
    };
    let mut image = json!({
        "schema": SCHEMA,
        "name": "shop/web",
        "tag": "1.2.3",
        "layers": [layer(b"base"), layer(b"app")],
        "config": {
            "entrypoint": ["/bin/sh", "-c"],
            "cmd": ["exec web"],
            "env": ["PATH=/bin"],
            "working_dir": "/srv",
            "user": "1000:1000",
            "exposed_ports": ["8080/tcp"],
            "created": "2024-01-01T00:00:00Z"
        }
    });
    if let Some(platform) = platform {
        let platform: Platform = platform.parse().expect("a platform");
        image["platform"] = json!(platform);
    }
    image
}
