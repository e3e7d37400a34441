//! placeholder (being written)
pub struct NativeRuntime;
