//! Service log tails on demand: [`super::Fleet::request_logs`] publishes
//! a [`LogRequest`] on the device's `logs-request` topic (QoS 1, not
//! retained) and waits for the [`LogReply`] with its `request_id`. Replies
//! go to the request waiting for them (a map of oneshot senders), never
//! into the store; one nobody waits for (late, unasked, or from another
//! device than the one asked) is dropped.

use petrel_protocol::logs::LogRequestError;
use petrel_protocol::{LogReply, LogRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// Why a log tail could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error(transparent)]
    Invalid(#[from] LogRequestError),
    #[error("device {device} did not answer within {secs} s (is it offline?)")]
    Timeout { device: String, secs: u64 },
    #[error("cannot publish the log request: {0}")]
    Publish(String),
}

/// The requests waiting for their reply, by request id.
#[derive(Clone, Default)]
pub struct PendingLogs {
    waiting: Arc<Mutex<HashMap<String, Waiting>>>,
}

/// A request's place in the waiting map: dropped (answered, timed out,
/// or its HTTP caller gone), the request stops waiting.
pub struct Ticket {
    pending: PendingLogs,
    id: String,
    pub reply: oneshot::Receiver<LogReply>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.id);
    }
}

struct Waiting {
    device: String,
    reply: oneshot::Sender<LogReply>,
}

impl PendingLogs {
    /// A new request to `device`, registered as waiting until its ticket
    /// is dropped; its reply comes on the ticket.
    pub fn open(
        &self,
        device: &str,
        service: &str,
        tail: u32,
    ) -> Result<(LogRequest, Ticket), LogsError> {
        let id = format!("{:x}-{:016x}", crate::now_ms(), rand::random::<u64>());
        let request = LogRequest::new(device, &id, service, tail)?;
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            id.clone(),
            Waiting {
                device: device.to_string(),
                reply: tx,
            },
        );
        let ticket = Ticket {
            pending: self.clone(),
            id,
            reply: rx,
        };
        Ok((request, ticket))
    }

    /// Hands a reply that came on `topic_device`'s `logs` topic to the
    /// request waiting for it; false if none was (or it was asked of
    /// another device).
    pub fn deliver(&self, topic_device: &str, reply: LogReply) -> bool {
        let mut waiting = self.lock();
        let ours = waiting
            .get(&reply.request_id)
            .is_some_and(|w| w.device == topic_device && reply.device_id == topic_device);
        if !ours {
            return false;
        }
        match waiting.remove(&reply.request_id) {
            Some(w) => w.reply.send(reply).is_ok(),
            None => false,
        }
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_to(req: &LogRequest, device: &str) -> LogReply {
        let mut r = LogReply::fitted(req, "a\nb", Default::default());
        r.device_id = device.into();
        r
    }

    #[tokio::test]
    async fn a_reply_reaches_the_request_waiting_for_it_and_only_once() {
        let pending = PendingLogs::default();
        let (req, mut ticket) = pending.open("pi-1", "web", 5).unwrap();
        assert!(pending.deliver("pi-1", reply_to(&req, "pi-1")));
        assert_eq!((&mut ticket.reply).await.unwrap().text, "a\nb");
        assert!(!pending.deliver("pi-1", reply_to(&req, "pi-1")));
        assert!(pending.is_empty());
    }

    #[test]
    fn another_device_cannot_answer_for_the_one_asked() {
        let pending = PendingLogs::default();
        let (req, ticket) = pending.open("pi-1", "web", 5).unwrap();
        assert!(!pending.deliver("pi-2", reply_to(&req, "pi-2")));
        assert!(!pending.deliver("pi-2", reply_to(&req, "pi-1")));
        assert_eq!(pending.len(), 1);
        drop(ticket); // given up on
        assert!(pending.is_empty());
        assert!(!pending.deliver("pi-1", reply_to(&req, "pi-1")));
    }

    #[test]
    fn a_bad_tail_or_service_is_refused_before_anything_is_sent() {
        let pending = PendingLogs::default();
        assert!(matches!(
            pending.open("pi-1", "web", 0),
            Err(LogsError::Invalid(_))
        ));
        assert!(pending.open("pi-1", "../x", 5).is_err());
        assert!(pending.is_empty());
    }
}
