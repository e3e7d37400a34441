//! The agent's TOML configuration file.

use petrel_protocol::{BrokerUrl, Platform};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `petrel-agent run --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This device's id (1-64 of `[A-Za-z0-9_-]`).
    pub device_id: String,
    /// MQTT broker, `mqtt://host:port`.
    pub broker: String,
    /// Controller HTTP base URL (blobs), e.g. `http://127.0.0.1:7700`.
    pub controller_url: String,
    /// Where the agent keeps its store, layers, root filesystems and logs.
    pub data_dir: PathBuf,
    /// Container runtime: `native` (default, no daemon) or `docker` (the
    /// local Docker Engine API; balenaEngine and Podman speak it too).
    #[serde(default = "default_runtime")]
    pub runtime: String,
    /// Largest MQTT message accepted, in bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Seconds between heartbeat reports.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_s: u64,
    /// Seconds a download may go without receiving a byte (retried with
    /// backoff meanwhile) before the update fails and the device stays on
    /// its release.
    #[serde(default = "default_retry_budget")]
    pub download_retry_budget_s: u64,
    /// Seconds a device waits for a delta the controller is still
    /// preparing (it answers "retry after N s") before it fetches the
    /// full blob instead, when the data budget allows one.
    #[serde(default = "default_delta_wait")]
    pub delta_wait_s: u64,
    /// Seconds after a swap during which a crash loop of the new release
    /// (a service restarting 3 times or more) rolls it back; 0: no watch.
    #[serde(default = "default_post_update_watch")]
    pub post_update_watch_s: u64,
    /// The platform this device runs images for, `OS/ARCH[/VARIANT]`
    /// (default: what the agent was built for, e.g. linux/arm64). Set it
    /// when they differ (an armv6 Pi running an armv7-built agent).
    #[serde(default)]
    pub platform: Option<String>,
    /// The controller's public signing key (hex, `petrel key show` or the
    /// controller's `keys/signing.pub`): only desired states it signed (or
    /// a key it endorsed) are accepted. Required unless `accept_unsigned`.
    #[serde(default)]
    pub controller_key: Option<String>,
    /// An offline root key (hex) that may also endorse controller keys.
    #[serde(default)]
    pub root_key: Option<String>,
    /// Accept unsigned desired states: anyone who can publish on the broker
    /// can then run anything on this device. For a lab only.
    #[serde(default)]
    pub accept_unsigned: bool,
    /// The fleet CA certificate (PEM), for `mqtts://` and `https://`;
    /// relative paths are taken from the config file's directory.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This device's certificate (PEM), from `petrel device provision`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// This device's private key (PEM, mode 0600).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

fn default_runtime() -> String {
    "native".into()
}
fn default_max_message() -> usize {
    petrel_protocol::Limits::default().max_message_bytes
}
fn default_heartbeat() -> u64 {
    30
}
fn default_post_update_watch() -> u64 {
    600
}
fn default_delta_wait() -> u64 {
    crate::fetch::DEFAULT_DELTA_WAIT.as_secs()
}
fn default_retry_budget() -> u64 {
    crate::fetch::DEFAULT_RETRY_BUDGET.as_secs()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::parse(&text).map_err(|reason| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for file in [&mut cfg.ca_file, &mut cfg.cert_file, &mut cfg.key_file]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        Ok(cfg)
    }

    /// The TLS client configuration (fleet CA, this device's certificate)
    /// for `mqtts://` and `https://`; `None` when both are plaintext.
    pub fn tls(&self) -> Result<Option<petrel_tls::rustls::ClientConfig>, String> {
        let secure = self.broker_url()?.tls || self.controller_url.starts_with("https://");
        if !secure {
            return Ok(None);
        }
        let read = |name: &str, file: &Option<PathBuf>| {
            match file {
            Some(p) => petrel_tls::read_pem(p).map_err(|e| e.to_string()),
            None => Err(format!("{name} is missing: mqtts:// and https:// need the fleet CA, the device certificate and its key (`petrel device provision` writes all three)")),
        }
        };
        let ca = read("ca_file", &self.ca_file)?;
        let cert = read("cert_file", &self.cert_file)?;
        let key = read("key_file", &self.key_file)?;
        petrel_tls::client_config(&ca, Some((&cert, &key)))
            .map(Some)
            .map_err(|e| e.to_string())
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        petrel_protocol::validate_device_id(&cfg.device_id).map_err(|e| e.to_string())?;
        cfg.broker_url()?;
        if !cfg.controller_url.starts_with("http://") && !cfg.controller_url.starts_with("https://")
        {
            return Err(format!(
                "controller_url {:?} must start with http:// or https://",
                cfg.controller_url
            ));
        }
        cfg.platform()?;
        cfg.pinned_keys()?;
        if cfg.controller_key.is_none() && !cfg.accept_unsigned {
            return Err("controller_key is missing: set it to the controller's public signing key (`petrel key show`, or its keys/signing.pub), or set accept_unsigned = true to run without signatures (insecure)".into());
        }
        if cfg.runtime != "native" && cfg.runtime != "docker" {
            return Err(format!(
                "unknown runtime {:?} (supported: native, docker)",
                cfg.runtime
            ));
        }
        Ok(cfg)
    }

    /// The keys pinned in the config (controller key, root key).
    pub fn pinned_keys(&self) -> Result<Vec<petrel_protocol::PublicKey>, String> {
        [
            ("controller_key", &self.controller_key),
            ("root_key", &self.root_key),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| (name, v)))
        .map(|(name, v)| {
            petrel_protocol::PublicKey::from_hex(v).map_err(|e| format!("{name}: {e}"))
        })
        .collect()
    }

    /// The id of the offline root key, if one is pinned.
    pub fn root_key_id(&self) -> Result<Option<String>, String> {
        self.root_key
            .as_ref()
            .map(|v| {
                petrel_protocol::PublicKey::from_hex(v)
                    .map(|k| k.id())
                    .map_err(|e| format!("root_key: {e}"))
            })
            .transpose()
    }

    /// The device's platform: the configured one, else the build's.
    pub fn platform(&self) -> Result<Platform, String> {
        match &self.platform {
            Some(p) => p
                .parse()
                .map_err(|e: petrel_protocol::InvalidPlatform| e.to_string()),
            None => Ok(Platform::host()),
        }
    }

    /// The broker address ([`BrokerUrl`]).
    pub fn broker_url(&self) -> Result<BrokerUrl, String> {
        BrokerUrl::parse(&self.broker).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "controller_key = \"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c\"\n";

    #[test]
    fn a_minimal_config_gets_defaults() {
        let c = Config::parse(&format!(
            "device_id = \"pi-1\"\nbroker = \"mqtt://127.0.0.1:1883\"\ncontroller_url = \"http://127.0.0.1:7700\"\ndata_dir = \"/tmp/x\"\n{KEY}",
        ))
        .unwrap();
        assert_eq!(c.runtime, "native");
        let broker = c.broker_url().unwrap();
        assert_eq!((broker.host.as_str(), broker.port), ("127.0.0.1", 1883));
    }

    #[test]
    fn bad_device_ids_brokers_and_unknown_keys_are_clear_errors() {
        let base = format!(
            "broker = \"mqtt://h:1\"\ncontroller_url = \"http://h\"\ndata_dir = \"/x\"\n{KEY}"
        );
        assert!(Config::parse(&format!("device_id = \"a/b\"\n{base}")).is_err());
        assert!(Config::parse(&format!("device_id = \"a\"\n{base}typo = 1\n")).is_err());
        for broker in ["http://h:1", "h:notaport", "mqtt://h/topic"] {
            let e = Config::parse(&format!(
                "device_id = \"a\"\nbroker = \"{broker}\"\ncontroller_url = \"http://h\"\ndata_dir = \"/x\"\n{KEY}"
            ));
            let e = e.unwrap_err();
            assert!(e.contains(broker), "{broker}: {e}");
        }
    }

    #[test]
    fn a_config_without_a_pinned_key_is_refused_unless_unsigned_is_chosen() {
        let base = "device_id = \"a\"\nbroker = \"mqtt://h:1\"\ncontroller_url = \"http://h\"\ndata_dir = \"/x\"\n";
        let e = Config::parse(base).unwrap_err();
        assert!(e.contains("controller_key is missing"), "{e}");
        assert!(Config::parse(&format!("{base}accept_unsigned = true\n")).is_ok());
        let e = Config::parse(&format!("{base}controller_key = \"abc\"\n")).unwrap_err();
        assert!(e.contains("controller_key") && e.contains("64 hex"), "{e}");
    }
}
