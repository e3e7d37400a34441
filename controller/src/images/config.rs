//! The image config JSON shared by Docker and OCI (`config.Entrypoint`,
//! `config.Cmd`, ..., `rootfs.diff_ids`) and bounded reads of small JSON
//! metadata files from an unpacked tarball.

use super::ImageError;
use petrel_protocol::{Digest, ImageConfig, Platform};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Metadata files (manifests, indexes, configs) above this size are refused
/// rather than read into memory: real ones are a few KiB.
pub(crate) const METADATA_LIMIT: u64 = 4 * 1024 * 1024;

/// What Petrel keeps from an image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedConfig {
    pub config: ImageConfig,
    /// `rootfs.diff_ids`, when the config has a `rootfs` section.
    pub diff_ids: Option<Vec<Digest>>,
    /// `os`/`architecture`/`variant`, when the config names both of the
    /// first two.
    pub platform: Option<Platform>,
}

#[derive(Deserialize)]
struct RawImage {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<RawProcess>,
    #[serde(default)]
    rootfs: Option<RawRootFs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawProcess {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawRootFs {
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

/// Parses an image config; `entry` names it in errors.
pub(crate) fn parse_config(bytes: &[u8], entry: &str) -> Result<ParsedConfig, ImageError> {
    let raw: RawImage = json(bytes, entry)?;
    let process = raw.config.unwrap_or_default();
    let config = ImageConfig {
        entrypoint: process.entrypoint.unwrap_or_default(),
        cmd: process.cmd.unwrap_or_default(),
        env: process.env.unwrap_or_default(),
        working_dir: non_empty(process.working_dir),
        user: non_empty(process.user),
        exposed_ports: process
            .exposed_ports
            .unwrap_or_default()
            .into_keys()
            .collect(),
        created: non_empty(raw.created),
    };
    let platform = (!raw.os.is_empty() && !raw.architecture.is_empty()).then(|| Platform {
        os: raw.os,
        architecture: raw.architecture,
        variant: non_empty(raw.variant),
    });
    Ok(ParsedConfig {
        config,
        diff_ids: raw.rootfs.map(|r| r.diff_ids),
        platform,
    })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Checks that the config lists one diff_id per layer, if it lists any.
pub(crate) fn check_layer_count(parsed: &ParsedConfig, layers: usize) -> Result<(), ImageError> {
    match &parsed.diff_ids {
        Some(ids) if ids.len() != layers => Err(ImageError::LayerCount {
            layers,
            diff_ids: ids.len(),
        }),
        _ => Ok(()),
    }
}

/// Decodes JSON, naming `entry` on failure.
pub(crate) fn json<T: DeserializeOwned>(bytes: &[u8], entry: &str) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        entry: entry.to_string(),
        source,
    })
}

/// Reads a small metadata file whole, refusing ones over [`METADATA_LIMIT`].
pub(crate) fn read_small(path: &Path, entry: &str) -> Result<Vec<u8>, ImageError> {
    let io_err = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::Missing {
                entry: entry.to_string(),
            })
        }
        other => other.map_err(io_err)?,
    };
    let mut bytes = Vec::new();
    file.take(METADATA_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > METADATA_LIMIT {
        return Err(ImageError::TooLarge {
            entry: entry.to_string(),
            size: bytes.len() as u64,
            limit: METADATA_LIMIT,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_fields_map_to_image_config() {
        let json = br#"{
            "architecture": "amd64",
            "config": {
                "Entrypoint": ["/bin/app"], "Cmd": ["--port", "80"],
                "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv", "User": "1000:1000",
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}}
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        }"#;
        let parsed = parse_config(json, "c.json").unwrap();
        let c = parsed.config;
        assert_eq!(c.entrypoint, ["/bin/app"]);
        assert_eq!(c.cmd, ["--port", "80"]);
        assert_eq!(c.env, ["PATH=/bin", "A=1"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.exposed_ports, ["53/udp", "80/tcp"]);
        assert_eq!(parsed.diff_ids, Some(vec![]));
    }

    #[test]
    fn null_and_empty_config_fields_become_defaults() {
        let json =
            br#"{"config": {"Entrypoint": null, "Cmd": null, "WorkingDir": "", "User": ""}}"#;
        let parsed = parse_config(json, "c.json").unwrap();
        assert_eq!(parsed.config, ImageConfig::default());
        assert_eq!(parsed.diff_ids, None);
    }

    #[test]
    fn config_with_a_malformed_diff_id_is_an_error_naming_the_file() {
        let json = br#"{"rootfs": {"type": "layers", "diff_ids": ["sha256:nothex"]}}"#;
        let err = parse_config(json, "abc.json").unwrap_err();
        assert!(err.to_string().contains("abc.json"), "{err}");
    }
}
