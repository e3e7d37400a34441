//! Answering the controller's log requests (`logs-request` topic): the
//! service named is looked up in the running release, its instance's
//! output tail read from the runtime in a task of its own (the update
//! lifecycle never waits for it), and the reply published on `logs`,
//! cut to the message limit.

use crate::machine::Applied;
use crate::session::Publisher;
use petrel_protocol::{decode, Limits, LogReply, LogRequest};
use petrel_runtime::Runtime;
use std::sync::Arc;

/// Decodes a request and, unless it is malformed or not for this device
/// (then only logged: there is no one to answer), spawns the task that
/// answers it.
pub fn answer<R: Runtime>(
    device_id: &str,
    bytes: &[u8],
    current: Option<&Applied>,
    runtime: Arc<R>,
    publisher: Publisher,
    limits: Limits,
) {
    let request: LogRequest = match decode(bytes, limits) {
        Ok(r) => r,
        Err(e) => return tracing::warn!(error = %e, "log request ignored"),
    };
    if request.device_id != device_id {
        return tracing::warn!(to = %request.device_id, "log request for another device ignored");
    }
    let instance = request
        .validate()
        .map_err(|e| e.to_string())
        .and_then(|()| instance_of(&request.service, current));
    tokio::spawn(async move {
        let reply = match instance {
            Ok(name) => match runtime.logs(&name, request.tail as usize).await {
                Ok(text) => LogReply::fitted(&request, &text, limits),
                Err(e) => request.failed(format!("reading the output of {name}: {e}")),
            },
            Err(why) => request.failed(why),
        };
        tracing::info!(service = %request.service, lines = request.tail, error = ?reply.error, "answered a log request");
        publisher.logs(&reply);
    });
}

/// The runtime instance of `service` in the running release, or an error
/// naming the service and the ones that exist.
pub fn instance_of(service: &str, current: Option<&Applied>) -> Result<String, String> {
    let release = current.and_then(|c| c.release.as_ref().map(|r| (c.generation, r)));
    let Some((generation, release)) = release else {
        return Err(format!(
            "no service {service:?}: this device runs no release"
        ));
    };
    if release.services.contains_key(service) {
        return Ok(crate::apply::instance_name(service, generation));
    }
    let known: Vec<&str> = release.services.keys().map(String::as_str).collect();
    Err(format!(
        "no service {service:?} in {}@{} (its services: {})",
        release.name,
        release.version,
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(generation: u64) -> Applied {
        Applied {
            generation,
            release: Some(crate::machine::tests::release("2")),
            instances: vec![],
        }
    }

    #[test]
    fn a_service_of_the_running_release_maps_to_its_instance() {
        let current = running(7);
        let release = current.release.as_ref().unwrap();
        let service = release.services.keys().next().unwrap().clone();
        assert_eq!(
            instance_of(&service, Some(&current)),
            Ok(format!("{service}-g7"))
        );
    }

    #[test]
    fn an_unknown_service_is_named_with_the_services_that_exist() {
        let current = running(7);
        let release = current.release.as_ref().unwrap();
        let err = instance_of("nope", Some(&current)).unwrap_err();
        assert!(err.contains("\"nope\""), "{err}");
        for s in release.services.keys() {
            assert!(err.contains(s.as_str()), "{err}");
        }
        let err = instance_of("web", None).unwrap_err();
        assert!(err.contains("runs no release"), "{err}");
    }
}
