//! On-disk state of the native runtime: one small JSON record per instance
//! (`instances/<name>.json`) and the log files (`logs/<name>.log`).
//!
//! The record is what lets a restarted agent adopt the processes its
//! predecessor started: it carries the spec, the pid and the pid's start time
//! (so a recycled pid is never mistaken for the service). Records are written
//! atomically (temp file, fsync, rename) so a crash never leaves half a record.

use crate::runtime::{InstanceSpec, RuntimeError};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What is persisted about one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    pub spec: InstanceSpec,
    /// Pid of the running process; `None` once it has exited for good.
    pub pid: Option<u32>,
    /// Field 22 of `/proc/<pid>/stat` at spawn time.
    pub start_time: Option<u64>,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// Layout of the state directory.
#[derive(Debug, Clone)]
pub(super) struct Paths {
    instances: PathBuf,
    logs: PathBuf,
}

impl Paths {
    /// Creates the `instances/` and `logs/` directories under `state_dir`.
    pub fn create(state_dir: &Path) -> Result<Paths, RuntimeError> {
        let paths = Paths {
            instances: state_dir.join("instances"),
            logs: state_dir.join("logs"),
        };
        for dir in [&paths.instances, &paths.logs] {
            fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        }
        Ok(paths)
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    fn record(&self, name: &str) -> PathBuf {
        self.instances.join(format!("{name}.json"))
    }

    /// Atomically replaces the record of `record.spec.name`.
    pub fn write_record(&self, record: &Record) -> Result<(), RuntimeError> {
        let path = self.record(&record.spec.name);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other);
        bytes
            .and_then(|bytes| write_synced(&tmp, &bytes))
            .map_err(io_error("write instance record", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_error("rename instance record to", &path))?;
        // Make the rename itself durable before the caller relies on it.
        self.sync_instances()
    }

    fn sync_instances(&self) -> Result<(), RuntimeError> {
        fs::File::open(&self.instances)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("sync directory", &self.instances))
    }

    /// `instances/<name>.pid`: the pid the instance's process writes itself,
    /// right after fork, so a process started just before the agent died
    /// (before its record was written) is still found.
    fn pid_file(&self, name: &str) -> PathBuf {
        self.instances.join(format!("{name}.pid"))
    }

    /// Creates (or empties) the pid file of `name` for a child to write.
    pub fn open_pid_file(&self, name: &str) -> Result<fs::File, RuntimeError> {
        let path = self.pid_file(name);
        fs::File::create(&path).map_err(io_error("create pid file", &path))
    }

    /// The pid last written to the pid file of `name`, if any.
    pub fn read_pid_file(&self, name: &str) -> Option<u32> {
        fs::read_to_string(self.pid_file(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether a spawn of `name` may still be settling: its pid file is
    /// there and empty, or names a live process (not yet in its root).
    pub fn spawn_pending(&self, name: &str) -> bool {
        match fs::read_to_string(self.pid_file(name)) {
            Err(_) => false,
            Ok(text) => match text.trim().parse::<u32>() {
                Err(_) => true,
                Ok(pid) => Path::new(&format!("/proc/{pid}")).exists(),
            },
        }
    }

    /// Removes the record of `name`; a missing record is not an error.
    pub fn remove_record(&self, name: &str) -> Result<(), RuntimeError> {
        let _ = fs::remove_file(self.pid_file(name));
        let path = self.record(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove instance record", &path)(e)),
            // Durable before the caller relies on it: a record back after a
            // power cut makes the next agent restart a stopped service.
            Ok(()) => self.sync_instances(),
        }
    }

    /// Every readable record. Unreadable or foreign files are skipped with a
    /// warning: one corrupt record must not keep the other services down.
    pub fn load_records(&self) -> Result<Vec<Record>, RuntimeError> {
        let entries =
            fs::read_dir(&self.instances).map_err(io_error("read directory", &self.instances))?;
        let mut records = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(io_error("read directory", &self.instances))?
                .path();
            if path.extension().is_some_and(|ext| ext == "json") {
                match read_record(&path) {
                    Ok(record) => records.push(record),
                    Err(reason) => {
                        tracing::warn!(path = %path.display(), %reason, "skipping instance record")
                    }
                }
            }
        }
        Ok(records)
    }
}

fn read_record(path: &Path) -> Result<Record, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let stem = path.file_stem().and_then(|s| s.to_str());
    if stem != Some(record.spec.name.as_str()) || validate_name(&record.spec.name).is_err() {
        return Err(format!("record names instance {:?}", record.spec.name));
    }
    Ok(record)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Instance names become file names: only `[A-Za-z0-9_.-]`, no leading dot.
pub(super) fn validate_name(name: &str) -> Result<(), RuntimeError> {
    petrel_protocol::validate_name(name, 128).map_err(|e| RuntimeError::Start {
        name: name.to_string(),
        reason: e.to_string(),
    })
}

/// Adapter for `map_err` producing [`RuntimeError::Io`] naming `path`.
pub(super) fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RuntimeError {
    let path = path.to_path_buf();
    move |source| RuntimeError::Io { op, path, source }
}
