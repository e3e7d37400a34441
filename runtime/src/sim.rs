//! A simulated runtime for virtual devices: instances are records, not
//! processes. An instance whose image is in the device's failing set
//! exits at once with code 1 (so the agent's health check fails and it
//! rolls back), which is how a scenario makes a release bad on some
//! devices. A new `SimRuntime` knows no instances, as after a power loss.

use crate::runtime::{InstanceSpec, InstanceStatus, Runtime, RuntimeError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct SimRuntime {
    instances: Arc<Mutex<BTreeMap<String, InstanceStatus>>>,
    /// `name:tag` of images whose instances fail on this device.
    failing: Arc<BTreeSet<String>>,
    /// Instances started that failed (shared by the caller's handle).
    failed_starts: Arc<AtomicU64>,
}

impl SimRuntime {
    /// A runtime on which instances of the `failing` images (`name:tag`)
    /// exit as soon as they start.
    pub fn new(failing: BTreeSet<String>) -> SimRuntime {
        SimRuntime::counting(failing, Arc::default())
    }

    /// As [`SimRuntime::new`], counting failed starts into `failed_starts`
    /// (a handle that outlives the runtime, as across a power loss).
    pub fn counting(failing: BTreeSet<String>, failed_starts: Arc<AtomicU64>) -> SimRuntime {
        SimRuntime {
            instances: Arc::default(),
            failing: Arc::new(failing),
            failed_starts,
        }
    }

    /// Instances started that failed.
    pub fn failed_starts(&self) -> u64 {
        self.failed_starts.load(Ordering::Relaxed)
    }

    fn fails(&self, spec: &InstanceSpec) -> bool {
        spec.image
            .as_ref()
            .is_some_and(|i| self.failing.contains(&format!("{}:{}", i.name, i.tag)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, InstanceStatus>) -> T) -> T {
        let mut map = self
            .instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }
}

impl Runtime for SimRuntime {
    async fn start(&self, spec: &InstanceSpec) -> Result<(), RuntimeError> {
        let fails = self.fails(spec);
        if fails {
            self.failed_starts.fetch_add(1, Ordering::Relaxed);
        }
        let status = InstanceStatus {
            name: spec.name.clone(),
            state: if fails { "exited" } else { "running" }.into(),
            pid: None,
            restarts: 0,
            exit_code: fails.then_some(1),
        };
        self.with(|m| m.insert(spec.name.clone(), status));
        Ok(())
    }

    async fn stop(&self, name: &str) -> Result<(), RuntimeError> {
        self.with(|m| m.remove(name));
        Ok(())
    }

    async fn inspect(&self, name: &str) -> Option<InstanceStatus> {
        self.with(|m| m.get(name).cloned())
    }

    async fn list(&self) -> Vec<InstanceStatus> {
        self.with(|m| m.values().cloned().collect())
    }

    async fn logs(&self, name: &str, _tail: usize) -> Result<String, RuntimeError> {
        match self.inspect(name).await {
            Some(s) => Ok(format!("simulated instance {name}: {}\n", s.state)),
            None => Err(RuntimeError::NoSuchInstance(name.into())),
        }
    }

    async fn exec(
        &self,
        spec: &InstanceSpec,
        _argv: &[String],
        _timeout: std::time::Duration,
    ) -> Result<i32, RuntimeError> {
        Ok(if self.fails(spec) { 1 } else { 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ImageLayers;

    fn spec(name: &str, tag: &str) -> InstanceSpec {
        InstanceSpec {
            name: name.into(),
            image: Some(ImageLayers {
                name: "app".into(),
                tag: tag.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn instances_of_a_failing_image_exit_and_others_run() {
        let rt = SimRuntime::new(["app:bad".to_string()].into());
        rt.start(&spec("web-g1", "good")).await.unwrap();
        rt.start(&spec("web-g2", "bad")).await.unwrap();
        assert!(rt.inspect("web-g1").await.unwrap().is_running());
        let bad = rt.inspect("web-g2").await.unwrap();
        assert_eq!((bad.is_running(), bad.exit_code), (false, Some(1)));
        assert_eq!(rt.failed_starts(), 1);
        assert_eq!(
            rt.exec(&spec("x", "bad"), &[], Default::default())
                .await
                .unwrap(),
            1
        );
        rt.stop("web-g1").await.unwrap();
        assert_eq!(rt.list().await.len(), 1);
        assert!(
            SimRuntime::default().list().await.is_empty(),
            "a new one is empty"
        );
    }
}
