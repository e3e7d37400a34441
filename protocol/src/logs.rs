//! A service log tail on demand: the controller publishes a
//! [`LogRequest`] on a device's `logs-request` topic (QoS 1, not
//! retained: an offline device is simply not asked), the device answers
//! with a [`LogReply`] on its `logs` topic carrying the same `request_id`.
//!
//! A reply never exceeds the message limit: [`LogReply::fitted`] keeps the
//! last lines that fit and says so in `truncated`.

use crate::{encode, validate_device_id, validate_name, Limits, SCHEMA};
use serde::{Deserialize, Serialize};

/// The most lines one request may ask for.
pub const MAX_TAIL: u32 = 1000;

/// The controller asks a device for the last `tail` lines of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    pub schema: u32,
    pub device_id: String,
    /// Chosen by the controller, echoed in the reply: 1-64 characters of
    /// `[A-Za-z0-9_.-]`.
    pub request_id: String,
    /// The service's name in the running release.
    pub service: String,
    /// How many lines, 1 to [`MAX_TAIL`].
    pub tail: u32,
}

/// A device's answer to a [`LogRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogReply {
    pub schema: u32,
    pub device_id: String,
    pub request_id: String,
    pub service: String,
    /// The lines, oldest first, joined by `\n`.
    #[serde(default)]
    pub text: String,
    /// Whether older lines were left out for the message limit.
    #[serde(default)]
    pub truncated: bool,
    /// Why there is no text (an unknown service names the services that
    /// exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What is wrong with a log request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogRequestError {
    #[error("tail must be 1 to {MAX_TAIL} lines, not {0}")]
    Tail(u32),
    #[error("invalid service name: {0}")]
    Service(String),
    #[error("invalid device id: {0}")]
    DeviceId(String),
    #[error("invalid request id {0:?}: use 1-64 characters of A-Z a-z 0-9 _ . -")]
    RequestId(String),
}

impl LogRequest {
    /// A request, checked (see [`LogRequest::validate`]).
    pub fn new(
        device_id: &str,
        request_id: &str,
        service: &str,
        tail: u32,
    ) -> Result<LogRequest, LogRequestError> {
        let r = LogRequest {
            schema: SCHEMA,
            device_id: device_id.into(),
            request_id: request_id.into(),
            service: service.into(),
            tail,
        };
        r.validate()?;
        Ok(r)
    }

    /// Checks what the device acts on: the ids, the service name (as
    /// release manifests name services) and the tail's bounds.
    pub fn validate(&self) -> Result<(), LogRequestError> {
        validate_tail(self.tail)?;
        validate_device_id(&self.device_id)
            .map_err(|e| LogRequestError::DeviceId(e.to_string()))?;
        validate_name(&self.request_id, 64)
            .map_err(|_| LogRequestError::RequestId(self.request_id.clone()))?;
        validate_service(&self.service)
    }

    /// A reply to this request carrying `error` and no text.
    pub fn failed(&self, error: String) -> LogReply {
        LogReply {
            schema: SCHEMA,
            device_id: self.device_id.clone(),
            request_id: self.request_id.clone(),
            service: self.service.clone(),
            text: String::new(),
            truncated: false,
            error: Some(error),
        }
    }
}

/// A tail of 1 to [`MAX_TAIL`] lines.
pub fn validate_tail(tail: u32) -> Result<(), LogRequestError> {
    match tail {
        1..=MAX_TAIL => Ok(()),
        n => Err(LogRequestError::Tail(n)),
    }
}

/// A service name as release manifests allow it.
pub fn validate_service(service: &str) -> Result<(), LogRequestError> {
    validate_name(service, 128).map_err(|e| LogRequestError::Service(e.to_string()))
}

impl LogReply {
    /// The reply carrying `text`, or as many of its last lines as fit in a
    /// message of `limits` (a last line too long alone keeps its end).
    pub fn fitted(request: &LogRequest, text: &str, limits: Limits) -> LogReply {
        let mut reply = request.failed(String::new());
        reply.error = None;
        let mut probe = reply.clone();
        let mut fits = |start: usize| {
            probe.text = text[start..].to_string();
            encode(&probe).len() <= limits.max_message_bytes
        };
        let start = if fits(0) {
            0
        } else {
            // where a kept suffix may start: line starts first, then (for
            // a last line too long alone) its character boundaries
            let line_starts: Vec<usize> = text
                .match_indices('\n')
                .map(|(i, _)| i + 1)
                .filter(|&i| i < text.len())
                .collect();
            let last_line = line_starts.last().copied().unwrap_or(0);
            let chars: Vec<usize> = text[last_line..]
                .char_indices()
                .map(|(i, _)| last_line + i)
                .skip(1)
                .collect();
            reply.truncated = true;
            first_fitting(&line_starts, &mut fits)
                .or_else(|| first_fitting(&chars, &mut fits))
                .unwrap_or(text.len())
        };
        reply.text = text[start..].to_string();
        reply
    }
}

/// The smallest of the ascending `starts` for which `fits` holds (a later
/// start keeps less, so once one fits every later one does).
fn first_fitting(starts: &[usize], fits: &mut impl FnMut(usize) -> bool) -> Option<usize> {
    let (mut lo, mut hi) = (0, starts.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fits(starts[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    starts.get(lo).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tail: u32) -> LogRequest {
        LogRequest::new("pi-1", "r-1", "web", tail).unwrap()
    }

    fn lines(n: usize) -> String {
        (1..=n)
            .map(|i| format!("line {i:04}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_tail_of_zero_or_over_the_cap_is_refused() {
        assert_eq!(
            LogRequest::new("pi-1", "r", "web", 0),
            Err(LogRequestError::Tail(0))
        );
        assert!(LogRequest::new("pi-1", "r", "web", MAX_TAIL + 1).is_err());
        assert!(LogRequest::new("pi-1", "r", "web", MAX_TAIL).is_ok());
    }

    #[test]
    fn service_names_and_ids_are_held_to_the_protocol_rules() {
        for bad in ["", "../etc", "a/b", ".hidden", "x y"] {
            let e = LogRequest::new("pi-1", "r", bad, 5).unwrap_err();
            assert!(matches!(e, LogRequestError::Service(_)), "{bad:?}: {e}");
        }
        assert!(LogRequest::new("pi/1", "r", "web", 5).is_err());
        assert!(LogRequest::new("pi-1", "r/#", "web", 5).is_err());
        assert!(LogRequest::new("pi-1", "", "web", 5).is_err());
    }

    #[test]
    fn a_reply_that_fits_keeps_every_line() {
        let text = lines(10);
        let reply = LogReply::fitted(&request(10), &text, Limits::default());
        assert_eq!(reply.text, text);
        assert!(!reply.truncated);
        assert_eq!(reply.request_id, "r-1");
    }

    #[test]
    fn a_reply_over_the_limit_keeps_the_last_lines_that_fit() {
        let text = lines(1000);
        let limits = Limits {
            max_message_bytes: 1000,
        };
        let reply = LogReply::fitted(&request(1000), &text, limits);
        assert!(reply.truncated);
        assert!(encode(&reply).len() <= 1000);
        assert!(text.ends_with(&reply.text));
        assert!(reply.text.starts_with("line "), "{}", reply.text);
        assert!(reply.text.ends_with("line 1000"));
        // no more would fit: one more line goes over
        let more = &text[text.len() - reply.text.len() - "line 0999\n".len()..];
        let mut bigger = reply.clone();
        bigger.text = more.to_string();
        assert!(encode(&bigger).len() > 1000);
    }

    #[test]
    fn a_single_line_too_long_keeps_its_end_and_text_needing_escapes_still_fits() {
        let limits = Limits {
            max_message_bytes: 400,
        };
        let long = format!("start {} end", "é\"\u{1}".repeat(500));
        let reply = LogReply::fitted(&request(1), &long, limits);
        assert!(reply.truncated && reply.text.ends_with(" end"));
        assert!(encode(&reply).len() <= 400);
        let tiny = Limits {
            max_message_bytes: 10,
        };
        let reply = LogReply::fitted(&request(1), &long, tiny);
        assert!(reply.truncated && reply.text.is_empty());
    }

    #[test]
    fn an_old_reply_without_optional_fields_decodes() {
        let bytes = br#"{"schema":1,"device_id":"pi-1","request_id":"r","service":"web"}"#;
        let r: LogReply = crate::decode(bytes, Limits::default()).unwrap();
        assert_eq!(r.text, "");
        assert_eq!(r.error, None);
    }
}
