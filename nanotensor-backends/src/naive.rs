//! The naive backend.
