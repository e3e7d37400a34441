//! The embedded default runtime: one supervised process per service
//! instance, chrooted into its rootfs when the agent runs as root.
//!
//! Services must outlive the agent: each runs in its own session, nothing is
//! killed when the runtime is dropped, and every instance has a record on
//! disk. A new [`NativeRuntime`] on the same state dir adopts the processes
//! that are still alive (same pid *and* start time) and applies the restart
//! policy to the ones that died while no agent was watching, so an agent
//! restart causes no service downtime.
//!
//! Layout:
//! - [`record`]: the state dir, atomic per-instance JSON records.
//! - [`spawn`]: launching a process (chroot or plain mode, env, logs).
//! - [`logs`]: log tails and rotation while services run.
//! - [`cgroups`]: memory and CPU limits (cgroup v2 or v1).
//! - [`mounts`]: mount/UTS/IPC namespaces and named volumes (root mode).
//! - [`confine`]: capabilities, `no_new_privs`, the service's user and
//!   the seccomp filter, applied last before exec (root mode); [`user`]
//!   resolves the user in the image's own `/etc/passwd` and `/etc/group`
//!   (read through [`inroot`]), [`seccomp`] builds the filter.
//! - [`process`]: a running process, child or adopted; `/proc` liveness.
//! - [`supervise`]: the per-instance task applying the restart policy.

mod cgroups;
mod confine;
mod devfs;
pub(crate) mod inroot;
mod logs;
mod mounts;
mod pidns;
mod process;
mod record;
mod seccomp;
mod spawn;
mod supervise;
#[cfg(test)]
mod testfs;
#[cfg(test)]
mod tests;
mod user;

use crate::runtime::{InstanceSpec, InstanceStatus, Runtime, RuntimeError};
use process::Running;
use record::{io_error, validate_name, Paths, Record};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use supervise::{set_running, set_state, snapshot, update, SharedStatus, Supervisor};
use supervise::{EXITED, RESTARTING};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Time between SIGTERM and SIGKILL when stopping, unless configured.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

/// State of a slot whose first start is still in progress (never reported).
const PENDING: &str = "pending";

/// Polls (50 ms each) for the process of a spawn the agent died in.
const SPAWN_SETTLE_TRIES: u32 = 20;

/// Runs service instances as supervised native processes. Cheap to clone;
/// clones share the same instances.
#[derive(Clone)]
pub struct NativeRuntime {
    shared: Arc<Shared>,
    stop_grace: Duration,
}

struct Shared {
    paths: Paths,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One instance: its status, and the control half that serialises its
/// start and stop operations.
struct Slot {
    status: SharedStatus,
    control: tokio::sync::Mutex<Control>,
}

#[derive(Default)]
struct Control {
    /// Stop requests to the supervisor (`Some(grace)` = stop now).
    stop: Option<watch::Sender<Option<Duration>>>,
    task: Option<JoinHandle<()>>,
    /// Set when the slot was removed from the table (stopped, or its first
    /// start failed); a start that raced with that retries on a fresh slot.
    forgotten: bool,
}

impl NativeRuntime {
    /// Opens (creating) the state dir and resumes the instances recorded
    /// there. Must be called from within a tokio runtime, which the
    /// supervision tasks run on.
    pub fn new(state_dir: PathBuf) -> Result<NativeRuntime, RuntimeError> {
        let rt = Handle::try_current()
            .map_err(|e| io_error("start supervision for", &state_dir)(std::io::Error::other(e)))?;
        let paths = Paths::create(&state_dir)?;
        let records = paths.load_records()?;
        let runtime = NativeRuntime {
            shared: Arc::new(Shared {
                paths,
                slots: Mutex::new(HashMap::new()),
            }),
            stop_grace: DEFAULT_STOP_GRACE,
        };
        for record in records {
            runtime.resume(&rt, record);
        }
        let log_dir = runtime
            .shared
            .paths
            .log("x")
            .parent()
            .map(Path::to_path_buf);
        if let Some(dir) = log_dir {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(logs::SWEEP);
                loop {
                    tick.tick().await;
                    let dir = dir.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        logs::rotate_all(&dir, logs::ROTATE_BYTES)
                    })
                    .await;
                }
            });
        }
        Ok(runtime)
    }

    /// Sets the time between SIGTERM and SIGKILL for [`Runtime::stop`].
    pub fn with_stop_grace(mut self, grace: Duration) -> NativeRuntime {
        self.stop_grace = grace;
        self
    }

    /// Adopts a recorded process that is still alive; otherwise treats it
    /// as a failed exit and restarts it if the policy says so.
    fn resume(&self, rt: &Handle, record: Record) {
        let name = record.spec.name.clone();
        let status = InstanceStatus {
            name: name.clone(),
            state: EXITED.into(),
            pid: None,
            restarts: record.restarts,
            exit_code: record.exit_code,
        };
        let status: SharedStatus = Arc::new(Mutex::new(status));
        let recorded = match (record.pid, record.start_time) {
            (Some(pid), Some(start)) => process::is_alive(pid, start).then_some((pid, start)),
            _ => None,
        };
        let alive = self.reconcile_pid_file(&record, recorded);
        let mut control = Control::default();
        if let Some((pid, start)) = alive {
            tracing::info!(%name, pid, "adopting running service");
            let running = Running::adopted(pid, start);
            update(&status, |s| set_running(s, running.service_pid));
            let running = Some(running);
            self.supervise(rt, &mut control, record.spec, status.clone(), running);
        } else if record.pid.is_some() && record.spec.restart.restarts_after(false) {
            tracing::info!(%name, "service died unwatched, restarting");
            update(&status, |s| set_state(s, RESTARTING, None));
            self.supervise(rt, &mut control, record.spec, status.clone(), None);
        } else if record.pid.is_some() {
            tracing::info!(%name, "service died unwatched");
            let record = Record {
                pid: None,
                start_time: None,
                ..record
            };
            if let Err(e) = self.shared.paths.write_record(&record) {
                tracing::warn!(%name, error = %e, "cannot persist instance record");
            }
        }
        self.shared.slots().insert(name, Slot::new(status, control));
    }

    /// The process to adopt for `record`: the recorded one if alive, else
    /// one the pid file names that was spawned but never recorded (the
    /// agent died in between), if it is still alive and really this
    /// instance's. An unrecorded process beside a live recorded one is
    /// killed: an instance never runs twice.
    fn reconcile_pid_file(
        &self,
        record: &Record,
        recorded: Option<(u32, u64)>,
    ) -> Option<(u32, u64)> {
        let name = &record.spec.name;
        let find = || {
            self.shared
                .paths
                .read_pid_file(name)
                .filter(|&pid| Some(pid) != record.pid)
                .and_then(|pid| Some((pid, process::start_time(pid)?)))
                .filter(|&(pid, start)| {
                    process::is_alive(pid, start) && process::runs_from(pid, &record.spec.rootfs)
                })
        };
        let mut unrecorded = find();
        // a record without a pid: the agent died while spawning; the child
        // may not have written its pid file or entered its root yet
        let mut waited = 0;
        while unrecorded.is_none()
            && record.pid.is_none()
            && waited < SPAWN_SETTLE_TRIES
            && self.shared.paths.spawn_pending(name)
        {
            std::thread::sleep(Duration::from_millis(50));
            waited += 1;
            unrecorded = find();
        }
        match (recorded, unrecorded) {
            (Some(live), Some((orphan, _))) => {
                tracing::warn!(%name, orphan, "killing an unrecorded second process of the instance");
                process::kill_group(orphan);
                Some(live)
            }
            (None, Some(found)) => {
                tracing::info!(%name, pid = found.0, "found a process spawned but never recorded");
                let record = Record {
                    pid: Some(found.0),
                    start_time: Some(found.1),
                    ..record.clone()
                };
                if let Err(e) = self.shared.paths.write_record(&record) {
                    tracing::warn!(%name, error = %e, "cannot persist instance record");
                }
                Some(found)
            }
            (live, None) => live,
        }
    }

    /// Spawns `spec`, persists its record, then hands it to a supervisor.
    async fn launch(
        &self,
        slot: &Slot,
        control: &mut Control,
        spec: &InstanceSpec,
    ) -> Result<(), RuntimeError> {
        let paths = &self.shared.paths;
        // Recorded before the spawn (without a pid): if the agent dies right
        // after it, the next one finds the record and, through the pid
        // file the child wrote, the process.
        paths.write_record(&Record {
            spec: spec.clone(),
            pid: None,
            start_time: None,
            restarts: snapshot(&slot.status).restarts,
            exit_code: None,
        })?;
        let mut running = match spawn::spawn(spec, paths).await {
            Ok(running) => running,
            Err(e) => {
                let _ = paths.remove_record(&spec.name);
                return Err(e);
            }
        };
        let record = Record {
            spec: spec.clone(),
            pid: Some(running.pid),
            start_time: Some(running.start_time),
            restarts: snapshot(&slot.status).restarts,
            exit_code: None,
        };
        // The record must exist before start returns, or a crash now would
        // leave a process no later agent knows about.
        if let Err(e) = paths.write_record(&record) {
            running.terminate(Duration::ZERO).await;
            return Err(e);
        }
        update(&slot.status, |s| set_running(s, running.service_pid));
        let status = slot.status.clone();
        self.supervise(
            &Handle::current(),
            control,
            spec.clone(),
            status,
            Some(running),
        );
        Ok(())
    }

    fn supervise(
        &self,
        rt: &Handle,
        control: &mut Control,
        spec: InstanceSpec,
        status: SharedStatus,
        current: Option<Running>,
    ) {
        let (stop_tx, stop) = watch::channel(None);
        let paths = self.shared.paths.clone();
        let supervisor = Supervisor {
            spec,
            paths,
            status,
            stop,
        };
        control.stop = Some(stop_tx);
        control.task = Some(rt.spawn(supervisor.run(current)));
    }

    /// Test hook simulating an agent killed with SIGKILL: supervision ends,
    /// the processes keep running.
    #[cfg(test)]
    fn abandon_supervision(&self) {
        let slots: Vec<_> = self.shared.slots().values().cloned().collect();
        for slot in slots {
            if let Ok(control) = slot.control.try_lock() {
                control.task.iter().for_each(JoinHandle::abort);
            }
        }
    }
}

impl Runtime for NativeRuntime {
    /// Starts the instance unless it is already running or restarting (then
    /// the running spec is kept). An exited instance is started again.
    async fn start(&self, spec: &InstanceSpec) -> Result<(), RuntimeError> {
        validate_name(&spec.name)?;
        loop {
            let slot = self.shared.get_or_insert(&spec.name);
            let mut control = slot.control.lock().await;
            if control.forgotten {
                continue;
            }
            if control.task.as_ref().is_some_and(|t| !t.is_finished()) {
                return Ok(());
            }
            let result = self.launch(&slot, &mut control, spec).await;
            if result.is_err() && snapshot(&slot.status).state == PENDING {
                control.forgotten = true;
                self.shared.forget(&spec.name, &slot);
            }
            return result;
        }
    }

    async fn exec(
        &self,
        spec: &InstanceSpec,
        argv: &[String],
        timeout: Duration,
    ) -> Result<i32, RuntimeError> {
        spawn::run_probe(spec, argv, timeout).await
    }

    async fn logs(&self, name: &str, tail: usize) -> Result<String, RuntimeError> {
        let path = self.shared.paths.log(name);
        logs::tail(&path, tail).map_err(io_error("read log", &path))
    }

    async fn stop(&self, name: &str) -> Result<(), RuntimeError> {
        let Some(slot) = self.shared.get(name) else {
            return Ok(());
        };
        let mut control = slot.control.lock().await;
        if control.forgotten {
            return Ok(());
        }
        if let Some(stop) = &control.stop {
            stop.send_replace(Some(self.stop_grace));
        }
        if let Some(task) = control.task.take() {
            if let Err(e) = task.await {
                tracing::error!(%name, error = %e, "supervisor failed");
            }
        }
        control.forgotten = true;
        self.shared.forget(name, &slot);
        cgroups::remove(cgroups::root(), name);
        self.shared.paths.remove_record(name)
    }

    async fn inspect(&self, name: &str) -> Option<InstanceStatus> {
        let status = snapshot(&self.shared.get(name)?.status);
        (status.state != PENDING).then_some(status)
    }

    async fn list(&self) -> Vec<InstanceStatus> {
        let slots: Vec<_> = self.shared.slots().values().cloned().collect();
        let mut all: Vec<_> = slots
            .iter()
            .map(|slot| snapshot(&slot.status))
            .filter(|status| status.state != PENDING)
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots().get(name).cloned()
    }

    fn get_or_insert(&self, name: &str) -> Arc<Slot> {
        let pending = || {
            let status = InstanceStatus {
                name: name.to_string(),
                state: PENDING.into(),
                pid: None,
                restarts: 0,
                exit_code: None,
            };
            Slot::new(Arc::new(Mutex::new(status)), Control::default())
        };
        self.slots()
            .entry(name.to_string())
            .or_insert_with(pending)
            .clone()
    }

    /// Removes `slot` from the table unless a newer slot replaced it.
    fn forget(&self, name: &str, slot: &Arc<Slot>) {
        let mut slots = self.slots();
        if slots.get(name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(name);
        }
    }
}

impl Slot {
    fn new(status: SharedStatus, control: Control) -> Arc<Slot> {
        let control = tokio::sync::Mutex::new(control);
        Arc::new(Slot { status, control })
    }
}
