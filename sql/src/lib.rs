//! placeholder
pub mod dialect;
pub mod error;
pub mod parser;
pub mod types;
