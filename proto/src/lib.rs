#![doc = include_str!("../README.md")]

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod v1 {
    tonic::include_proto!("strata.v1");
}

/// How both ends connect (TLS, backoff): the transport crate, for callers that reach it through
/// the contract
pub use strata_transport as transport;

#[cfg(feature = "policy")]
mod convert;
#[cfg(feature = "policy")]
pub use convert::*;

/// The encoded file descriptor set of `strata.v1`, for server reflection
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/strata_descriptor.bin"));

impl std::fmt::Display for v1::Problem {
    /// `file:line:col: pointer: message`, as `policy validate` prints it
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.pointer.is_empty() {
            write!(f, "{}: ", self.pointer)?;
        }
        if self.severity == "warning" {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)
    }
}
