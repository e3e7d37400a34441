//! Real processes under test: the controller, agents and Mosquitto.

use anyhow::{bail, Context, Result};
use petrel_runtime::Runtime;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary of this workspace, built beside the test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

pub fn free_port() -> u16 {
    petrel_simulator::fleet::free_port().unwrap_or(0)
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .context("log file")
}

pub(crate) fn spawn(cmd: &mut Command, dir: &Path, log: &str) -> Result<Child> {
    let out = log_file(dir, log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    cmd.spawn().with_context(|| format!("spawning {cmd:?}"))
}

pub(crate) fn kill9(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Waits up to 20 s for `path` to hold something; returns it.
fn wait_written(path: &Path) -> Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => return Ok(text),
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(_) => anyhow::bail!("empty {}", path.display()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_listening(addr: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("{addr} is not listening after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The signing key of the controller on each broker URL, so an agent
/// started on that broker pins it.
fn pinned_keys() -> std::sync::MutexGuard<'static, std::collections::HashMap<String, String>> {
    static KEYS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A `petrel-controller serve` process.
pub struct Controller {
    pub dir: PathBuf,
    pub http_port: u16,
    pub mqtt_port: u16,
    pub external_broker: Option<String>,
    /// More `serve` arguments (limits, say).
    pub extra_args: Vec<String>,
    /// TLS and device certificates (`serve` without `--insecure`).
    pub secure: bool,
    child: Option<Child>,
}

impl Controller {
    /// Starts a controller with its embedded broker.
    pub fn start(dir: &Path) -> Result<Controller> {
        Self::with_broker(dir, None)
    }

    /// Starts a controller using `broker` (`mqtt://host:port`) if given.
    pub fn with_broker(dir: &Path, broker: Option<String>) -> Result<Controller> {
        Self::launch(dir, broker, &[])
    }

    /// Starts a controller (embedded broker) with more `serve` arguments.
    pub fn with_args(dir: &Path, args: &[&str]) -> Result<Controller> {
        Self::launch(dir, None, args)
    }

    /// Starts a secure controller (HTTPS, MQTT over mutual TLS, its own
    /// fleet CA), on `broker` (`mqtts://`) if given. Agents join it with
    /// [`Agent::provisioned`].
    pub fn secure(dir: &Path, broker: Option<String>) -> Result<Controller> {
        let mut c = Self::new(dir, broker, &[]);
        c.secure = true;
        c.restart()?;
        Ok(c)
    }

    fn new(dir: &Path, broker: Option<String>, args: &[&str]) -> Controller {
        Controller {
            dir: dir.to_path_buf(),
            http_port: free_port(),
            mqtt_port: free_port(),
            external_broker: broker,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            secure: false,
            child: None,
        }
    }

    /// Most scenarios run a lab controller (`--insecure`: plaintext, no
    /// device certificates); the security scenarios use [`Self::secure`].
    fn launch(dir: &Path, broker: Option<String>, args: &[&str]) -> Result<Controller> {
        let mut c = Self::new(dir, broker, args);
        c.restart()?;
        Ok(c)
    }

    pub fn url(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.http_port)
    }

    pub fn broker_url(&self) -> String {
        let scheme = if self.secure { "mqtts" } else { "mqtt" };
        self.external_broker
            .clone()
            .unwrap_or_else(|| format!("{scheme}://127.0.0.1:{}", self.mqtt_port))
    }

    /// The first admin token the controller wrote.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("data/auth/admin.token"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The fleet CA certificate file (secure controllers).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("data/pki/ca.pem")
    }

    /// An admin API client.
    pub fn client(&self) -> petrel_controller::client::Client {
        let creds = petrel_controller::client::Credentials {
            token: Some(self.admin_token()),
            ca_pem: self
                .secure
                .then(|| std::fs::read_to_string(self.ca_path()).unwrap_or_default()),
        };
        petrel_controller::client::Client::with_credentials(&self.url(), &creds)
            .expect("an API client")
    }

    /// GET `url` with the admin token (operators are not held to the
    /// devices' delta budget).
    pub async fn get(&self, url: &str) -> reqwest::Result<reqwest::Response> {
        let mut builder = reqwest::Client::builder();
        if self.secure {
            let ca = std::fs::read_to_string(self.ca_path()).unwrap_or_default();
            if let Ok(tls) = petrel_tls::client_config(&ca, None) {
                builder = builder.use_preconfigured_tls(tls);
            }
        }
        builder
            .build()?
            .get(url)
            .bearer_auth(self.admin_token())
            .send()
            .await
    }

    /// GET of a delta, asking again while the controller answers that it
    /// is being prepared (503 with Retry-After), for up to 5 minutes.
    pub async fn get_delta(&self, url: &str) -> reqwest::Result<reqwest::Response> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let resp = self.get(url).await?;
            if resp.status().as_u16() != 503 || Instant::now() > deadline {
                return Ok(resp);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `petrel --controller URL` with the admin token (and the CA).
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(bin("petrel"));
        cmd.args(["--controller", &self.url()]);
        cmd.env("PETREL_TOKEN", self.admin_token());
        if self.secure {
            cmd.env("PETREL_CA", self.ca_path());
        }
        cmd
    }

    /// (Re)starts the process on the same ports and data dir.
    pub fn restart(&mut self) -> Result<()> {
        kill9(&mut self.child);
        let mut cmd = Command::new(bin("petrel-controller"));
        cmd.args(["serve", "--data"]).arg(self.dir.join("data"));
        cmd.args(["--http", &format!("127.0.0.1:{}", self.http_port)]);
        cmd.args(["--mqtt-listen", &format!("127.0.0.1:{}", self.mqtt_port)]);
        if let Some(b) = &self.external_broker {
            cmd.args(["--broker", b]);
        }
        if !self.secure {
            cmd.arg("--insecure");
        }
        cmd.args(&self.extra_args);
        self.child = Some(spawn(&mut cmd, &self.dir, "controller.log")?);
        wait_listening(
            &format!("127.0.0.1:{}", self.http_port),
            Duration::from_secs(20),
        )?;
        if self.external_broker.is_none() {
            wait_listening(
                &format!("127.0.0.1:{}", self.mqtt_port),
                Duration::from_secs(20),
            )?;
        }
        // agents on this broker pin this controller's signing key, and the
        // CLI needs the first admin token: both written at start, possibly
        // after the HTTP port is bound (a loaded machine made a CLI call
        // go out with no token)
        let key = wait_written(&self.signing_key_path())?;
        wait_written(&self.dir.join("data/auth/admin.token"))?;
        pinned_keys().insert(self.broker_url(), key.trim().to_string());
        Ok(())
    }

    /// The controller's public signing key file (what agents pin).
    pub fn signing_key_path(&self) -> PathBuf {
        self.dir.join("data/keys/signing.pub")
    }

    /// The controller's private signing key (tests that play a
    /// compromised controller sign with it).
    pub fn signing_key(&self) -> Result<petrel_protocol::SigningKey> {
        let hex = std::fs::read_to_string(self.dir.join("data/keys/signing.key"))?;
        Ok(petrel_protocol::SigningKey::from_hex(&hex)?)
    }

    /// The controller's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("controller.log")).unwrap_or_default()
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit; its
    /// exit status, or an error if it is still running.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let child = self.child.as_mut().context("controller not running")?;
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("the controller did not exit within {timeout:?} of SIGTERM")
    }

    /// SIGKILL (its embedded broker dies with it).
    pub fn kill(&mut self) {
        kill9(&mut self.child);
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        kill9(&mut self.child);
    }
}

/// A `petrel-agent run` process.
pub struct Agent {
    pub id: String,
    pub data_dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    /// More environment for the process from its next (re)start (the
    /// power-cut shim, say).
    pub env: Vec<(String, String)>,
}

impl Agent {
    /// Writes a config and starts the agent. `controller_url` may point at
    /// a proxy.
    pub fn start(root: &Path, id: &str, broker: &str, controller_url: &str) -> Result<Agent> {
        Self::start_with(root, id, broker, controller_url, "")
    }

    /// As [`Agent::start`], with extra TOML lines in the config.
    pub fn start_with(
        root: &Path,
        id: &str,
        broker: &str,
        controller_url: &str,
        extra: &str,
    ) -> Result<Agent> {
        let data_dir = root.join(id);
        std::fs::create_dir_all(&data_dir)?;
        let config = data_dir.join("agent.toml");
        std::fs::write(
            &config,
            format!("device_id = \"{id}\"\nbroker = \"{broker}\"\ncontroller_url = \"{controller_url}\"\ndata_dir = \"{}\"\nheartbeat_s = 2\n{}{extra}", data_dir.display(), trust_line(broker, extra)),
        )?;
        let mut a = Agent {
            id: id.into(),
            data_dir,
            config,
            child: None,
            env: Vec::new(),
        };
        a.restart()?;
        Ok(a)
    }

    /// Provisions `id` with `petrel device provision` against `ctl` (key,
    /// certificate, agent.toml in `root/id/identity`), adds `extra` config
    /// lines, and starts the agent.
    pub fn provisioned(root: &Path, id: &str, ctl: &Controller, extra: &str) -> Result<Agent> {
        let data_dir = root.join(id);
        let out_dir = data_dir.join("identity");
        let out = ctl
            .cli()
            .args(["device", "provision", id, "--out"])
            .arg(&out_dir)
            .arg("--agent-data-dir")
            .arg(&data_dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "provisioning {id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let config = out_dir.join("agent.toml");
        let mut toml = std::fs::read_to_string(&config)?;
        toml.push_str(&format!("heartbeat_s = 2\n{extra}"));
        std::fs::write(&config, toml)?;
        let mut a = Agent {
            id: id.into(),
            data_dir,
            config,
            child: None,
            env: Vec::new(),
        };
        a.restart()?;
        Ok(a)
    }

    pub fn restart(&mut self) -> Result<()> {
        kill9(&mut self.child);
        let mut cmd = Command::new(bin("petrel-agent"));
        cmd.arg("run").arg("--config").arg(&self.config);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(spawn(&mut cmd, &self.data_dir, "agent.log")?);
        Ok(())
    }

    /// The agent's config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// SIGKILL, as a power cut would.
    pub fn kill9(&mut self) {
        kill9(&mut self.child);
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The last `n` lines of the agent's log (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The agent's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        kill9(&mut self.child);
        stop_services(&self.data_dir.join("runtime"));
        // Overlay rootfs mounts would outlive the test's temp dir.
        if let Err(e) = petrel_runtime::rootfs::remove_all(&self.data_dir.join("rootfs")) {
            eprintln!("removing the root filesystems of {}: {e}", self.id);
        }
    }
}

/// Stops every service a (dead) agent left running, by adopting them.
pub fn stop_services(state_dir: &Path) {
    let state_dir = state_dir.to_path_buf();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok(native) = petrel_runtime::NativeRuntime::new(state_dir) {
                for inst in native.list().await {
                    let _ = native.stop(&inst.name).await;
                }
            }
        });
    })
    .join();
}

/// Whether a Docker Engine answers here (`docker info`).
pub fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The agent.toml line pinning the signing key of the controller on
/// `broker`, unless `extra` sets trust itself.
fn trust_line(broker: &str, extra: &str) -> String {
    if extra.contains("controller_key") || extra.contains("accept_unsigned") {
        return String::new();
    }
    match pinned_keys().get(broker) {
        Some(key) => format!("controller_key = \"{key}\"\n"),
        None => String::new(),
    }
}
