//! The int8 backend.
pub mod kernel;
pub mod pack;
