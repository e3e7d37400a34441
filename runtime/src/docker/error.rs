//! Mapping Docker Engine failures onto [`RuntimeError`].
//!
//! `RuntimeError` has no engine variant, so failures of the start path
//! become [`RuntimeError::Start`] (naming the instance and carrying the
//! engine's message) and every other engine failure becomes
//! [`RuntimeError::Io`] whose `path` names the container, image or socket
//! the operation was about.

use crate::runtime::RuntimeError;
use bollard::errors::Error;
use std::io;
use std::path::PathBuf;

/// HTTP status the engine answered with, if the failure was an answer.
pub(super) fn status(e: &Error) -> Option<u16> {
    match e {
        Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine does not know the container or image.
pub(super) fn is_not_found(e: &Error) -> bool {
    status(e) == Some(404)
}

/// The engine refused because the object is in use (or the name taken).
pub(super) fn is_conflict(e: &Error) -> bool {
    status(e) == Some(409)
}

/// The request had nothing to do (e.g. stopping a stopped container).
pub(super) fn is_not_modified(e: &Error) -> bool {
    status(e) == Some(304)
}

/// The engine's own message when it gave one, else the client's error.
pub(super) fn message(e: &Error) -> String {
    match e {
        Error::DockerResponseServerError { message, .. } => message.trim().to_string(),
        Error::DockerStreamError { error } => error.trim().to_string(),
        other => petrel_protocol::error_text(other),
    }
}

/// Adapter for `map_err`: a failed step of starting instance `name`.
pub(super) fn start_failed(name: &str, step: &str) -> impl FnOnce(Error) -> RuntimeError {
    let name = name.to_string();
    let step = step.to_string();
    move |e| RuntimeError::Start {
        name,
        reason: format!("{step}: {}", message(&e)),
    }
}

/// Adapter for `map_err`: engine operation `op` on `target` failed.
pub(super) fn engine_failed(op: &'static str, target: &str) -> impl FnOnce(Error) -> RuntimeError {
    let path = PathBuf::from(target);
    move |e| RuntimeError::Io {
        op,
        path,
        source: io::Error::other(message(&e)),
    }
}
