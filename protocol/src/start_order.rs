//! The order a release's services start in (compose `depends_on`):
//! dependencies first, ties by name so every device agrees; stops go in
//! reverse.

use crate::{ManifestError, ReleaseManifest};
use std::collections::{BTreeMap, BTreeSet};

impl ReleaseManifest {
    /// Service names in the order they start: each after the services it
    /// `depends_on`, ties by name (so the order is the same everywhere).
    /// Stopping goes in reverse. A dependency on a service the release does
    /// not have, or a cycle, is an error naming the services.
    pub fn start_order(&self) -> Result<Vec<&str>, ManifestError> {
        let invalid = |service: &str, reason: String| ManifestError::Service {
            service: service.to_string(),
            reason,
        };
        for (name, svc) in &self.services {
            if let Some(d) = svc
                .depends_on
                .iter()
                .find(|d| !self.services.contains_key(*d))
            {
                return Err(invalid(
                    name,
                    format!("depends_on names {d:?}, which this release does not have"),
                ));
            }
        }
        // Kahn's algorithm, the smallest ready name first: O(n log n), so
        // a release of thousands of services is checked in milliseconds.
        let mut waiting: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, svc) in &self.services {
            let deps: BTreeSet<&str> = svc.depends_on.iter().map(String::as_str).collect();
            for d in &deps {
                dependents.entry(d).or_default().push(name);
            }
            waiting.insert(name, deps);
        }
        let mut ready: BTreeSet<&str> = waiting
            .iter()
            .filter(|(_, deps)| deps.is_empty())
            .map(|(name, _)| *name)
            .collect();
        let mut order: Vec<&str> = Vec::with_capacity(self.services.len());
        while let Some(name) = ready.pop_first() {
            order.push(name);
            for dependent in dependents.get(name).into_iter().flatten() {
                let deps = waiting
                    .get_mut(dependent)
                    .expect("every service is waiting");
                deps.remove(name);
                if deps.is_empty() {
                    ready.insert(dependent);
                }
            }
        }
        if order.len() < self.services.len() {
            let placed: BTreeSet<&str> = order.iter().copied().collect();
            let left: Vec<&str> = self
                .services
                .keys()
                .map(String::as_str)
                .filter(|n| !placed.contains(n))
                .collect();
            return Err(invalid(
                left[0],
                format!("depends_on forms a cycle among {}", left.join(", ")),
            ));
        }
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use crate::{ImageManifest, LayerDescriptor, ReleaseManifest, ServiceSpec, SCHEMA};

    fn release(deps: &[(&str, &[&str])]) -> ReleaseManifest {
        let digest = crate::Digest::of(b"layer");
        let image = ImageManifest {
            schema: SCHEMA,
            name: "app".into(),
            tag: "1".into(),
            layers: vec![LayerDescriptor {
                digest: digest.clone(),
                diff_id: digest,
                size: 1,
                unpacked_size: None,
            }],
            config: crate::ImageConfig {
                entrypoint: vec!["/app".into()],
                ..Default::default()
            },
            platform: None,
        };
        let services = deps
            .iter()
            .map(|(name, on)| {
                let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
                    "image": image, "depends_on": on,
                }))
                .unwrap();
                (name.to_string(), spec)
            })
            .collect();
        ReleaseManifest {
            schema: SCHEMA,
            name: "r".into(),
            version: "1".into(),
            services,
        }
    }

    #[test]
    fn services_start_after_what_they_depend_on_ties_by_name() {
        let r = release(&[
            ("web", &["db", "cache"]),
            ("db", &[]),
            ("cache", &["db"]),
            ("audit", &[]),
        ]);
        assert_eq!(r.start_order().unwrap(), ["audit", "db", "cache", "web"]);
        assert!(r.validate().is_ok());
    }

    #[test]
    fn ten_thousand_services_in_a_chain_are_ordered_quickly() {
        let names: Vec<String> = (0..10_000).map(|i| format!("s{i:05}")).collect();
        let deps: Vec<(&str, Vec<&str>)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.as_str(),
                    names.get(i + 1).map(String::as_str).into_iter().collect(),
                )
            })
            .collect();
        let deps: Vec<(&str, &[&str])> = deps.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        let chain = release(&deps);
        let order = chain.start_order().unwrap();
        assert_eq!(order.first(), Some(&"s09999"));
        assert_eq!(order.last(), Some(&"s00000"));
    }

    #[test]
    fn a_cycle_or_an_unknown_dependency_is_refused_by_name() {
        let cycle = release(&[("a", &["b"]), ("b", &["a"]), ("c", &[])]);
        let err = cycle.validate().unwrap_err().to_string();
        assert!(err.contains("cycle among a, b"), "{err}");
        let unknown = release(&[("web", &["database"])]);
        let err = unknown.validate().unwrap_err().to_string();
        assert!(err.contains("web") && err.contains("\"database\""), "{err}");
    }
}
