//! Device-side runtime: the content-addressed layer store, safe layer
//! unpacking, root filesystem assembly, and the [`Runtime`] trait through
//! which the agent runs service instances.
//!
//! Layout:
//! - [`unpack`]: streaming, defensive unpack of a zstd-compressed layer tar,
//!   verifying its `diff_id` before anything becomes visible.
//! - [`hostbin`]: a runnable rootfs from a host binary and its libraries.
//! - [`layers`]: the layer store (`diff_id` → unpacked tree), atomic installs.
//! - [`rootfs`]: assembly of an image's root filesystem from its layers
//!   (OCI whiteouts honoured).
//! - [`runtime`]: the [`Runtime`] trait and the instance types it speaks.
//! - [`native`]: the embedded default runtime: one supervised process per
//!   service, chrooted into its rootfs when running as root.
//! - [`docker`]: the Docker Engine runtime: one labelled container per
//!   service, its rootfs loaded as an image (no registry needed).
//! - `volumes`: a named volume's directory on first use, owned like the
//!   image's directory it is mounted on (both runtimes).

pub mod docker;
pub mod hostbin;
pub mod layers;
pub mod native;
pub mod rootfs;
pub mod runtime;
pub mod sim;
pub mod unpack;
mod volumes;

pub use docker::DockerRuntime;
pub use layers::{LayerError, LayerStore};
pub use native::NativeRuntime;
pub use runtime::{ImageLayers, InstanceSpec, InstanceStatus, Mount, Runtime, RuntimeError};
pub use sim::SimRuntime;
pub use unpack::{UnpackError, UnpackLimits, UnpackStats};
