//! The gRPC contract of the azr-sandbox daemon, `azr.sandbox.v1`.
//!
//! `azr/sandbox/v1/sandbox.proto` is the source of truth and documents every field; this
//! crate is the code generated from it (messages, the `Sandbox` client and server stubs), so
//! that the daemon and its clients cannot disagree about the wire format.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// Messages and services of package `azr.sandbox.v1`.
pub mod v1 {
    tonic::include_proto!("azr.sandbox.v1");
}

/// The `.proto` source, for tools that want to show or re-export it.
pub const PROTO: &str = include_str!("../azr/sandbox/v1/sandbox.proto");
