//! One connection per client id at a time through the front. rumqttd 0.20
//! handles a client id's new connection arriving while its old one is
//! still open (or timing out) with a race: the old link's late disconnect
//! event can end the new connection before its CONNACK, which leaves a
//! stale last-will handle behind, and the next CONNECT with that id
//! panics holding the broker's will lock, poisoning it for everyone (seen
//! in the fleet simulator's partition scenario, devices reconnecting
//! while their old connections were still in keep-alive). So the front
//! ends a client id's old connection and waits until the broker has let
//! go of it (its socket closed, after its disconnect event was sent)
//! before the new connection reaches the broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{watch, Notify};

struct Entry {
    id: u64,
    stop: Arc<Notify>,
    gone: watch::Receiver<bool>,
}

/// The open connections through the front, by client id.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Entry>>,
    next: AtomicU64,
}

/// A connection's place: asked to stop when a newer connection of its
/// client id arrives; its drop tells that newer one the broker let go.
pub struct Session {
    sessions: Arc<Sessions>,
    client_id: String,
    id: u64,
    stop: Arc<Notify>,
    gone: watch::Sender<bool>,
}

impl Sessions {
    /// Registers a connection for `client_id`; an older one is told to
    /// stop, and this waits until it is gone (however long the broker
    /// takes: giving up would let the two race). `None` when a newer
    /// connection of the same client id arrived meanwhile.
    pub async fn enter(self: &Arc<Self>, client_id: &str) -> Option<Session> {
        let stop = Arc::new(Notify::new());
        let (gone, gone_rx) = watch::channel(false);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            id,
            stop: stop.clone(),
            gone: gone_rx,
        };
        let previous = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(client_id.to_string(), entry);
        let session = Session {
            sessions: self.clone(),
            client_id: client_id.to_string(),
            id,
            stop,
            gone,
        };
        if let Some(mut old) = previous {
            old.stop.notify_one();
            // an error: the old one's side was dropped, so it is gone too
            let _ = old.gone.wait_for(|g| *g).await;
        }
        session.is_current().then_some(session)
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Session {
    /// Whether this is still the newest connection of its client id.
    fn is_current(&self) -> bool {
        self.sessions
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&self.client_id)
            .is_some_and(|e| e.id == self.id)
    }

    /// Resolves when a newer connection of the same client id arrived.
    pub async fn superseded(&self) {
        self.stop.notified().await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.gone.send(true);
        let mut open = self
            .sessions
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if open.get(&self.client_id).is_some_and(|e| e.id == self.id) {
            open.remove(&self.client_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_second_connection_waits_until_the_first_is_gone() {
        let sessions = Arc::new(Sessions::default());
        let first = sessions.enter("dev-1").await.unwrap();
        let s = sessions.clone();
        let second = tokio::spawn(async move { s.enter("dev-1").await });
        // the first is told to stop, and the second waits for it
        tokio::time::timeout(Duration::from_secs(1), first.superseded())
            .await
            .expect("the first connection is asked to stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the second waits for the first");
        drop(first);
        let second = second.await.unwrap().expect("the newest goes on");
        assert_eq!(sessions.len(), 1, "only the second is open");
        drop(second);
        assert!(sessions.is_empty());
    }

    #[tokio::test]
    async fn other_client_ids_do_not_wait_for_each_other() {
        let sessions = Arc::new(Sessions::default());
        let _a = sessions.enter("dev-a").await;
        let b = tokio::time::timeout(Duration::from_secs(1), sessions.enter("dev-b"))
            .await
            .expect("dev-b does not wait for dev-a");
        assert!(b.is_some());
        assert_eq!(sessions.len(), 2);
    }

    #[tokio::test]
    async fn a_connection_overtaken_while_waiting_gives_up() {
        let sessions = Arc::new(Sessions::default());
        let first = sessions.enter("dev-1").await.unwrap();
        let (s2, s3) = (sessions.clone(), sessions.clone());
        let second = tokio::spawn(async move { s2.enter("dev-1").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let third = tokio::spawn(async move { s3.enter("dev-1").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(second.await.unwrap().is_none(), "the second was overtaken");
        let third = third.await.unwrap();
        assert!(third.is_some(), "the newest goes on");
    }
}
