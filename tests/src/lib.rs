//! Harness for the end-to-end scenarios in `tests/tests/`: starts the real
//! `petrel-controller` and `petrel-agent` binaries (and Mosquitto) as
//! processes on free loopback ports, a byte-counting TCP proxy, and the
//! sample app images.
//!
//! Layout:
//! - [`procs`]: controller and agent processes.
//! - [`mosquitto`]: a Mosquitto broker process.
//! - [`cli`]: running the `petrel` CLI against a test controller.
//! - [`docker`]: the local Docker Engine (containers of a device, cleanup).
//! - [`proxy`]: a TCP proxy that counts and throttles bytes.
//! - [`fleet`]: waiting for convergence, heartbeats, sample images.
//! - [`images`]: incompressible payloads, multi-layer test images.
//! - [`oci`]: a multi-platform OCI layout directory built by hand.
//! - [`hostile`]: an MQTT client over TLS that tries what it should not.
//! - [`powercut`]: power cuts that lose unsynced writes (an LD_PRELOAD
//!   shim's log, replayed under a strict model).

pub mod cli;
pub mod docker;
pub mod fleet;
pub mod hostile;
pub mod images;
pub mod mosquitto;
pub mod oci;
pub mod powercut;
pub mod procs;
pub mod proxy;

pub use cli::{failed_saying, petrel, succeeded};
pub use fleet::*;
pub use images::*;
pub use mosquitto::Mosquitto;
pub use procs::*;
pub use proxy::Proxy;
