//! The agent's TOML configuration file.

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
        Config::parse(&text).map_err(|reason| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        petrel_protocol::validate_device_id(&cfg.device_id).map_err(|e| e.to_string())?;
        cfg.broker_addr()?;
        if !cfg.controller_url.starts_with("http://") && !cfg.controller_url.starts_with("https://")
        {
            return Err(format!(
                "controller_url {:?} must start with http:// or https://",
                cfg.controller_url
            ));
        }
        if cfg.runtime != "native" && cfg.runtime != "docker" {
            return Err(format!(
                "unknown runtime {:?} (supported: native, docker)",
                cfg.runtime
            ));
        }
        Ok(cfg)
    }

    /// Broker host and port from `mqtt://host:port`.
    pub fn broker_addr(&self) -> Result<(String, u16), String> {
        let rest = self.broker.strip_prefix("mqtt://").unwrap_or(&self.broker);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("broker {:?}: expected mqtt://host:port", self.broker))?;
        let port = port
            .trim_end_matches('/')
            .parse()
            .map_err(|_| format!("broker {:?}: bad port", self.broker))?;
        Ok((host.to_string(), port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_config_gets_defaults() {
        let c = Config::parse(
            "device_id = \"pi-1\"\nbroker = \"mqtt://127.0.0.1:1883\"\ncontroller_url = \"http://127.0.0.1:7700\"\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        assert_eq!(c.runtime, "native");
        assert_eq!(c.broker_addr().unwrap(), ("127.0.0.1".into(), 1883));
    }

    #[test]
    fn bad_device_ids_brokers_and_unknown_keys_are_clear_errors() {
        let base = "broker = \"mqtt://h:1\"\ncontroller_url = \"http://h\"\ndata_dir = \"/x\"\n";
        assert!(Config::parse(&format!("device_id = \"a/b\"\n{base}")).is_err());
        assert!(Config::parse(&format!("device_id = \"a\"\n{base}typo = 1\n")).is_err());
        let e = Config::parse("device_id = \"a\"\nbroker = \"nope\"\ncontroller_url = \"http://h\"\ndata_dir = \"/x\"\n");
        assert!(e.unwrap_err().contains("mqtt://"));
    }
}
