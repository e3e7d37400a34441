//! A Mosquitto broker (from Debian) for the external-broker scenarios.

use crate::procs::{free_port, kill9, spawn, wait_listening};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

/// A Mosquitto broker (from Debian) on a free loopback port.
pub struct Mosquitto {
    pub port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Result<Mosquitto> {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::create_dir_all(dir)?;
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmessage_size_limit 2097152\n"))?;
        let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let mut cmd = Command::new(exe);
        cmd.arg("-c").arg(&conf);
        let child = spawn(&mut cmd, dir, "mosquitto.log")
            .context("mosquitto is required (apt-get install mosquitto)")?;
        wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(10))?;
        Ok(Mosquitto {
            port,
            child: Some(child),
        })
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        kill9(&mut self.child);
    }
}
