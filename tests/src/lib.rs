//! End-to-end test support: the real Lambda binaries driven through a
//! Lambda Runtime API emulator against a local S3/DynamoDB server
//! (`churn_service::test_support::MotoServer`).
//!
//! # Layout
//! - [`runtime_api`]: the Runtime API emulator (`/invocation/next`, `/response`, `/error`, `/init/error`).
//! - [`binaries`]: builds and locates the function binaries.
//! - [`function`]: launches a function binary against the emulator; Lambda events.

pub mod binaries;
pub mod function;
pub mod runtime_api;
