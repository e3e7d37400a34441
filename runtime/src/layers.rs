//! placeholder (being written)
pub struct LayerStore;
