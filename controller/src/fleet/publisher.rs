//! The one publisher of desired states. Callers name devices whose
//! desired state changed (or must be re-sent); a single task publishes
//! them in turn, each read from the store when its turn comes and signed
//! then. So a deploy to 10,000 devices returns as soon as the store has
//! them, publishing goes on in the background, and whatever order
//! deploys, rollouts and re-publications interleave in, the last message
//! retained for a device is its latest desired state: a device named
//! while already waiting is not queued twice, and one named after its
//! read is queued again.

use crate::keys::Keyring;
use crate::store::Store;
use petrel_protocol::encode;
use petrel_protocol::topics::{self, Channel};
use rumqttc::{AsyncClient, QoS};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use tokio::sync::mpsc;

/// Queues devices for publication; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<String>,
    waiting: Arc<Mutex<HashSet<String>>>,
}

impl Publisher {
    /// Starts the publishing task on `client`.
    pub fn start(client: AsyncClient, keys: Arc<RwLock<Keyring>>, store: Store) -> Publisher {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = Arc::new(Mutex::new(HashSet::new()));
        tokio::spawn(run(rx, waiting.clone(), client, keys, store));
        Publisher { tx, waiting }
    }

    /// Publishes `device`'s desired state as stored when its turn comes
    /// (cleared on the broker if it has none).
    pub fn device(&self, device: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.insert(device.to_string()) {
            let _ = self.tx.send(device.to_string());
        }
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<String>,
    waiting: Arc<Mutex<HashSet<String>>>,
    client: AsyncClient,
    keys: Arc<RwLock<Keyring>>,
    store: Store,
) {
    while let Some(device) = rx.recv().await {
        // off the list before the read: a change after it names it again
        waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&device);
        let payload = match store.desired(&device) {
            Ok(Some(d)) => {
                let envelope = keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sign(&d, crate::now_ms());
                encode(&envelope)
            }
            // nothing desired: an empty retained message clears the
            // topic; agents ignore it and keep what they run
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!(%device, error = %e, "cannot read the desired state to publish");
                continue;
            }
        };
        let topic = topics::topic(&device, Channel::Desired);
        if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, payload).await {
            // the session is gone for good (the controller is stopping)
            tracing::warn!(%device, error = %e, "desired state not published");
        }
    }
}
