//! A Mosquitto process for runs on the external-broker path: anonymous,
//! plaintext on loopback (the fault layer reads device addresses), no
//! persistence, no connection limit of its own; measured from outside
//! like the controller.

use super::controller::{peak_rss_of, usage_of};
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct MosquittoProcess {
    child: Child,
    pub addr: SocketAddr,
}

/// What the broker process used over the run.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct BrokerUsage {
    pub cpu_s: f64,
    pub peak_rss_bytes: u64,
}

impl MosquittoProcess {
    /// Starts Mosquitto with its config, log and pid in `dir`; waits
    /// until it accepts connections.
    pub fn start(dir: &Path) -> Result<MosquittoProcess> {
        let bin = binary()?;
        std::fs::create_dir_all(dir)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::fleet::free_port()?));
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 10000\nlog_dest stderr\nlog_type error\nlog_type warning\n",
                addr.port(),
            ),
        )?;
        // its log on stderr, into a file opened here: started as root,
        // Mosquitto drops to its own user, which cannot write into `dir`
        let log = std::fs::File::create(dir.join("mosquitto.log"))?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut me = MosquittoProcess { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = me.child.try_wait()? {
                bail!(
                    "mosquitto exited at start ({status}); see {}",
                    conf.display()
                );
            }
            if Instant::now() > deadline {
                bail!("mosquitto did not listen on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(me)
    }

    /// Its CPU time and peak resident memory so far.
    pub fn usage(&self) -> BrokerUsage {
        let pid = self.child.id();
        BrokerUsage {
            cpu_s: usage_of(pid).map_or(0.0, |u| u.cpu_s),
            peak_rss_bytes: peak_rss_of(pid).unwrap_or(0),
        }
    }
}

impl Drop for MosquittoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Result<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.exists());
    found.context("mosquitto not found: install Debian's mosquitto package")
}
