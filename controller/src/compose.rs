//! The compose subset that defines a release: `services.<name>.{image,
//! command, environment, ports, volumes, restart, healthcheck}`, plus the
//! Petrel extensions `x-petrel-swap: handover | stop-first` and
//! `x-petrel-allow-setid: true`. A plain
//! docker-compose.yml using only these keys is accepted; any other service
//! key is refused by name, since silently ignoring it would run something
//! other than what the operator wrote.

use petrel_protocol::{
    HealthCheck, ImageManifest, NetworkMode, ReleaseManifest, RestartPolicy, ServiceSpec, SCHEMA,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("compose file is not valid: {0}")]
    Parse(String),
    #[error("service {service}: image {image} is not known to the controller (import or build it first)")]
    UnknownImage { service: String, image: String },
    #[error("service {service}: {reason}")]
    Invalid { service: String, reason: String },
    #[error("invalid release: {0}")]
    Release(#[from] petrel_protocol::ManifestError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComposeFile {
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    services: BTreeMap<String, ComposeService>,
    #[serde(default)]
    #[allow(dead_code)]
    volumes: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrList {
    String(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EnvSpec {
    Map(BTreeMap<String, Option<serde_yaml_ng::Value>>),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComposeService {
    image: String,
    #[serde(default)]
    command: Option<StringOrList>,
    #[serde(default)]
    environment: Option<EnvSpec>,
    #[serde(default)]
    ports: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    restart: Option<String>,
    #[serde(default)]
    healthcheck: Option<ComposeHealth>,
    #[serde(default)]
    mem_limit: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    cpus: Option<serde_yaml_ng::Value>,
    /// Petrel extension: `handover` (default) or `stop-first`.
    #[serde(default, rename = "x-petrel-swap")]
    swap: Option<petrel_protocol::SwapStrategy>,
    /// Petrel extension: keep the image's setuid/setgid bits.
    #[serde(default, rename = "x-petrel-allow-setid")]
    allow_setid: bool,
    /// Start order (a list, or compose's long form whose conditions are
    /// read as "started").
    #[serde(default)]
    depends_on: Option<DependsOn>,
    /// `host` (default) or `none`.
    #[serde(default)]
    network_mode: Option<String>,
    /// The user the service runs as (overrides the image's `USER`).
    #[serde(default)]
    user: Option<serde_yaml_ng::Value>,
    /// Accepted and ignored, with a warning (names are Petrel's own).
    #[serde(default)]
    container_name: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, serde_yaml_ng::Value>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComposeHealth {
    test: StringOrList,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    start_period: Option<String>,
}

/// Parses a compose document and resolves its images through `lookup`
/// (`name`, `tag`) into a release manifest.
pub fn to_release(
    yaml: &str,
    name: &str,
    version: &str,
    lookup: impl Fn(&str, &str) -> Option<ImageManifest>,
) -> Result<ReleaseManifest, ComposeError> {
    to_release_with_warnings(yaml, name, version, lookup).map(|(r, _)| r)
}

/// As [`to_release`], with a warning per key accepted but ignored.
pub fn to_release_with_warnings(
    yaml: &str,
    name: &str,
    version: &str,
    lookup: impl Fn(&str, &str) -> Option<ImageManifest>,
) -> Result<(ReleaseManifest, Vec<String>), ComposeError> {
    let file: ComposeFile =
        serde_yaml_ng::from_str(yaml).map_err(|e| ComposeError::Parse(e.to_string()))?;
    let mut services = BTreeMap::new();
    let mut warnings = Vec::new();
    for (svc_name, svc) in file.services {
        if svc.container_name.is_some() {
            warnings.push(format!("service {svc_name}: `container_name` is ignored: Petrel names instances <service>-g<generation>"));
        }
        let spec = service(&svc_name, svc, &lookup)?;
        services.insert(svc_name, spec);
    }
    let release = ReleaseManifest {
        schema: SCHEMA,
        name: name.to_string(),
        version: version.to_string(),
        services,
    };
    release.validate()?;
    Ok((release, warnings))
}

fn service(
    name: &str,
    svc: ComposeService,
    lookup: &impl Fn(&str, &str) -> Option<ImageManifest>,
) -> Result<ServiceSpec, ComposeError> {
    let invalid = |reason: String| ComposeError::Invalid {
        service: name.to_string(),
        reason,
    };
    let (img, tag) = svc.image.rsplit_once(':').unwrap_or((&svc.image, "latest"));
    let image = lookup(img, tag).ok_or_else(|| ComposeError::UnknownImage {
        service: name.to_string(),
        image: format!("{img}:{tag}"),
    })?;
    let command = svc.command.map(argv).transpose().map_err(invalid)?;
    let restart = svc
        .restart
        .as_deref()
        .map(restart_policy)
        .transpose()
        .map_err(invalid)?;
    let healthcheck = svc.healthcheck.map(health).transpose().map_err(invalid)?;
    Ok(ServiceSpec {
        image,
        command,
        environment: environment(svc.environment).map_err(invalid)?,
        ports: svc.ports.iter().map(yaml_scalar).collect(),
        volumes: svc.volumes,
        restart: restart.unwrap_or_default(),
        healthcheck,
        swap: svc.swap.unwrap_or_default(),
        mem_limit: svc
            .mem_limit
            .as_ref()
            .map(|v| bytes(&yaml_scalar(v)))
            .transpose()
            .map_err(invalid)?,
        cpu_millis: svc
            .cpus
            .as_ref()
            .map(|v| millicpus(&yaml_scalar(v)))
            .transpose()
            .map_err(invalid)?,
        depends_on: match svc.depends_on {
            None => vec![],
            Some(DependsOn::List(l)) => l,
            Some(DependsOn::Map(m)) => m.into_keys().collect(),
        },
        variants: vec![],
        allow_setid: svc.allow_setid,
        user: svc.user.as_ref().map(user).transpose().map_err(invalid)?,
        network_mode: match svc.network_mode.as_deref() {
            None | Some("host") => NetworkMode::Host,
            Some("none") => NetworkMode::None,
            Some(other) => return Err(invalid(format!("network_mode {other:?}: devices run services on the host network (host) or without one (none)"))),
        },
    })
}

/// Compose `user`: `uid`, `uid:gid`, `name` or `name:group` (a number or
/// a string in YAML); resolved on the device in the image's own files.
fn user(v: &serde_yaml_ng::Value) -> Result<String, String> {
    let text = yaml_scalar(v);
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 32
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    let mut parts = text.split(':');
    let ok = match (parts.next(), parts.next(), parts.next()) {
        (Some(u), None, None) => part_ok(u),
        (Some(u), Some(g), None) => part_ok(u) && part_ok(g),
        _ => false,
    };
    match ok {
        true => Ok(text),
        false => Err(format!(
            "user {text:?} is not uid, uid:gid, name or name:group"
        )),
    }
}

fn argv(v: StringOrList) -> Result<Vec<String>, String> {
    match v {
        StringOrList::List(l) => Ok(l),
        StringOrList::String(s) => {
            shell_words::split(&s).map_err(|e| format!("cannot split command {s:?}: {e}"))
        }
    }
}

fn yaml_scalar(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        serde_yaml_ng::Value::Bool(b) => b.to_string(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn environment(env: Option<EnvSpec>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    match env {
        None => {}
        Some(EnvSpec::Map(m)) => {
            for (k, v) in m {
                out.insert(k, v.as_ref().map(yaml_scalar).unwrap_or_default());
            }
        }
        Some(EnvSpec::List(l)) => {
            for kv in l {
                let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    match out.keys().find(|k| k.is_empty() || k.contains('=')) {
        Some(bad) => Err(format!("invalid environment variable name {bad:?}")),
        None => Ok(out),
    }
}

fn restart_policy(s: &str) -> Result<RestartPolicy, String> {
    match s {
        "no" | "\"no\"" => Ok(RestartPolicy::No),
        "always" => Ok(RestartPolicy::Always),
        "on-failure" => Ok(RestartPolicy::OnFailure),
        "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
        other => Err(format!(
            "unknown restart policy {other:?} (no, always, on-failure, unless-stopped)"
        )),
    }
}

fn health(h: ComposeHealth) -> Result<HealthCheck, String> {
    Ok(HealthCheck {
        test: argv(h.test)?,
        interval_s: h.interval.as_deref().map(duration_s).transpose()?,
        timeout_s: h.timeout.as_deref().map(duration_s).transpose()?,
        retries: h.retries,
        start_period_s: h.start_period.as_deref().map(duration_s).transpose()?,
    })
}

/// Compose byte sizes: `67108864`, `64m`, `512k`, `1g` (also `mb`, `gb`).
fn bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|x| x.ends_with(['k', 'm', 'g']))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (e.g. 64m)"))?;
    n.checked_mul(mult)
        .filter(|b| *b >= 4 << 20)
        .ok_or_else(|| format!("size {s:?} out of range (at least 4m)"))
}

/// Compose `cpus: 0.5` as thousandths of a CPU.
fn millicpus(s: &str) -> Result<u32, String> {
    let cpus: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("invalid cpus {s:?} (e.g. 0.5)"))?;
    if !(0.01..=1024.0).contains(&cpus) {
        return Err(format!("cpus {s:?} out of range"));
    }
    Ok((cpus * 1000.0).round() as u32)
}

/// Compose durations such as `30s`, `1m30s`, `2h`, rounded up to seconds.
fn duration_s(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {s:?} (e.g. 30s, 1m30s)");
    let (mut total_ms, mut num) = (0u64, String::new());
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit_ms = match c {
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1_000,
            _ => return Err(bad()),
        };
        total_ms = total_ms.saturating_add(n.saturating_mul(unit_ms));
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total_ms.div_ceil(1000))
}

#[cfg(test)]
mod tests;
