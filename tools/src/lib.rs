//! Shared pieces of the s6plugin command-line tools.

pub mod engine;
pub mod generate;
pub mod generate_cli;
pub mod limits;
pub mod logging;
pub mod sample;
