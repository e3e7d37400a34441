//! Petrel simulator: runs a controller and fleets of real agents in one
//! process, to rehearse rollouts. For now it carries the quickstart demo.
//!
//! Layout:
//! - [`demo`]: the quickstart: controller + agents on embedded defaults,
//!   sample app v1 then v2 rolled out, convergence printed and checked.
//! - [`bins`]: locating (and building) the workspace's other binaries.
//! - [`soak`]: crash-injection soak (SIGKILL at random points of updates).
//! - [`sample`]: the sample application's image directory and heartbeat.
//! - [`fleet`]: starting a controller and in-process agents on free ports.

pub mod bins;
pub mod demo;
pub mod fleet;
pub mod plan_bench;
pub mod sample;
pub mod soak;
