//! Petrel simulator: runs fleets of real agents against a real
//! controller, to rehearse rollouts over flaky networks, and carries the
//! quickstart demo.
//!
//! Layout:
//! - [`demo`]: the quickstart: controller + agents on embedded defaults,
//!   sample app v1 then v2 rolled out, convergence printed and checked.
//! - [`bins`]: locating (and building) the workspace's other binaries.
//! - [`soak`]: crash-injection soak (SIGKILL at random points of updates).
//! - [`sample`]: the sample application's image directory and heartbeat.
//! - [`fleet`]: starting a controller and in-process agents on free ports.
//! - [`scenario`]: the scenario file (fleet, links, releases, rollout,
//!   faults).
//! - [`link`]: the network fault layer between devices and controller.
//! - [`virtual_device`]: the real agent on a simulated runtime and an
//!   in-memory store.
//! - [`run`]: playing a scenario against a controller process.
//! - [`report`]: the run's JSON report, charts and HTML page.
//! - [`plan_bench`]: the rollout planning benchmark.

pub mod bins;
pub mod demo;
pub mod fleet;
pub mod link;
pub mod plan_bench;
pub mod report;
pub mod run;
pub mod sample;
pub mod scenario;
pub mod soak;
pub mod virtual_device;
