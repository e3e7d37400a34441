//! The controller a scenario runs against: the real `petrel-controller`
//! binary in its own process (embedded broker, plaintext on loopback, so
//! the fault layer can tell devices by address), measured from outside:
//! its CPU time and resident memory from /proc.

use crate::fleet::free_port;
use anyhow::{bail, Context, Result};
use petrel_controller::client::{Client, Credentials};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct ControllerProcess {
    child: Mutex<Child>,
    dir: PathBuf,
    pub http: SocketAddr,
    /// Where devices connect: the embedded broker's front, or the
    /// external broker.
    pub mqtt: SocketAddr,
    external: bool,
    /// Its public signing key (hex), which devices pin.
    pub key: String,
    pub client: Client,
    /// CPU seconds of the processes killed before this one.
    cpu_before: Mutex<f64>,
}

/// CPU seconds and resident bytes of a process, read now.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_s: f64,
    pub rss_bytes: u64,
}

impl ControllerProcess {
    /// Starts the controller on free loopback ports with its data in
    /// `dir`, on its embedded broker or on `external`; waits until its API
    /// answers.
    pub async fn start(dir: &Path, external: Option<SocketAddr>) -> Result<ControllerProcess> {
        let (key, token) = crate::fleet::controller_secrets(dir)?;
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mqtt = match external {
            Some(addr) => addr,
            None => SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        };
        let child = spawn(dir, http, mqtt, external.is_some())?;
        let creds = Credentials {
            token: Some(token),
            ca_pem: None,
        };
        let client = Client::with_credentials(&format!("http://{http}"), &creds)?;
        let me = ControllerProcess {
            child: Mutex::new(child),
            dir: dir.to_path_buf(),
            http,
            mqtt,
            external: external.is_some(),
            key,
            client,
            cpu_before: Mutex::new(0.0),
        };
        me.wait_ready().await?;
        Ok(me)
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.lock().try_wait()? {
                bail!("the controller exited at start ({status}); see controller.log");
            }
            if self.client.signing_key().await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the controller did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pid(&self) -> u32 {
        self.lock().id()
    }

    /// CPU time (of every process so far) and resident memory now.
    /// Where devices reach it.
    pub fn upstream(&self) -> super::fleet::Upstream {
        super::fleet::Upstream {
            mqtt: self.mqtt,
            http: self.http,
            key: self.key.clone(),
        }
    }

    pub fn usage(&self) -> Usage {
        let now = usage_of(self.pid()).unwrap_or_default();
        let before = *self.cpu_before.lock().unwrap_or_else(|e| e.into_inner());
        Usage {
            cpu_s: before + now.cpu_s,
            ..now
        }
    }

    /// Kills the controller with SIGKILL, as a power cut would.
    pub fn kill(&self) {
        let last = usage_of(self.pid()).unwrap_or_default().cpu_s;
        *self.cpu_before.lock().unwrap_or_else(|e| e.into_inner()) += last;
        let mut child = self.lock();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the controller again on the same data and ports; waits
    /// until its API answers.
    pub async fn respawn(&self) -> Result<()> {
        *self.lock() = spawn(&self.dir, self.http, self.mqtt, self.external)?;
        self.wait_ready().await
    }

    pub fn stop(self) {
        self.kill();
    }
}

/// Starts `petrel-controller serve` on `dir`, logging to its
/// `controller.log` (appended across restarts); its broker embedded and
/// listening on `mqtt`, or `external` there.
fn spawn(dir: &Path, http: SocketAddr, mqtt: SocketAddr, external: bool) -> Result<Child> {
    let bin = crate::bins::workspace_binary("petrel-controller", "petrel-controller")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("controller.log"))?;
    Command::new(&bin)
        .arg("serve")
        .arg("--data")
        .arg(dir)
        .args(["--http", &http.to_string()])
        .args(match external {
            true => ["--broker".to_string(), format!("mqtt://{mqtt}")],
            false => ["--mqtt-listen".to_string(), mqtt.to_string()],
        })
        .arg("--insecure")
        .env("RUST_LOG", "warn,rumqttd=error")
        // its logs (stdout) and any panic (stderr), in one file
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// A process's peak resident memory (VmHWM).
pub(crate) fn peak_rss_of(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// A size field of `/proc/PID/status` (given in kB), in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

pub(crate) fn usage_of(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
    // fields after the name: state is 3rd overall; utime 14th, stime 15th
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    let rss_bytes = status_bytes(pid, "VmRSS:")?;
    // clock ticks: 100 a second on Linux
    Some(Usage {
        cpu_s: (utime + stime) / 100.0,
        rss_bytes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let u = super::usage_of(std::process::id()).unwrap();
        assert!(u.rss_bytes > 1 << 20, "{u:?}");
        assert!(u.cpu_s >= 0.0);
    }
}
