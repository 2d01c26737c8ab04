//! Helpers shared by integration tests (a directory, so cargo does not build
//! it as a test target of its own).

pub mod cdp;
pub mod cli;
