//! The driver: feeds inputs (desired states, task results) to the
//! [`Machine`], persists its state, and performs the actions it returns.
//! Long actions run as tasks that report back; a new desired state
//! preempts a download or install, but never a swap in progress.

use crate::apply::{self, Paths, ProgressCounter};
use crate::machine::{Action, Input, Machine};
use crate::session::{Incoming, Publisher};
use crate::store::AgentStore;
use crate::{swap, watch};
use petrel_protocol::{decode_desired_trusted, Event, EventKind, Limits, Trust, SCHEMA};
use petrel_runtime::Runtime;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub struct Driver<R: Runtime> {
    pub device_id: String,
    pub machine: Machine,
    pub store: AgentStore,
    pub publisher: Publisher,
    pub runtime: Arc<R>,
    pub paths: Paths,
    pub limits: Limits,
    pub progress: Arc<ProgressCounter>,
    /// What this device runs images for; reported, and checked against
    /// every image a desired state names.
    pub platform: petrel_protocol::Platform,
    /// The keys whose signatures it accepts (`None`: unsigned accepted,
    /// insecure, chosen in the config).
    pub trusted: Option<Vec<petrel_protocol::PublicKey>>,
    /// Ids of keys rotated out: their signatures are refused.
    pub retired: Vec<String>,
    /// Ids of the offline root keys among `trusted` (never retired).
    pub roots: Vec<String>,
    /// How long a swapped-in release is watched for a crash loop.
    pub post_update_watch: Duration,
    /// The phase last written to the journal, logged when it changes.
    journaled: Option<petrel_protocol::Phase>,
    /// The background collection.
    cleaner: crate::cleaner::Cleaner,
    /// The post-update watch under way, if any.
    watch: Option<JoinHandle<()>>,
    watch_tx: mpsc::Sender<Input>,
    watch_rx: mpsc::Receiver<Input>,
    /// When this driver (the agent) started, for its reported uptime.
    pub(crate) started: std::time::Instant,
    task: Option<(JoinHandle<()>, bool)>,
    /// A desired state that arrived during a swap, handled after it.
    deferred: Option<Input>,
    results_tx: mpsc::Sender<Input>,
    results_rx: mpsc::Receiver<Input>,
}

/// A driver dropped mid-update (its future dropped, as when a simulator
/// cuts a virtual device's power) stops the work it started.
impl<R: Runtime> Drop for Driver<R> {
    fn drop(&mut self) {
        if let Some((task, _)) = self.task.take() {
            task.abort();
        }
        self.stop_watch();
    }
}

impl<R: Runtime> Driver<R> {
    pub fn new(
        device_id: String,
        store: AgentStore,
        publisher: Publisher,
        runtime: Arc<R>,
        paths: Paths,
        limits: Limits,
    ) -> Self {
        let (results_tx, results_rx) = mpsc::channel(16);
        let (watch_tx, watch_rx) = mpsc::channel(1);
        Driver {
            device_id,
            machine: Machine::new(store.load_state()),
            journaled: None,
            store,
            publisher,
            runtime,
            paths,
            limits,
            progress: Default::default(),
            platform: petrel_protocol::Platform::host(),
            trusted: Some(Vec::new()),
            retired: Vec::new(),
            roots: Vec::new(),
            post_update_watch: Duration::from_secs(600),
            cleaner: Default::default(),
            watch: None,
            watch_tx,
            watch_rx,
            started: std::time::Instant::now(),
            task: None,
            deferred: None,
            results_tx,
            results_rx,
        }
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(
        mut self,
        mut incoming: mpsc::Receiver<Incoming>,
        heartbeat: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        self.recover().await;
        self.reconcile().await;
        crate::disk::ensure_reserve(&self.paths);
        self.emit(
            EventKind::AgentStarted,
            format!("agent {} started", env!("CARGO_PKG_VERSION")),
        )
        .await;
        let resume = self.machine.resume();
        let _ = self.perform(resume).await;
        // what a crash (or an earlier failure) left behind goes now, not
        // after the next successful update
        if !self.machine.state.phase.in_progress() {
            let mut keep = self.machine.state.held();
            let parked = self.machine.state.parked.as_ref();
            keep.extend(parked.and_then(|p| p.target.release.clone()));
            self.collect(keep).await;
        }
        let mut beat = tokio::time::interval(heartbeat);
        let mut progress_tick = tokio::time::interval(Duration::from_millis(500));
        let mut last_progress = (0, None);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(msg) = incoming.recv() => match msg {
                    Incoming::Connected => self.report().await,
                    // A cleared retained message (the device was forgotten
                    // by the controller): nothing is asked, keep running.
                    Incoming::Desired(bytes) if bytes.is_empty() => {
                        tracing::info!("desired state cleared on the broker; keeping what runs");
                    }
                    Incoming::Desired(bytes) => {
                        let decoded = self.accept(&bytes);
                        let input = match decoded.and_then(|d| self.runs_here(d)) {
                            Ok(d) => Input::Desired(d),
                            Err(e) => Input::Rejected(format!("desired state rejected: {e}")),
                        };
                        self.feed(input).await;
                    }
                    // answered in a task of its own: never in the way of an update
                    Incoming::LogRequest(bytes) => crate::logs::answer(
                        &self.device_id,
                        &bytes,
                        self.machine.state.current.as_ref(),
                        self.runtime.clone(),
                        self.publisher.clone(),
                        self.limits,
                    ),
                },
                Some(result) = self.results_rx.recv() => {
                    self.task = None;
                    self.feed(result).await;
                    if let Some(d) = self.deferred.take() {
                        self.feed(d).await;
                    }
                }
                Some(crash) = self.watch_rx.recv() => {
                    self.watch = None;
                    self.feed(crash).await;
                }
                _ = beat.tick() => self.report().await,
                _ = progress_tick.tick() => {
                    use petrel_protocol::Phase::{Deferred, Ready};
                    if matches!(self.machine.state.phase, Ready | Deferred) {
                        let lock = self.lock_holder();
                        self.feed(Input::Tick { now_ms: now_ms(), lock }).await;
                    }
                    if let Some(freed) = crate::disk::room_again(&self.paths, &self.machine.state) {
                        self.feed(freed).await;
                    }
                    let now = (
                        self.progress.done.load(Ordering::Relaxed),
                        self.progress.problem(),
                    );
                    if self.machine.state.phase.in_progress() && now != last_progress {
                        last_progress = now;
                        self.report().await;
                    }
                }
            }
        }
        // the work under way stops with the driver (see its Drop)
    }

    async fn feed(&mut self, input: Input) {
        let swapping = matches!(self.task, Some((_, true)));
        if swapping && matches!(input, Input::Desired(_)) {
            self.deferred = Some(input);
            return;
        }
        let desired = matches!(input, Input::Desired(_));
        let journaled = self.machine.state.clone();
        let actions = self.machine.handle(input);
        // the watch ends with a new desired state or a rollback
        if (desired && !actions.is_empty())
            || self.machine.state.phase != petrel_protocol::Phase::Running
        {
            self.stop_watch();
        }
        if !self.perform(actions).await {
            // the step was not journaled: the machine goes back to what
            // the journal says, so a retried input (a parked update's
            // next free-space check) takes the step again
            self.machine.state = journaled;
        }
    }

    fn stop_watch(&mut self) {
        if let Some(w) = self.watch.take() {
            w.abort();
        }
    }

    /// Performs `actions` in order; `false` if the state could not be
    /// persisted (the rest were not performed).
    async fn perform(&mut self, actions: Vec<Action>) -> bool {
        if actions.iter().any(|a| matches!(a, Action::Download(_))) {
            // a new download: never report the previous one's byte counts
            self.progress.done.store(0, Ordering::Relaxed);
            self.progress.total.store(0, Ordering::Relaxed);
            self.progress.received.store(0, Ordering::Relaxed);
            self.progress.set_problem(None);
        }
        for action in actions {
            // an update yields nothing to the collection: stop it first
            if matches!(
                action,
                Action::Download(_)
                    | Action::Install(_)
                    | Action::Swap { .. }
                    | Action::RollBack { .. }
            ) {
                self.cleaner.pause().await;
            }
            match action {
                Action::Persist => {
                    if let Err(e) = self.store.save_state(&self.machine.state) {
                        // cannot journal: do not act on an unrecorded step
                        tracing::error!(error = %e, "cannot persist state; stopping this update");
                        return false;
                    }
                    let phase = self.machine.state.phase;
                    if self.journaled.replace(phase) != Some(phase) {
                        tracing::info!(phase = phase.name(), "journaled phase");
                    }
                }
                Action::Report => self.report().await,
                Action::Emit(kind, msg) => self.emit(kind, msg).await,
                Action::Download(t) => {
                    let (paths, progress, tx) = (
                        self.paths.clone(),
                        self.progress.clone(),
                        self.results_tx.clone(),
                    );
                    let held = self.machine.state.held();
                    let known = !self.machine.state.recovered;
                    self.spawn(false, async move {
                        let result =
                            crate::disk::download(&paths, &t, &held, known, &progress).await;
                        let _ = tx.send(result).await;
                    });
                }
                Action::Install(t) => {
                    let (paths, tx) = (self.paths.clone(), self.results_tx.clone());
                    let running = self.machine.state.current.clone().and_then(|c| c.release);
                    let held = self.machine.state.held();
                    let known = !self.machine.state.recovered;
                    self.spawn(false, async move {
                        let g = t.generation;
                        let dir = paths.rootfs_dir.clone();
                        let (p2, t2) = (paths.clone(), t.clone());
                        let r = tokio::task::spawn_blocking(move || apply::install(&p2, &t2)).await;
                        let result = match r {
                            Ok(Ok(())) => Input::Installed {
                                generation: g,
                                now_ms: now_ms(),
                                lock: crate::locks::holder(&dir, running.as_ref()),
                            },
                            Ok(Err(reason)) if crate::disk::is_disk_full(&reason) => {
                                crate::disk::full(&paths, &t, &held, known, &reason).await
                            }
                            Ok(Err(reason)) => Input::Failed {
                                generation: g,
                                reason,
                            },
                            Err(e) => Input::Failed {
                                generation: g,
                                reason: format!("install task: {e}"),
                            },
                        };
                        let _ = tx.send(result).await;
                    });
                }
                Action::Reconcile => self.reconcile().await,
                Action::Watch(applied) => {
                    self.stop_watch();
                    if !self.post_update_watch.is_zero() {
                        let task = watch::run(
                            self.runtime.clone(),
                            applied,
                            self.post_update_watch,
                            self.watch_tx.clone(),
                        );
                        self.watch = Some(tokio::spawn(task));
                    }
                }
                Action::Cancel => {
                    // a swap is never cancelled: desired states wait for it
                    if let Some((task, false)) = self.task.take() {
                        task.abort();
                        tracing::info!("update under way stopped: its target was withdrawn");
                    }
                }
                Action::Collect(keep) => self.collect(keep).await,
                Action::Swap { from, to } => {
                    let (rt, dir, tx) = (
                        self.runtime.clone(),
                        self.paths.rootfs_dir.clone(),
                        self.results_tx.clone(),
                    );
                    self.spawn(true, async move {
                        let result = match swap::swap(rt.as_ref(), &dir, &from, &to).await {
                            Ok(instances) => Input::Started {
                                generation: to.generation,
                                instances,
                            },
                            Err(reason) => Input::Unhealthy {
                                generation: to.generation,
                                reason,
                            },
                        };
                        let _ = tx.send(result).await;
                    });
                }
                Action::RollBack { failed, restore } => {
                    let (rt, dir, tx) = (
                        self.runtime.clone(),
                        self.paths.rootfs_dir.clone(),
                        self.results_tx.clone(),
                    );
                    self.spawn(true, async move {
                        let g = failed.generation;
                        let mut attempt = 0;
                        // a rollback must finish: retry until the runtime obeys
                        while let Err(e) =
                            swap::rollback(rt.as_ref(), &dir, &failed, &restore).await
                        {
                            tracing::error!(error = %e, "rollback step failed; retrying");
                            tokio::time::sleep(crate::retry::backoff(attempt)).await;
                            attempt += 1;
                        }
                        let _ = tx.send(Input::Restored { generation: g }).await;
                    });
                }
            }
        }
        true
    }

    /// Starts collecting what `keep` does not need, in the background;
    /// never while the running release's manifest is unknown (a rebuilt
    /// store): its files would look unneeded.
    async fn collect(&mut self, keep: Vec<petrel_protocol::ReleaseManifest>) {
        if self.machine.state.recovered {
            tracing::info!("no collection until the running release is known again");
            return;
        }
        let runtime = self.runtime.clone();
        self.cleaner.start(&self.paths, keep, runtime).await;
    }

    fn spawn(
        &mut self,
        is_swap: bool,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        if let Some((old, _)) = self.task.take() {
            old.abort(); // preempted by a newer target (never a swap: see feed)
        }
        self.task = Some((tokio::spawn(fut), is_swap));
    }

    async fn emit(&mut self, kind: EventKind, message: String) {
        let generation = self
            .machine
            .state
            .target
            .as_ref()
            .map_or(self.machine.state.desired_generation, |t| t.generation);
        let seq = match self.store.next_seq() {
            Ok(s) => s,
            Err(e) => return tracing::error!(error = %e, "cannot allocate event seq"),
        };
        let event = Event {
            schema: SCHEMA,
            device_id: self.device_id.clone(),
            seq,
            at_ms: now_ms(),
            kind,
            generation,
            digest: None,
            message,
        };
        tracing::info!(?kind, "{}", event.message);
        if let Err(e) = self.store.push_event(&event) {
            tracing::error!(error = %e, "cannot store event");
        }
        self.publisher.event(&event);
    }

    async fn report(&mut self) {
        let r = crate::report::build(self).await;
        self.publisher.report(&r);
    }

    /// Who holds an update lock in the running release, if anyone.
    fn lock_holder(&self) -> Option<String> {
        let running = self.machine.state.current.as_ref();
        crate::locks::holder(
            &self.paths.rootfs_dir,
            running.and_then(|c| c.release.as_ref()),
        )
    }

    /// Decodes a desired state as the device's trust says (signature,
    /// endorsements, expiry), persisting any key its endorsements taught.
    fn accept(&mut self, bytes: &[u8]) -> Result<petrel_protocol::Desired, String> {
        let trust = match &self.trusted {
            Some(keys) => Trust::Keys {
                keys,
                roots: &self.roots,
                retired: &self.retired,
                now_ms: now_ms(),
            },
            None => Trust::Unsigned,
        };
        let accepted = decode_desired_trusted(bytes, &self.device_id, self.limits, trust)
            .map_err(|e| e.to_string())?;
        let learned = accepted.learned;
        if !learned.keys.is_empty() {
            let ids: Vec<String> = learned.keys.iter().map(|k| k.id()).collect();
            tracing::info!(keys = ?ids, retired = ?learned.retired, "trusting rotated controller keys (endorsed by a trusted key)");
            if let Err(e) = self.store.learn_keys(&learned) {
                tracing::warn!(error = %e, "could not persist the learned keys");
            }
            if let Some(keys) = self.trusted.as_mut() {
                keys.extend(learned.keys);
            }
            self.retired.extend(learned.retired);
        }
        Ok(accepted.desired)
    }

    /// A desired state whose images are all built for this device (or for
    /// no platform in particular); else why not.
    fn runs_here(&self, d: petrel_protocol::Desired) -> Result<petrel_protocol::Desired, String> {
        let services = d.release.iter().flat_map(|r| &r.services);
        for (name, svc) in services {
            if let Some(p) = svc
                .image
                .platform
                .as_ref()
                .filter(|p| !p.runs_on(&self.platform))
            {
                return Err(format!(
                    "service {name}: image {}:{} is built for {p}, this device is {}",
                    svc.image.name, svc.image.tag, self.platform
                ));
            }
        }
        Ok(d)
    }

    /// On start-up, with a store that lost its record (deleted, or moved
    /// aside as unreadable): rebuild it from what the runtime runs, so the
    /// running release keeps running (see [`crate::recover`]), and tell the
    /// operator.
    async fn recover(&mut self) {
        let aside = self.store.moved_aside().map(|p| p.display().to_string());
        let rebuilt = match self.store.has_state() {
            true => None,
            false => crate::recover::from_running(&self.runtime.list().await),
        };
        if aside.is_none() && rebuilt.is_none() {
            return;
        }
        // continue above the lost store's event numbers (the controller
        // keeps those events by number)
        if let Err(e) = self.store.raise_seq(now_ms()) {
            tracing::error!(error = %e, "cannot raise the event sequence");
        }
        let mut message = match &aside {
            Some(p) => format!("agent store unreadable; moved aside to {p} and recreated"),
            None => "agent store missing; recreated".to_string(),
        };
        if let Some(st) = rebuilt {
            let c = st.current.as_ref();
            message += &format!(
                "; kept running generation {} ({}) until the controller's desired state names it",
                c.map_or(0, |c| c.generation),
                c.map(|c| c.instances.join(", ")).unwrap_or_default(),
            );
            self.machine.state = st;
            if let Err(e) = self.store.save_state(&self.machine.state) {
                tracing::error!(error = %e, "cannot persist the rebuilt state");
            }
        }
        self.emit(EventKind::StoreRebuilt, message).await;
    }

    /// On start-up: make the runtime match the journal. Instances of the
    /// current release are (re)started if missing; instances nobody owns
    /// (left by a crash mid-swap) are stopped, unless a swap is to resume.
    async fn reconcile(&mut self) {
        let st = self.machine.state.clone();
        let current = st
            .current
            .as_ref()
            .map(|c| apply::instances(&self.paths.rootfs_dir, c.generation, &c.release))
            .unwrap_or_default();
        let target = st
            .target
            .as_ref()
            .map(|t| apply::instances(&self.paths.rootfs_dir, t.generation, &t.release))
            .unwrap_or_default();
        for inst in self.runtime.list().await {
            // store-loss rule: a rebuilt current's instances are kept
            // until the controller's desired state says what they are
            let rebuilt = st.recovered
                && st
                    .current
                    .as_ref()
                    .is_some_and(|c| c.instances.contains(&inst.name));
            let owned = rebuilt
                || current
                    .iter()
                    .chain(target.iter())
                    .any(|s| s.name == inst.name);
            if !owned {
                tracing::info!(instance = %inst.name, "stopping orphaned instance");
                let _ = self.runtime.stop(&inst.name).await;
            }
        }
        // a swap or rollback to resume decides what runs; else the journal's
        // current release must run
        let resuming = matches!(
            st.phase,
            petrel_protocol::Phase::Swapping | petrel_protocol::Phase::RollingBack
        );
        if !resuming {
            for spec in &current {
                if let Err(e) = self.runtime.start(spec).await {
                    tracing::error!(instance = %spec.name, error = %e, "cannot restart current release");
                }
            }
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
